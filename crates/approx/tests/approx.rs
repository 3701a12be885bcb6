//! The approximation toolkit: minimax fits equioscillate and beat interpolation, and every
//! named approximation meets the error it states.

use psf_approx::*;

/// Weighted error of `p` at `x`.
fn weighted_err(f: &dyn Fn(f64) -> f64, p: &Chebyshev, x: f64, w: ErrorWeight) -> f64 {
    let fx = f(x);
    let e = fx - p.eval(x);
    match w {
        ErrorWeight::Absolute => e,
        ErrorWeight::Relative => e / fx.abs(),
    }
}

fn check_equioscillation(
    name: &str,
    f: &dyn Fn(f64) -> f64,
    (a, b): (f64, f64),
    degree: usize,
    weight: ErrorWeight,
) {
    let opts = RemezOptions {
        weight,
        ..RemezOptions::default()
    };
    let m = remez(f, a, b, degree, &opts).unwrap();
    assert!(m.converged, "{name}: not converged after {}", m.iterations);
    assert_eq!(m.reference.len(), degree + 2);
    // Alternating signs, equal magnitudes on the reference.
    let errs: Vec<f64> = m
        .reference
        .iter()
        .map(|&x| weighted_err(f, &m.poly, x, weight))
        .collect();
    for w in errs.windows(2) {
        assert!(w[0] * w[1] < 0.0, "{name}: no alternation {errs:?}");
    }
    for e in &errs {
        assert!(
            (e.abs() / m.levelled_error - 1.0).abs() < 1e-6,
            "{name}: {e} vs E = {}",
            m.levelled_error
        );
    }
    // The reference extrema are the global maxima: a dense grid finds nothing larger.
    let grid = 50_001;
    let max_grid = (0..grid)
        .map(|i| a + (b - a) * i as f64 / (grid - 1) as f64)
        .map(|x| weighted_err(f, &m.poly, x, weight).abs())
        .fold(0.0, f64::max);
    assert!(
        max_grid <= m.levelled_error * (1.0 + 1e-6),
        "{name}: {max_grid}"
    );
    // Minimax beats interpolation at the Chebyshev nodes (never worse).
    let interp = Chebyshev::interpolate(f, a, b, degree);
    let max_interp = (0..grid)
        .map(|i| a + (b - a) * i as f64 / (grid - 1) as f64)
        .map(|x| weighted_err(f, &interp, x, weight).abs())
        .fold(0.0, f64::max);
    println!(
        "{name:<12} degree {degree:>2}: minimax {max_grid:.3e}, interpolation {max_interp:.3e}"
    );
    assert!(max_grid <= max_interp, "{name}: {max_grid} > {max_interp}");
}

#[test]
fn remez_equioscillates_and_beats_interpolation() {
    check_equioscillation("exp", &f64::exp, (-1.0, 2.0), 6, ErrorWeight::Absolute);
    check_equioscillation("gelu", &gelu_exact, (-6.0, 6.0), 12, ErrorWeight::Absolute);
    check_equioscillation("silu", &silu_exact, (-8.0, 8.0), 15, ErrorWeight::Absolute);
    check_equioscillation(
        "|x|+1",
        &|x: f64| x.abs() + 1.0,
        (-1.0, 1.0),
        8,
        ErrorWeight::Absolute,
    );
    check_equioscillation(
        "1/x",
        &|x: f64| 1.0 / x,
        (0.05, 1.0),
        10,
        ErrorWeight::Relative,
    );
    check_equioscillation(
        "1/sqrt",
        &|x: f64| 1.0 / x.sqrt(),
        (0.01, 4.0),
        9,
        ErrorWeight::Relative,
    );
}

/// Random points of the interval never beat the stated error by more than grid resolution.
fn check_stated(a: &Approximation, f: &dyn Fn(f64) -> f64, relative: bool) {
    let (lo, hi) = a.report.interval;
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut worst = 0.0f64;
    for _ in 0..20_000 {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let x = lo + (hi - lo) * (s >> 11) as f64 / (1u64 << 53) as f64;
        let e = (f(x) - a.eval(x)).abs();
        worst = worst.max(if relative { e / f(x).abs() } else { e });
    }
    let stated = if relative {
        a.report.max_rel
    } else {
        a.report.max_abs
    };
    println!("{:<10} {}", a.name, a.report);
    assert!(
        worst <= stated * 1.001,
        "{}: {worst} > stated {stated}",
        a.name
    );
    assert!(a.report.rms <= a.report.max_abs);
}

#[test]
fn named_approximations_meet_their_stated_errors() {
    let g = gelu(-8.0, 8.0, 31).unwrap();
    check_stated(&g, &gelu_exact, false);
    assert!(g.report.max_abs < 2e-3, "{}", g.report);
    let s = silu(-8.0, 8.0, 31).unwrap();
    check_stated(&s, &silu_exact, false);
    assert!(s.report.max_abs < 1e-3, "{}", s.report);
    let r = reciprocal(0.05, 1.0, 15).unwrap();
    check_stated(&r, &|x| 1.0 / x, true);
    assert!(r.report.max_rel < 0.05, "{}", r.report);
    let i = inv_sqrt(0.01, 4.0, 15).unwrap();
    check_stated(&i, &|x| 1.0 / x.sqrt(), true);
    assert!(i.report.max_rel < 0.2, "{}", i.report);
    // Higher degree, smaller error.
    assert!(gelu(-8.0, 8.0, 63).unwrap().report.max_abs < g.report.max_abs);
}

#[test]
fn composite_sign_and_relu() {
    let eps = 2f64.powi(-8);
    // Cheon et al.'s f_3 iterated: error shrinks with each stage.
    let c4 = CompositeSign::cheon(3, 4, eps);
    let c8 = CompositeSign::cheon(3, 11, eps);
    assert!(
        c8.report.max_abs < c4.report.max_abs && c8.report.max_abs < 1e-3,
        "{}",
        c8.report
    );
    assert_eq!(c8.report.degree, 7usize.pow(11));
    // Minimax composite: fewer stages for the same precision.
    let m = CompositeSign::for_precision(eps, 10.0).unwrap();
    println!("minimax sign {:?}: {}", m.stage_degrees(), m.report);
    println!("cheon f_3^11: {}", c8.report);
    assert!(m.report.max_abs <= 2f64.powi(-10));
    assert!(m.stages.len() < c8.stages.len());
    for x in [-1.0, -0.3, -eps, eps, 0.02, 1.0] {
        assert!((m.eval(x) - f64::signum(x)).abs() <= 2f64.powi(-10));
    }
    // Odd stages: sign(-x) = -sign(x).
    assert!((m.eval(0.37) + m.eval(-0.37)).abs() < 1e-12);
    let relu = CompositeRelu::new(m, 4.0);
    println!("relu: {}", relu.report);
    assert!(relu.report.max_abs <= 4.0 * eps);
    assert!((relu.eval(3.0) - 3.0).abs() < 4.0 * 2f64.powi(-10) && relu.eval(-3.0).abs() < 1e-2);
}
