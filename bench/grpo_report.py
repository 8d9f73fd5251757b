#!/usr/bin/env python3
"""Renders the GRPO training-step tables of BENCHMARKS.md from the JSON lines
that bench/run_grpo_bench.sh collects (dsm_grpo_bench, grpo_eager.py,
hf_eager.py's matmul peak, make_model.py).

    grpo_report.py RAW.jsonl [--command "bench/run_grpo_bench.sh ..."]

Tokens per step = samples × (prompt + completion): every position goes through
the forward and the backward. FLOPs per step, in the 4·N·tokens convention:
N = the base model's parameters (the tied embedding counted once: it is the LM
head's weight), 2·N per token for the policy forward and 2·N for the backward
through the activations (the base is frozen: no weight gradients, whose
2·N/token a full fine-tune would add); the reference forward with the adapter
off is another 2·N: 6·N·tokens is the count with it. Attention scores, the
LoRA products and the LM head's recomputation in our backward are not counted.
Peak = the best torch::mm 2048² fp32 rate measured in the run (ours).
"""

import argparse
import json
import statistics
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("raw")
    ap.add_argument("--command", default="bench/run_grpo_bench.sh")
    args = ap.parse_args()
    rows = [json.loads(line) for line in open(args.raw) if line.startswith("{")]
    machine = next(r for r in rows if r["kind"] == "machine")
    model = next(r for r in rows if r["kind"] == "model")
    inputs = next(r for r in rows if r["kind"] == "grpo_inputs")
    load_end = next((r["load_end"] for r in rows if r["kind"] == "load_end"), "?")
    peaks = {"dsm": [r["flops"] for r in rows if r["kind"] == "mm_peak" and r["impl"] == "dsm"],
             "python": [r["flops"] for r in rows if r["kind"] == "mm_peak" and r["impl"] == "python"]}
    steps = {impl: [r for r in rows if r["kind"] == "grpo_step" and r["impl"] == impl] for impl in ("dsm", "python")}
    if not steps["dsm"] or not steps["python"]:
        sys.exit("grpo_report.py: no steps of one side")
    timed = {impl: [r["seconds"] for r in s if not r["warmup"]] for impl, s in steps.items()}
    tokens = steps["dsm"][0]["tokens"]
    ctokens = steps["dsm"][0]["completion_tokens"]
    assert tokens == steps["python"][0]["tokens"] and ctokens == steps["python"][0]["completion_tokens"]
    n = model["params"]
    peak = max(peaks["dsm"])
    out = []
    w = out.append

    w("Command: `%s`" % args.command)
    w("")
    w("Machine: %s, %s cores, threads = %s; LibTorch %s, Python torch %s, BLAS %s; load average at start %s, "
      "at end %s; %s." % (machine["cpu"], machine["cores"], machine["threads"], machine["libtorch"],
                           machine["python_torch"], machine["blas"], machine["load_start"], load_end,
                           machine["date"]))
    w("")
    w("Step: %d samples of %d prompt + %d completion tokens = %s tokens (%s completion "
      "tokens); LoRA r %d on all 7 linears of every layer: %s trainable parameters; base model %s parameters "
      "(%.1fM)." % (inputs["samples"], inputs["prompt"], inputs["completion"],
                    f"{tokens:,}", f"{ctokens:,}", inputs["lora_r"], f"{steps['dsm'][0]['lora_params']:,}",
                    f"{n:,}", n / 1e6))
    w("")
    w("Matmul peak (torch::mm 2048² fp32, best of the run): ours %.1f GFLOP/s, Python %.1f GFLOP/s."
      % (peak / 1e9, max(peaks["python"]) / 1e9 if peaks["python"] else float("nan")))
    w("")

    def rate(s):
        return tokens / s

    best = {k: min(v) for k, v in timed.items()}
    med = {k: statistics.median(v) for k, v in timed.items()}
    w("| | step s (best) | step s (median) | tokens/s (best) | completion tokens/s | 4·N·tokens GFLOP/s | "
      "share of peak | 6·N·tokens GFLOP/s (+ reference forward) | share of peak |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for impl, name in (("dsm", "ours (Trainer::Step)"), ("python", "Python eager (TRL/PEFT-style)")):
        f4 = 4 * n * tokens / best[impl]
        f6 = 6 * n * tokens / best[impl]
        w("| %s | %.2f | %.2f | %s | %s | %.1f | %.1f%% | %.1f | %.1f%% |" % (
            name, best[impl], med[impl], f"{rate(best[impl]):,.0f}", f"{ctokens / best[impl]:,.0f}",
            f4 / 1e9, 100 * f4 / peak, f6 / 1e9, 100 * f6 / peak))
    w("| **ratio ours / Python** | | | **%.2f×** (median %.2f×) | | | | | |"
      % (best["python"] / best["dsm"], med["python"] / med["dsm"]))
    w("")
    w("Timed steps: ours %s s; Python %s s (one warm-up step per process not counted)." % (
        ", ".join("%.2f" % s for s in timed["dsm"]), ", ".join("%.2f" % s for s in timed["python"])))
    w("")

    # Same computation: step-k losses of every process.
    by_step = {}
    for impl in ("dsm", "python"):
        for r in steps[impl]:
            by_step.setdefault(r["step"], {}).setdefault(impl, []).append(r)
    diffs = []
    for k, d in sorted(by_step.items()):
        for a in d.get("dsm", []):
            for b in d.get("python", []):
                diffs.append((k, abs(a["loss"] - b["loss"])))
    first = by_step[1]
    a, b = first["dsm"][0], first["python"][0]
    w("Same computation: first-step loss ours %.7f, Python %.7f (|Δ| %.1e); KL %.6f vs %.6f, clip fraction "
      "%.4f vs %.4f, grad norm %.6f vs %.6f; largest loss difference at any step index over all processes "
      "%.1e." % (a["loss"], b["loss"], abs(a["loss"] - b["loss"]), a["kl"], b["kl"], a["clip_fraction"],
                 b["clip_fraction"], a["grad_norm"], b["grad_norm"], max(d for _, d in diffs)))
    print("\n".join(out))


if __name__ == "__main__":
    main()
