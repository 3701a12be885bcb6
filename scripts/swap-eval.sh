#!/usr/bin/env bash
# Evaluates a finished study run with its attention normalization swapped and no further
# training: the starting point of the conversion route (EXPERIMENTS.md). The eval binary's
# --attention-norm override reads the run's own checkpoint; nothing is copied.
#   scripts/swap-eval.sh <run> <new-run> '<attention_norm json>'
#   e.g. scripts/swap-eval.sh convert-base-s0 convert-swap0-s0 '{"kind":"power","p":4,"eps":0.001}'
# Writes target-model/study/<new-run>.eval.{json,txt} and copies the report to
# experiments/reports/. Needs target-model/study/eval-bin (made by scripts/study.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 3 ] || { sed -n 2,8p "$0"; exit 2; }
base=target-model/study/$1
new=target-model/study/$2
[ -s "$base/checkpoint/model.safetensors" ] || { echo "no finished run at $base" >&2; exit 1; }
threads=${STUDY_THREADS:-2}
MIMALLOC_PURGE_DELAY=-1 RAYON_NUM_THREADS=$threads nice -n 19 target-model/study/eval-bin \
  "$base/checkpoint" --attention-norm "$3" --json "$new.eval.json" >"$new.eval.txt" 2>&1 ||
  { cat "$new.eval.txt" >&2; exit 1; }
mkdir -p experiments/reports
cp "$new.eval.json" "experiments/reports/$2.eval.json"
head -2 "$new.eval.txt"
