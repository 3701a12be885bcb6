//! Minimax error of SiLU (or GELU) on an interval for a list of degrees, with the fit time:
//! what per-layer activation degrees cost in accuracy on the wide intervals of SmolLM2.
//!
//! `cargo run --release -p psf-poly --example activation_error -- -56 50 31,63,127,255 [gelu]`

use std::time::Instant;

use psf_poly::{ActivationFn, ActivationSpec};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: activation_error <a> <b> <degrees,comma,separated> [silu|gelu]";
    let [a, b, degrees, rest @ ..] = args.as_slice() else {
        return Err(usage.into());
    };
    let (a, b): (f64, f64) = (a.parse()?, b.parse()?);
    let f = match rest.first().map(String::as_str) {
        None | Some("silu") => ActivationFn::Silu,
        Some("gelu") => ActivationFn::Gelu,
        Some(other) => return Err(format!("unknown function {other}; {usage}").into()),
    };
    println!("{f:?} on [{a}, {b}]\n| degree | max abs error | fit time (s) |\n|---:|---:|---:|");
    for d in degrees.split(',') {
        let d: usize = d.trim().parse()?;
        let t = Instant::now();
        let spec = ActivationSpec::fit(f, (a, b), d)?;
        let secs = t.elapsed().as_secs_f64();
        println!("| {d} | {:.3e} | {secs:.2} |", spec.report.max_abs);
    }
    Ok(())
}
