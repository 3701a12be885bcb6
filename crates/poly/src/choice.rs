//! Zero-shot multiple choice over token ids, scored by summed log-likelihood, for any model
//! given as a logits function (the candle model, the PolyModel in either mode), plus a
//! seeded held-out continuation task: the true next tokens against spans from elsewhere.

use serde::{Deserialize, Serialize};

use crate::error::{PolyError, Result};
use crate::eval::nll_and_argmax;
use crate::matrix::Matrix;

/// One item: a context and candidate continuations, as token ids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChoiceItem {
    /// Context tokens (non-empty).
    pub context: Vec<u32>,
    /// Candidate continuations (each non-empty).
    pub choices: Vec<Vec<u32>>,
    /// Index of the correct choice.
    pub answer: usize,
}

/// Accuracy of a model on a list of items, with its predictions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChoiceResult {
    /// Items scored.
    pub items: usize,
    /// Fraction whose highest summed log-likelihood choice is the answer.
    pub acc: f64,
    /// Standard error of `acc`.
    pub acc_stderr: f64,
    /// The predicted choice of every item.
    pub preds: Vec<usize>,
}

impl ChoiceResult {
    /// Fraction of items where `self` and `other` predict the same choice.
    pub fn agreement(&self, other: &ChoiceResult) -> f64 {
        let same = self
            .preds
            .iter()
            .zip(&other.preds)
            .filter(|(a, b)| a == b)
            .count();
        same as f64 / self.preds.len().max(1) as f64
    }
}

/// Scores every item with `logits` (token ids -> `(T, V)` next-token logits).
///
/// # Errors
/// Empty contexts or choices, an answer out of range, or an error of `logits`.
pub fn score_choices(
    items: &[ChoiceItem],
    mut logits: impl FnMut(&[u32]) -> Result<Matrix>,
) -> Result<ChoiceResult> {
    score_choices_from(items, |ids, from| {
        let l = logits(ids)?;
        if l.rows != ids.len() {
            return Err(PolyError::Shape {
                expected: format!("{} logit rows", ids.len()),
                got: l.rows.to_string(),
            });
        }
        let rows = l.data[from * l.cols..].to_vec();
        Matrix::new(l.rows - from, l.cols, rows)
    })
}

/// [`score_choices`] for models that compute only some positions' logits (the LM head is
/// a fifth of a small model's work): `logits(ids, from)` returns the rows of positions
/// `from..ids.len()` only.
///
/// # Errors
/// As [`score_choices`], or `logits` returning another number of rows.
pub fn score_choices_from(
    items: &[ChoiceItem],
    mut logits: impl FnMut(&[u32], usize) -> Result<Matrix>,
) -> Result<ChoiceResult> {
    let mut preds = Vec::with_capacity(items.len());
    let mut correct = 0usize;
    for it in items {
        if it.context.is_empty()
            || it.answer >= it.choices.len()
            || it.choices.iter().any(|c| c.is_empty())
        {
            return Err(PolyError::InvalidSpec(format!(
                "choice item: {} context tokens, {} choices, answer {}",
                it.context.len(),
                it.choices.len(),
                it.answer
            )));
        }
        let mut best = (0, f64::NEG_INFINITY);
        for (i, ch) in it.choices.iter().enumerate() {
            let whole: Vec<u32> = it.context.iter().chain(ch).copied().collect();
            let input = &whole[..whole.len() - 1];
            let part = logits(input, it.context.len() - 1)?;
            if part.rows != ch.len() {
                return Err(PolyError::Shape {
                    expected: format!("{} logit rows", ch.len()),
                    got: part.rows.to_string(),
                });
            }
            let ll = -nll_and_argmax(&part, ch).0;
            if ll > best.1 {
                best = (i, ll);
            }
        }
        correct += usize::from(best.0 == it.answer);
        preds.push(best.0);
    }
    let n = items.len().max(1) as f64;
    let acc = correct as f64 / n;
    Ok(ChoiceResult {
        items: items.len(),
        acc,
        acc_stderr: (acc * (1.0 - acc) / (n - 1.0).max(1.0)).sqrt(),
        preds,
    })
}

/// A seeded continuation task from held-out ids: `n` items, each a context of `context`
/// tokens, the true next `span` tokens, and `choices - 1` spans taken from other places of
/// the stream (skipping any equal to the answer). The answer's index is drawn too.
///
/// # Errors
/// A stream too short for `n` disjoint items.
pub fn continuation_task(
    ids: &[u32],
    n: usize,
    context: usize,
    span: usize,
    choices: usize,
    seed: u64,
) -> Result<Vec<ChoiceItem>> {
    let len = context + span;
    if choices < 2 || span == 0 || context == 0 || ids.len() < (n + choices) * len {
        return Err(PolyError::Shape {
            expected: format!("at least {} tokens, >= 2 choices", (n + choices) * len),
            got: format!("{} tokens, {choices} choices", ids.len()),
        });
    }
    let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
    let mut next = move |m: usize| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) % m as u64) as usize
    };
    let stride = ids.len() / n;
    let max_start = ids.len() - span;
    let mut items = Vec::with_capacity(n);
    for i in 0..n {
        let s = i * stride;
        let ctx = ids[s..s + context].to_vec();
        let truth = ids[s + context..s + len].to_vec();
        let answer = next(choices);
        let mut opts = Vec::with_capacity(choices);
        while opts.len() < choices - 1 {
            let o = next(max_start);
            let cand = ids[o..o + span].to_vec();
            if cand != truth && !opts.contains(&cand) {
                opts.push(cand);
            }
        }
        opts.insert(answer, truth);
        items.push(ChoiceItem {
            context: ctx,
            choices: opts,
            answer,
        });
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_oracle_scores_perfectly_and_a_constant_model_at_chance() {
        let ids: Vec<u32> = (0..4000u32).map(|i| (i * 7 + i / 13) % 50).collect();
        let items = continuation_task(&ids, 40, 6, 2, 4, 1).unwrap();
        assert!(items.iter().all(|it| it.choices.len() == 4));
        // Oracle: puts all mass on the true next token of the stream.
        let oracle = |x: &[u32]| -> Result<Matrix> {
            let mut m = Matrix::zeros(x.len(), 50);
            // The next token is a deterministic function of the position in the stream:
            // find the window in `ids` and read the next ids.
            let pos = ids.windows(x.len()).position(|w| w == x);
            for r in 0..x.len() {
                let next = match pos {
                    Some(p) if p + r + 1 < ids.len() => ids[p + r + 1],
                    _ => 0,
                };
                m.row_mut(r)[next as usize] = 30.0;
            }
            Ok(m)
        };
        let r = score_choices(&items, oracle).unwrap();
        assert!(r.acc > 0.9, "{r:?}");
        let flat = score_choices(&items, |x: &[u32]| Ok(Matrix::zeros(x.len(), 50))).unwrap();
        assert_eq!(flat.preds, vec![0; 40]);
        assert!(flat.agreement(&r) < 1.0);
        let bad = ChoiceItem {
            context: vec![],
            choices: vec![vec![1], vec![2]],
            answer: 0,
        };
        assert!(score_choices(&[bad], oracle).is_err());
        // Positions from `from` only: the same picks; a wrong row count is an error.
        let sliced = score_choices_from(&items, |x, from| {
            let l = oracle(x)?;
            Matrix::new(x.len() - from, 50, l.data[from * 50..].to_vec())
        })
        .unwrap();
        assert_eq!(sliced, r);
        assert!(score_choices_from(&items, |x, _| Ok(Matrix::zeros(x.len(), 50))).is_err());
    }
}
