//! `psformer bench softmax`: "softmax alone" over a causal attention layer's encrypted scores
//! (Pythia-70M shape: 8 heads; 128 and 1024 tokens) on `N16_QP1765_BOOT_128BIT` (scores at
//! level 12, the level a bootstrap leaves): Power-Softmax vs NEXUS-style vs the square
//! strategy, each on our diagonal packing and on NEXUS's row packing (a division per
//! ciphertext). Every variant runs on the simulation evaluator (counts per level, bootstraps of
//! the exp variants' division, output against the exact function) and is priced by a measured
//! cost table; `--run` also runs the given token counts on ciphertexts and prints measured
//! seconds and precision against the `f64` twin.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use psf_circuits::bootstrap::presets::{self, EPHEMERAL_WEIGHT};
use psf_circuits::bootstrap::{Bootstrapper, Encapsulation};
use psf_circuits::cost::{CostModel, CostTable};
use psf_circuits::softmax::{
    AttentionShape, DiagonalPacking, RowPacking, ScorePacking, SoftmaxCircuit, SoftmaxConfig,
    SoftmaxVariant, exact, sim_bootstrap,
};
use psf_circuits::{Backend, HeBackend, SimBackend};
use psf_ckks::{
    Ciphertext, CkksParameters, Decryptor, Encoder, Encryptor, EvaluationKeys, Evaluator,
    KeyGenerator, LevelCounts, PrecisionStats, Primitive, sets,
};

use crate::bench_costs::loadavg;
use crate::timing::with_threads;

/// Level of the scores (the user levels of the bootstrapping set).
const INPUT_LEVEL: usize = 12;

/// Arguments of `bench softmax`.
#[derive(clap::Args)]
pub struct BenchSoftmaxArgs {
    /// Token counts (causal, queries = keys).
    #[arg(long, value_delimiter = ',', default_values_t = vec![128usize, 1024])]
    tokens: Vec<usize>,
    /// Attention heads.
    #[arg(long, default_value_t = 8)]
    heads: usize,
    /// Cost table of N16_QP1765_BOOT_128BIT (from `psformer bench costs --set n16_boot`).
    #[arg(long, default_value = "crates/circuits/costs/n16_boot.json")]
    costs: PathBuf,
    /// Token counts to also run on ciphertexts.
    #[arg(long, value_delimiter = ',')]
    run: Vec<usize>,
    /// Variants of the encrypted runs: power, taylor, square (the last two bootstrap their
    /// division with the N16_QP1765_BOOT_128BIT preset: 5.6 GiB of keys, ~12 GiB peak).
    #[arg(long, value_delimiter = ',', default_values_t = vec!["power".to_string()])]
    run_variants: Vec<String>,
    /// Threads of the encrypted runs.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Packings: `diagonal` (ours: one division for all ciphertexts) and `rows` (NEXUS's:
    /// whole rows per ciphertext, a division per ciphertext); encrypted runs use the first.
    #[arg(long, value_delimiter = ',', default_values_t = vec!["diagonal".to_string(), "rows".to_string()])]
    packings: Vec<String>,
    /// Encrypted runs on the row packing: evaluate only the first K ciphertexts (each does
    /// the same work on its own) and scale the time by `ciphertexts / K`.
    #[arg(long)]
    run_cts: Option<usize>,
}

/// The packing `name` of `shape` in `slots` slots.
fn packing(name: &str, shape: AttentionShape, slots: usize) -> anyhow::Result<ScorePacking> {
    Ok(match name {
        "diagonal" => ScorePacking::Diagonal(DiagonalPacking::new(shape, slots)?),
        "rows" => ScorePacking::Rows(RowPacking::new(shape, slots)?),
        _ => anyhow::bail!("unknown packing {name} (diagonal, rows)"),
    })
}

/// Seeded scores in `[-B, B]`, `scores[h][t][j]`.
fn scores(shape: AttentionShape, bound: f64, seed: u64) -> Vec<Vec<Vec<f64>>> {
    let mut s = seed;
    let mut next = move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * bound
    };
    (0..shape.heads)
        .map(|_| {
            (0..shape.tokens)
                .map(|t| (0..=t).map(|_| next()).collect())
                .collect()
        })
        .collect()
}

/// Largest error of a weight, relative to the largest weight of its row.
fn row_error(want: &[Vec<Vec<f64>>], have: &[Vec<Vec<f64>>]) -> f64 {
    let mut worst = 0.0f64;
    for (wr, hr) in want.iter().flatten().zip(have.iter().flatten()) {
        let m = wr.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (a, b) in wr.iter().zip(hr) {
            worst = worst.max((a - b).abs() / m);
        }
    }
    worst
}

/// Simulates the first `k` ciphertexts of a row-packed `circuit`; returns their counts.
fn simulate_rows(
    params: &CkksParameters,
    circuit: &SoftmaxCircuit,
    xs: &[Vec<f64>],
) -> anyhow::Result<LevelCounts> {
    let sim = SimBackend::new(params);
    let cts = (xs.iter())
        .map(|x| sim.encrypt(x, INPUT_LEVEL, sim.default_scale()))
        .collect::<Result<Vec<_>, _>>()?;
    let cs: Vec<_> = cts.iter().enumerate().collect();
    circuit.evaluate_rows(&sim, &cs, &sim_bootstrap(&sim, INPUT_LEVEL))?;
    Ok(sim.counter().snapshot_levels())
}

/// Simulates `circuit`; returns the counts and the output's error against the exact function.
fn simulate(
    params: &CkksParameters,
    circuit: &SoftmaxCircuit,
    s: &[Vec<Vec<f64>>],
) -> anyhow::Result<(LevelCounts, f64)> {
    let sim = SimBackend::new(params);
    let cts = (circuit.pack(s).iter())
        .map(|x| sim.encrypt(x, INPUT_LEVEL, sim.default_scale()))
        .collect::<Result<Vec<_>, _>>()?;
    let out = circuit.evaluate(&sim, &cts, &sim_bootstrap(&sim, INPUT_LEVEL))?;
    let values: Vec<Vec<f64>> = out.into_iter().map(|c| c.values).collect();
    let have = circuit.packing().unpack(&values);
    let err = row_error(
        &exact(circuit.variant(), &SoftmaxConfig::default(), s),
        &have,
    );
    Ok((sim.counter().snapshot_levels(), err))
}

fn describe(circuit: &SoftmaxCircuit) -> String {
    let (recip, depth) = circuit.reciprocal_report();
    let exp = circuit.exp_report().map_or(String::new(), |r| {
        format!(", exp max rel err {:.2e} on [-2, 2]", r.max_rel)
    });
    format!(
        "numerator+mask depth {}, 1/x on [{:.3e}, {:.3e}] depth {depth} (max rel err {:.1e}){exp}",
        circuit.numerator_depth(),
        recip.interval.0,
        recip.interval.1,
        recip.max_rel
    )
}

/// Runs the comparison.
pub fn run(args: &BenchSoftmaxArgs) -> anyhow::Result<()> {
    let params = sets::n16_boot_128bit().try_build()?;
    let table: CostTable = serde_json::from_str(
        &std::fs::read_to_string(&args.costs)
            .with_context(|| format!("reading {}", args.costs.display()))?,
    )?;
    anyhow::ensure!(
        table.params == params.ring().name(),
        "cost table is for {}",
        table.params
    );
    println!("load {} | cost table: {}", loadavg(), table.note);
    println!(
        "| tokens | packing | variant | ciphertexts | bootstraps | key switches | predicted 1T (s) | predicted 2T (s) | max weight err vs exact |"
    );
    println!("|---:|---|---|---:|---:|---:|---:|---:|---:|");
    for &tokens in &args.tokens {
        let shape = AttentionShape {
            heads: args.heads,
            tokens,
        };
        let s = scores(shape, 2.0, tokens as u64);
        for name in &args.packings {
            let packing = packing(name, shape, params.max_slots())?;
            for variant in SoftmaxVariant::ALL {
                let circuit = SoftmaxCircuit::new(variant, packing, SoftmaxConfig::default())?;
                let (counts, err) = simulate(&params, &circuit, &s)?;
                let predict = |t: usize| -> anyhow::Result<String> {
                    Ok(match CostModel::new(table.clone(), t) {
                        Ok(m) => format!("{:.2}", m.predict(&counts)?.seconds),
                        Err(_) => "-".into(),
                    })
                };
                println!(
                    "| {tokens} | {} | {} | {} | {} | {} | {} | {} | {err:.2e} |",
                    packing.name(),
                    variant.name(),
                    packing.ciphertexts(),
                    counts.totals().get(Primitive::Bootstrap),
                    counts.totals().key_switches(),
                    predict(1)?,
                    predict(2)?
                );
                eprintln!("  {}: {}", variant.name(), describe(&circuit));
                if let Ok(m) = CostModel::new(table.clone(), args.threads) {
                    eprintln!("    breakdown {}T: {}", args.threads, m.predict(&counts)?);
                }
            }
        }
    }
    for &tokens in &args.run {
        for name in &args.run_variants {
            let variant = match name.as_str() {
                "power" => SoftmaxVariant::Power,
                "taylor" => SoftmaxVariant::Taylor,
                "square" => SoftmaxVariant::Square,
                _ => anyhow::bail!("unknown variant {name} (power, taylor, square)"),
            };
            run_encrypted(&params, &table, args, tokens, variant)?;
        }
    }
    Ok(())
}

/// Bootstrapping for the exp variants' division: the preset's circuit, its keys'
/// rotations and the encapsulation keys.
struct Refresher {
    boot: Bootstrapper,
    encap: Encapsulation,
}

/// `variant` on ciphertexts at `tokens` tokens: measured seconds and precision.
fn run_encrypted(
    params: &CkksParameters,
    table: &CostTable,
    args: &BenchSoftmaxArgs,
    tokens: usize,
    variant: SoftmaxVariant,
) -> anyhow::Result<()> {
    let shape = AttentionShape {
        heads: args.heads,
        tokens,
    };
    let first = args.packings.first().map_or("diagonal", String::as_str);
    let packing = packing(first, shape, params.max_slots())?;
    let circuit = SoftmaxCircuit::new(variant, packing, SoftmaxConfig::default())?;
    let s = scores(shape, 2.0, tokens as u64);
    let all = circuit.pack(&s);
    // A subset of a row packing's ciphertexts, each evaluated on its own.
    let subset = match (packing, args.run_cts) {
        (ScorePacking::Rows(_), Some(k)) if k > 0 && k < all.len() => Some(k),
        (_, Some(k)) => anyhow::bail!(
            "--run-cts {k}: needs the row packing first in --packings and 0 < K < {}",
            all.len()
        ),
        _ => None,
    };
    let xs = all[..subset.unwrap_or(all.len())].to_vec();
    let counts = match subset {
        Some(_) => simulate_rows(params, &circuit, &xs)?,
        None => simulate(params, &circuit, &s)?.0,
    };
    let t0 = Instant::now();
    let mut kgen = KeyGenerator::seeded(params.ring(), 5);
    let sk = kgen.gen_secret_key();
    let needs_boot = counts.totals().get(Primitive::Bootstrap) > 0;
    let boot = match needs_boot {
        true => Some(Bootstrapper::new(params, presets::n16_128bit().config)?),
        false => None,
    };
    let mut rotations = packing.rotations();
    rotations.extend(boot.iter().flat_map(Bootstrapper::rotations));
    rotations.sort_unstable();
    rotations.dedup();
    let keys = EvaluationKeys::generate(&mut kgen, &sk, &rotations, needs_boot)?;
    let refresher = match boot {
        Some(boot) => Some(Refresher {
            boot,
            encap: Encapsulation::generate(params, &sk, EPHEMERAL_WEIGHT, Some(6))?,
        }),
        None => None,
    };
    let (enc, eval) = (Encoder::new(params), Evaluator::new(params, keys));
    let cts = (xs.iter())
        .map(|x| {
            let pt = enc.encode(
                x,
                params.max_log_slots(),
                INPUT_LEVEL,
                params.default_scale(),
            )?;
            Ok(Encryptor::with_secret_key(&sk).encrypt(&pt)?)
        })
        .collect::<anyhow::Result<Vec<Ciphertext>>>()?;
    eprintln!(
        "keys and {} ciphertexts in {:.1} s",
        cts.len(),
        t0.elapsed().as_secs_f64()
    );
    let he = HeBackend::new(params, &enc, &eval);
    let refresh = |ct: &Ciphertext| -> psf_circuits::Result<Ciphertext> {
        match &refresher {
            Some(r) => r.boot.bootstrap(&eval, Some(&r.encap), ct),
            None => Err(psf_circuits::CircuitError::Invalid(
                "unexpected bootstrap".into(),
            )),
        }
    };
    let load = loadavg();
    let (secs, out) = with_threads(args.threads, || -> anyhow::Result<_> {
        let t = Instant::now();
        let out = match subset {
            Some(_) => {
                let cs: Vec<_> = cts.iter().enumerate().collect();
                circuit.evaluate_rows(&he, &cs, &refresh)?
            }
            None => circuit.evaluate(&he, &cts, &refresh)?,
        };
        Ok((t.elapsed().as_secs_f64(), out))
    })??;
    // A real bootstrap records its inner primitives, not `Bootstrap`: compare without them.
    anyhow::ensure!(
        needs_boot || eval.counter().snapshot_levels() == counts,
        "HE counts differ from the simulation"
    );
    let have: Vec<f64> = (out.iter())
        .map(|c| Ok(enc.decode(&Decryptor::new(&sk).decrypt(c)?)?))
        .collect::<anyhow::Result<Vec<Vec<f64>>>>()?
        .concat();
    // Precision over the weights the packing reads (not masked or copy-half slots).
    // Row-packed ciphertexts are independent: the twin of the subset is the subset's twin.
    let twin = circuit.eval_f64(&xs);
    let slots = params.max_slots();
    let read: Vec<(f64, f64)> = (twin.concat().into_iter())
        .zip(have)
        .enumerate()
        .filter(|(i, _)| packing.is_read(i / slots, i % slots))
        .map(|(_, p)| p)
        .collect();
    let (want, have): (Vec<f64>, Vec<f64>) = read.into_iter().unzip();
    let stats = PrecisionStats::from_real(&want, &have);
    let predicted = CostModel::new(table.clone(), args.threads)
        .and_then(|m| m.predict(&counts))
        .map_or("-".into(), |p| format!("{p}"));
    let scaled = match subset {
        Some(k) => format!(
            " ({k} of {} ciphertexts: x {} = {:.1} s for all)",
            all.len(),
            all.len() / k,
            secs * all.len() as f64 / k as f64
        ),
        None => String::new(),
    };
    println!(
        "encrypted {} on {}, {} heads x {tokens} tokens, {}T: {secs:.2} s measured{scaled} \
         (load before {load}, after {}), predicted {predicted}; vs twin (weights read): {stats}",
        variant.name(),
        packing.name(),
        args.heads,
        args.threads,
        loadavg()
    );
    Ok(())
}
