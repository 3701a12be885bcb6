#!/usr/bin/env bash
# Measures the OpenFHE anchor (../shared/anchors, PyPI openfhe 1.6.1, Python 3.10) and our
# engine in the same run, on the same machine, one after the other, and prints the table for
# BENCHMARKS.md. Nothing else should run meanwhile.
#   OUT=/tmp/psformer-bench scripts/bench_ckks_vs_openfhe.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ANCHORS=${ANCHORS:-$ROOT/../shared/anchors}
OUT=${OUT:-/tmp/psformer-bench}
export WORK=${WORK:-/tmp/openfhe-anchor}
mkdir -p "$OUT" "$WORK"
rm -f "$WORK/results_openfhe.jsonl"
echo "== OpenFHE anchor (leveled, N=2^16 depth 20 and N=2^15 depth 11; 1 and 2 threads)"
BOOT=0 bash "$ANCHORS/run_openfhe.sh"
cp "$WORK/results_openfhe.jsonl" "$OUT/"
echo "== psformer"
cargo build --release -p psformer --manifest-path "$ROOT/Cargo.toml"
"$ROOT/target/release/psformer" bench ckks --anchor "$OUT/results_openfhe.jsonl" \
  --json "$OUT/psformer_ckks.json" "$@" | tee "$OUT/table.md"
echo "results in $OUT"
