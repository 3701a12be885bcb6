#!/usr/bin/env bash
# Trains the attention-normalization study of EXPERIMENTS.md (experiments/study/*.json) one
# run after another at the lowest CPU priority, resuming each from its last checkpoint, so it
# can be stopped and restarted at will. Logs: target-model/study/<run>.log; each finished run
# is evaluated once (target-model/study/<run>.eval.{json,txt}), and its report and training
# log are copied to experiments/reports/ to be committed (checkpoints stay in target-model).
# Order: the 10M-token pair with the positional decay, the other depth runs (16 and
# 32 layers at d=128, 2M tokens each), the 10M-token softmax/p=4 pair at a second seed, an
# ICL arm (2 layers, d=128, 16M tokens of synthetic episodes each), the same pair at a third
# seed, the other 10M-token powers, the conversion route (a softmax base run, then its copies
# continued with p = 4 and with softmax on the same tokens; each base before its arms); last,
# the runs whose results EXPERIMENTS.md already reports from earlier sessions (the 10M-token
# seed-0 runs, the small-model screen, the first depth runs), to re-make their reports in
# experiments/reports/ where they are missing.
#   scripts/study.sh [run ...]      (default order below)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=("$@")
[ ${#runs[@]} -gt 0 ] || runs=(
  power4-decay-s0 softmax-decay-s0
  depth16-power2-s0 depth16-power6-s0 depth16-power8-s0 depth16-pointwise-s0
  depth32-power2-s0 depth32-power6-s0 depth32-power8-s0 depth32-pointwise-s0
  softmax-s1 power4-s1
  icl16m-softmax-s0 icl16m-power2-s0 icl16m-power4-s0 icl16m-power6-s0 icl16m-power8-s0 icl16m-pointwise-s0
  softmax-s2 power4-s2
  power2-s0 power6-s0 power8-s0
  convert-base-s0 convert-power4-s0 convert-softmax-s0
  convert-base-s1 convert-power4-s1 convert-softmax-s1
  convert-base-s2 convert-power4-s2 convert-softmax-s2
  convert10m-base-s0 convert10m-power4-s0 convert10m-softmax-s0
  softmax-s0 power4-s0 pointwise-s0
  tune-softmax-s0 tune-power4-s0 tune-power4-eps1e-2-s0 tune-power4-lr2e-3-s0 tune-softmax-lr2e-3-s0
  tune-power2-s0 tune-power6-s0 tune-power8-s0 tune-pointwise-s0
  tune-power4-eps1e-1-lr2e-3-s0 tune-power4-eps1-lr2e-3-s0
  tune-softmax-s1 tune-power4-s1 tune-softmax-s2 tune-power4-s2
  tune-power4-decay-lr2e-3-s0 tune-softmax-decay-lr2e-3-s0
  depth16-softmax-s0 depth16-power4-s0 depth32-softmax-s0 depth32-power4-s0)
CARGO_TARGET_DIR=target-study cargo build --release -p psf-model --example train --example eval
mkdir -p target-model/study
# Copied only when changed: another study.sh may be running the binaries (STUDY_THREADS=1
# lets two share the 2 cores; for the d = 128 configs two such queues make 1.7x the tokens/s
# of one queue on both cores, measured at depth 32 in EXPERIMENTS.md).
cmp -s target-study/release/examples/train target-model/study/train-bin ||
  cp target-study/release/examples/train target-model/study/train-bin
cmp -s target-study/release/examples/eval target-model/study/eval-bin ||
  cp target-study/release/examples/eval target-model/study/eval-bin
threads=${STUDY_THREADS:-2}
for run in "${runs[@]}"; do
  # A run whose report is committed is done (its checkpoint may be on another machine).
  if [ -s "experiments/reports/$run.eval.json" ]; then
    echo "== $run: reported in experiments/reports/, skipped"
    continue
  fi
  # A conversion arm starts from its base run's checkpoint, which must be on this machine.
  base=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1])).get("init_from") or "")' \
    "experiments/study/$run.json")
  if [ -n "$base" ] && [ ! -s "$base/model.safetensors" ]; then
    echo "== $run: skipped, needs $base (train its base run first; a reported base is skipped too:"
    echo "   move its report out of experiments/reports/ to retrain it)"
    continue
  fi
  echo "== $run $(date -Is)"
  MIMALLOC_PURGE_DELAY=-1 RAYON_NUM_THREADS=$threads nice -n 19 \
    target-model/study/train-bin "experiments/study/$run.json" >>"target-model/study/$run.log" 2>&1
  # The finished run's evaluation suite (held-out perplexity, multiple choice, ICL, locality),
  # once: target-model/study/<run>.eval.json and .eval.txt.
  if [ ! -s "target-model/study/$run.eval.json" ]; then
    echo "== eval $run $(date -Is)"
    MIMALLOC_PURGE_DELAY=-1 RAYON_NUM_THREADS=$threads nice -n 19 target-model/study/eval-bin \
      "target-model/study/$run/checkpoint" --json "target-model/study/$run.eval.json" \
      >"target-model/study/$run.eval.txt" 2>&1
  fi
  mkdir -p experiments/reports
  cp "target-model/study/$run.eval.json" "experiments/reports/$run.eval.json"
  cp "target-model/study/$run.log" "experiments/reports/$run.log"
done
