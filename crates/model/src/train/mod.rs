//! Training: AdamW with warm-up + cosine schedule and gradient clipping, optional
//! range-minimization loss, seeded batches, checkpoint/resume, progress bar.
//! Entry point: [`run`] with a [`TrainConfig`].

pub mod checkpoint;
pub mod config;
pub mod optim;
pub mod run;
pub mod step;

pub use config::TrainConfig;
pub use optim::{AdamW, AdamWConfig, Schedule};
pub use run::{TrainReport, run};
pub use step::{RangeLoss, StepOutput, Trainer};
