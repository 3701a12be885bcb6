//! Side-by-side comparison of evaluation reports: one Markdown table, a column per model (the
//! tables of EXPERIMENTS.md).

use crate::eval::icl::IclTask;
use crate::eval::suite::ModelReport;

/// A short name for the report's model: its attention normalization (and step).
pub fn label(r: &ModelReport) -> String {
    let mut norm = match r.attention_norm.get("kind").and_then(|k| k.as_str()) {
        Some("power") => format!("power p={}", r.attention_norm["p"]),
        Some(k) => k.to_string(),
        None => "?".into(),
    };
    if r.position_decay {
        norm += " + decay";
    }
    if r.score_centering {
        norm += " + centering";
    }
    match r.step {
        Some(s) => format!("{norm} (step {s})"),
        None => norm,
    }
}

/// The labels of several reports: [`label`], followed by the run's name (the model
/// directory, or its parent for a training run's `checkpoint/`) where two labels would
/// otherwise be equal.
pub fn labels(reports: &[ModelReport]) -> Vec<String> {
    let base: Vec<String> = reports.iter().map(label).collect();
    let run = |r: &ModelReport| {
        let dir = match r.model.file_name() {
            Some(n) if n == "checkpoint" => r.model.parent().and_then(|p| p.file_name()),
            n => n,
        };
        dir.map_or_else(
            || r.model.display().to_string(),
            |n| n.to_string_lossy().into(),
        )
    };
    base.iter()
        .zip(reports)
        .map(|(b, r)| match base.iter().filter(|o| *o == b).count() {
            1 => b.clone(),
            _ => format!("{b}, {}", run(r)),
        })
        .collect()
}

/// A Markdown table with a column per report and a row per measurement: parameters,
/// held-out perplexity, each task's acc / acc_norm, each ICL point (exact match / pool-word
/// match / mean target log-probability), each layer's mean attention distance (tokens,
/// relative to uniform) and, where measured, each layer's attended weight (mean row sum).
/// A cell is `-` where a report lacks the measurement.
pub fn comparison_markdown(reports: &[ModelReport]) -> String {
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    let mut row = |name: String, cell: &dyn Fn(&ModelReport) -> Option<String>| {
        let cells = reports
            .iter()
            .map(|r| cell(r).unwrap_or_else(|| "-".into()))
            .collect();
        rows.push((name, cells));
    };
    row("parameters".into(), &|r| Some(r.parameters.to_string()));
    row("held-out perplexity".into(), &|r| {
        r.perplexity.as_ref().map(|p| format!("{:.2}", p.ppl))
    });
    for task in task_names(reports) {
        row(format!("`{task}` acc / acc_norm"), &|r| {
            let t = r.tasks.iter().find(|t| t.task == task)?;
            Some(format!("{:.3} / {:.3}", t.acc, t.acc_norm))
        });
    }
    for (task, shots) in icl_points(reports) {
        let what = match task {
            IclTask::Induction => "induction, shots",
            IclTask::Recall => "recall, pairs",
        };
        row(format!("ICL {what} = {shots}"), &|r| {
            let c = r.icl.iter().find(|c| c.task == task)?;
            let p = c.points.iter().find(|p| p.shots == shots)?;
            Some(format!(
                "{:.2} / {:.2} / {:.2}",
                p.accuracy, p.pool_accuracy, p.target_logprob
            ))
        });
    }
    let layers = reports.iter().map(|r| r.locality.len()).max().unwrap_or(0);
    for layer in 0..layers {
        row(format!("attention distance, layer {layer}"), &|r| {
            let l = r.locality.iter().find(|l| l.layer == layer)?;
            Some(format!("{:.2} ({:.2})", l.mean, l.relative))
        });
    }
    let weighed = |r: &ModelReport| r.locality.iter().any(|l| l.row_weight.is_some());
    if reports.iter().any(weighed) {
        for layer in 0..layers {
            row(format!("attended weight, layer {layer}"), &|r| {
                let l = r.locality.iter().find(|l| l.layer == layer)?;
                Some(format!("{:.3}", l.row_weight?))
            });
        }
    }
    let sharp = |r: &ModelReport| r.locality.iter().any(|l| l.top_weight.is_some());
    if reports.iter().any(sharp) {
        for layer in 0..layers {
            row(
                format!("largest share / relative entropy, layer {layer}"),
                &|r| {
                    let l = r.locality.iter().find(|l| l.layer == layer)?;
                    Some(format!("{:.3} / {:.3}", l.top_weight?, l.entropy?))
                },
            );
        }
    }
    let mut s = format!(
        "| | {} |\n|---|{}\n",
        labels(reports).join(" | "),
        "---|".repeat(reports.len())
    );
    for (name, cells) in rows {
        s += &format!("| {name} | {} |\n", cells.join(" | "));
    }
    s
}

/// Task names in order of first appearance.
fn task_names(reports: &[ModelReport]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for t in reports.iter().flat_map(|r| &r.tasks) {
        if !names.contains(&t.task) {
            names.push(t.task.clone());
        }
    }
    names
}

/// `(task, shots)` of every ICL point, in order of first appearance.
fn icl_points(reports: &[ModelReport]) -> Vec<(IclTask, usize)> {
    let mut points = Vec::new();
    for c in reports.iter().flat_map(|r| &r.icl) {
        for p in &c.points {
            if !points.contains(&(c.task, p.shots)) {
                points.push((c.task, p.shots));
            }
        }
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(json: &str) -> ModelReport {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn one_column_per_report_and_dashes_for_missing_cells() {
        let a = report(
            r#"{"model":"a","step":10,"attention_norm":{"kind":"softmax"},"parameters":5,
            "perplexity":{"nll":1.0,"ppl":2.718,"tokens":8},
            "tasks":[{"task":"t","items":4,"acc":0.5,"acc_stderr":0.1,"acc_norm":0.25,
                      "acc_norm_stderr":0.1,"chance":0.25}],
            "icl":[{"task":"recall","chance":0.001,"points":[{"shots":2,"accuracy":0.5,
                    "stderr":0.1,"predictions":4,"pool_accuracy":0.75,"target_logprob":-1.5}]}],
            "locality":[{"layer":0,"per_head":[3.0],"mean":3.0,"relative":0.5,"local_mass":0.2}],
            "attention_pngs":[]}"#,
        );
        let b = report(
            r#"{"model":"b","step":null,"attention_norm":{"kind":"power","p":4},"parameters":7,
            "perplexity":null,"tasks":[],"icl":[],"locality":[],"attention_pngs":[]}"#,
        );
        let md = comparison_markdown(&[a, b]);
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(lines[0], "| | softmax (step 10) | power p=4 |");
        assert_eq!(lines[1], "|---|---|---|");
        assert!(lines.contains(&"| held-out perplexity | 2.72 | - |"));
        assert!(lines.contains(&"| `t` acc / acc_norm | 0.500 / 0.250 | - |"));
        assert!(lines.contains(&"| ICL recall, pairs = 2 | 0.50 / 0.75 / -1.50 | - |"));
        assert!(lines.contains(&"| attention distance, layer 0 | 3.00 (0.50) | - |"));
        assert_eq!(lines.len(), 7);
    }

    #[test]
    fn attended_weight_rows_appear_once_a_report_has_them() {
        let r = |locality: &str| {
            report(&format!(
                r#"{{"model":"m","step":5,"attention_norm":{{"kind":"softmax"}},
                "parameters":1,"perplexity":null,"tasks":[],"icl":[],"locality":[{locality}],
                "attention_pngs":[]}}"#
            ))
        };
        let old = r(r#"{"layer":0,"per_head":[3.0],"mean":3.0,"relative":0.5,"local_mass":0.2}"#);
        let new = r(
            r#"{"layer":0,"per_head":[3.0],"mean":3.0,"relative":0.5,"local_mass":0.2,
                       "row_weight":0.8125}"#,
        );
        let sharp = r(
            r#"{"layer":0,"per_head":[3.0],"mean":3.0,"relative":0.5,"local_mass":0.2,
                       "row_weight":1.0,"top_weight":0.25,"entropy":0.875}"#,
        );
        assert!(!comparison_markdown(std::slice::from_ref(&old)).contains("attended"));
        let md = comparison_markdown(&[old, new.clone()]);
        assert!(
            md.contains("| attended weight, layer 0 | - | 0.812 |"),
            "{md}"
        );
        assert!(!md.contains("entropy"), "{md}");
        let md = comparison_markdown(&[new, sharp]);
        assert!(
            md.contains("| largest share / relative entropy, layer 0 | - | 0.250 / 0.875 |"),
            "{md}"
        );
    }

    #[test]
    fn equal_labels_get_the_run_name() {
        let r = |model: &str| {
            report(&format!(
                r#"{{"model":"{model}","step":5,"attention_norm":{{"kind":"softmax"}},
                "parameters":1,"perplexity":null,"tasks":[],"icl":[],"locality":[],
                "attention_pngs":[]}}"#
            ))
        };
        let got = labels(&[r("runs/lr1/checkpoint"), r("runs/lr2"), r("x")]);
        assert_eq!(
            got,
            [
                "softmax (step 5), lr1",
                "softmax (step 5), lr2",
                "softmax (step 5), x"
            ]
        );
        assert_eq!(labels(&[r("a")]), ["softmax (step 5)"]);
    }
}
