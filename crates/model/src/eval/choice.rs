//! Zero-shot multiple choice, scored as lm-evaluation-harness scores it.
//!
//! A task is a JSONL file, one item per line:
//! `{"context": "...", "choices": [" a", " b", ...], "answer": 0}`.
//! Each choice is scored by the summed log-likelihood of its tokens after the context
//! ([`log_likelihood`]); `acc` takes the arg-max of the sums, `acc_norm` the arg-max of the
//! sums divided by the choice's length in characters (the harness's `acc_norm`). The pair is
//! tokenized as the harness does: trailing spaces of the context move to the continuation, the
//! concatenation is encoded whole and the continuation's tokens are what follows the
//! context's own encoding, so a BPE merge across the boundary is scored honestly.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

use crate::data::tokenizer::EOS;
use crate::error::{Error, Result};
use crate::eval::scorer::{CausalLm, log_likelihood};

/// One multiple-choice item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChoiceItem {
    /// The text every choice continues.
    pub context: String,
    /// The candidate continuations (usually starting with a space).
    pub choices: Vec<String>,
    /// Index of the correct choice.
    pub answer: usize,
}

/// A named list of items (one JSONL file).
#[derive(Debug, Clone, PartialEq)]
pub struct ChoiceTask {
    /// The task's name (the file stem when read from a file).
    pub name: String,
    /// Its items.
    pub items: Vec<ChoiceItem>,
}

/// How one item was scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemScore {
    /// Summed log-likelihood of each choice (nats).
    pub loglik: Vec<f64>,
    /// Length of each choice in characters (the `acc_norm` divisor).
    pub chars: Vec<usize>,
    /// Arg-max of `loglik`.
    pub pred: usize,
    /// Arg-max of `loglik / chars`.
    pub pred_norm: usize,
    /// The correct choice.
    pub answer: usize,
}

/// Accuracy of a model on one task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChoiceReport {
    /// Task name.
    pub task: String,
    /// Items scored.
    pub items: usize,
    /// Fraction of items whose highest-likelihood choice is the answer.
    pub acc: f64,
    /// Standard error of `acc` (sample standard deviation / sqrt(n), as the harness).
    pub acc_stderr: f64,
    /// Same with length-normalized likelihoods.
    pub acc_norm: f64,
    /// Standard error of `acc_norm`.
    pub acc_norm_stderr: f64,
    /// Accuracy of guessing uniformly (mean of 1 / number of choices).
    pub chance: f64,
}

impl ChoiceItem {
    /// Checks that there are at least two choices and the answer is one of them.
    pub fn validate(&self) -> Result<()> {
        if self.choices.len() < 2 || self.answer >= self.choices.len() {
            return Err(Error::EvalInput {
                what: format!(
                    "{} choices, answer {} (need >= 2 choices and a valid answer)",
                    self.choices.len(),
                    self.answer
                ),
            });
        }
        Ok(())
    }
}

impl ChoiceTask {
    /// Reads a JSONL task file (blank lines are skipped); the name is the file stem.
    pub fn from_jsonl(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let name = path
            .file_stem()
            .map_or("task".into(), |s| s.to_string_lossy().into_owned());
        Self::parse(&name, &text, path)
    }

    /// Parses JSONL text; `path` is only used in error messages.
    pub fn parse(name: &str, text: &str, path: &Path) -> Result<Self> {
        let bad = |line: usize, msg: String| Error::TaskFile {
            path: PathBuf::from(path),
            line,
            msg,
        };
        let mut items = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let item: ChoiceItem =
                serde_json::from_str(line).map_err(|e| bad(i + 1, e.to_string()))?;
            item.validate().map_err(|e| bad(i + 1, e.to_string()))?;
            items.push(item);
        }
        if items.is_empty() {
            return Err(bad(0, "no items".into()));
        }
        Ok(ChoiceTask {
            name: name.to_string(),
            items,
        })
    }

    /// Writes the items as JSONL.
    pub fn to_jsonl(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let mut out = String::new();
        for item in &self.items {
            out.push_str(&serde_json::to_string(item).map_err(|e| Error::json(path, e))?);
            out.push('\n');
        }
        std::fs::write(path, out).map_err(|e| Error::io(path, e))
    }
}

/// `(context ids, continuation ids)` tokenized as lm-evaluation-harness does (see the module
/// documentation). An empty context becomes the end-of-text token.
pub fn encode_pair(
    tk: &Tokenizer,
    context: &str,
    continuation: &str,
) -> Result<(Vec<u32>, Vec<u32>)> {
    let trimmed = context.trim_end();
    let (context, continuation) = if trimmed.len() < context.len() {
        (
            trimmed,
            format!("{}{continuation}", &context[trimmed.len()..]),
        )
    } else {
        (context, continuation.to_string())
    };
    let enc = |s: &str| -> Result<Vec<u32>> {
        Ok(tk
            .encode_fast(s, false)
            .map_err(|e| Error::Tokenizer(e.to_string()))?
            .get_ids()
            .to_vec())
    };
    let whole = enc(&format!("{context}{continuation}"))?;
    let mut ctx = enc(context)?;
    let cont = if whole.starts_with(&ctx) {
        whole[ctx.len()..].to_vec()
    } else {
        enc(&continuation)? // the boundary merged: fall back to separate encodings
    };
    if ctx.is_empty() {
        ctx.push(tk.token_to_id(EOS).unwrap_or(0));
    }
    Ok((ctx, cont))
}

/// Scores one item.
pub fn score_item<M: CausalLm>(
    lm: &M,
    tk: &Tokenizer,
    item: &ChoiceItem,
) -> std::result::Result<ItemScore, M::Error> {
    item.validate()?;
    let mut loglik = Vec::with_capacity(item.choices.len());
    let mut chars = Vec::with_capacity(item.choices.len());
    for choice in &item.choices {
        let (ctx, cont) = encode_pair(tk, &item.context, choice)?;
        loglik.push(log_likelihood(lm, &ctx, &cont)?.sum);
        chars.push(choice.chars().count().max(1));
    }
    let norm: Vec<f64> = loglik
        .iter()
        .zip(&chars)
        .map(|(l, &c)| l / c as f64)
        .collect();
    Ok(ItemScore {
        pred: argmax_f64(&loglik),
        pred_norm: argmax_f64(&norm),
        loglik,
        chars,
        answer: item.answer,
    })
}

/// Scores the first `limit` items (all when `None`) of `task`; returns the report and the
/// per-item scores.
pub fn score_task<M: CausalLm>(
    lm: &M,
    tk: &Tokenizer,
    task: &ChoiceTask,
    limit: Option<usize>,
) -> std::result::Result<(ChoiceReport, Vec<ItemScore>), M::Error> {
    let n = limit.unwrap_or(task.items.len()).min(task.items.len());
    let scores = task.items[..n]
        .iter()
        .map(|item| score_item(lm, tk, item))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok((report(&task.name, &task.items[..n], &scores), scores))
}

/// The accuracy report of already scored items.
pub fn report(name: &str, items: &[ChoiceItem], scores: &[ItemScore]) -> ChoiceReport {
    let hits: Vec<f64> = scores
        .iter()
        .map(|s| (s.pred == s.answer) as u8 as f64)
        .collect();
    let hits_norm: Vec<f64> = scores
        .iter()
        .map(|s| (s.pred_norm == s.answer) as u8 as f64)
        .collect();
    let (acc, acc_stderr) = mean_stderr(&hits);
    let (acc_norm, acc_norm_stderr) = mean_stderr(&hits_norm);
    let chance = items
        .iter()
        .map(|i| 1.0 / i.choices.len() as f64)
        .sum::<f64>()
        / items.len().max(1) as f64;
    ChoiceReport {
        task: name.to_string(),
        items: scores.len(),
        acc,
        acc_stderr,
        acc_norm,
        acc_norm_stderr,
        chance,
    }
}

/// Mean and its standard error (sample standard deviation / sqrt(n)).
pub fn mean_stderr(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    if n == 0.0 {
        return (0.0, 0.0);
    }
    let mean = x.iter().sum::<f64>() / n;
    if n < 2.0 {
        return (mean, 0.0);
    }
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (var / n).sqrt())
}

fn argmax_f64(x: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_parses_and_rejects_bad_items() {
        let p = Path::new("t.jsonl");
        let ok = "{\"context\":\"a\",\"choices\":[\" b\",\" c\"],\"answer\":1}\n\n";
        let task = ChoiceTask::parse("t", ok, p).unwrap();
        assert_eq!(task.items.len(), 1);
        assert_eq!(task.items[0].answer, 1);
        let bad_answer = "{\"context\":\"a\",\"choices\":[\" b\",\" c\"],\"answer\":2}";
        let err = ChoiceTask::parse("t", bad_answer, p).unwrap_err();
        assert!(matches!(err, Error::TaskFile { line: 1, .. }), "{err}");
        assert!(ChoiceTask::parse("t", "{\"context\":1}", p).is_err());
        assert!(ChoiceTask::parse("t", "", p).is_err());
    }

    #[test]
    fn stderr_matches_the_sample_formula() {
        let (m, s) = mean_stderr(&[1.0, 0.0, 1.0, 1.0]);
        assert!((m - 0.75).abs() < 1e-12);
        assert!((s - (0.25f64 / 4.0).sqrt()).abs() < 1e-12);
    }
}
