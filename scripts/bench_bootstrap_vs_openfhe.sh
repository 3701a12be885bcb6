#!/usr/bin/env bash
# Bootstrapping at N=2^16, full slots (2^15 uniform inputs in [-1, 1]), 128-bit: OpenFHE's
# EvalBootstrap (the anchor script ../shared/anchors/bench_openfhe.py, PyPI openfhe 1.6.1,
# Python 3.10) and ours (crates/circuits/examples/bootstrap_bench.rs) in the same run, one after
# the other, at 1 and 2 threads; prints a markdown table. Other jobs on the machine distort
# both: the load average is printed before and after.
#   OUT=/tmp/boot-vs-openfhe REPS=3 scripts/bench_bootstrap_vs_openfhe.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ANCHORS=${ANCHORS:-$ROOT/../shared/anchors}
VENV=${VENV:-/tmp/openfhe-anchor/venv}
OUT=${OUT:-/tmp/boot-vs-openfhe}
REPS=${REPS:-3}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
NICE=${NICE:-0}
mkdir -p "$OUT"
rm -f "$OUT/openfhe.jsonl"
cargo build --release -p psf-circuits --example bootstrap_bench --manifest-path "$ROOT/Cargo.toml"
echo "load before: $(cat /proc/loadavg)" | tee "$OUT/load.txt"
for T in 1 2; do
  echo "== OpenFHE EvalBootstrap, $T thread(s)"
  OMP_NUM_THREADS=$T BENCH_OUT="$OUT/openfhe.jsonl" nice -n "$NICE" "$VENV/bin/python" \
    "$ANCHORS/bench_openfhe.py" boot 16 full "$REPS" > "$OUT/openfhe_T$T.log" 2>&1
  echo "   load: $(cat /proc/loadavg)" | tee -a "$OUT/load.txt"
done
echo "== psformer bootstrap, 1 and 2 threads"
nice -n "$NICE" "$TARGET/release/examples/bootstrap_bench" --log-n 16 --threads 1,2 \
  --reps "$REPS" --json > "$OUT/ours.json"
echo "load after: $(cat /proc/loadavg)" | tee -a "$OUT/load.txt"
python3 - "$OUT" <<'EOF' | tee "$OUT/table.md"
import json, re, sys
out = sys.argv[1]
ours = json.load(open(f"{out}/ours.json"))
fhe = {}
for line in open(f"{out}/openfhe.jsonl"):
    r = json.loads(line)
    for x in r["results"]:
        if x["op"].startswith("EvalBootstrap"):
            fhe[x["threads"]] = dict(ms=x["median_ms"], peak=r["peak_rss_gib"], keygen=r["keygen_s"])
for t in fhe:
    log = open(f"{out}/openfhe_T{t}.log").read()
    m = re.search(r"levels remaining (\d+), max\|err\| ([0-9.e+-]+) \(~([0-9.]+) bits\)", log)
    k = re.search(r"automorphism keys: ([0-9]+)", log)
    fhe[t].update(levels=int(m.group(1)), min_bits=float(m.group(3)), keys=k.group(1) if k else "?")
print(f"N=2^{ours['log_n']}, {ours['slots']} slots, uniform inputs in [-1, 1]; ours: {ours['set']} "
      f"(log QP {ours['log_qp']}), {ours['galois_keys']} Galois keys + relin + 2 encapsulation keys.\n")
print("| library | threads | bootstrap (median ms) | levels left | s / level | precision min / mean (bits) "
      "| peak memory (GiB) | keys | key generation (s) | ratio ours / OpenFHE |")
print("|---|---:|---:|---:|---:|---|---:|---|---:|---:|")
for t in sorted(fhe):
    f = fhe[t]
    print(f"| OpenFHE 1.6.1 | {t} | {f['ms']:,.0f} | {f['levels']} | {f['ms'] / 1e3 / f['levels']:.2f} "
          f"| {f['min_bits']:.1f} / n/a | {f['peak']:.2f} | {f['keys']} automorphism keys (size not reported) "
          f"| {f['keygen']:.1f} ({t}T) | |")
for r in ours["runs"]:
    t = r["threads"]
    ratio = f"{r['median_ms'] / fhe[t]['ms']:.2f}" if t in fhe else "n/a"
    print(f"| psformer | {t} | {r['median_ms']:,.0f} | {ours['levels_left']} | {r['sec_per_level']:.2f} "
          f"| {r['min_bits']:.1f} / {r['mean_bits']:.1f} | {ours['peak_rss_gib']:.2f} | {ours['key_gib']:.2f} GiB "
          f"(+ {ours['diagonal_gib']:.2f} GiB DFT diagonals) | {ours['keygen_s']:.1f} ({ours['keygen_threads']}T) | {ratio} |")
EOF
echo "results in $OUT"
