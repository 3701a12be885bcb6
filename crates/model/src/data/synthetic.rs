//! Synthetic in-context episodes mixed into training batches, so that small models trained on
//! few tokens learn to copy and retrieve from their context and the ICL probes
//! (`eval::icl`) have something to compare across attention normalizations (the
//! multi-query associative recall of the Zoology benchmark, and induction).
//!
//! A synthetic row is a run of episodes separated by the end-of-text token, drawn from the
//! same word pool as the probes ([`word_pool`]): **recall** (`n` key-value pairs, then the `n`
//! keys again in a random order, each followed by its value, so every value after a repeated
//! key is predictable from the context only) and **induction** (a pattern of distinct words
//! shown 2 to 4 times). The pairs and patterns are fresh random draws, so no association can
//! be memorized: the probes' episodes (their own seed) are new combinations of the same words.

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

use crate::data::tokenizer::{EOS, word_pool};
use crate::error::{Error, Result};

/// How much synthetic data a run mixes into its batches (`TrainConfig::synthetic`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SyntheticMix {
    /// Fraction of the rows of every batch that are synthetic (the rest is text), in `[0, 1]`.
    pub fraction: f64,
    /// Recall episodes have 1 to this many key-value pairs.
    pub max_pairs: usize,
    /// Induction patterns have 2 to this many words.
    pub max_pattern: usize,
    /// Probability that an episode is recall (otherwise induction).
    pub recall_share: f64,
}

impl Default for SyntheticMix {
    fn default() -> Self {
        SyntheticMix {
            fraction: 0.5,
            max_pairs: 16,
            max_pattern: 8,
            recall_share: 0.5,
        }
    }
}

/// Builds synthetic rows from a tokenizer's word pool.
#[derive(Debug, Clone)]
pub struct EpisodeMixer {
    mix: SyntheticMix,
    pool: Vec<u32>,
    sep: u32,
}

impl EpisodeMixer {
    /// Checks `mix` and takes the word pool ([`word_pool`]) and separator ([`EOS`]) from `tk`.
    pub fn new(mix: &SyntheticMix, tk: &Tokenizer) -> Result<Self> {
        let Some(sep) = tk.token_to_id(EOS) else {
            let msg = format!("synthetic: the tokenizer has no {EOS} token");
            return Err(Error::InvalidConfig(msg));
        };
        Self::from_pool(mix, word_pool(tk), sep)
    }

    /// Checks `mix`; episodes draw from `pool` and are separated by `sep`.
    pub fn from_pool(mix: &SyntheticMix, pool: Vec<u32>, sep: u32) -> Result<Self> {
        let bad = |what: String| Err(Error::InvalidConfig(format!("synthetic: {what}")));
        if !(0.0..=1.0).contains(&mix.fraction) || !(0.0..=1.0).contains(&mix.recall_share) {
            return bad("fraction and recall_share must lie in [0, 1]".into());
        }
        if mix.max_pairs == 0 || mix.max_pattern < 2 {
            return bad("max_pairs must be >= 1 and max_pattern >= 2".into());
        }
        let need = (2 * mix.max_pairs).max(mix.max_pattern);
        if pool.len() < need {
            return bad(format!("{} single-token words, need {need}", pool.len()));
        }
        Ok(EpisodeMixer {
            mix: mix.clone(),
            pool,
            sep,
        })
    }

    /// Whether a row of this batch is synthetic (a Bernoulli draw of `fraction`).
    pub fn pick(&self, rng: &mut ChaCha8Rng) -> bool {
        rng.random_bool(self.mix.fraction)
    }

    /// `len` tokens of episodes separated by the end-of-text token, starting at an episode
    /// boundary (the last episode is cut at `len`).
    pub fn row(&self, len: usize, rng: &mut ChaCha8Rng) -> Vec<u32> {
        let mut ids = Vec::with_capacity(len + 2 * self.mix.max_pairs * 2 + 1);
        while ids.len() < len {
            if rng.random_bool(self.mix.recall_share) {
                self.recall(&mut ids, rng);
            } else {
                self.induction(&mut ids, rng);
            }
            ids.push(self.sep);
        }
        ids.truncate(len);
        ids
    }

    fn recall(&self, ids: &mut Vec<u32>, rng: &mut ChaCha8Rng) {
        let n = rng.random_range(1..=self.mix.max_pairs);
        let words: Vec<u32> = self.pool.choose_multiple(rng, 2 * n).copied().collect();
        let (keys, values) = words.split_at(n);
        for i in 0..n {
            ids.extend([keys[i], values[i]]);
        }
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            order.swap(i, rng.random_range(0..=i));
        }
        for i in order {
            ids.extend([keys[i], values[i]]);
        }
    }

    fn induction(&self, ids: &mut Vec<u32>, rng: &mut ChaCha8Rng) {
        let len = rng.random_range(2..=self.mix.max_pattern);
        let shows = rng.random_range(2..=4);
        let pattern: Vec<u32> = self.pool.choose_multiple(rng, len).copied().collect();
        for _ in 0..shows {
            ids.extend_from_slice(&pattern);
        }
    }
}

/// The generator of synthetic rows for step `step` of a run seeded by `seed` (independent of
/// the text sampler's, so a resumed run sees the same rows).
pub fn step_rng(seed: u64, step: usize) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed.wrapping_mul(0xD1B54A32D192ED03) ^ (step as u64) ^ (1 << 63))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A mixer over the word ids 100..1100 with separator 0.
    pub(crate) fn mixer(mix: &SyntheticMix) -> Result<EpisodeMixer> {
        EpisodeMixer::from_pool(mix, (100..1100).collect(), 0)
    }

    #[test]
    fn rows_hold_recall_and_induction_episodes() {
        let m = mixer(&SyntheticMix::default()).unwrap();
        let mut rng = step_rng(3, 10);
        let row = m.row(129, &mut rng);
        assert_eq!(row.len(), 129);
        assert_eq!(
            step_rng(3, 10).random::<u64>(),
            step_rng(3, 10).random::<u64>()
        );
        let eps: Vec<&[u32]> = row.split(|&t| t == m.sep).collect();
        for ep in &eps[..eps.len() - 1] {
            assert!(ep.iter().all(|t| m.pool.contains(t)));
            classify(ep);
        }
        assert!(eps.len() >= 4, "{} episodes", eps.len());
    }

    /// Whether a whole episode is recall (its second half the pairs of its first half,
    /// reordered) or else induction (a pattern of 2..=8 words shown 2..=4 times); panics when
    /// it is neither. ("a b a b" is both; it counts as recall.)
    fn classify(ep: &[u32]) -> bool {
        let pairs = |h: &[u32]| {
            let mut p: Vec<Vec<u32>> = h.chunks(2).map(<[u32]>::to_vec).collect();
            p.sort();
            p
        };
        let h = ep.len() / 2;
        if ep.len().is_multiple_of(4) && pairs(&ep[..h]) == pairs(&ep[h..]) {
            return true;
        }
        let period = (2..=8).find(|&l| ep[l..].iter().zip(ep).all(|(a, b)| a == b));
        let period = period.expect("neither recall nor induction");
        assert!(ep.len().is_multiple_of(period) && (2..=4).contains(&(ep.len() / period)));
        false
    }

    #[test]
    fn both_kinds_appear_at_the_configured_shares() {
        let m = mixer(&SyntheticMix::default()).unwrap();
        let mut rng = step_rng(0, 0);
        let (mut recall, mut all) = (0, 0);
        for _ in 0..64 {
            let row = m.row(129, &mut rng);
            let eps: Vec<&[u32]> = row.split(|&t| t == m.sep).collect();
            for ep in &eps[..eps.len() - 1] {
                recall += usize::from(classify(ep));
                all += 1;
            }
        }
        let share = recall as f64 / all as f64;
        assert!((0.35..=0.7).contains(&share), "{recall} of {all} recall");
        let picks = (0..1000).filter(|_| m.pick(&mut rng)).count();
        assert!((430..=570).contains(&picks), "{picks} of 1000");
    }

    #[test]
    fn bad_mixes_are_rejected() {
        for mix in [
            SyntheticMix {
                fraction: 1.5,
                ..Default::default()
            },
            SyntheticMix {
                max_pattern: 1,
                ..Default::default()
            },
            SyntheticMix {
                max_pairs: 5000,
                ..Default::default()
            },
        ] {
            assert!(matches!(mixer(&mix), Err(Error::InvalidConfig(_))));
        }
    }
}
