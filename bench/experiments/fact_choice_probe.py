#!/usr/bin/env python3
"""Does a generator checkpoint cite the right facts on problems it was not trained on?

A probe of the built-in chain domain's look-up, for diagnosing phase 4 (BENCHMARKS.md): for every
problem it solves the chain, writes the correct proof, and teacher-forces it through the tiny model
with each named generator checkpoint merged into the base weights (bench/hf_eager.py's model). At
every fact token of the proof (the cited facts, each "so" conclusion and the "Thus" line) it reads
whether the checkpoint's argmax is the right token and the right token's log-probability, then
compares the first checkpoint with the last: accuracy before -> after, the mean change of the
log-probability, and how many positions each gained or lost. Greedy decoding writes the same
proof as long as every one of its fact tokens is the argmax, so the accuracy is a smoother view of
the greedy score that `generator_score` counts per problem.

  /usr/bin/python3 bench/experiments/fact_choice_probe.py runs/tiny 00000000 00000047              # held-out problems
  /usr/bin/python3 bench/experiments/fact_choice_probe.py runs/tiny 00000000 00000047 --phase4 48  # phase 4's first 48

RUN is a `dsm run` directory (model/, state.db, checkpoints/generator/step-N/adapter); a step of
"base" is the model without an adapter.
"""
import argparse
import itertools
import json
import os
import re
import sqlite3
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # bench/
import hf_eager as H  # noqa: E402

# The tiny tokenizer's pre-tokenizer, written for Python's re (our texts are ASCII).
PIECES = re.compile(r"\\boxed\{|[a-zA-Z]=[a-zA-Z](?![a-zA-Z])|[a-zA-Z]{2,} ?| [a-zA-Z]{2,} ?|[a-zA-Z]|[0-9]"
                    r"|[^\sa-zA-Z0-9]+ ?|\s+(?!\S)|\s+")
PROMPT = "Prove the goal, then grade your proof.\n## Problem\n"  # configs/prompts/tiny/generator


def byte_chars():  # GPT-2's byte-to-unicode table (the tokenizer's ByteLevel step)
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


class Tokenizer:
    def __init__(self, path):
        tj = json.load(open(path))
        self.vocab = tj["model"]["vocab"]
        self.names = {i: t for t, i in self.vocab.items()}
        merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in tj["model"]["merges"]]
        self.rank = {m: i for i, m in enumerate(merges)}
        self.chars = byte_chars()

    def encode(self, text):
        ids = []
        for piece in PIECES.findall(text):
            w = [self.chars[b] for b in piece.encode()]
            while len(w) > 1:
                r, i = min((self.rank.get((w[i], w[i + 1]), float("inf")), i) for i in range(len(w) - 1))
                if r == float("inf"):
                    break
                w = w[:i] + [w[i] + w[i + 1]] + w[i + 2:]
            ids += [self.vocab[x] for x in w]
        return ids


def correct_proof(statement):
    """The chain from the goal's left letter to its right one through three given facts, or None."""
    facts = re.findall(r"([a-z])=([a-z])", statement.split("Prove")[0])
    goal = re.search(r"Prove: ([a-z])=([a-z])", statement).groups()
    for order in itertools.permutations(range(len(facts)), 3):
        cur, ok = goal[0], True
        for i in order:
            x, y = facts[i]
            if cur not in (x, y):
                ok = False
                break
            cur = y if cur == x else x
        if ok and cur == goal[1]:
            text, cur = "## Solution\n", goal[0]
            for k, i in enumerate(order):
                x, y = facts[i]
                cur = y if cur == x else x
                text += f"{k + 1}. {x}={y}, so {goal[0]}={cur}\n"
            return text + f"Thus {goal[0]}={goal[1]}.\n"
    return None


def model_with(run, cfg, base, step):
    weights = dict(base)
    if step != "base":
        adapter_dir = f"{run}/checkpoints/generator/step-{step}/adapter"
        ac = json.load(open(f"{adapter_dir}/adapter_config.json"))
        scale = ac["lora_alpha"] / ac["r"]
        ad = H.load_safetensors(f"{adapter_dir}/adapter_model.safetensors")
        for k, a in ad.items():
            if "lora_A" in k:
                target = k.replace("base_model.model.", "").replace(".lora_A", "")
                weights[target] = weights[target] + scale * (ad[k.replace("lora_A", "lora_B")].float() @ a.float())
    m = H.LlamaForCausalLM(cfg)
    m.load(weights)
    m.eval()
    return m


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run")
    ap.add_argument("steps", nargs=2, metavar="STEP", help="two generator checkpoints (step numbers as named) or base")
    ap.add_argument("--phase4", type=int, default=0, metavar="N",
                    help="probe the first N problems phase 4 trained on instead of the held-out ones")
    args = ap.parse_args()
    cfg = json.load(open(f"{args.run}/model/config.json"))
    base = H.load_safetensors(f"{args.run}/model/model.safetensors")
    tok = Tokenizer(f"{args.run}/model/tokenizer.json")
    db = sqlite3.connect(f"file:{args.run}/state.db?mode=ro", uri=True)
    if args.phase4:  # training_groups.phase counts from 1: phase 4 is 5
        problems = db.execute("""select p.problem_id, p.statement from problems p join training_groups g
            on g.problem_id = p.problem_id where g.phase = 5 group by p.problem_id order by min(g.created_us)
            limit ?""", (args.phase4,)).fetchall()
    else:
        problems = db.execute("select problem_id, statement from problems where problem_id like '%-eval-%' "
                              "order by seq").fetchall()
    results = []  # per checkpoint: [(argmax right, log-prob)] over every fact position
    for step in args.steps:
        m, rows = model_with(args.run, cfg, base, step), []
        with torch.no_grad():
            for _, statement in problems:
                proof = correct_proof(statement)
                if proof is None:
                    continue
                prompt, completion = [1] + tok.encode(PROMPT + statement), tok.encode(proof)
                x = torch.tensor([prompt + completion])
                logits = m(x, H.DynamicCache(cfg["num_hidden_layers"]), logits_to_keep=x.shape[1])[0]
                lp = torch.log_softmax(logits[len(prompt) - 1:-1].float(), -1)
                for i, t in enumerate(completion):
                    if re.fullmatch(r"[a-z]=[a-z]", tok.names[t]):
                        rows.append((int(lp[i].argmax()) == t, lp[i, t].item()))
        results.append(rows)
    (a, b), n = results, len(results[0])
    acc = [sum(r[0] for r in rows) / n for rows in results]
    gained = sum(1 for x, y in zip(a, b) if y[0] and not x[0])
    lost = sum(1 for x, y in zip(a, b) if x[0] and not y[0])
    dlp = sum(y[1] - x[1] for x, y in zip(a, b)) / n
    where = f"phase 4's first {args.phase4} problems" if args.phase4 else "held-out problems"
    print(f"{where}: {n} fact tokens; argmax right {acc[0]:.3f} -> {acc[1]:.3f} "
          f"(gained {gained}, lost {lost}); mean log-prob change {dlp:+.3f}")


if __name__ == "__main__":
    main()
