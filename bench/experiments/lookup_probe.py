#!/usr/bin/env python3
"""The citation look-up alone: does a tiny model learn "is this cited fact given as written"?

The built-in verifier's analyses open with a citation note (tasks/chain_analysis.h):

    Given: d=e, c=d, d=b, f=c. Prove: c=b.   (problem)
    1. c=d, so c=d                          (proof)
    2. b=d, so c=b
    Cited: 1. c=d given, 2. b=d reversed.   (note)

Each status is a look-up: find the cited token among the problem's facts (it also occurs in the
proof and in the note, where it does not count). In `dsm run` the warmed verifier never marks a
citation "not given" or "reversed". This probe trains a model of the tiny config's shape (4
layers, hidden 128, 4 heads, SwiGLU 344, RoPE; ~0.9M parameters with dsm's vocabulary) on the
note alone, one token per fact as dsm's tokenizer has it, and prints, every 250 steps, the
held-out accuracy of each status. The loss is on the note only; every other token is context.

    python3 bench/experiments/lookup_probe.py --lr 1e-3 --batch 16 --steps 2000
    python3 bench/experiments/lookup_probe.py --format scan ...   # given facts copied per item
    python3 bench/experiments/lookup_probe.py --format apart ...  # given facts: their own tokens
    python3 bench/experiments/lookup_probe.py --format sep ...    # a token between fact and status

Plain PyTorch on the CPU; Debian's python3-torch is enough. Results: BENCHMARKS.md.
"""
import argparse
import math
import random
import time

import torch

LETTERS = "abcdef"
FACTS = [(x, y) for x in LETTERS for y in LETTERS if x != y]
WORDS = ["<pad>", "<bos>", "Given:", ",", ".", "Prove:", "##Solution", "so", "Thus", "##Evaluation",
         "Cited:", "given", "not", "reversed", "\n", ":", "<eos>", " "] + [f"{i}." for i in range(1, 6)]
VOCAB = WORDS + [f"{x}={y}" for x, y in FACTS] + [f"[{x}={y}]" for x, y in FACTS]
ID = {w: i for i, w in enumerate(VOCAB)}


def fact(f):
    return f"{f[0]}={f[1]}"


def sample(rng, fmt, p_reversed, p_not_given, leading_on=False):
    """One problem, a proof whose citations are corrupted at the given rates, and its note."""
    n = rng.randint(2, 3)
    letters = rng.sample(LETTERS, n + 3)
    path = letters[: n + 1]
    chain = [(path[i], path[i + 1]) if rng.random() < 0.5 else (path[i + 1], path[i]) for i in range(n)]
    distractors = []
    for j in range(rng.randint(1, 2)):
        a, b = rng.choice(path + letters[n + 1: n + 1 + j]), letters[n + 1 + j]
        distractors.append((a, b) if rng.random() < 0.5 else (b, a))
    given = chain + distractors
    rng.shuffle(given)
    given_set = set(given)
    toks = ["<bos>", "Given:"]
    for i, f in enumerate(given):
        toks += ([","] if i else []) + [f"[{fact(f)}]" if fmt == "apart" else fact(f)]
    toks += [".", "Prove:", fact((path[0], path[-1])), ".", "##Solution", "\n"]
    cited, status = [], []
    for i in range(n):
        c, r = chain[i], rng.random()
        reached = path[i + 1]
        if r < p_reversed:
            c = (c[1], c[0])
        elif r < p_reversed + p_not_given:
            if leading_on:  # it links where the chain is and the conclusion follows: only the look-up tells
                across = lambda f: f[1] if f[0] == path[i] else f[0]
                leading = [f for f in FACTS if path[i] in f and across(f) != path[0]
                           and f not in given_set and (f[1], f[0]) not in given_set]
                if leading:
                    c = rng.choice(leading)
                    reached = across(c)
            else:
                c = rng.choice([f for f in FACTS if f not in given_set and (f[1], f[0]) not in given_set])
        cited.append(c)
        status.append("given" if c in given_set else "reversed" if (c[1], c[0]) in given_set else "not")
        toks += [f"{i + 1}.", fact(c), ",", "so", fact((path[0], reached)), "\n"]
    toks += ["Thus", fact((path[0], path[-1])), ".", "##Evaluation", "Cited:"]
    start, decisions = len(toks), []
    for i, (c, s) in enumerate(zip(cited, status)):
        toks.append(f"{i + 1}.")
        if fmt == "scan":
            toks += [fact(f) for f in given] + [":"]
        toks.append(fact(c))
        if fmt == "sep":  # dsm's tokenizer: "d=c", " ", "reversed"
            toks.append(" ")
        decisions.append(len(toks))
        toks += [s, "," if i < n - 1 else "."]
    toks.append("<eos>")
    return [ID[t] for t in toks], start, decisions, status


class RMSNorm(torch.nn.Module):
    def __init__(self, d):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.weight


def rope(x):
    t, half = x.shape[-2], x.shape[-1] // 2
    freq = 1.0 / (10000 ** (torch.arange(half) / half))
    angle = torch.arange(t)[:, None] * freq[None]
    cos, sin = angle.cos(), angle.sin()
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], -1)


class Block(torch.nn.Module):
    def __init__(self, d, heads, inter):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = RMSNorm(d), RMSNorm(d)
        self.qkv = torch.nn.Linear(d, 3 * d, bias=False)
        self.o = torch.nn.Linear(d, d, bias=False)
        self.gate = torch.nn.Linear(d, inter, bias=False)
        self.up = torch.nn.Linear(d, inter, bias=False)
        self.down = torch.nn.Linear(inter, d, bias=False)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k = rope(q), rope(k)
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
        scores = scores.masked_fill(torch.triu(torch.ones(t, t, dtype=torch.bool), 1), float("-inf"))
        x = x + self.o((scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, d))
        h = self.norm2(x)
        return x + self.down(torch.nn.functional.silu(self.gate(h)) * self.up(h))


class Model(torch.nn.Module):
    def __init__(self, d=128, layers=4, heads=4, inter=344, vocab=len(VOCAB)):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, d)
        self.blocks = torch.nn.ModuleList([Block(d, heads, inter) for _ in range(layers)])
        self.norm = RMSNorm(d)
        self.head = torch.nn.Linear(d, vocab, bias=False)

    def forward(self, x):
        x = self.embed(x)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


def mimetic_init(model, strength, last_layers=0):
    """Trockman & Kolter (2023), "Mimetic initialization of self-attention layers": start each
    layer with W_q^T W_k close to a multiple of the identity (a token attends to tokens like
    itself) and W_o W_v close to minus it, as trained attention layers look."""
    with torch.no_grad():
        blocks = model.blocks[-last_layers:] if last_layers > 0 else model.blocks
        for block in blocks:
            d = block.o.weight.shape[0]
            qk = strength * (torch.randn(d, d) / math.sqrt(d) + torch.eye(d))
            u, s, vt = torch.linalg.svd(qk)
            block.qkv.weight[:d] = (u * s.sqrt()).T          # W_q
            block.qkv.weight[d:2 * d] = (vt.T * s.sqrt()).T  # W_k: W_q^T W_k = qk
            vo = 0.5 * strength * (torch.randn(d, d) / math.sqrt(d) - torch.eye(d))
            u, s, vt = torch.linalg.svd(vo)
            block.o.weight.copy_(u * s.sqrt())                 # W_o
            block.qkv.weight[2 * d:] = (vt.T * s.sqrt()).T     # W_v: W_o W_v = vo


def load_dsm_examples(path, loss_on):
    """Examples written by tiny_warmup_test's DumpLookupExamples (dsm's tokenizer and templates):
    (ids, loss start, loss end, decision positions, statuses) per split, and the vocabulary size."""
    import json
    with open(path) as f:
        pieces = json.loads(f.readline())["pieces"]
        status_of = {" given": "given", " not ": "not", " reversed": "reversed"}
        out = {"train": [], "eval": []}
        for line in f:
            e = json.loads(line)
            ids, start = e["prompt"] + e["completion"], len(e["prompt"])
            cited = next(i for i in range(start, len(ids)) if pieces[ids[i]] == "Cited")
            note_end = next(i for i in range(cited, len(ids)) if "\n" in pieces[ids[i]])
            decisions = [i for i in range(cited, note_end) if pieces[ids[i]] in status_of]
            status = [status_of[pieces[ids[i]]] for i in decisions]
            first, last = (cited, note_end + 1) if loss_on == "note" else (start, len(ids))
            out[e["split"]].append((ids, first, last, decisions, status))
    return out, len(pieces)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--format", choices=["plain", "scan", "apart", "sep"], default="plain")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--reversed", type=float, default=0.2, help="share of citations written reversed")
    ap.add_argument("--not-given", type=float, default=0.2, help="share of citations not given at all")
    ap.add_argument("--leading-on", action="store_true",
                    help="not-given citations that link where the chain is, with the conclusion that follows")
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--mimetic", type=float, default=0.0,
                    help="mimetic init strength: W_q^T W_k ~ a Z + a I, W_o W_v ~ b Z - b I (0 = off)")
    ap.add_argument("--mimetic-layers", type=int, default=0, help="mimetic init on the last N layers only (0 = all)")
    ap.add_argument("--embed-std", type=float, default=0.0,
                    help="embedding init N(0, std) (0 = PyTorch's default, N(0, 1)); dsm's init-model: 0.02")
    ap.add_argument("--linear-std", type=float, default=0.0,
                    help="linear init N(0, std) (0 = PyTorch's default, U(+-1/sqrt(fan_in))); dsm's: 0.02")
    ap.add_argument("--data", default="", help="train on dsm's own examples (tiny_warmup_test DumpLookupExamples)")
    ap.add_argument("--loss-on", choices=["all", "note"], default="all", help="with --data: the completion or the note")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng, held_out_rng = random.Random(a.seed + 1), random.Random(999)
    vocab = len(VOCAB)
    if a.data:
        data, vocab = load_dsm_examples(a.data, a.loss_on)
        held_out = [(ids, d, st) for ids, _, _, d, st in data["eval"]]
        draw = lambda: rng.choice(data["train"])
    else:
        held_out = [(ids, d, st) for ids, _, d, st in
                    (sample(held_out_rng, a.format, a.reversed, a.not_given, a.leading_on) for _ in range(300))]
        def draw():
            ids, s, d, st = sample(rng, a.format, a.reversed, a.not_given, a.leading_on)
            return ids, s, len(ids), d, st
    model = Model(d=a.hidden, layers=a.layers, heads=a.heads, inter=a.hidden * 344 // 128, vocab=vocab)
    with torch.no_grad():
        if a.embed_std > 0:
            model.embed.weight.normal_(0, a.embed_std)
        if a.linear_std > 0:
            for m in model.modules():
                if isinstance(m, torch.nn.Linear):
                    m.weight.normal_(0, a.linear_std)
    if a.mimetic > 0:
        mimetic_init(model, a.mimetic, a.mimetic_layers)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.0)
    print(f"format={a.format} lr={a.lr} batch={a.batch} steps={a.steps} hidden={a.hidden} layers={a.layers} "
          f"heads={a.heads} embed_std={a.embed_std} linear_std={a.linear_std} parameters={sum(p.numel() for p in model.parameters())}", flush=True)
    start = time.time()
    for step in range(1, a.steps + 1):
        for g in opt.param_groups:
            g["lr"] = a.lr * min(1.0, step / 30)
        batch = [draw() for _ in range(a.batch)]
        t = max(len(e[0]) for e in batch)
        x, w = torch.zeros(a.batch, t, dtype=torch.long), torch.zeros(a.batch, t)
        for i, (ids, first, last, _, _) in enumerate(batch):
            x[i, : len(ids)] = torch.tensor(ids)
            w[i, first: last] = 1
        logits = model(x[:, :-1])
        nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1),
                                                reduction="none")
        loss = (nll * w[:, 1:].reshape(-1)).sum() / w[:, 1:].sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 250 == 0:
            right = {"given": [0, 0], "reversed": [0, 0], "not": [0, 0]}
            with torch.no_grad():
                for ids, decisions, status in held_out:
                    out = model(torch.tensor([ids]))[0]
                    for pos, s in zip(decisions, status):
                        right[s][0] += out[pos - 1].argmax().item() == ids[pos]
                        right[s][1] += 1
            acc = " ".join(f"{k}={r / n:.3f}" for k, (r, n) in right.items())
            print(f"step={step} s={time.time() - start:.0f} loss={loss.item():.3f} {acc}", flush=True)


if __name__ == "__main__":
    main()
