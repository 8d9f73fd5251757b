#!/usr/bin/env python3
"""Writes the benchmark model: a ~27M-parameter Llama-style Hugging Face folder.

    make_model.py OUT_DIR [--seed 1234]

OUT_DIR/config.json + OUT_DIR/model.safetensors (float32, random weights drawn
with a fixed seed, so every run benchmarks the same model). Needs only numpy:
the safetensors file is written by hand (8-byte little-endian header length,
JSON header, raw little-endian bytes), as the format specifies.

Shape (Llama-2-style, scaled down): hidden 512, 8 layers, 8 query heads of 64,
4 key/value heads (GQA), SiLU MLP 1376, vocabulary 8192, tied embeddings.
"""

import argparse
import json
import os
import struct

import numpy as np

CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 512,
    "intermediate_size": 1376,
    "num_hidden_layers": 8,
    "num_attention_heads": 8,
    "num_key_value_heads": 4,
    "head_dim": 64,
    "vocab_size": 8192,
    "max_position_embeddings": 2048,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "rope_scaling": None,
    "tie_word_embeddings": True,
    "attention_bias": False,
    "hidden_act": "silu",
    "torch_dtype": "float32",
    "bos_token_id": 1,
    "eos_token_id": 2,
}


def write_safetensors(path, tensors):
    """tensors: list of (name, float32 numpy array)."""
    header, offset = {}, 0
    for name, a in tensors:
        n = a.size * 4
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + n]}
        offset += n
    hb = json.dumps(header).encode("utf-8")
    hb += b" " * ((8 - len(hb) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for _, a in tensors:
            f.write(np.ascontiguousarray(a, dtype="<f4").tobytes())


def make_weights(cfg, seed):
    rng = np.random.default_rng(seed)
    h, inter, hd = cfg["hidden_size"], cfg["intermediate_size"], cfg["head_dim"]
    nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]

    def randn(*shape, std):
        return (rng.standard_normal(shape, dtype=np.float32) * std).astype(np.float32)

    def norm(n):
        return (1.0 + rng.standard_normal(n, dtype=np.float32) * 0.05).astype(np.float32)

    t = [("model.embed_tokens.weight", randn(cfg["vocab_size"], h, std=0.5))]
    for i in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % i
        t += [
            (p + "input_layernorm.weight", norm(h)),
            (p + "post_attention_layernorm.weight", norm(h)),
            (p + "self_attn.q_proj.weight", randn(nh * hd, h, std=h ** -0.5)),
            (p + "self_attn.k_proj.weight", randn(nkv * hd, h, std=h ** -0.5)),
            (p + "self_attn.v_proj.weight", randn(nkv * hd, h, std=h ** -0.5)),
            (p + "self_attn.o_proj.weight", randn(h, nh * hd, std=(nh * hd) ** -0.5 * 0.5)),
            (p + "mlp.gate_proj.weight", randn(inter, h, std=h ** -0.5)),
            (p + "mlp.up_proj.weight", randn(inter, h, std=h ** -0.5)),
            (p + "mlp.down_proj.weight", randn(h, inter, std=inter ** -0.5 * 0.5)),
        ]
    t.append(("model.norm.weight", norm(h)))
    return t


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir")
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    tensors = make_weights(CONFIG, args.seed)
    write_safetensors(os.path.join(args.out_dir, "model.safetensors"), tensors)
    with open(os.path.join(args.out_dir, "config.json"), "w") as f:
        json.dump(CONFIG, f, indent=2)
    total = sum(a.size for _, a in tensors)
    embed = CONFIG["vocab_size"] * CONFIG["hidden_size"]
    print(json.dumps({"kind": "model", "dir": args.out_dir, "params": total,
                      "params_non_embedding": total - embed, "params_embedding": embed,
                      "seed": args.seed}))


if __name__ == "__main__":
    main()
