#!/usr/bin/env python3
"""Projects a measured (or predicted) encrypted forward pass of the Pythia-70M shape to larger
shapes at the same sequence length and parameter set, component by component.

    scripts/project.py target-infer/pythia70m/report.json [--predicted]

The simulator cannot run a Pythia-1.4B or Llama-7B layer directly (one 2048 x 8192 map alone
would hold 17 GB of f64 diagonals), so each component of the reference run is scaled by how
its work grows with the shape in the token-interleaved layout (S = 2^15 slots, n = 128 token
slots, F = S / n = 256 features per ciphertext; m = d / F model ciphertexts, h = mlp / F
hidden ciphertexts):

- pt-matmul: one block of <= F diagonals per (input, output) ciphertext pair: per layer
  4 m^2 (q, k, v, o; grouped k/v heads are expanded to all heads) + 2 m h (plain MLP) or
  3 m h (gated); plus the LM head: m * vocab / F blocks on every position, or
  m * vocab / S blocks for the last position only (`HeadPositions::Last`).
- ct-matmul and Power-Softmax: per layer, per key offset and per model ciphertext, the key
  and value rotations, two products and two rotate-and-sums of log2(head_dim) rotations:
  proportional to m * (2 + 2 log2(head_dim)) at the same sequence length.
- norms: proportional to m per norm (1 per parallel-residual block with shared norms, 2 per
  sequential block); activation: proportional to h (gated: plus one product per ciphertext,
  counted the same).
- bootstrapping: proportional to the ciphertexts refreshed: per parallel-residual block 3
  sites of m ciphertexts (norm input, norm output, attention denominators); per sequential
  block 5 (norm1, attention input, denominators, norm2, MLP input); plus the final norm and
  head inputs (2 sites of m).

Each scale is the target's count divided by the reference's, so components keep their
measured cost per unit of work (levels, bootstrapping placement and key-switch costs as in
the reference run). This is a projection, not a measurement.
"""
import json
import math
import sys

F = 256  # features per ciphertext at 128 tokens, N = 2^16

S = 2**15  # slots

SHAPES = {
    # name: layers, d, heads, head_dim, mlp, vocab, gated (Llama) or parallel residual (NeoX),
    # LM head on every position (True) or the last one only
    "Pythia-70M shape (reference)": (6, 512, 8, 64, 2048, 512, False, True),
    "Pythia-70M, vocabulary 50,304, every position": (6, 512, 8, 64, 2048, 50304, False, True),
    "Pythia-70M, vocabulary 50,304, last position": (6, 512, 8, 64, 2048, 50304, False, False),
    "Pythia-1.4B, last position": (24, 2048, 16, 128, 8192, 50304, False, False),
    "Llama-7B shape, last position": (32, 4096, 32, 128, 11008, 32000, True, False),
}


def units(layers, d, heads, head_dim, mlp, vocab, gated, every_position):
    m, h = math.ceil(d / F), math.ceil(mlp / F)
    head = math.ceil(vocab / F) if every_position else math.ceil(vocab / S)
    pt = layers * (4 * m * m + (3 if gated else 2) * m * h) + m * head
    att = layers * m * (2 + 2 * math.log2(head_dim))
    norms = layers * m * (2 if gated else 1) + m
    act = layers * h
    boots = layers * m * (5 if gated else 3) + 2 * m
    return {
        "pt_matmul": pt,
        "ct_matmul": att,
        "power_softmax": att,
        "norm": norms,
        "activation": act,
        "bootstrap": boots,
        "other": layers * m,
    }


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    key = "predicted_s" if "--predicted" in sys.argv else "wall_s"
    report = json.load(open(args[0]))
    times = {c["component"]: c[key] for c in report["components"]}
    ref = units(*SHAPES["Pythia-70M shape (reference)"])
    print(f"reference: {report['title']} ({key})")
    cols = list(ref)
    print("| shape | " + " | ".join(cols) + " | total s | total h |")
    print("|---" * (len(cols) + 3) + "|")
    for name, shape in SHAPES.items():
        u = units(*shape)
        t = {c: times.get(c, 0.0) * u[c] / ref[c] for c in cols}
        total = sum(t.values())
        row = " | ".join(f"{t[c]:,.0f}" for c in cols)
        print(f"| {name} | {row} | {total:,.0f} | {total / 3600:.1f} |")


if __name__ == "__main__":
    main()
