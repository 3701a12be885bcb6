//! Repeated timing with medians, and thread-pool scoping.

use std::time::Instant;

/// Median, minimum and maximum of repeated timings, in milliseconds.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Timing {
    pub median_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
}

/// Runs `f` once to warm up, then `reps` times; returns the timing statistics.
pub fn time<T>(reps: usize, mut f: impl FnMut() -> T) -> Timing {
    std::hint::black_box(f());
    let mut ts: Vec<f64> = (0..reps.max(1))
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ts.sort_by(|a, b| a.total_cmp(b));
    Timing {
        median_ms: ts[ts.len() / 2],
        min_ms: ts[0],
        max_ms: ts[ts.len() - 1],
    }
}

/// Runs `f` inside a rayon pool of `threads` threads.
pub fn with_threads<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> anyhow::Result<T> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    Ok(pool.install(f))
}

/// A progress bar over the `total` stages of an encrypted pass (stage name as message).
pub fn stage_bar(total: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} stages {msg}",
    ) {
        bar.set_style(style);
    }
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}
