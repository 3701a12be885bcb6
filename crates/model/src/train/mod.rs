//! Training: AdamW with warm-up + cosine schedule and gradient clipping, optional
//! range-minimization loss, seeded batches, checkpoint/resume, progress bar.

pub mod optim;
pub mod step;

pub use optim::{AdamW, AdamWConfig, Schedule};
pub use step::{RangeLoss, StepOutput, Trainer};
