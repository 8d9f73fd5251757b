#!/usr/bin/env python3
"""Writes the tokenizer benchmark text: deterministic mixed documents, one JSON
string per line (JSONL), about --mb megabytes of UTF-8 in all.

    make_text.py OUT.jsonl [--mb 2] [--seed 7]

Each document (0.5-8 KB) mixes what an LLM pipeline tokenizes: English prose,
LaTeX math, Python/C++ code, numbers, chat markup and some CJK text.
"""

import argparse
import json
import random

WORDS = ("the of and to in is that for it as was with be by on not he this are or his from at which but have an "
         "they you were her their one all we can has been if more when will would who so no time first new "
         "people many some may these two then any only other years could about after most also made over "
         "number function theorem prove solution equation integer prime sequence polynomial triangle "
         "probability matrix vector derivative integral limit series converge bounded continuous "
         "therefore hence suppose consider assume follows because since every exists unique").split()
CJK = ("我们考虑一个整数序列，其中每一项都等于前两项之和。证明该序列的第n项可以被整除。"
       "数学是研究数量、结构、变化以及空间等概念的一门学科。日本語の文章もここに少し含まれています。"
       "한국어 문장도 조금 포함되어 있습니다。")
LATEX = [
    r"Let $f(x) = \frac{x^2 + 1}{x - 1}$ for $x \neq 1$. Then $f'(x) = \frac{x^2 - 2x - 1}{(x-1)^2}$.",
    r"\begin{align} \sum_{k=1}^{n} k^3 &= \left(\frac{n(n+1)}{2}\right)^2 \\ \int_0^\pi \sin x\,dx &= 2 \end{align}",
    r"By Cauchy--Schwarz, $\left(\sum a_i b_i\right)^2 \le \left(\sum a_i^2\right)\left(\sum b_i^2\right)$.",
    r"The answer is $\boxed{\dfrac{3\sqrt{2}}{4}}$, since $\lim_{n\to\infty} (1 + 1/n)^n = e$.",
    r"Consider $\mathbb{Z}/p\mathbb{Z}$ with $p \equiv 3 \pmod 4$; then $x^2 \equiv -1$ has no solution.",
]
CODE = [
    "def fib(n: int) -> int:\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n",
    "for (int i = 0; i < n; ++i) {\n  if (v[i] % 2 == 0) sum += v[i] * v[i];\n}\nreturn sum;\n",
    "import numpy as np\nx = np.linspace(0, 1, 101)\nprint(f\"mean={x.mean():.4f} std={x.std():.4f}\")\n",
    "template <typename T>\nT clamp(T x, T lo, T hi) { return std::min(std::max(x, lo), hi); }\n",
    "SELECT id, name, COUNT(*) AS n FROM users GROUP BY id, name HAVING n > 3 ORDER BY n DESC;\n",
]
CHAT = [
    "<|im_start|>user\nSolve the problem step by step.<|im_end|>\n<|im_start|>assistant\n<think>\n",
    "</think>\n\nThe final answer is 42.<|im_end|>\n",
]


def sentence(rng):
    n = rng.randint(6, 22)
    # Mostly common words, plus ~10% made-up ones so a BPE word cache cannot hold everything.
    words = [rng.choice(WORDS) if rng.random() < 0.9 else
             "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 11)))
             for _ in range(n)]
    if rng.random() < 0.3:
        words.insert(rng.randrange(n), str(rng.randint(0, 10 ** rng.randint(1, 9))))
    if rng.random() < 0.15:
        words.insert(rng.randrange(n), "%.*f" % (rng.randint(1, 5), rng.uniform(-1000, 1000)))
    s = " ".join(words)
    return s[0].upper() + s[1:] + rng.choice([".", ".", ".", "?", "!", ";", ":"])


def document(rng):
    target = rng.randint(500, 8000)
    parts = []
    size = 0
    while size < target:
        r = rng.random()
        if r < 0.45:
            p = " ".join(sentence(rng) for _ in range(rng.randint(1, 6)))
        elif r < 0.6:
            p = rng.choice(LATEX)
        elif r < 0.75:
            p = rng.choice(CODE)
        elif r < 0.85:
            i = rng.randrange(len(CJK))
            p = CJK[i:i + rng.randint(10, 60)]
        elif r < 0.93:
            p = ", ".join(str(rng.randint(0, 99999)) for _ in range(rng.randint(3, 20)))
        else:
            p = rng.choice(CHAT)
        parts.append(p)
        size += len(p.encode("utf-8"))
        parts.append(rng.choice(["\n", "\n\n", " ", "  ", "\n\n\n"]))
    return "".join(parts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--mb", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    total, docs = 0, 0
    with open(args.out, "w", encoding="utf-8") as f:
        while total < args.mb * 1e6:
            d = document(rng)
            f.write(json.dumps(d, ensure_ascii=False) + "\n")
            total += len(d.encode("utf-8"))
            docs += 1
    print(json.dumps({"kind": "text", "path": args.out, "docs": docs, "bytes": total}))


if __name__ == "__main__":
    main()
