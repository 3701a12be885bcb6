//! The blocking worker pool: at most `max_running` jobs run at once (each on a tokio blocking
//! thread), at most `max_queued` wait; beyond that a job is refused as [`ServiceError::Busy`].
//! A job that panics is answered as [`ServiceError::Internal`]; the server stays up.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Semaphore;

use crate::{Result, ServiceError};

/// Admission and concurrency control of jobs.
pub struct JobPool {
    permits: Arc<Semaphore>,
    max_running: usize,
    max_queued: usize,
    waiting: Arc<AtomicUsize>,
    running: Arc<AtomicUsize>,
}

/// Decrements a gauge when dropped (also when the request is abandoned).
struct Gauge(Arc<AtomicUsize>);

impl Gauge {
    fn enter(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Self(counter.clone())
    }
}

impl Drop for Gauge {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl JobPool {
    /// A pool running `max_running` jobs with `max_queued` waiting.
    pub fn new(max_running: usize, max_queued: usize) -> Self {
        let max_running = max_running.max(1);
        Self {
            permits: Arc::new(Semaphore::new(max_running)),
            max_running,
            max_queued,
            waiting: Arc::default(),
            running: Arc::default(),
        }
    }

    /// Jobs running now.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    /// Jobs waiting now.
    pub fn queued(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Runs `job` on a blocking worker once a slot is free.
    ///
    /// # Errors
    /// [`ServiceError::Busy`] when the queue is full, [`ServiceError::ShuttingDown`] once the
    /// pool is closed, [`ServiceError::Internal`] if the job panicked, or the job's error.
    pub async fn run<T, F>(&self, job: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T> + Send + 'static,
    {
        let waiting = Gauge::enter(&self.waiting);
        let (running, queued) = (self.running(), self.queued());
        if running + queued > self.max_running + self.max_queued {
            return Err(ServiceError::Busy {
                running,
                queued: queued - 1,
            });
        }
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ServiceError::ShuttingDown)?;
        drop(waiting);
        let running = Gauge::enter(&self.running);
        let outcome = tokio::task::spawn_blocking(move || {
            let _held = (permit, running);
            job()
        })
        .await;
        match outcome {
            Ok(result) => result,
            Err(e) if e.is_panic() => Err(ServiceError::Internal {
                reason: "the job panicked".into(),
            }),
            Err(_) => Err(ServiceError::Internal {
                reason: "the job was cancelled".into(),
            }),
        }
    }

    /// Refuses every job that has not started yet.
    pub fn close(&self) {
        self.permits.close();
    }
}
