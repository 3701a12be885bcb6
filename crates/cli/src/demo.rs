//! `psformer demo`: what the engine does today, end to end on 128-bit parameters.
//!
//! The client encrypts a block of attention scores (rows of `keys` scores, packed in slots);
//! the server computes the Power-Softmax numerators `s^p` (power by squaring) and the
//! length-agnostic row means `mean_j s_j^p` (rotate-and-sum, times the public `1/L`) without
//! seeing the scores; the client decrypts and compares with the cleartext f64 twin. (The
//! full encrypted language model arrives with the inference engine.)

use std::time::Instant;

use anyhow::Context;
use psf_ckks::{
    Ciphertext, Decryptor, Encoder, Encryptor, EvaluationKeys, Evaluator, KeyGenerator,
    PrecisionStats, sets,
};

/// Arguments of `demo`.
#[derive(clap::Args)]
pub struct DemoArgs {
    /// Keys per attention row (a power of two).
    #[arg(long, default_value_t = 128)]
    keys: usize,
    /// Power-Softmax exponent (a power of two, computed by repeated squaring).
    #[arg(long, default_value_t = 4)]
    power: u32,
    /// Use the N=2^15 set instead of N=2^16 (faster, fewer levels).
    #[arg(long)]
    small: bool,
}

/// Runs the demo.
pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.keys.is_power_of_two() && args.keys >= 2,
        "--keys must be a power of two >= 2"
    );
    anyhow::ensure!(
        args.power.is_power_of_two() && args.power >= 2,
        "--power must be a power of two >= 2"
    );
    let lit = if args.small {
        sets::n15_depth11_128bit()
    } else {
        sets::n16_depth20_128bit()
    };
    let t = Instant::now();
    let params = lit.try_build().context("building parameters")?;
    let ring = params.ring();
    println!(
        "parameters {}: N = 2^{}, log QP = {:.0} (128-bit bound {}), {} levels, dnum {}",
        ring.name(),
        ring.log_n(),
        ring.log_qp(),
        psf_rlwe::security::max_log_qp_128(ring.log_n()).unwrap_or(0),
        ring.max_level(),
        ring.dnum()
    );
    let slots = params.max_slots();
    anyhow::ensure!(args.keys <= slots, "--keys must be at most {slots}");
    let rows = slots / args.keys;

    // Client: keys (OS randomness) and encryption of the scores.
    let mut kgen = KeyGenerator::new(ring);
    let sk = kgen.gen_secret_key();
    let pk = kgen.gen_public_key(&sk);
    let rotations: Vec<i64> = (0..args.keys.trailing_zeros()).map(|i| 1i64 << i).collect();
    let keys = EvaluationKeys::generate(&mut kgen, &sk, &rotations, false)?;
    println!(
        "key generation: {:.2} s (evaluation keys {:.0} MiB)",
        t.elapsed().as_secs_f64(),
        keys.size_bytes() as f64 / 1048576.0
    );
    let scores: Vec<f64> = (0..slots)
        .map(|i| ((i * 7919 + 13) % 2000) as f64 / 1000.0 - 1.0)
        .collect();
    let enc = Encoder::new(&params);
    let t = Instant::now();
    let pt = enc.encode(
        &scores,
        params.max_log_slots(),
        ring.max_level(),
        params.default_scale(),
    )?;
    let ct = Encryptor::with_public_key(&pk).encrypt(&pt)?;
    println!(
        "encode + encrypt {rows} rows x {} scores: {:.0} ms",
        args.keys,
        t.elapsed().as_secs_f64() * 1e3
    );

    // Server: s^p by squaring, then the row mean by rotate-and-sum.
    let eval = Evaluator::new(&params, keys);
    let t = Instant::now();
    let mut pow = ct;
    for _ in 0..args.power.trailing_zeros() {
        pow = eval.mul_relin_new(&pow, &pow)?;
        eval.rescale(&mut pow)?;
    }
    let t_pow = t.elapsed();
    let t = Instant::now();
    let mean = row_mean(&eval, &pow, args.keys)?;
    let t_mean = t.elapsed();
    println!(
        "server: s^{} in {:.0} ms ({} mul+relin+rescale), row mean in {:.0} ms ({} rotations); {} levels left",
        args.power,
        t_pow.as_secs_f64() * 1e3,
        args.power.trailing_zeros(),
        t_mean.as_secs_f64() * 1e3,
        rotations.len(),
        mean.level()
    );

    // Client: decrypt and compare with the f64 twin.
    let dec = Decryptor::new(&sk);
    let have_pow = enc.decode(&dec.decrypt(&pow)?)?;
    let have_mean = enc.decode(&dec.decrypt(&mean)?)?;
    let want_pow: Vec<f64> = scores.iter().map(|s| s.powi(args.power as i32)).collect();
    let want_mean: Vec<f64> = (0..slots)
        .map(|i| {
            let row = i / args.keys;
            want_pow[row * args.keys..(row + 1) * args.keys]
                .iter()
                .sum::<f64>()
                / args.keys as f64
        })
        .collect();
    // Only the first slot of each row holds the complete sum.
    let firsts = |v: &[f64]| (0..rows).map(|r| v[r * args.keys]).collect::<Vec<_>>();
    println!(
        "precision s^{}:       {}",
        args.power,
        PrecisionStats::from_real(&want_pow, &have_pow)
    );
    println!(
        "precision row means: {}",
        PrecisionStats::from_real(&firsts(&want_mean), &firsts(&have_mean))
    );
    Ok(())
}

/// Sums each block of `width` slots into its first slot (log2(width) rotations) and
/// multiplies by `1/width` with an exact-scale constant product.
fn row_mean(eval: &Evaluator, ct: &Ciphertext, width: usize) -> anyhow::Result<Ciphertext> {
    let mut acc = ct.clone();
    let mut step = 1;
    while step < width {
        let rotated = eval.rotate_new(&acc, step as i64)?;
        acc = eval.add_new(&acc, &rotated)?;
        step <<= 1;
    }
    Ok(eval.mul_const_then_rescale_new(&acc, 1.0 / width as f64)?)
}

/// `psformer params`: the named sets.
pub fn list_params() -> anyhow::Result<()> {
    println!("| name | N | log QP | 128-bit bound | levels | dnum | secure |");
    println!("|---|---|---:|---:|---:|---:|---|");
    for lit in [
        sets::n14_depth5_128bit(),
        sets::n15_depth11_128bit(),
        sets::n16_depth20_128bit(),
        sets::insecure_n10(),
        sets::insecure_n12(),
    ] {
        let p = lit.try_build()?;
        let r = p.ring();
        println!(
            "| {} | 2^{} | {:.0} | {} | {} | {} | {} |",
            r.name(),
            r.log_n(),
            r.log_qp(),
            psf_rlwe::security::max_log_qp_128(r.log_n()).map_or("-".into(), |b| b.to_string()),
            r.max_level(),
            r.dnum(),
            if r.is_secure() {
                "yes"
            } else {
                "NO (tests only)"
            }
        );
    }
    Ok(())
}
