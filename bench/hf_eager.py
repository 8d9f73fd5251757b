#!/usr/bin/env python3
"""The Python baseline: the benchmark model in Hugging Face-style PyTorch eager.

    hf_eager.py --model DIR [--threads 2] [--batches 1,8,32,64] [--prompt 128]
                [--decode 64] [--reps 3] [--peak-n 2048]

The modules follow transformers' modeling_llama (LlamaRMSNorm, LlamaRotaryEmbedding
with rotate_half, LlamaAttention's eager path with repeat_kv and a float32 softmax,
LlamaMLP with SiLU) and generation follows GenerationMixin's greedy search with a
DynamicCache: past keys/values are concatenated per layer (torch.cat), the prefill
computes logits for the last position only (logits_to_keep=1), decode feeds one token
per row, next token = argmax. Everything runs under torch.inference_mode(), batched
(no Python loop over rows), with torch.set_num_threads(--threads). torch 1.13 has no
F.scaled_dot_product_attention, so attention is matmul + softmax + matmul, as in
transformers' eager_attention_forward.

Prints one JSON object per line (same fields as dsm_model_bench): matmul peak, then
per batch size prefill and decode timings (best of --reps after a warm-up run).
"""

import argparse
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# ------------------------------------------------------------------ loading

_NP_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32}


def load_safetensors(path):
    """name -> torch tensor, parsed by hand (no safetensors package on Debian)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        lo, hi = info["data_offsets"]
        a = np.frombuffer(data, dtype=_NP_DTYPES[info["dtype"]], count=(hi - lo) // np.dtype(
            _NP_DTYPES[info["dtype"]]).itemsize, offset=base + lo)
        out[name] = torch.from_numpy(a.copy()).reshape(info["shape"])
    return out


# ------------------------------------------------------------ modeling_llama


class LlamaRMSNorm(nn.Module):
    def __init__(self, hidden_size, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states):
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.to(torch.float32)
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * hidden_states.to(input_dtype)


class LlamaRotaryEmbedding(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        dim = cfg["head_dim"]
        inv_freq = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, x, position_ids):
        inv_freq_expanded = self.inv_freq[None, :, None].float().expand(position_ids.shape[0], -1, 1)
        position_ids_expanded = position_ids[:, None, :].float()
        freqs = (inv_freq_expanded.float() @ position_ids_expanded.float()).transpose(1, 2)
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(dtype=x.dtype), emb.sin().to(dtype=x.dtype)


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary_pos_emb(q, k, cos, sin):
    cos = cos.unsqueeze(1)
    sin = sin.unsqueeze(1)
    return (q * cos) + (rotate_half(q) * sin), (k * cos) + (rotate_half(k) * sin)


def repeat_kv(hidden_states, n_rep):
    batch, num_key_value_heads, slen, head_dim = hidden_states.shape
    if n_rep == 1:
        return hidden_states
    hidden_states = hidden_states[:, :, None, :, :].expand(batch, num_key_value_heads, n_rep, slen, head_dim)
    return hidden_states.reshape(batch, num_key_value_heads * n_rep, slen, head_dim)


class LlamaMLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        h, i = cfg["hidden_size"], cfg["intermediate_size"]
        self.gate_proj = nn.Linear(h, i, bias=False)
        self.up_proj = nn.Linear(h, i, bias=False)
        self.down_proj = nn.Linear(i, h, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class LlamaAttention(nn.Module):
    def __init__(self, cfg, layer_idx):
        super().__init__()
        self.layer_idx = layer_idx
        self.head_dim = cfg["head_dim"]
        self.num_key_value_groups = cfg["num_attention_heads"] // cfg["num_key_value_heads"]
        self.scaling = self.head_dim ** -0.5
        h = cfg["hidden_size"]
        self.q_proj = nn.Linear(h, cfg["num_attention_heads"] * self.head_dim, bias=False)
        self.k_proj = nn.Linear(h, cfg["num_key_value_heads"] * self.head_dim, bias=False)
        self.v_proj = nn.Linear(h, cfg["num_key_value_heads"] * self.head_dim, bias=False)
        self.o_proj = nn.Linear(cfg["num_attention_heads"] * self.head_dim, h, bias=False)

    def forward(self, hidden_states, position_embeddings, attention_mask, past_key_values):
        input_shape = hidden_states.shape[:-1]
        hidden_shape = (*input_shape, -1, self.head_dim)
        query_states = self.q_proj(hidden_states).view(hidden_shape).transpose(1, 2)
        key_states = self.k_proj(hidden_states).view(hidden_shape).transpose(1, 2)
        value_states = self.v_proj(hidden_states).view(hidden_shape).transpose(1, 2)
        cos, sin = position_embeddings
        query_states, key_states = apply_rotary_pos_emb(query_states, key_states, cos, sin)
        key_states, value_states = past_key_values.update(key_states, value_states, self.layer_idx)
        # eager_attention_forward
        key_states = repeat_kv(key_states, self.num_key_value_groups)
        value_states = repeat_kv(value_states, self.num_key_value_groups)
        attn_weights = torch.matmul(query_states, key_states.transpose(2, 3)) * self.scaling
        if attention_mask is not None:
            attn_weights = attn_weights + attention_mask
        attn_weights = nn.functional.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query_states.dtype)
        attn_output = torch.matmul(attn_weights, value_states)
        attn_output = attn_output.transpose(1, 2).contiguous()
        attn_output = attn_output.reshape(*input_shape, -1).contiguous()
        return self.o_proj(attn_output)


class LlamaDecoderLayer(nn.Module):
    def __init__(self, cfg, layer_idx):
        super().__init__()
        self.self_attn = LlamaAttention(cfg, layer_idx)
        self.mlp = LlamaMLP(cfg)
        self.input_layernorm = LlamaRMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])
        self.post_attention_layernorm = LlamaRMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])

    def forward(self, hidden_states, position_embeddings, attention_mask, past_key_values):
        residual = hidden_states
        hidden_states = self.input_layernorm(hidden_states)
        hidden_states = self.self_attn(hidden_states, position_embeddings, attention_mask, past_key_values)
        hidden_states = residual + hidden_states
        residual = hidden_states
        hidden_states = self.post_attention_layernorm(hidden_states)
        hidden_states = self.mlp(hidden_states)
        return residual + hidden_states


class DynamicCache:
    """transformers' DynamicCache: per layer, keys/values grow by torch.cat."""

    def __init__(self, num_layers):
        self.key_cache = [None] * num_layers
        self.value_cache = [None] * num_layers

    def update(self, key_states, value_states, layer_idx):
        if self.key_cache[layer_idx] is None:
            self.key_cache[layer_idx] = key_states
            self.value_cache[layer_idx] = value_states
        else:
            self.key_cache[layer_idx] = torch.cat([self.key_cache[layer_idx], key_states], dim=-2)
            self.value_cache[layer_idx] = torch.cat([self.value_cache[layer_idx], value_states], dim=-2)
        return self.key_cache[layer_idx], self.value_cache[layer_idx]

    def get_seq_length(self):
        return 0 if self.key_cache[0] is None else self.key_cache[0].shape[-2]


class LlamaForCausalLM(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg["vocab_size"], cfg["hidden_size"])
        self.layers = nn.ModuleList([LlamaDecoderLayer(cfg, i) for i in range(cfg["num_hidden_layers"])])
        self.norm = LlamaRMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])
        self.rotary_emb = LlamaRotaryEmbedding(cfg)
        self.lm_head = nn.Linear(cfg["hidden_size"], cfg["vocab_size"], bias=False)
        if cfg.get("tie_word_embeddings", False):
            self.lm_head.weight = self.embed_tokens.weight

    def load(self, tensors):
        own = dict(self.named_parameters())
        with torch.no_grad():
            for name, t in tensors.items():
                key = name[len("model."):] if name.startswith("model.") else name
                own[key].copy_(t)

    def forward(self, input_ids, past_key_values, logits_to_keep=1):
        inputs_embeds = self.embed_tokens(input_ids)
        past_seen = past_key_values.get_seq_length()
        q_len = input_ids.shape[1]
        cache_position = torch.arange(past_seen, past_seen + q_len)
        position_ids = cache_position.unsqueeze(0)
        # create_causal_mask: a 4D additive mask for the prefill; none for a
        # one-token decode step without padding (every cached key is visible).
        if q_len > 1:
            min_value = torch.finfo(inputs_embeds.dtype).min
            kv_len = past_seen + q_len
            mask = torch.full((q_len, kv_len), min_value, dtype=inputs_embeds.dtype)
            mask = torch.triu(mask, diagonal=past_seen + 1)[None, None]
        else:
            mask = None
        hidden_states = inputs_embeds
        position_embeddings = self.rotary_emb(hidden_states, position_ids)
        for layer in self.layers:
            hidden_states = layer(hidden_states, position_embeddings, mask, past_key_values)
        hidden_states = self.norm(hidden_states)
        return self.lm_head(hidden_states[:, -logits_to_keep:, :])


def greedy_generate(model, prompt_ids, new_tokens):
    """GenerationMixin._sample with do_sample=False. Returns (tokens [B, new_tokens],
    prefill seconds (forward + first argmax), decode seconds (the other new_tokens - 1))."""
    cache = DynamicCache(model.cfg["num_hidden_layers"])
    t0 = time.perf_counter()
    logits = model(prompt_ids, cache)
    next_tokens = logits[:, -1, :].to(copy=True, dtype=torch.float32).argmax(dim=-1)
    t1 = time.perf_counter()
    out = [next_tokens]
    for _ in range(new_tokens - 1):
        logits = model(next_tokens[:, None], cache)
        next_tokens = logits[:, -1, :].to(copy=True, dtype=torch.float32).argmax(dim=-1)
        out.append(next_tokens)
    t2 = time.perf_counter()
    return torch.stack(out, dim=1), t1 - t0, t2 - t1


def profile_decode(model, prompt, steps):
    """Op self times (torch.autograd.profiler) of `steps` decode steps, per step."""
    cache = DynamicCache(model.cfg["num_hidden_layers"])
    next_tokens = model(prompt, cache)[:, -1, :].float().argmax(dim=-1)
    with torch.autograd.profiler.profile() as prof:
        t0 = time.perf_counter()
        for _ in range(steps):
            logits = model(next_tokens[:, None], cache)
            next_tokens = logits[:, -1, :].to(copy=True, dtype=torch.float32).argmax(dim=-1)
        wall = time.perf_counter() - t0
    ops = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    return {"wall_us": wall * 1e6 / steps,
            "ops_self_us": sum(e.self_cpu_time_total for e in ops) / steps,
            "ops": [{"op": e.key, "self_us": e.self_cpu_time_total / steps, "calls": e.count / steps}
                    for e in ops]}


def prompt_ids(batch, length, vocab):
    """The same deterministic prompts as dsm_model_bench (PromptIds there)."""
    b = torch.arange(batch, dtype=torch.int64)[:, None]
    t = torch.arange(length, dtype=torch.int64)[None, :]
    return (b * 7919 + t * 104729 + 17) % (vocab - 3) + 3


def mm_peak(n, reps):
    a = torch.randn(n, n)
    b = torch.randn(n, n)
    torch.mm(a, b)
    best = min(_timed(lambda: torch.mm(a, b)) for _ in range(reps))
    return 2.0 * n ** 3 / best


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description="HF-style PyTorch eager baseline")
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", default="1,8,32,64")
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--decode", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--peak-n", type=int, default=2048, help="0: skip the matmul peak")
    ap.add_argument("--tokens-out", action="store_true", help="include the generated ids")
    ap.add_argument("--profile", action="store_true", help="also print the op self times of one decode step")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    with open(os.path.join(args.model, "config.json")) as f:
        cfg = json.load(f)
    model = LlamaForCausalLM(cfg)
    model.load(load_safetensors(os.path.join(args.model, "model.safetensors")))
    model.eval()
    common = {"impl": "python", "torch": torch.__version__, "threads": torch.get_num_threads()}

    def emit(obj):
        print(json.dumps({**common, **obj}), flush=True)

    with torch.inference_mode():
        if args.peak_n > 0:
            emit({"kind": "mm_peak", "n": args.peak_n, "flops": mm_peak(args.peak_n, max(args.reps, 3))})
        for batch in [int(x) for x in args.batches.split(",") if x]:
            ids = prompt_ids(batch, args.prompt, cfg["vocab_size"])
            new = args.decode + 1  # the first new token comes from the prefill
            greedy_generate(model, ids, new)  # warm-up
            runs = [greedy_generate(model, ids, new) for _ in range(args.reps)]
            prefill = min(r[1] for r in runs)
            decode = min(r[2] for r in runs)
            probe = model(ids, DynamicCache(cfg["num_hidden_layers"]))[-1, -1, :16].tolist()
            emit({"kind": "prefill", "batch": batch, "prompt": args.prompt, "tokens": batch * args.prompt,
                  "seconds": prefill, "tok_s": batch * args.prompt / prefill, "probe": probe})
            rec = {"kind": "decode", "batch": batch, "prompt": args.prompt, "steps": args.decode,
                   "tokens": batch * args.decode, "seconds": decode, "tok_s": batch * args.decode / decode}
            if args.tokens_out:
                rec["ids"] = runs[0][0].tolist()
            emit(rec)
            if args.profile:
                emit({"kind": "profile", "what": "decode step", "batch": batch,
                      **profile_decode(model, ids, args.decode)})


if __name__ == "__main__":
    sys.exit(main())
