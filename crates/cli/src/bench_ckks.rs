//! `psformer bench ckks`: CKKS primitive latencies at the OpenFHE anchor's parameters, with
//! the anchor's figures (measured in the same run by `scripts/bench_ckks_vs_openfhe.sh`)
//! and the ratio ours / OpenFHE.

use std::path::PathBuf;

use anyhow::Context;
use psf_ckks::{
    CkksParameters, CkksParametersLiteral, Encoder, Encryptor, EvaluationKeys, Evaluator,
    KeyGenerator, sets,
};

use crate::anchor::AnchorResults;
use crate::timing::{Timing, time, with_threads};

/// Arguments of `bench ckks`.
#[derive(clap::Args)]
pub struct BenchCkksArgs {
    /// Ring degrees to run, as log2 N (14: depth 5, 15: depth 11, 16: depth 20; all 128-bit).
    #[arg(long, value_delimiter = ',', default_values_t = vec![14u32, 15, 16])]
    log_n: Vec<u32>,
    /// Thread counts to run.
    #[arg(long, value_delimiter = ',', default_values_t = vec![1usize, 2])]
    threads: Vec<usize>,
    /// Repetitions per op (the median is reported).
    #[arg(long, default_value_t = 7)]
    reps: usize,
    /// OpenFHE anchor results (JSON lines from ../shared/anchors/bench_openfhe.py).
    #[arg(long)]
    anchor: Option<PathBuf>,
    /// Write all measurements as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(serde::Serialize)]
struct Row {
    op: &'static str,
    log_n: u32,
    threads: usize,
    #[serde(flatten)]
    timing: Timing,
    openfhe_ms: Option<f64>,
}

fn params_for(log_n: u32) -> anyhow::Result<CkksParametersLiteral> {
    Ok(match log_n {
        14 => sets::n14_depth5_128bit(),
        15 => sets::n15_depth11_128bit(),
        16 => sets::n16_depth20_128bit(),
        _ => anyhow::bail!("no benchmark parameter set for log N = {log_n} (use 14, 15 or 16)"),
    })
}

fn bench_set(
    params: &CkksParameters,
    threads: usize,
    reps: usize,
) -> anyhow::Result<Vec<(&'static str, Timing)>> {
    let ring = params.ring();
    let mut kgen = KeyGenerator::seeded(ring, 1);
    let sk = kgen.gen_secret_key();
    let pk = kgen.gen_public_key(&sk);
    let rotations: Vec<i64> = (1..=8).collect();
    let keys = EvaluationKeys::generate(&mut kgen, &sk, &rotations, false)?;
    let enc = Encoder::new(params);
    let eval = Evaluator::new(params, keys);
    let (log_slots, level, scale) = (
        params.max_log_slots(),
        ring.max_level(),
        params.default_scale(),
    );
    let x: Vec<f64> = (0..params.max_slots())
        .map(|i| ((i * 7919) % 2001) as f64 / 1000.0 - 1.0)
        .collect();
    let mut encryptor = Encryptor::with_public_key(&pk).seeded(3);
    let decryptor = psf_ckks::Decryptor::new(&sk);
    with_threads(
        threads,
        || -> anyhow::Result<Vec<(&'static str, Timing)>> {
            let pt = enc.encode(&x, log_slots, level, scale)?;
            let ct = encryptor.encrypt(&pt)?;
            let ct2 = eval.mul_new(&ct, &ct)?;
            let prod = eval.relinearize(&ct2)?;
            let mut out = vec![
                (
                    "encode",
                    time(reps, || enc.encode(&x, log_slots, level, scale)),
                ),
                ("encrypt (pk)", time(reps, || encryptor.encrypt(&pt))),
                (
                    "decrypt+decode",
                    time(reps, || {
                        enc.decode(&decryptor.decrypt(&ct).expect("decrypt"))
                    }),
                ),
                ("add", time(reps, || eval.add_new(&ct, &ct))),
                ("pt-mul", time(reps, || eval.mul_plain_new(&ct, &pt))),
                ("tensor", time(reps, || eval.mul_new(&ct, &ct))),
                ("relinearize", time(reps, || eval.relinearize(&ct2))),
                ("mul+relin", time(reps, || eval.mul_relin_new(&ct, &ct))),
                ("rescale", time(reps, || eval.rescale_new(&prod))),
                ("rotate", time(reps, || eval.rotate_new(&ct, 1))),
                (
                    "hoisted rotate x8",
                    time(reps, || eval.rotate_hoisted_new(&ct, &rotations)),
                ),
            ];
            out.push((
                "8 x rotate",
                time(reps.div_ceil(2), || {
                    rotations
                        .iter()
                        .map(|&k| eval.rotate_new(&ct, k))
                        .collect::<Result<Vec<_>, _>>()
                }),
            ));
            Ok(out)
        },
    )?
}

/// Runs the benchmark and prints the table.
pub fn run(args: &BenchCkksArgs) -> anyhow::Result<()> {
    let anchor = match &args.anchor {
        Some(p) => Some(AnchorResults::load(p)?),
        None => None,
    };
    let mut rows = Vec::new();
    for &log_n in &args.log_n {
        let params = params_for(log_n)?
            .try_build()
            .context("building parameters")?;
        let ring = params.ring();
        eprintln!(
            "{}: N=2^{log_n}, {} Q primes, {} P primes, dnum {}, log QP {:.0}",
            ring.name(),
            ring.q().len(),
            ring.p().len(),
            ring.dnum(),
            ring.log_qp()
        );
        for &threads in &args.threads {
            for (op, timing) in bench_set(&params, threads, args.reps)? {
                let openfhe_ms = anchor.as_ref().and_then(|a| a.median(op, log_n, threads));
                eprintln!("  [{threads}T] {op:<18} {:>10.2} ms", timing.median_ms);
                rows.push(Row {
                    op,
                    log_n,
                    threads,
                    timing,
                    openfhe_ms,
                });
            }
        }
    }
    print_table(&rows, &args.threads);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&rows)?)?;
    }
    Ok(())
}

fn print_table(rows: &[Row], threads: &[usize]) {
    let mut header = String::from("| op | N |");
    let mut rule = String::from("|---|---|");
    for t in threads {
        header.push_str(&format!(
            " ours {t}T (ms) | OpenFHE {t}T (ms) | ratio {t}T |"
        ));
        rule.push_str("---:|---:|---:|");
    }
    let speedup = threads.contains(&1) && threads.contains(&2);
    if speedup {
        header.push_str(" ours 1T/2T |");
        rule.push_str("---:|");
    }
    println!("{header}\n{rule}");
    let mut keys: Vec<(&str, u32)> = Vec::new();
    for r in rows {
        if !keys.contains(&(r.op, r.log_n)) {
            keys.push((r.op, r.log_n));
        }
    }
    for (op, log_n) in keys {
        let mut line = format!("| {op} | 2^{log_n} |");
        for &t in threads {
            match rows
                .iter()
                .find(|r| r.op == op && r.log_n == log_n && r.threads == t)
            {
                Some(r) => {
                    let theirs = r.openfhe_ms.map_or("-".into(), |v| format!("{v:.1}"));
                    let ratio = r
                        .openfhe_ms
                        .map_or("-".into(), |v| format!("{:.2}", r.timing.median_ms / v));
                    line.push_str(&format!(
                        " {:.1} | {theirs} | {ratio} |",
                        r.timing.median_ms
                    ));
                }
                None => line.push_str(" - | - | - |"),
            }
        }
        if speedup {
            let get = |t: usize| {
                rows.iter()
                    .find(|r| r.op == op && r.log_n == log_n && r.threads == t)
            };
            match (get(1), get(2)) {
                (Some(a), Some(b)) => line.push_str(&format!(
                    " {:.2}x |",
                    a.timing.median_ms / b.timing.median_ms
                )),
                _ => line.push_str(" - |"),
            }
        }
        println!("{line}");
    }
}
