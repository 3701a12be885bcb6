//! Attention maps and their locality, to compare the inductive biases of the attention
//! normalizations (softmax, Power-Softmax, pointwise).
//!
//! Maps are read through the recorder hook ([`RangeRecorder::with_attention`]), which runs
//! the composed (reference) path of every kernel; evaluation only.
//!
//! Locality of a layer is its **mean attention distance**: for query `i` with weights
//! `w_ij` over keys `j <= i`, `d_i = sum_j w_ij (i - j)`, averaged over queries, heads and
//! sequences. Uniform causal attention has `d_i = i / 2`; the ratio to that baseline
//! (`relative`) is 0 for attention to the token itself and 1 for uniform attention.
//!
//! Sharpness of a layer, whatever the distance: the mean largest share of a row
//! (`top_weight`) and the row's entropy relative to uniform attention over its keys
//! (`entropy`: 0 for one key, 1 for uniform), over queries with at least two keys.

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::data::TokenStream;
use crate::error::{Error, Result};
use crate::model::Model;
use crate::ranges::RangeRecorder;

/// The attention weights of one layer for one sequence: `heads x T x T`, row = query.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerMap {
    /// Decoder block index.
    pub layer: usize,
    /// `weights[h][i][j]`: head `h`, query `i`, key `j`.
    pub weights: Vec<Vec<Vec<f32>>>,
}

/// Every layer's attention weights for one token sequence `ids` (one forward pass).
pub fn attention_maps(model: &Model, ids: &[u32], dev: &Device) -> Result<Vec<LayerMap>> {
    if ids.is_empty() {
        return Err(Error::EvalInput {
            what: "empty sequence".into(),
        });
    }
    let x = Tensor::from_slice(ids, (1, ids.len()), dev)?;
    let mut rec = RangeRecorder::with_attention();
    model.forward(&x, Some(&mut rec))?;
    rec.attention
        .unwrap_or_default()
        .into_iter()
        .map(|(layer, w)| {
            Ok(LayerMap {
                layer,
                weights: w.squeeze(0)?.to_vec3::<f32>()?,
            })
        })
        .collect()
}

/// Mean attention distance of one layer, per head and overall.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerLocality {
    /// Decoder block index.
    pub layer: usize,
    /// Mean distance per head (tokens). Each row's weights are taken as a distribution
    /// (divided by their sum: pointwise attention's rows do not sum to 1); rows with no
    /// weight at all are left out.
    pub per_head: Vec<f64>,
    /// Mean over heads (tokens).
    pub mean: f64,
    /// `mean` divided by the uniform-attention baseline (0: self only, 1: uniform).
    pub relative: f64,
    /// Mean share of a row's weight on the query's own token and the previous one
    /// (`j >= i - 1`).
    pub local_mass: f64,
    /// Mean total weight of a row, over every row: 1 for softmax and for Power-Softmax
    /// without `eps`; below 1 where `eps * L` in the denominator takes a share (attention to
    /// "nothing"); pointwise rows are not normalized. `None` in reports written before it
    /// was measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_weight: Option<f64>,
    /// Mean largest share of a row (rows taken as distributions, queries with two keys or
    /// more). `None` in reports written before it was measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_weight: Option<f64>,
    /// Mean entropy of a row divided by that of uniform attention over its keys (0: one
    /// key, 1: uniform; same rows as `top_weight`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entropy: Option<f64>,
}

/// Accumulates distances over sequences.
#[derive(Debug, Clone, Default)]
struct Acc {
    dist: Vec<f64>,      // per head
    head_rows: Vec<f64>, // rows with weight, per head
    mass: f64,
    weight: f64, // summed row weights, every head
    uniform: f64,
    rows: f64,
    top: f64,        // summed largest shares, rows with >= 2 keys
    entropy: f64,    // summed relative entropies, same rows
    sharp_rows: f64, // rows counted in `top` and `entropy`
}

/// Locality of every layer, averaged over `windows` non-overlapping windows of `seq_len`
/// tokens of `stream` (the held-out text).
pub fn locality(
    model: &Model,
    stream: &TokenStream,
    seq_len: usize,
    windows: usize,
    dev: &Device,
) -> Result<Vec<LayerLocality>> {
    let mut accs: Vec<Acc> = Vec::new();
    let usable = stream.ids.len().saturating_sub(1) / seq_len.max(1);
    if usable == 0 || windows == 0 {
        return Err(Error::NotEnoughData(format!(
            "{} tokens for windows of {seq_len}",
            stream.ids.len()
        )));
    }
    for w in 0..windows.min(usable) {
        let ids = &stream.ids[w * seq_len..(w + 1) * seq_len];
        for map in attention_maps(model, ids, dev)? {
            if accs.len() <= map.layer {
                accs.resize(map.layer + 1, Acc::default());
            }
            accumulate(&mut accs[map.layer], &map);
        }
    }
    Ok(accs
        .into_iter()
        .enumerate()
        .map(|(layer, a)| {
            let per_head: Vec<f64> = a
                .dist
                .iter()
                .zip(&a.head_rows)
                .map(|(d, n)| d / n.max(1.0))
                .collect();
            let mean = per_head.iter().sum::<f64>() / per_head.len().max(1) as f64;
            LayerLocality {
                layer,
                mean,
                relative: mean / (a.uniform / a.rows).max(f64::MIN_POSITIVE),
                local_mass: a.mass / a.head_rows.iter().sum::<f64>().max(1.0),
                row_weight: Some(a.weight / (a.rows * a.dist.len() as f64).max(1.0)),
                top_weight: Some(a.top / a.sharp_rows.max(1.0)),
                entropy: Some(a.entropy / a.sharp_rows.max(1.0)),
                per_head,
            }
        })
        .collect())
}

fn accumulate(acc: &mut Acc, map: &LayerMap) {
    let heads = map.weights.len();
    if acc.dist.len() < heads {
        acc.dist.resize(heads, 0.0);
        acc.head_rows.resize(heads, 0.0);
    }
    let t = map.weights.first().map_or(0, Vec::len);
    for (h, rows) in map.weights.iter().enumerate() {
        for (i, row) in rows.iter().enumerate() {
            // The row's weight and its first moment in distance, in one pass.
            let (total, d) = row[..=i]
                .iter()
                .enumerate()
                .fold((0f64, 0f64), |(t, d), (j, &w)| {
                    (t + w as f64, d + w as f64 * (i - j) as f64)
                });
            acc.weight += total;
            if total <= 0.0 {
                continue;
            }
            acc.dist[h] += d / total;
            acc.head_rows[h] += 1.0;
            acc.mass += (row[i] as f64 + if i > 0 { row[i - 1] as f64 } else { 0.0 }) / total;
            if i > 0 {
                let (top, entropy) = sharpness(&row[..=i], total);
                acc.top += top;
                acc.entropy += entropy;
                acc.sharp_rows += 1.0;
            }
        }
    }
    acc.uniform += (0..t).map(|i| i as f64 / 2.0).sum::<f64>();
    acc.rows += t as f64;
}

/// `(largest share, entropy / ln(keys))` of a row of at least two keys with positive `total`.
fn sharpness(row: &[f32], total: f64) -> (f64, f64) {
    let (mut top, mut h) = (0f64, 0f64);
    for &w in row {
        let q = w.max(0.0) as f64 / total;
        top = top.max(q);
        if q > 0.0 {
            h -= q * q.ln();
        }
    }
    (top, h / (row.len() as f64).ln())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_of_self_and_uniform_attention() {
        let t = 5;
        let eye: Vec<Vec<f32>> = (0..t)
            .map(|i| (0..t).map(|j| (i == j) as u8 as f32).collect())
            .collect();
        let uni: Vec<Vec<f32>> = (0..t)
            .map(|i| {
                (0..t)
                    .map(|j| if j <= i { 1.0 / (i + 1) as f32 } else { 0.0 })
                    .collect()
            })
            .collect();
        let mut a = Acc::default();
        accumulate(
            &mut a,
            &LayerMap {
                layer: 0,
                weights: vec![eye, uni],
            },
        );
        let uniform = a.uniform / a.rows;
        assert!((a.dist[0] / a.rows).abs() < 1e-12);
        assert!((a.dist[1] / a.rows - uniform).abs() < 1e-6);
        // Sharpness over rows 1..5 of both heads: one-hot (top 1, entropy 0) and uniform
        // (top 1/(i+1), entropy 1).
        assert_eq!(a.sharp_rows, 8.0);
        let top_uniform: f64 = (1..t).map(|i| 1.0 / (i + 1) as f64).sum();
        assert!((a.top - (4.0 + top_uniform)).abs() < 1e-6, "{}", a.top);
        assert!((a.entropy - 4.0).abs() < 1e-6, "{}", a.entropy);
    }

    #[test]
    fn rows_that_do_not_sum_to_one_are_normalized_and_empty_rows_skipped() {
        // Row 0 attends nowhere; row 1 puts weight 0.25 on each of its two keys (sum 0.5).
        let half = vec![vec![0.0f32, 0.0], vec![0.25, 0.25]];
        let mut a = Acc::default();
        let map = LayerMap {
            layer: 0,
            weights: vec![half],
        };
        accumulate(&mut a, &map);
        assert_eq!(a.head_rows, [1.0]);
        assert_eq!((a.weight, a.rows * a.dist.len() as f64), (0.5, 2.0)); // row weight 0.25 on average
        assert!((a.dist[0] - 0.5).abs() < 1e-12); // distances 1 and 0, half each
        assert!((a.mass - 1.0).abs() < 1e-12);
    }
}
