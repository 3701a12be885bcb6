//! `psformer bench costs`: measures the cost table of a parameter set (every primitive at every
//! level of a grid, median of repetitions, at each thread count; bootstrapping end to end on
//! the bootstrapping set) and writes it as JSON for `psf_circuits::cost::CostModel`.

use std::path::PathBuf;

use anyhow::Context;
use psf_circuits::bootstrap::presets;
use psf_circuits::cost::{CostTable, MeasureConfig, measure_bootstrap, measure_table};
use psf_ckks::{CkksParametersLiteral, Primitive, sets};

/// Arguments of `bench costs`.
#[derive(clap::Args)]
pub struct BenchCostsArgs {
    /// Parameter set: `n16_depth20` (N16_QP1460_DEPTH20_128BIT) or `n16_boot`
    /// (N16_QP1765_BOOT_128BIT), or the test ring `insecure_n12`.
    #[arg(long, default_value = "n16_depth20")]
    set: String,
    /// Levels to measure (default: every level; a sparse grid is interpolated linearly).
    #[arg(long, value_delimiter = ',')]
    levels: Vec<usize>,
    /// Thread counts.
    #[arg(long, value_delimiter = ',', default_values_t = vec![1usize, 2])]
    threads: Vec<usize>,
    /// Timed repetitions per point (after a warm-up run); the median is kept.
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Also time bootstrapping (only for `n16_boot`; 5.6 GiB of keys, ~12 GiB peak).
    #[arg(long)]
    bootstrap: bool,
    /// Repetitions of the bootstrap timing.
    #[arg(long, default_value_t = 2)]
    bootstrap_reps: usize,
    /// Free text stored in the table (machine and load are added).
    #[arg(long, default_value = "")]
    note: String,
    /// Output JSON file.
    #[arg(long, required_unless_present = "check")]
    out: Option<PathBuf>,
    /// Instead of measuring: check the model of this table against a measured run
    /// (polynomial + linear transform at the table's set).
    #[arg(long)]
    check: Option<PathBuf>,
}

fn params_for(set: &str) -> anyhow::Result<CkksParametersLiteral> {
    Ok(match set {
        "n16_depth20" => sets::n16_depth20_128bit(),
        "n16_boot" => sets::n16_boot_128bit(),
        "insecure_n12" => sets::insecure_n12(),
        _ => anyhow::bail!("unknown set {set} (n16_depth20, n16_boot, insecure_n12)"),
    })
}

/// `/proc/loadavg`'s first three fields (the machine load, recorded with the table).
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Runs the measurement and writes the table.
pub fn run(args: &BenchCostsArgs) -> anyhow::Result<()> {
    let params = params_for(&args.set)?
        .try_build()
        .context("building parameters")?;
    if let Some(path) = &args.check {
        let table: CostTable = serde_json::from_str(
            &std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?,
        )?;
        anyhow::ensure!(
            table.params == params.ring().name(),
            "table {} is for {}, not {}",
            path.display(),
            table.params,
            params.ring().name()
        );
        return crate::cost_check::run(&params, &table, args.reps);
    }
    let out = args.out.as_ref().context("--out is required")?;
    let load_before = loadavg();
    eprintln!(
        "{}: N=2^{}, max level {}, load {load_before}",
        params.ring().name(),
        params.ring().log_n(),
        params.ring().max_level()
    );
    let mut cfg = MeasureConfig {
        levels: args.levels.clone(),
        threads: args.threads.clone(),
        reps: args.reps,
        seed: 1,
        note: String::new(),
    };
    let mut table = measure_table(&params, &cfg, |t, l| {
        eprintln!("  [{t}T] level {l} done (load {})", loadavg())
    })?;
    if args.bootstrap {
        anyhow::ensure!(args.set == "n16_boot", "--bootstrap needs --set n16_boot");
        for c in measure_bootstrap(
            &presets::n16_128bit(),
            &args.threads,
            args.bootstrap_reps,
            7,
        )? {
            eprintln!("  [{}T] bootstrap {:.0} ms", c.threads, c.points[0].ms);
            table.insert(c);
        }
    }
    cfg.note = format!(
        "{} | {} cpus | load (1/5/15 min) before {load_before}, after {} | reps {} | `psformer \
         bench costs --set {} --threads {:?}{}`",
        args.note,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg(),
        args.reps,
        args.set,
        args.threads,
        if args.bootstrap { " --bootstrap" } else { "" }
    );
    table.note = cfg.note;
    print_table(&table);
    std::fs::write(out, serde_json::to_string_pretty(&table)?)
        .with_context(|| format!("writing {}", out.display()))?;
    eprintln!("wrote {}", out.display());
    Ok(())
}

/// Prints the table as markdown: one row per (primitive, threads), the top, middle and lowest
/// measured level.
pub fn print_table(table: &CostTable) {
    println!("{} ({})\n", table.params, table.note);
    println!("| primitive | threads | ms at lowest level | ms at middle | ms at top level |");
    println!("|---|---:|---:|---:|---:|");
    for p in Primitive::ALL {
        for t in table.thread_counts() {
            let Some(c) = table.curve(p, t) else { continue };
            let pick = |i: usize| {
                c.points
                    .get(i)
                    .map_or("-".into(), |q| format!("{:.2} (l={})", q.ms, q.level))
            };
            let n = c.points.len();
            println!(
                "| {p:?} | {t} | {} | {} | {} |",
                pick(0),
                pick(n / 2),
                pick(n - 1)
            );
        }
    }
}
