#!/usr/bin/env python3
"""The Python baseline of the GRPO training-step benchmark: the step of
dsm_grpo_bench (Trainer::Step) written the way Hugging Face TRL + PEFT run it,
in plain PyTorch eager.

    grpo_eager.py --model DIR --inputs DIR [--threads 2] [--steps 3] [--peak-n 0]

--inputs is the folder dsm_grpo_bench --write-inputs made: adapter/ (a PEFT
LoRA adapter) and batch.json (token ids, advantages, behaviour log-probs,
options). Both sides therefore start from the same weights and train on the
same batch; the losses they print must agree.

The model: transformers' modeling_llama modules (LlamaRMSNorm, rotary with
rotate_half, eager attention with repeat_kv + float32 softmax + a 4-D additive
causal mask, SiLU MLP; reused from bench/hf_eager.py), no KV cache (training
forward), tied LM head applied only to the last completion + 1 positions
(TRL's logits_to_keep). LoRA as PEFT's lora.Linear: base(x) + lora_B(lora_A(
dropout(x))) * scaling on all seven linears, base weights frozen
(requires_grad False), adapters switched off for the reference forward as
peft's disable_adapter() does.

One step, as TRL's GRPOTrainer (loss_type "dapo": token-level mean) with the
reference log-probs computed in the step:
  policy log-probs   model(ids, logits_to_keep=C + 1), logits[:, :-1] / T,
                     selective_log_softmax (gather − per-row logsumexp)
  reference          the same under torch.no_grad() with the adapters off
  loss               per token: −min(ρÂ, clip(ρ, 1 − ε_low, 1 + ε_high)Â) + β·KL,
                     ρ = exp(logπθ − logπold), KL = exp(ref − logπθ) −
                     (ref − logπθ) − 1; loss = Σ(per_token · mask) / Σ mask
  update             loss.backward(); clip_grad_norm_(LoRA params, 1.0);
                     torch.optim.AdamW.step(); zero_grad()
The batch tensors are built once, before the timed steps.

Prints one JSON line per step (the first is a warm-up), same fields as
dsm_grpo_bench, and with --peak-n > 0 the torch.mm peak first.
"""

import argparse
import json
import os
import sys
import time

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hf_eager import (LlamaMLP, LlamaRMSNorm, LlamaRotaryEmbedding, apply_rotary_pos_emb,  # noqa: E402
                      load_safetensors, mm_peak, repeat_kv)

# ------------------------------------------------------------------ PEFT LoRA


class LoraLinear(nn.Module):
    """peft.tuners.lora.Linear (one adapter, no dropout, bias "none")."""

    def __init__(self, base_layer, r, alpha):
        super().__init__()
        self.base_layer = base_layer
        self.lora_A = nn.Linear(base_layer.in_features, r, bias=False)
        self.lora_B = nn.Linear(r, base_layer.out_features, bias=False)
        self.lora_dropout = nn.Identity()
        self.scaling = alpha / r
        self.disable_adapters = False

    def forward(self, x):
        result = self.base_layer(x)
        if self.disable_adapters:
            return result
        return result + self.lora_B(self.lora_A(self.lora_dropout(x))) * self.scaling


# ------------------------------------------------------------ modeling_llama (training forward)


class LlamaAttention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.head_dim = cfg["head_dim"]
        self.num_key_value_groups = cfg["num_attention_heads"] // cfg["num_key_value_heads"]
        self.scaling = self.head_dim ** -0.5
        h = cfg["hidden_size"]
        self.q_proj = nn.Linear(h, cfg["num_attention_heads"] * self.head_dim, bias=False)
        self.k_proj = nn.Linear(h, cfg["num_key_value_heads"] * self.head_dim, bias=False)
        self.v_proj = nn.Linear(h, cfg["num_key_value_heads"] * self.head_dim, bias=False)
        self.o_proj = nn.Linear(cfg["num_attention_heads"] * self.head_dim, h, bias=False)

    def forward(self, hidden_states, position_embeddings, attention_mask):
        input_shape = hidden_states.shape[:-1]
        hidden_shape = (*input_shape, -1, self.head_dim)
        query_states = self.q_proj(hidden_states).view(hidden_shape).transpose(1, 2)
        key_states = self.k_proj(hidden_states).view(hidden_shape).transpose(1, 2)
        value_states = self.v_proj(hidden_states).view(hidden_shape).transpose(1, 2)
        cos, sin = position_embeddings
        query_states, key_states = apply_rotary_pos_emb(query_states, key_states, cos, sin)
        # eager_attention_forward
        key_states = repeat_kv(key_states, self.num_key_value_groups)
        value_states = repeat_kv(value_states, self.num_key_value_groups)
        attn_weights = torch.matmul(query_states, key_states.transpose(2, 3)) * self.scaling
        attn_weights = attn_weights + attention_mask
        attn_weights = nn.functional.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query_states.dtype)
        attn_output = torch.matmul(attn_weights, value_states)
        attn_output = attn_output.transpose(1, 2).contiguous()
        attn_output = attn_output.reshape(*input_shape, -1).contiguous()
        return self.o_proj(attn_output)


class LlamaDecoderLayer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.self_attn = LlamaAttention(cfg)
        self.mlp = LlamaMLP(cfg)
        self.input_layernorm = LlamaRMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])
        self.post_attention_layernorm = LlamaRMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])

    def forward(self, hidden_states, position_embeddings, attention_mask):
        residual = hidden_states
        hidden_states = self.input_layernorm(hidden_states)
        hidden_states = self.self_attn(hidden_states, position_embeddings, attention_mask)
        hidden_states = residual + hidden_states
        residual = hidden_states
        hidden_states = self.post_attention_layernorm(hidden_states)
        hidden_states = self.mlp(hidden_states)
        return residual + hidden_states


class LlamaForCausalLM(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg["vocab_size"], cfg["hidden_size"])
        self.layers = nn.ModuleList([LlamaDecoderLayer(cfg) for _ in range(cfg["num_hidden_layers"])])
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

    def forward(self, input_ids, attention_mask, logits_to_keep):
        inputs_embeds = self.embed_tokens(input_ids)
        batch, q_len = input_ids.shape
        position_ids = torch.arange(q_len).unsqueeze(0)
        # create_causal_mask (eager): a [B, 1, T, T] additive mask, causal and padding.
        min_value = torch.finfo(inputs_embeds.dtype).min
        causal = torch.triu(torch.full((q_len, q_len), min_value, dtype=inputs_embeds.dtype), diagonal=1)
        causal = causal[None, None].expand(batch, 1, q_len, q_len)
        padding = (1.0 - attention_mask[:, None, None, :].to(inputs_embeds.dtype)) * min_value
        mask = causal + padding
        hidden_states = inputs_embeds
        position_embeddings = self.rotary_emb(hidden_states, position_ids)
        for layer in self.layers:
            hidden_states = layer(hidden_states, position_embeddings, mask)
        hidden_states = self.norm(hidden_states)
        return self.lm_head(hidden_states[:, -logits_to_keep:, :])


def inject_lora(model, r, alpha):
    """peft's LoraModel: wrap every targeted nn.Linear; freeze everything else."""
    for p in model.parameters():
        p.requires_grad_(False)
    loras = {}
    for i, layer in enumerate(model.layers):
        for group, names in (("self_attn", ("q_proj", "k_proj", "v_proj", "o_proj")),
                             ("mlp", ("gate_proj", "up_proj", "down_proj"))):
            parent = getattr(layer, group)
            for name in names:
                lora = LoraLinear(getattr(parent, name), r, alpha)
                setattr(parent, name, lora)
                loras["base_model.model.model.layers.%d.%s.%s" % (i, group, name)] = lora
    return loras


class disable_adapter:  # noqa: N801 (peft's context manager name)
    def __init__(self, loras):
        self.loras = loras

    def __enter__(self):
        for m in self.loras.values():
            m.disable_adapters = True

    def __exit__(self, *exc):
        for m in self.loras.values():
            m.disable_adapters = False


# ------------------------------------------------------------------ TRL GRPO


def selective_log_softmax(logits, index):
    """trl.trainer.utils.selective_log_softmax (float32 path)."""
    selected_logits = torch.gather(logits, dim=-1, index=index.unsqueeze(-1)).squeeze(-1)
    logsumexp_values = torch.stack([torch.logsumexp(lg, dim=-1) for lg in logits])
    return selected_logits - logsumexp_values


def per_token_logps(model, input_ids, attention_mask, logits_to_keep, temperature):
    """GRPOTrainer._get_per_token_logps."""
    logits = model(input_ids, attention_mask, logits_to_keep + 1)
    logits = logits[:, :-1, :]
    ids = input_ids[:, -logits_to_keep:]
    logits = logits[:, -logits_to_keep:]
    if temperature != 1.0:
        logits = logits / temperature
    return selective_log_softmax(logits, ids)


def grpo_step(model, loras, optimizer, params, batch, opt):
    ids, attention, mask = batch["ids"], batch["attention"], batch["mask"]
    c = mask.shape[1]
    logps = per_token_logps(model, ids, attention, c, opt["temperature"])
    with torch.no_grad(), disable_adapter(loras):
        ref = per_token_logps(model, ids, attention, c, opt["temperature"])
    adv = batch["advantages"].unsqueeze(1)
    d = ref - logps
    per_token_kl = torch.exp(d) - d - 1
    coef_1 = torch.exp(logps - batch["old"])
    coef_2 = torch.clamp(coef_1, 1 - opt["epsilon_low"], 1 + opt["epsilon_high"])
    per_token_loss = -torch.min(coef_1 * adv, coef_2 * adv) + opt["kl_beta"] * per_token_kl
    loss = (per_token_loss * mask).sum() / mask.sum().clamp(min=1.0)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(params, opt["max_grad_norm"])
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    with torch.no_grad():
        tokens = mask.sum()
        clipped = (((adv > 0) & (coef_1 > 1 + opt["epsilon_high"])) |
                   ((adv < 0) & (coef_1 < 1 - opt["epsilon_low"]))).float()
        stats = {"loss": loss.item(), "kl": ((per_token_kl * mask).sum() / tokens).item(),
                 "clip_fraction": ((clipped * mask).sum() / tokens).item(),
                 "ratio_mean": ((coef_1 * mask).sum() / tokens).item(), "grad_norm": float(grad_norm)}
    return stats


def main():
    ap = argparse.ArgumentParser(description="HF-style PyTorch eager GRPO step")
    ap.add_argument("--model", required=True)
    ap.add_argument("--inputs", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3, help="timed steps after the warm-up step")
    ap.add_argument("--peak-n", type=int, default=0, help="> 0: print the torch.mm n x n peak first")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    common = {"impl": "python", "torch": torch.__version__, "threads": torch.get_num_threads()}

    def emit(o):
        print(json.dumps({**common, **o}), flush=True)

    if args.peak_n > 0:
        with torch.no_grad():
            emit({"kind": "mm_peak", "n": args.peak_n, "flops": mm_peak(args.peak_n, 5)})

    with open(os.path.join(args.model, "config.json")) as f:
        cfg = json.load(f)
    with open(os.path.join(args.inputs, "batch.json")) as f:
        spec = json.load(f)
    opt = spec["options"]
    model = LlamaForCausalLM(cfg)
    model.load(load_safetensors(os.path.join(args.model, "model.safetensors")))
    loras = inject_lora(model, spec["lora_r"], spec["lora_alpha"])
    adapter = load_safetensors(os.path.join(args.inputs, "adapter", "adapter_model.safetensors"))
    params = []
    with torch.no_grad():
        for prefix, m in loras.items():
            m.lora_A.weight.copy_(adapter[prefix + ".lora_A.weight"])
            m.lora_B.weight.copy_(adapter[prefix + ".lora_B.weight"])
            params += [m.lora_A.weight, m.lora_B.weight]
    model.train()
    optimizer = torch.optim.AdamW(params, lr=opt["learning_rate"], betas=(opt["beta1"], opt["beta2"]),
                                  eps=opt["eps"], weight_decay=opt["weight_decay"])

    # The batch: prompt + completion, right-padded to the longest row.
    samples = spec["samples"]
    n = len(samples)
    length = max(len(s["prompt_ids"]) + len(s["completion_ids"]) for s in samples)
    c = max(len(s["completion_ids"]) for s in samples)
    if any(len(s["completion_ids"]) != c or len(s["prompt_ids"]) + c != length for s in samples):
        raise SystemExit("grpo_eager.py: expects equal prompt and completion lengths (TRL left-pads prompts)")
    ids = torch.tensor([s["prompt_ids"] + s["completion_ids"] for s in samples], dtype=torch.int64)
    batch = {"ids": ids, "attention": torch.ones_like(ids), "mask": torch.ones(n, c),
             "old": torch.tensor([s["behaviour_logprobs"] for s in samples], dtype=torch.float32),
             "advantages": torch.tensor([s["advantage"] for s in samples], dtype=torch.float32)}
    lora_params = sum(p.numel() for p in params)
    for step in range(args.steps + 1):
        t0 = time.perf_counter()
        stats = grpo_step(model, loras, optimizer, params, batch, opt)
        seconds = time.perf_counter() - t0
        emit({"kind": "grpo_step", "step": step + 1, "warmup": step == 0, "seconds": seconds, "samples": n,
              "completion_tokens": n * c, "tokens": n * length, "lora_params": lora_params, **stats})


if __name__ == "__main__":
    sys.exit(main())
