//! In-context learning on synthetic token tasks, as accuracy against the number of shots.
//!
//! Episodes are built from single-token words of the model's own tokenizer (tokens made of a
//! leading space and 3+ lowercase letters, the most frequent
//! [`WORD_POOL`](crate::data::tokenizer::WORD_POOL) of them), so they
//! need no training data; a prediction is right when the arg-max of the next-token logits is
//! the expected token. Exact match over the whole vocabulary stays at 0 for small models whose
//! prior puts punctuation and function words first, so each point also reports two graded
//! measures: the accuracy of the arg-max among the pool's words only, and the mean
//! log-probability of the expected token (in-context learning shows as it rising with the
//! shots). Both probes are seeded.
//!
//! - **`induction`** (pattern induction): a random pattern of `pattern_len` distinct words is
//!   shown `shots` times and then once more; accuracy is over the predictions of words
//!   `2..=pattern_len` of that last presentation (each one is predictable only by copying what
//!   followed the same word before). `shots = 0` is the no-context baseline.
//! - **`recall`** (associative recall): `shots` key-value word pairs `k1 v1 k2 v2 ...`, then
//!   one of the keys again; right when the model predicts its value. More shots means more
//!   pairs to search, so this curve measures retrieval under interference.

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

use crate::data::tokenizer::word_pool;
use crate::error::Error;
use crate::eval::choice::mean_stderr;
use crate::eval::scorer::{CausalLm, argmax};

/// Which synthetic task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IclTask {
    /// Pattern induction (copy a repeated pattern).
    Induction,
    /// Associative recall of key-value pairs.
    Recall,
}

/// Accuracy at one number of shots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IclPoint {
    /// Shots (earlier presentations for induction, stored pairs for recall).
    pub shots: usize,
    /// Fraction of right predictions.
    pub accuracy: f64,
    /// Its standard error over predictions.
    pub stderr: f64,
    /// Predictions scored.
    pub predictions: usize,
    /// Fraction right when the arg-max is taken over the word pool only (chance `1 / pool`).
    #[serde(default)]
    pub pool_accuracy: f64,
    /// Mean natural-log probability of the expected token (over the whole vocabulary).
    #[serde(default)]
    pub target_logprob: f64,
}

/// An accuracy-vs-shots curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IclCurve {
    /// The task.
    pub task: IclTask,
    /// One point per number of shots.
    pub points: Vec<IclPoint>,
    /// Accuracy of guessing uniformly among the word pool.
    pub chance: f64,
}

/// Parameters of an ICL probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IclConfig {
    /// The numbers of shots to measure.
    pub shots: Vec<usize>,
    /// Episodes per point.
    pub episodes: usize,
    /// Words per induction pattern.
    pub pattern_len: usize,
    /// Seeds the episodes.
    pub seed: u64,
}

impl IclConfig {
    /// Defaults that fit a 64-token context: induction with patterns of 8 words shown
    /// 0..=6 times, recall with 1..=16 pairs, 64 episodes per point.
    pub fn default_for(task: IclTask) -> Self {
        IclConfig {
            shots: match task {
                IclTask::Induction => (0..=6).collect(),
                IclTask::Recall => vec![1, 2, 4, 8, 16],
            },
            episodes: 64,
            pattern_len: 8,
            seed: 7,
        }
    }
}

/// One episode: the tokens and, for each scored position, the expected next token.
struct Episode {
    ids: Vec<u32>,
    targets: Vec<(usize, u32)>, // (position whose logits predict, expected token)
}

fn induction_episode(pool: &[u32], shots: usize, len: usize, rng: &mut ChaCha8Rng) -> Episode {
    let pattern: Vec<u32> = pool.choose_multiple(rng, len).copied().collect();
    let ids: Vec<u32> = pattern
        .iter()
        .copied()
        .cycle()
        .take(len * (shots + 1))
        .collect();
    let last = len * shots;
    let targets = (1..len).map(|k| (last + k - 1, pattern[k])).collect();
    Episode { ids, targets }
}

fn recall_episode(pool: &[u32], shots: usize, rng: &mut ChaCha8Rng) -> Episode {
    let words: Vec<u32> = pool.choose_multiple(rng, 2 * shots).copied().collect();
    let (keys, values) = words.split_at(shots);
    let mut ids: Vec<u32> = keys
        .iter()
        .zip(values)
        .flat_map(|(&k, &v)| [k, v])
        .collect();
    let q = rng.random_range(0..shots);
    ids.push(keys[q]);
    Episode {
        targets: vec![(ids.len() - 1, values[q])],
        ids,
    }
}

/// Measures `task` on `lm` with the word pool of `tk`. Fails when an episode would exceed the
/// model's context or the pool is too small.
pub fn icl_curve<M: CausalLm>(
    lm: &M,
    tk: &Tokenizer,
    task: IclTask,
    cfg: &IclConfig,
) -> std::result::Result<IclCurve, M::Error> {
    let pool = word_pool(tk);
    let need = cfg.shots.iter().max().copied().unwrap_or(0) * 2 + cfg.pattern_len;
    if pool.len() < need.max(2) {
        return Err(Error::EvalInput {
            what: format!("{} single-token words; the probe needs {need}", pool.len()),
        }
        .into());
    }
    let mut points = Vec::with_capacity(cfg.shots.len());
    for &shots in &cfg.shots {
        if task == IclTask::Recall && shots == 0 {
            return Err(Error::EvalInput {
                what: "recall needs >= 1 pair".into(),
            }
            .into());
        }
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ ((shots as u64) << 32));
        let (mut hits, mut pool_hits, mut logp) = (Vec::new(), 0usize, 0.0);
        for _ in 0..cfg.episodes {
            let ep = match task {
                IclTask::Induction => induction_episode(&pool, shots, cfg.pattern_len, &mut rng),
                IclTask::Recall => recall_episode(&pool, shots, &mut rng),
            };
            let rows = lm.logits(&ep.ids)?;
            for (pos, want) in ep.targets {
                let row = &rows[pos];
                hits.push((argmax(row) == want as usize) as u8 as f64);
                pool_hits += usize::from(pool_argmax(row, &pool) == want);
                logp += log_prob(row, want as usize);
            }
        }
        let (accuracy, stderr) = mean_stderr(&hits);
        let n = hits.len().max(1) as f64;
        points.push(IclPoint {
            shots,
            accuracy,
            stderr,
            predictions: hits.len(),
            pool_accuracy: pool_hits as f64 / n,
            target_logprob: logp / n,
        });
    }
    Ok(IclCurve {
        task,
        points,
        chance: 1.0 / pool.len() as f64,
    })
}

/// The pool word with the largest logit.
fn pool_argmax(row: &[f32], pool: &[u32]) -> u32 {
    let logit = |id: u32| row.get(id as usize).copied().unwrap_or(f32::NEG_INFINITY);
    let mut best = pool[0];
    for &id in &pool[1..] {
        if logit(id) > logit(best) {
            best = id;
        }
    }
    best
}

/// `log softmax(row)[token]`, computed stably in f64.
fn log_prob(row: &[f32], token: usize) -> f64 {
    let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) as f64;
    let sum: f64 = row.iter().map(|&x| (x as f64 - max).exp()).sum();
    row.get(token)
        .map_or(f64::NEG_INFINITY, |&x| x as f64 - max - sum.ln())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn episodes_have_the_promised_structure() {
        let pool: Vec<u32> = (100..200).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let ep = induction_episode(&pool, 2, 5, &mut rng);
        assert_eq!(ep.ids.len(), 15);
        assert_eq!(ep.targets.len(), 4);
        for (pos, want) in &ep.targets {
            assert_eq!(ep.ids[pos + 1], *want);
            assert_eq!(ep.ids[pos - 5 + 1], *want); // the same transition one shot earlier
        }
        let ep = recall_episode(&pool, 4, &mut rng);
        assert_eq!(ep.ids.len(), 9);
        let (pos, want) = ep.targets[0];
        let key = ep.ids[pos];
        let k = ep.ids[..8].iter().position(|&x| x == key).unwrap();
        assert_eq!(k % 2, 0);
        assert_eq!(ep.ids[k + 1], want);
    }

    #[test]
    fn graded_measures() {
        let row = [0.0f32, 2.0, 1.0, 5.0];
        assert_eq!(pool_argmax(&row, &[0, 1, 2]), 1);
        assert_eq!(pool_argmax(&row, &[2, 0]), 2);
        let z: f64 = row.iter().map(|&x| (x as f64).exp()).sum();
        assert!((log_prob(&row, 1) - (2.0 - z.ln())).abs() < 1e-12);
        let p: f64 = (0..4).map(|t| log_prob(&row, t).exp()).sum();
        assert!((p - 1.0).abs() < 1e-12);
    }
}
