//! Counters of the server, rendered in the Prometheus text format at `/v1/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The server's counters (never anything secret: counts, bytes and seconds).
#[derive(Default)]
pub struct Metrics {
    /// Sessions opened.
    pub sessions_created: AtomicU64,
    /// Sessions closed by their client.
    pub sessions_closed: AtomicU64,
    /// Sessions dropped for being idle.
    pub sessions_expired: AtomicU64,
    /// Bytes of request bodies received.
    pub bytes_received: AtomicU64,
    /// Bytes of job answers sent.
    pub bytes_sent: AtomicU64,
    /// Jobs finished successfully, by kind.
    jobs_ok: Mutex<BTreeMap<&'static str, (u64, f64)>>,
    /// Errors answered, by code.
    errors: Mutex<BTreeMap<&'static str, u64>>,
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// Gauges sampled when the metrics are rendered.
pub struct Gauges {
    /// Open sessions.
    pub sessions: usize,
    /// Jobs running.
    pub jobs_running: usize,
    /// Jobs waiting for a worker.
    pub jobs_queued: usize,
    /// Bytes accounted against the budget.
    pub memory_used: u64,
    /// The budget.
    pub memory_budget: u64,
}

impl Metrics {
    /// Adds `n` to `counter`.
    pub fn add(&self, counter: &AtomicU64, n: u64) {
        add(counter, n);
    }

    /// Records a successful job of `kind` that took `seconds`.
    pub fn job_ok(&self, kind: &'static str, seconds: f64) {
        let mut jobs = self.jobs_ok.lock().unwrap_or_else(|e| e.into_inner());
        let entry = jobs.entry(kind).or_default();
        entry.0 += 1;
        entry.1 += seconds;
    }

    /// Jobs of `kind` finished successfully so far.
    pub fn jobs_ok_of(&self, kind: &str) -> u64 {
        let jobs = self.jobs_ok.lock().unwrap_or_else(|e| e.into_inner());
        jobs.get(kind).map_or(0, |entry| entry.0)
    }

    /// Records an error answer with `code`.
    pub fn error(&self, code: &'static str) {
        let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        *errors.entry(code).or_default() += 1;
    }

    /// Errors answered with `code` so far.
    pub fn errors_with(&self, code: &str) -> u64 {
        let errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        errors.get(code).copied().unwrap_or(0)
    }

    /// The Prometheus text exposition.
    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::new();
        let mut line = |name: &str, kind: &str, help: &str, samples: &[(String, f64)]| {
            let _ = writeln!(out, "# HELP psf_{name} {help}\n# TYPE psf_{name} {kind}");
            for (labels, v) in samples {
                let _ = writeln!(out, "psf_{name}{labels} {v}");
            }
        };
        let one = |v: f64| vec![(String::new(), v)];
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed) as f64;
        line(
            "sessions_open",
            "gauge",
            "Open sessions.",
            &one(g.sessions as f64),
        );
        line(
            "jobs_running",
            "gauge",
            "Jobs running.",
            &one(g.jobs_running as f64),
        );
        line(
            "jobs_queued",
            "gauge",
            "Jobs waiting for a worker.",
            &one(g.jobs_queued as f64),
        );
        line(
            "memory_used_bytes",
            "gauge",
            "Bytes of keys and encrypted state.",
            &one(g.memory_used as f64),
        );
        line(
            "memory_budget_bytes",
            "gauge",
            "Memory budget.",
            &one(g.memory_budget as f64),
        );
        line(
            "sessions_created_total",
            "counter",
            "Sessions opened.",
            &one(load(&self.sessions_created)),
        );
        line(
            "sessions_closed_total",
            "counter",
            "Sessions closed by clients.",
            &one(load(&self.sessions_closed)),
        );
        line(
            "sessions_expired_total",
            "counter",
            "Sessions dropped when idle.",
            &one(load(&self.sessions_expired)),
        );
        line(
            "received_bytes_total",
            "counter",
            "Request body bytes.",
            &one(load(&self.bytes_received)),
        );
        line(
            "sent_bytes_total",
            "counter",
            "Job answer bytes.",
            &one(load(&self.bytes_sent)),
        );
        let jobs = self
            .jobs_ok
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let count: Vec<_> = jobs
            .iter()
            .map(|(k, v)| (format!("{{kind=\"{k}\"}}"), v.0 as f64))
            .collect();
        let secs: Vec<_> = jobs
            .iter()
            .map(|(k, v)| (format!("{{kind=\"{k}\"}}"), v.1))
            .collect();
        line("jobs_total", "counter", "Jobs completed.", &count);
        line(
            "job_seconds_total",
            "counter",
            "Seconds spent in completed jobs.",
            &secs,
        );
        let errors = self
            .errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let errs: Vec<_> = errors
            .iter()
            .map(|(k, v)| (format!("{{code=\"{k}\"}}"), *v as f64))
            .collect();
        line("errors_total", "counter", "Error answers by code.", &errs);
        out
    }
}
