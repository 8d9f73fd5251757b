#!/usr/bin/env python3
"""Turns the JSON lines of one benchmark run into the markdown of BENCHMARKS.md.

    report.py --model DIR RESULTS.jsonl [--command "..."] > model_bench.md

RESULTS.jsonl holds the lines printed by dsm_model_bench ("impl": "dsm"),
hf_eager.py ("python") and tokenizer_bench.js ("js-lenml", "js-hf"), plus a
"machine" line written by run_model_bench.sh.

FLOPs count the multiply-adds of matrix products only (2 per multiply-add);
norms, RoPE, softmax, SiLU and the sampler are not counted. Per decoded token
at a cache of S keys (the new one included):
    2 * (linear weights of all layers + lm_head) + layers * 4 * heads * head_dim * S
(q/k/v/o/gate/up/down, the LM head over the whole vocabulary, QK^T and PV over
the cache). Decode step j (1..N) of a prompt of P tokens attends S = P + j keys.
A prefill of P tokens counts 2 * linear weights * P, the causal half of
attention (query t attends t keys) and the LM head for the last token only.
"""

import argparse
import json
import os
import sys


def load(path):
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                out.append(json.loads(line))
    return out


class Flops:
    def __init__(self, cfg):
        h = cfg["hidden_size"]
        i = cfg["intermediate_size"]
        self.heads = cfg["num_attention_heads"]
        kv = cfg.get("num_key_value_heads", self.heads)
        self.hd = cfg.get("head_dim") or h // self.heads
        self.layers = cfg["num_hidden_layers"]
        per_layer = h * self.heads * self.hd * 2 + 2 * h * kv * self.hd + 3 * h * i
        self.linear = self.layers * per_layer
        self.head = cfg["vocab_size"] * h
        self.weight_bytes = 4 * (self.linear + self.head)  # float32, tied head read once
        self.kv_bytes_per_key = 4 * 2 * self.layers * kv * self.hd

    def attn(self, keys):
        return self.layers * 4 * self.heads * self.hd * keys

    def decode(self, batch, prompt, steps):
        total = 0
        for j in range(1, steps + 1):
            total += 2 * (self.linear + self.head) + self.attn(prompt + j)
        return batch * total

    def decode_bytes(self, prompt, steps):
        """Bytes a decode step must read at least (weights + the cache), averaged per step."""
        keys = sum(prompt + j for j in range(1, steps + 1)) / steps
        return self.weight_bytes + self.kv_bytes_per_key * keys

    def prefill(self, batch, prompt):
        attn = sum(self.attn(t) for t in range(1, prompt + 1))
        return batch * (2 * self.linear * prompt + attn + 2 * self.head)


def pick(rows, impl, kind, **kw):
    """The best of the matching lines (the run repeats each measurement in rounds
    and noise only ever slows a run down): least time, most FLOP/s."""
    cands = [r for r in rows
             if r.get("impl") == impl and r.get("kind") == kind and all(r.get(k) == v for k, v in kw.items())]
    if not cands:
        return None
    if kind == "mm_peak":
        return max(cands, key=lambda r: r["flops"])
    if kind == "profile":
        return min(cands, key=lambda r: r["wall_us"])
    if kind == "attention":
        best = dict(min(cands, key=lambda r: r["model_us"]))
        f = min(cands, key=lambda r: r["fused_us"])
        best.update(fused_us=f["fused_us"], fused_bytes_per_s=f["fused_bytes_per_s"],
                    speedup=best["model_us"] / f["fused_us"])
        return best
    if kind == "linears":
        best = dict(cands[0])
        for key in ("linear_us", "mv_us", "dnnl_us"):
            vals = [r[key] for r in cands if key in r]
            if vals:
                best[key] = min(vals)
        return best
    best = dict(min(cands, key=lambda r: r["seconds"]))
    if kind == "decode" and "reused_seconds" in best:
        r = min(cands, key=lambda r: r["reused_seconds"])
        best.update(reused_seconds=r["reused_seconds"], reused_tok_s=r["reused_tok_s"])
    if kind == "tokenizer":
        best["first_mb_s"] = max(r["first_mb_s"] for r in cands)
    return best


def fmt(x, digits=0):
    if x is None:
        return "—"
    return f"{x:,.{digits}f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results")
    ap.add_argument("--model", required=True)
    ap.add_argument("--command", default="")
    args = ap.parse_args()
    rows = load(args.results)
    with open(os.path.join(args.model, "config.json")) as f:
        cfg = json.load(f)
    fl = Flops(cfg)
    machine = next((r for r in rows if r.get("kind") == "machine"), {})
    model = next((r for r in rows if r.get("kind") == "model"), {})
    libs = []
    for r in rows:
        if r.get("impl") == "dsm" and r.get("kind") == "mm_peak" and r.get("lib") not in libs:
            libs.append(r.get("lib"))
    peaks = [pick(rows, "dsm", "mm_peak", lib=lib) for lib in libs]
    torch_peak = next((r for r in peaks if "torch" in r.get("lib", "torch")), None)
    best_peak = max(peaks, key=lambda r: r["flops"]) if peaks else None
    py_peak = pick(rows, "python", "mm_peak")
    mem = pick(rows, "dsm", "mem_read")
    peak_flops = best_peak["flops"] if best_peak else None
    torch_peak_flops = torch_peak["flops"] if torch_peak else None
    out = []
    w = out.append

    if args.command:
        w(f"Command: `{args.command}`\n")
    if machine:
        w(f"Machine: {machine.get('cpu')}, {machine.get('cores')} cores, threads = {machine.get('threads')}; "
          f"LibTorch {machine.get('libtorch')}, Python torch {machine.get('python_torch')}, "
          f"BLAS {machine.get('blas')}, node {machine.get('node')}; load average at start "
          f"{machine.get('load_start')}, at end {machine.get('load_end')}; {machine.get('date')}.\n")
    if model:
        w(f"Model: Llama-style, {model['params'] / 1e6:.1f}M parameters ({model['params_non_embedding'] / 1e6:.1f}M "
          f"outside the tied embedding), hidden {cfg['hidden_size']}, {cfg['num_hidden_layers']} layers, "
          f"{cfg['num_attention_heads']} heads / {cfg['num_key_value_heads']} KV heads of {fl.hd}, MLP "
          f"{cfg['intermediate_size']}, vocabulary {cfg['vocab_size']}, float32.\n")

    w("**Machine limits (measured in this run)**\n")
    w("| measure | ours (LibTorch) | Python torch |")
    w("|---|---:|---:|")
    for r in peaks:
        py = f"{py_peak['flops'] / 1e9:.1f} GFLOP/s" if py_peak and "torch" in r.get("lib", "") else ""
        w(f"| matmul peak, {r.get('lib', 'torch::mm')} {r['n']}² fp32 | {r['flops'] / 1e9:.1f} GFLOP/s | {py} |")
    shapes = []
    for r in rows:
        if r.get("impl") == "dsm" and r.get("kind") == "linear_peak" and (r["lib"], r["m"]) not in shapes:
            shapes.append((r["lib"], r["m"]))
    for lib, m in sorted(shapes, key=lambda x: x[1]):
        r = pick(rows, "dsm", "linear_peak", lib=lib, m=m)
        if True:
            w(f"| {r.get('lib', 'torch::linear')} [{r['m']}, {r['k']}] × [{r['n']}, {r['k']}]ᵀ (weights in cache) | "
              f"{r['flops'] / 1e9:.1f} GFLOP/s ({r['bytes_per_s'] / 1e9:.1f} GB/s of weights) | |")
    if mem:
        w(f"| memory read (sum of 256 MiB) | {mem['bytes_per_s'] / 1e9:.1f} GB/s | |")
    w("")

    batches = sorted({r["batch"] for r in rows if r.get("kind") in ("prefill", "decode")})
    w(f"**Model runtime** — prompt {next((r['prompt'] for r in rows if r.get('kind') == 'decode'), '?')} tokens, "
      f"{next((r['steps'] for r in rows if r.get('kind') == 'decode'), '?')} greedy decode steps; "
      "tokens/s (best of the repetitions), ratio = ours / Python eager.\n")
    w("| batch | prefill ours | prefill Python | ratio | decode ours | decode Python | **ratio** | "
      "decode ours, reused sampler | ratio | decode ours, model only |")
    w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    summary = {}
    for b in batches:
        po, pp = pick(rows, "dsm", "prefill", batch=b), pick(rows, "python", "prefill", batch=b)
        do, dp = pick(rows, "dsm", "decode", batch=b), pick(rows, "python", "decode", batch=b)
        fo = pick(rows, "dsm", "forward_decode", batch=b)
        dflops = fl.decode(b, do["prompt"], do["steps"]) / do["seconds"] if do else None
        rflops = fl.decode(b, do["prompt"], do["steps"]) / do["reused_seconds"] if do and "reused_seconds" in do else None
        summary[b] = {"decode_ratio": ratio(do and do["tok_s"], dp and dp["tok_s"]),
                      "reused_ratio": ratio(do and do.get("reused_tok_s"), dp and dp["tok_s"]),
                      "prefill_ratio": ratio(po and po["tok_s"], pp and pp["tok_s"]),
                      "flops": dflops, "reused_flops": rflops,
                      "py_flops": fl.decode(b, dp["prompt"], dp["steps"]) / dp["seconds"] if dp else None}
        w(f"| {b} | {fmt(po and po['tok_s'])} | {fmt(pp and pp['tok_s'])} | "
          f"{fmt(summary[b]['prefill_ratio'], 2)}× | {fmt(do and do['tok_s'])} | {fmt(dp and dp['tok_s'])} | "
          f"**{fmt(summary[b]['decode_ratio'], 2)}×** | {fmt(do and do.get('reused_tok_s'))} | "
          f"{fmt(summary[b]['reused_ratio'], 2)}× | {fmt(fo and fo['tok_s'])} |")
    w("")
    w("**Decode FLOP/s** (matmul FLOPs as defined in bench/report.py: linears + LM head + attention over the cache) "
      "as a share of the measured matmul peaks:\n")
    w("| batch | ours GFLOP/s | share of torch::mm peak | share of oneDNN sgemm peak | reused sampler: share of "
      "torch::mm peak | Python GFLOP/s | Python share of torch::mm peak |")
    w("|---:|---:|---:|---:|---:|---:|---:|")

    def pct(x, y):
        r = ratio(x, y)
        return "—" if r is None else f"{100 * r:.1f}%"

    for b in batches:
        sm = summary[b]
        w(f"| {b} | {fmt(sm['flops'] and sm['flops'] / 1e9, 1)} | {pct(sm['flops'], torch_peak_flops)} | "
          f"{pct(sm['flops'], peak_flops)} | {pct(sm['reused_flops'], torch_peak_flops)} | "
          f"{fmt(sm['py_flops'] and sm['py_flops'] / 1e9, 1)} | {pct(sm['py_flops'], torch_peak_flops)} |")
        sm["share"] = ratio(sm["flops"], peak_flops)
        sm["share_torch"] = ratio(sm["flops"], torch_peak_flops)
    w("")
    # Prefill FLOP/s and batch-1 bandwidth, for the analysis.
    extra = []
    for b in batches:
        po = pick(rows, "dsm", "prefill", batch=b)
        pp = pick(rows, "python", "prefill", batch=b)
        if po and peak_flops:
            f = fl.prefill(b, po["prompt"])
            extra.append(f"prefill b{b}: ours {f / po['seconds'] / 1e9:.1f} GFLOP/s "
                         f"({100 * f / po['seconds'] / torch_peak_flops:.0f}% of the torch::mm peak)"
                         + (f", Python {f / pp['seconds'] / 1e9:.1f} GFLOP/s" if pp else ""))
    d1 = pick(rows, "dsm", "decode", batch=1)
    p1 = pick(rows, "python", "decode", batch=1)
    if d1 and mem:
        need = fl.decode_bytes(d1["prompt"], d1["steps"])
        for name, r in (("ours", d1), ("Python", p1)):
            if r:
                bw = need * r["tok_s"]
                extra.append(f"decode b1 {name}: {bw / 1e9:.1f} GB/s of weights + cache "
                             f"({100 * bw / mem['bytes_per_s']:.0f}% of the measured read bandwidth; "
                             f"{need / 1e6:.0f} MB per step)")
    if extra:
        w("Also measured: " + "; ".join(extra) + ".\n")

    # Greedy agreement.
    agree = []
    for b in batches:
        do, dp = pick(rows, "dsm", "decode", batch=b), pick(rows, "python", "decode", batch=b)
        if do and dp and "ids" in do and "ids" in dp:
            same_rows = sum(1 for x, y in zip(do["ids"], dp["ids"]) if x == y)
            agree.append(f"b{b}: {same_rows}/{len(do['ids'])} rows identical")
    diffs = []
    for b in batches:
        po, pp = pick(rows, "dsm", "prefill", batch=b), pick(rows, "python", "prefill", batch=b)
        if po and pp and "probe" in po and "probe" in pp:
            diffs.append(max(abs(x - y) for x, y in zip(po["probe"], pp["probe"])))
    if agree or diffs:
        text = "Same computation on both sides: "
        if diffs:
            text += (f"prefill logits (16 of the last row) differ by at most {max(diffs):.1e} "
                     f"(logits of order {max(abs(x) for x in po['probe']):.1f}); ")
        if agree:
            text += "greedy tokens " + ", ".join(agree)
        w(text + ".\n")

    # Decode attention: the model's GroupedQueryAttention vs the fused prototype.
    att = [pick(rows, "dsm", "attention", batch=b)
           for b in sorted({r["batch"] for r in rows if r.get("kind") == "attention"})]
    if att:
        w("**Decode attention, all layers of one step** (keys = prompt + decode/2; the model's "
          "`GroupedQueryAttention` vs the fused prototype in `bench/model_bench.cc`):\n")
        w("| batch | model µs | fused µs | speedup | model GB/s of K+V | fused GB/s |")
        w("|---:|---:|---:|---:|---:|---:|")
        for r in att:
            w(f"| {r['batch']} | {r['model_us']:,.0f} | {r['fused_us']:,.0f} | {r['speedup']:.2f}× | "
              f"{r['model_bytes_per_s'] / 1e9:.1f} | {r['fused_bytes_per_s'] / 1e9:.1f} |")
        w("")

    # Linears of a step and the projection.
    lin = [pick(rows, "dsm", "linears", batch=b) for b in batches]
    lin = [r for r in lin if r]
    if lin:
        w("**The 57 linears of one decode step** (the model's weights in forward order, streamed from memory; µs "
          "per step): `torch::linear` as `LlamaModel::ApplyLinear` calls it, `torch::mv` (one row), oneDNN's "
          "`dnnl_sgemm`. *Projected* decode = the measured step − linears − attention + the best linears + the fused "
          "attention prototype (a projection from these parts, not a measurement):\n")
        w("| batch | torch::linear µs | torch::mv µs | dnnl_sgemm µs | measured step µs | projected step µs | "
          "projected tok/s | projected ratio vs Python |")
        w("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in lin:
            b = r["batch"]
            do, dp = pick(rows, "dsm", "decode", batch=b), pick(rows, "python", "decode", batch=b)
            at = pick(rows, "dsm", "attention", batch=b)
            if not do:
                continue
            step = do["seconds"] / do["steps"] * 1e6
            best_lin = min(v for v in (r.get("linear_us"), r.get("mv_us"), r.get("dnnl_us")) if v)
            proj = step - r["linear_us"] + best_lin
            if at:
                proj += at["fused_us"] - at["model_us"]
            tok = b / (proj / 1e6)
            w(f"| {b} | {r['linear_us']:,.0f} | {fmt(r.get('mv_us'))} | {fmt(r.get('dnnl_us'))} | {step:,.0f} | "
              f"{proj:,.0f} | {tok:,.0f} | {fmt(ratio(tok, dp and dp['tok_s']), 2)}× |")
        w("")

    # Where a decode step goes (op self times from the LibTorch profiler, per step).
    profs = [r for r in rows if r.get("kind") == "profile"]
    if profs:
        w("**Where a model-only decode step's time goes** (µs per step with the profiler on, which costs each op "
          "about a microsecond — more in our process than in Python's — so small ops look bigger than they are; "
          "op self times summed by category; \"outside ops\" = wall time in no op: the Python interpreter, or "
          "our C++ glue):\n")
        cats = [("GEMM: linears + LM head (aten::mm/addmm)", {"aten::mm", "aten::addmm"}),
                ("attention bmm + its per-matrix select/as_strided loop",
                 {"aten::bmm", "aten::select", "aten::as_strided", "aten::resolve_conj", "aten::resolve_neg"}),
                ("copies: KV cache cat / index_put, repeat_kv, contiguous",
                 {"aten::copy_", "aten::cat", "aten::_index_put_impl_", "aten::index", "aten::clone",
                  "aten::_to_copy", "aten::contiguous", "aten::index_select"})]
        pbatches = [b for b in sorted({r["batch"] for r in profs}) if b in (1, max(r["batch"] for r in profs))]
        header = "| category | " + " | ".join(f"b{b} ours | b{b} Python" for b in pbatches) + " |"
        w(header)
        w("|---|" + "---:|" * (2 * len(pbatches)))

        def split(r):
            out = {name: 0.0 for name, _ in cats}
            other = 0.0
            for op in r["ops"]:
                for name, ops in cats:
                    if op["op"] in ops:
                        out[name] += op["self_us"]
                        break
                else:
                    other += op["self_us"]
            out["other ops (norms, RoPE, softmax, SiLU, masks, sampling)"] = other
            out["outside ops"] = max(0.0, r["wall_us"] - r["ops_self_us"])
            out["**total (profiled)**"] = r["wall_us"]
            return out

        table = {}
        for b in pbatches:
            for impl in ("dsm", "python"):
                r = pick(rows, impl, "profile", batch=b)
                table[(b, impl)] = split(r) if r else {}
        names = [n for n, _ in cats] + ["other ops (norms, RoPE, softmax, SiLU, masks, sampling)", "outside ops",
                                        "**total (profiled)**"]
        for n in names:
            cells = []
            for b in pbatches:
                for impl in ("dsm", "python"):
                    v = table[(b, impl)].get(n)
                    cells.append("—" if v is None else f"{v:,.0f}")
            w(f"| {n} | " + " | ".join(cells) + " |")
        w("")

    # Tokenizers.
    names = []
    for r in rows:
        if r.get("kind") == "tokenizer" and r["name"] not in names:
            names.append(r["name"])
    if names:
        w("**Tokenizer** — single thread, encode without special tokens, "
          f"{next(r['bytes'] for r in rows if r.get('kind') == 'tokenizer') / 1e6:.2f} MB in "
          f"{next(r['docs'] for r in rows if r.get('kind') == 'tokenizer')} documents; MB/s best of the "
          "repetitions (first pass, cold BPE cache, in parentheses).\n")
        w("| tokenizer | ours | @lenml/tokenizers | ratio | @huggingface/tokenizers (JS) | ratio | same ids |")
        w("|---|---:|---:|---:|---:|---:|:---:|")
        for n in names:
            o, l, h = (pick(rows, i, "tokenizer", name=n) for i in ("dsm", "js-lenml", "js-hf"))
            same = all(x is not None for x in (o, l, h)) and o["ids_fnv1a"] == l["ids_fnv1a"] == h["ids_fnv1a"]

            def cell(r):
                return "—" if r is None else f"{r['mb_s']:.2f} ({r['first_mb_s']:.2f})"

            w(f"| {n} | {cell(o)} | {cell(l)} | {fmt(ratio(o and o['mb_s'], l and l['mb_s']), 1)}× | "
              f"{cell(h)} | {fmt(ratio(o and o['mb_s'], h and h['mb_s']), 1)}× | {'yes' if same else 'NO'} |")
        w("")

    # Targets.
    w("**Targets**\n")
    w("| target | measured | |")
    w("|---|---:|:---:|")
    for b, goal in ((1, 2.0), (32, 1.3)):
        r = summary.get(b, {}).get("decode_ratio")
        w(f"| decode b{b} ≥ {goal}× Python eager | {fmt(r, 2)}× | {'met' if r and r >= goal else 'MISSED'} |")
    s = summary.get(64, {}).get("share")
    st = summary.get(64, {}).get("share_torch")
    w(f"| decode b64 ≥ 50% of the measured matmul peak (torch::mm) | {fmt(st and st * 100, 1)}% "
      f"({fmt(s and s * 100, 1)}% of oneDNN's) | {'met' if st and st >= 0.5 else 'MISSED'} |")
    print("\n".join(out))


if __name__ == "__main__":
    sys.exit(main())
