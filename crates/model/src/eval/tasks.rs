//! Multiple-choice tasks the project can ship, generated (seeded) from the HELD-OUT part of
//! the shipped corpus: the last `held_out_fraction` of each document, cut exactly as
//! training cuts it ([`crate::data::corpus::split_held_out`]), so no item's text was seen in
//! training. The text is read as a stream of whitespace-separated words.
//!
//! - **`continuation`** ("which continuation follows", 4 choices): the context is
//!   `context_words` consecutive words; the answer is the next `continuation_words` words;
//!   the three distractors are spans of the same length from the same document at least
//!   [`MIN_DISTRACTOR_GAP`] words away (same author and register, so only local coherence
//!   tells them apart).
//! - **`last_word`** (a LAMBADA-style cloze, 4 choices): the context is `context_words`
//!   words; the answer is the next word (letters only, >= 3 of them, trailing punctuation
//!   dropped); the distractors are three other such words taken from the context itself, so
//!   every choice is topical and only the model's reading of the passage separates them.
//!
//! These are honest but synthetic: they measure next-text modelling on unseen passages of
//! the same sources, not world knowledge or reasoning (nothing like ARC or PIQA is shipped).

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::data::DataSource;
use crate::data::corpus::split_held_out;
use crate::error::{Error, Result};
use crate::eval::choice::{ChoiceItem, ChoiceTask};

/// Distractor spans of `continuation` start at least this many words from the true span.
pub const MIN_DISTRACTOR_GAP: usize = 200;

/// How to generate the shipped tasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TaskGenConfig {
    /// Seeds every random choice.
    pub seed: u64,
    /// Items per task.
    pub items: usize,
    /// The held-out fraction at the end of each document (training's default is 0.02).
    pub held_out_fraction: f64,
    /// Words of context.
    pub context_words: usize,
    /// Words in each `continuation` choice.
    pub continuation_words: usize,
}

impl Default for TaskGenConfig {
    fn default() -> Self {
        TaskGenConfig {
            seed: 2026,
            items: 400,
            held_out_fraction: 0.02,
            context_words: 24,
            continuation_words: 6,
        }
    }
}

/// The held-out words of each shipped document: `(name, words)`.
pub fn held_out_words(fraction: f64) -> Result<Vec<(String, Vec<String>)>> {
    let docs = DataSource::Shipped.load(&[])?;
    Ok(docs
        .iter()
        .map(|d| {
            let words = split_held_out(&d.text, fraction)
                .1
                .split_whitespace()
                .map(str::to_string)
                .collect();
            (d.name.clone(), words)
        })
        .collect())
}

/// Both shipped tasks, `continuation` and `last_word`, from the shipped corpus.
pub fn generate(cfg: &TaskGenConfig) -> Result<Vec<ChoiceTask>> {
    let docs = held_out_words(cfg.held_out_fraction)?;
    Ok(vec![
        continuation_task(&docs, cfg)?,
        last_word_task(&docs, cfg)?,
    ])
}

/// Picks a document with probability proportional to its usable length, then a start.
fn pick<'a>(
    docs: &'a [(String, Vec<String>)],
    span: usize,
    rng: &mut ChaCha8Rng,
) -> Result<(&'a [String], usize)> {
    let usable: Vec<usize> = docs
        .iter()
        .map(|(_, w)| w.len().saturating_sub(span))
        .collect();
    let total: usize = usable.iter().sum();
    if total == 0 {
        return Err(Error::NotEnoughData(format!(
            "held-out text shorter than {span} words"
        )));
    }
    let mut r = rng.random_range(0..total);
    for ((_, words), &u) in docs.iter().zip(&usable) {
        if r < u {
            return Ok((words, r));
        }
        r -= u;
    }
    Err(Error::NotEnoughData("document pick out of range".into()))
}

/// The "which continuation follows" task (see the module documentation).
pub fn continuation_task(
    docs: &[(String, Vec<String>)],
    cfg: &TaskGenConfig,
) -> Result<ChoiceTask> {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let (c, k) = (cfg.context_words, cfg.continuation_words);
    let mut items = Vec::with_capacity(cfg.items);
    let mut tries = 0;
    while items.len() < cfg.items {
        tries += 1;
        if tries > cfg.items * 100 {
            return Err(Error::NotEnoughData(
                "continuation: too few usable spans".into(),
            ));
        }
        let (words, start) = pick(docs, c + k, &mut rng)?;
        let truth = start + c;
        let far: Vec<usize> = (0..words.len().saturating_sub(k))
            .filter(|&s| s.abs_diff(truth) >= MIN_DISTRACTOR_GAP)
            .collect();
        if far.len() < 3 {
            continue;
        }
        let span = |s: usize| format!(" {}", words[s..s + k].join(" "));
        let mut choices = vec![span(truth)];
        choices.extend(far.choose_multiple(&mut rng, 3).map(|&s| span(s)));
        if choices[1..].contains(&choices[0]) {
            continue;
        }
        items.push(shuffled(words[start..truth].join(" "), choices, &mut rng));
    }
    Ok(ChoiceTask {
        name: "continuation".into(),
        items,
    })
}

/// A word usable as a `last_word` choice: its letters when it has >= 3 of them and nothing
/// but trailing punctuation after them.
fn clean_word(w: &str) -> Option<&str> {
    let core = w.trim_end_matches(|c: char| c.is_ascii_punctuation());
    (core.len() >= 3 && core.chars().all(|c| c.is_ascii_alphabetic())).then_some(core)
}

/// The LAMBADA-style last-word cloze (see the module documentation).
pub fn last_word_task(docs: &[(String, Vec<String>)], cfg: &TaskGenConfig) -> Result<ChoiceTask> {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x1a3bd);
    let c = cfg.context_words;
    let mut items = Vec::with_capacity(cfg.items);
    let mut tries = 0;
    while items.len() < cfg.items {
        tries += 1;
        if tries > cfg.items * 100 {
            return Err(Error::NotEnoughData(
                "last_word: too few usable passages".into(),
            ));
        }
        let (words, start) = pick(docs, c + 1, &mut rng)?;
        let Some(answer) = clean_word(&words[start + c]) else {
            continue;
        };
        let mut pool: Vec<&str> = words[start..start + c]
            .iter()
            .filter_map(|w| clean_word(w))
            .filter(|w| *w != answer)
            .collect();
        pool.sort_unstable();
        pool.dedup();
        if pool.len() < 3 {
            continue;
        }
        let mut choices = vec![format!(" {answer}")];
        choices.extend(pool.choose_multiple(&mut rng, 3).map(|w| format!(" {w}")));
        items.push(shuffled(
            words[start..start + c].join(" "),
            choices,
            &mut rng,
        ));
    }
    Ok(ChoiceTask {
        name: "last_word".into(),
        items,
    })
}

/// An item whose answer (`choices[0]` on input) lands at a random position.
fn shuffled(context: String, mut choices: Vec<String>, rng: &mut ChaCha8Rng) -> ChoiceItem {
    let answer = rng.random_range(0..choices.len());
    choices.swap(0, answer);
    ChoiceItem {
        context,
        choices,
        answer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy_docs() -> Vec<(String, Vec<String>)> {
        let vocab = [
            "apple", "river", "stone", "light", "house", "green", "quiet", "night", "bread",
            "horse", "field", "water", "cloud", "sword", "crown", "paper", "glass", "wheel",
            "mouse", "tiger",
        ];
        let mut s = 7u64;
        let words = (0..3000)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                vocab[((s >> 33) % 20) as usize].to_string()
            })
            .collect();
        vec![("toy".into(), words)]
    }

    #[test]
    fn generation_is_seeded_and_answers_are_the_true_text() {
        let cfg = TaskGenConfig {
            items: 20,
            ..Default::default()
        };
        let docs = toy_docs();
        let a = continuation_task(&docs, &cfg).unwrap();
        let b = continuation_task(&docs, &cfg).unwrap();
        assert_eq!(a, b);
        let joined = docs[0].1.join(" ");
        for item in &a.items {
            let truth = format!("{}{}", item.context, item.choices[item.answer]);
            assert!(joined.contains(&truth));
            assert_eq!(item.choices.len(), 4);
            assert_eq!(item.context.split(' ').count(), cfg.context_words);
        }
        let lw = last_word_task(&docs, &cfg).unwrap();
        for item in &lw.items {
            for ch in &item.choices {
                assert!(item.context.contains(ch.trim()) || *ch == item.choices[item.answer]);
            }
        }
        assert!(a.items.iter().any(|i| i.answer != 0));
    }
}
