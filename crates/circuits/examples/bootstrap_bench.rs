//! Bootstrapping benchmark: builds a preset of `psf_circuits::bootstrap::presets`, generates
//! the keys (time and size reported), bootstraps `2^(log_n - 1)` uniform inputs in `[-1, 1]`
//! (encrypted at level 0 with the default scale) a few times per thread count, and prints the
//! median time, the levels left, the precision (min/mean bits over all slots, real parts, as
//! OpenFHE's anchor) and the peak resident memory (keys + bootstrapper + bootstraps).
//!
//! `cargo run --release -p psf-circuits --example bootstrap_bench -- --log-n 16 --threads 1,2
//! [--reps 3] [--log-slots L] [--json]` (log_n 16 and 15 are the 128-bit sets; other values
//! run the INSECURE twin of the N=2^16 chain; `--log-slots` below `log_n - 1` bootstraps a
//! sparse packing of `2^L` slots).

use std::time::Instant;

use psf_circuits::bootstrap::presets::{self, EPHEMERAL_WEIGHT};
use psf_circuits::bootstrap::{Bootstrapper, Encapsulation};
use psf_ckks::{
    Ciphertext, Decryptor, Encoder, Encryptor, EvaluationKeys, Evaluator, KeyGenerator,
    PrecisionStats,
};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

unsafe extern "C" {
    /// mimalloc's run-time option setter (linked with the global allocator above).
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// `mi_option_purge_delay` (mimalloc v2 and v3 headers).
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

/// Key switching at N = 2^16 allocates and frees buffers of tens of MiB; by default mimalloc
/// returns them to the OS after 10 ms and every reuse faults the pages in again (measured:
/// ~30% of the run in the kernel's page clearing). A delay of a second keeps them mapped
/// between the operations of a bootstrap but still returns what key generation left.
fn keep_freed_memory() {
    // SAFETY: sets an integer option of the allocator; no other invariant involved.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, 1000) };
}

type Error = Box<dyn std::error::Error + Send + Sync>;

struct Args {
    log_n: u32,
    log_slots: Option<u32>,
    threads: Vec<usize>,
    reps: usize,
    json: bool,
}

fn parse_args() -> Result<Args, Error> {
    let mut args = Args {
        log_n: 16,
        log_slots: None,
        threads: vec![1, 2],
        reps: 3,
        json: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--log-n" => args.log_n = value()?.parse()?,
            "--threads" => {
                args.threads = (value()?.split(','))
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            "--reps" => args.reps = value()?.parse()?,
            "--log-slots" => args.log_slots = Some(value()?.parse()?),
            "--json" => args.json = true,
            _ => return Err(format!("unknown argument {a}").into()),
        }
    }
    if args.threads.is_empty() || args.reps == 0 {
        return Err("need at least one thread count and one repetition".into());
    }
    Ok(args)
}

/// `VmHWM` (peak resident set) or `VmRSS` of this process, in GiB.
fn proc_status_gib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    (status.lines())
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / (1024.0 * 1024.0))
}

fn gib(bytes: usize) -> f64 {
    bytes as f64 / (1u64 << 30) as f64
}

/// Uniform values in `[-1, 1]` (a seeded LCG: the run is reproducible).
fn uniform(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
        .collect()
}

struct Run {
    threads: usize,
    times_ms: Vec<f64>,
    stats: PrecisionStats,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        0.5 * (s[m - 1] + s[m])
    }
}

/// [`Bootstrapper::bootstrap`] stage by stage (the same calls), with each stage's time in ms.
fn timed_bootstrap(
    boot: &Bootstrapper,
    eval: &Evaluator,
    encap: &Encapsulation,
    ct: &Ciphertext,
    verbose: bool,
) -> Result<([f64; 4], Ciphertext), Error> {
    let mut ms = [0.0; 4];
    let mut t = Instant::now();
    let mut counts = eval.counter().snapshot();
    let mut lap = |i: usize| {
        ms[i] = t.elapsed().as_secs_f64() * 1e3;
        let now = eval.counter().snapshot();
        if verbose {
            println!("  stage {i}: {:.0} ms, {}", ms[i], now - counts);
        }
        counts = now;
        t = Instant::now();
    };
    let raised = boot.mod_raise(eval, Some(encap), ct)?;
    lap(0);
    let slots = boot.coeffs_to_slots(eval, &raised)?;
    lap(1);
    let scale_in = boot.raised_message_scale(ct.meta.scale);
    let reduced = boot.eval_mod_all(eval, &slots, scale_in)?;
    lap(2);
    let mut out = boot.slots_to_coeffs(eval, &reduced)?;
    out.meta.log_slots = ct.meta.log_slots;
    lap(3);
    Ok((ms, out))
}

fn pool(threads: usize) -> Result<rayon::ThreadPool, Error> {
    Ok(rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?)
}

fn main() -> Result<(), Error> {
    keep_freed_memory();
    let args = parse_args()?;
    let mut preset = presets::for_log_n(args.log_n);
    let params = preset.params.try_build()?;
    if let Some(l) = args.log_slots {
        if l == 0 || l > params.max_log_slots() {
            return Err(format!("--log-slots {l}: 1..={}", params.max_log_slots()).into());
        }
        preset.config.log_slots = l;
    }
    let ring = params.ring();
    let max_threads = *args.threads.iter().max().expect("non-empty");
    let log = |s: String| {
        if !args.json {
            println!("{s}");
        }
    };
    log(format!(
        "set {} (N = 2^{}, log QP = {:.1}, {} Q primes, {} P primes, dnum {}, secure: {}), \
         scale 2^{}, config {:?}",
        ring.name(),
        ring.log_n(),
        ring.log_qp(),
        ring.q().len(),
        ring.p().len(),
        ring.dnum(),
        ring.is_secure(),
        params.log_default_scale(),
        preset.config
    ));

    // Set-up and key generation with the largest thread count.
    let (boot, setup_s, keys, encap, sk, keygen_s) = pool(max_threads)?.install(|| {
        let t0 = Instant::now();
        let boot = Bootstrapper::new(&params, preset.config)?;
        let setup_s = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let mut kgen = KeyGenerator::new(ring);
        let sk = kgen.gen_secret_key();
        let keys = EvaluationKeys::generate(&mut kgen, &sk, &boot.rotations(), true)?;
        let encap = Encapsulation::generate(&params, &sk, EPHEMERAL_WEIGHT, None)?;
        let keygen_s = t1.elapsed().as_secs_f64();
        Ok::<_, Error>((boot, setup_s, keys, encap, sk, keygen_s))
    })?;
    let galois_keys = keys.galois.len();
    let key_bytes = keys.size_bytes() + encap.size_bytes();
    log(format!(
        "bootstrapper: {} diagonals ({:.2} GiB), set-up {setup_s:.1} s; keys: relin + {galois_keys} \
         Galois + 2 encapsulation, {:.2} GiB, generated in {keygen_s:.1} s ({max_threads} threads); \
         RSS {:.2} GiB",
        boot.diagonal_count(),
        gib(boot.size_bytes()),
        gib(key_bytes),
        proc_status_gib("VmRSS:")
    ));

    let log_slots = preset.config.log_slots;
    let slots = 1usize << log_slots;
    let x = uniform(slots, 2);
    let encoder = Encoder::new(&params);
    let pt = encoder.encode(&x, log_slots, 0, params.default_scale())?;
    let ct = Encryptor::with_secret_key(&sk).encrypt(&pt)?;
    let eval = Evaluator::new(&params, keys);
    let decryptor = Decryptor::new(&sk);
    let mut runs = Vec::new();
    for &threads in &args.threads {
        let (stages, out) = pool(threads)?.install(|| {
            let mut stages = Vec::new();
            let mut out = None;
            for rep in 0..args.reps {
                let verbose = !args.json && rep == 0;
                let (t, o) = timed_bootstrap(&boot, &eval, &encap, &ct, verbose)?;
                stages.push(t);
                out = Some(o);
            }
            Ok::<_, Error>((stages, out.expect("reps > 0")))
        })?;
        let times_ms: Vec<f64> = stages.iter().map(|s| s.iter().sum()).collect();
        let stage_ms: Vec<f64> = (0..4)
            .map(|i| median(&stages.iter().map(|s| s[i]).collect::<Vec<_>>()))
            .collect();
        log(format!(
            "[{threads}T] stages (median ms): ModRaise {:.0}, CoeffsToSlots {:.0}, EvalMod {:.0}, \
             SlotsToCoeffs {:.0}",
            stage_ms[0], stage_ms[1], stage_ms[2], stage_ms[3]
        ));
        let have = encoder.decode(&decryptor.decrypt(&out)?)?;
        let stats = PrecisionStats::from_real(&x, &have);
        log(format!(
            "[{threads}T] bootstrap median {:.0} ms (min {:.0}, max {:.0}) | levels left {} | \
             precision min {:.2} / mean {:.2} / median {:.2} bits | peak RSS {:.2} GiB",
            median(&times_ms),
            times_ms.iter().copied().fold(f64::INFINITY, f64::min),
            times_ms.iter().copied().fold(0.0, f64::max),
            out.level(),
            stats.min_bits,
            stats.mean_bits,
            stats.median_bits,
            proc_status_gib("VmHWM:")
        ));
        runs.push(Run {
            threads,
            times_ms,
            stats,
        });
    }
    let peak = proc_status_gib("VmHWM:");
    let levels_left = boot.output_level();
    if args.json {
        let runs: Vec<String> = (runs.iter())
            .map(|r| {
                let med = median(&r.times_ms);
                format!(
                    "{{\"threads\":{},\"median_ms\":{med:.1},\"times_ms\":{:?},\
                     \"sec_per_level\":{:.3},\"min_bits\":{:.2},\"mean_bits\":{:.2},\
                     \"median_bits\":{:.2}}}",
                    r.threads,
                    r.times_ms.iter().map(|t| t.round()).collect::<Vec<_>>(),
                    med / 1e3 / levels_left as f64,
                    r.stats.min_bits,
                    r.stats.mean_bits,
                    r.stats.median_bits
                )
            })
            .collect();
        println!(
            "{{\"set\":\"{}\",\"log_n\":{},\"log_qp\":{:.1},\"slots\":{slots},\
             \"levels_left\":{levels_left},\"galois_keys\":{galois_keys},\"key_gib\":{:.3},\
             \"diagonal_gib\":{:.3},\"keygen_s\":{keygen_s:.2},\"keygen_threads\":{max_threads},\
             \"setup_s\":{setup_s:.2},\"peak_rss_gib\":{peak:.3},\"runs\":[{}]}}",
            ring.name(),
            ring.log_n(),
            ring.log_qp(),
            gib(key_bytes),
            gib(boot.size_bytes()),
            runs.join(",")
        );
    } else {
        println!("levels left {levels_left}, peak RSS {peak:.2} GiB");
    }
    Ok(())
}
