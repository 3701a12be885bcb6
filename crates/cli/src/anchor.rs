//! Reading the OpenFHE anchor's results (`bench_openfhe.py`, JSON lines) for comparison.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;

/// `(op, log_n, threads) -> median ms` from an OpenFHE results file.
#[derive(Debug, Default)]
pub struct AnchorResults {
    medians: HashMap<(String, u32, usize), f64>,
}

/// Our op names and the anchor script's names for the same operation.
const OP_NAMES: &[(&str, &str)] = &[
    ("encode", "encode (MakeCKKSPackedPlaintext)"),
    ("encrypt (pk)", "encrypt (public key)"),
    ("decrypt+decode", "decrypt (incl. decode)"),
    ("add", "add ct+ct"),
    ("pt-mul", "mult ct*pt (no rescale)"),
    ("tensor", "mult ct*ct (tensor only)"),
    ("relinearize", "relinearize"),
    ("mul+relin", "mult ct*ct + relin"),
    ("rescale", "rescale"),
    ("rotate", "rotate by 1 (hybrid key switch)"),
];

impl AnchorResults {
    /// Parses the JSON-lines file written by `bench_openfhe.py` (leveled runs only).
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut medians = HashMap::new();
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let v: serde_json::Value = serde_json::from_str(line)
                .with_context(|| format!("{}:{}: not JSON", path.display(), i + 1))?;
            if v["kind"] != "leveled" {
                continue;
            }
            let log_n = v["logn"].as_u64().context("missing logn")? as u32;
            for r in v["results"].as_array().context("missing results")? {
                let (Some(op), Some(t), Some(ms)) = (
                    r["op"].as_str(),
                    r["threads"].as_u64(),
                    r["median_ms"].as_f64(),
                ) else {
                    continue;
                };
                if let Some((ours, _)) = OP_NAMES.iter().find(|(_, theirs)| *theirs == op) {
                    medians.insert((ours.to_string(), log_n, t as usize), ms);
                }
            }
        }
        Ok(Self { medians })
    }

    /// The anchor's median for our op name, if measured.
    pub fn median(&self, op: &str, log_n: u32, threads: usize) -> Option<f64> {
        self.medians.get(&(op.to_string(), log_n, threads)).copied()
    }
}
