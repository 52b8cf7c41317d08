"""Decoder LLM truncated to its first `num_layers` layers: Qwen3 (N1.5) or Llama/SmolLM2 (N1).

Follows transformers' modeling_qwen3.py / modeling_llama.py (spec 3.6):
  h += o_proj(Attn(RMSNorm_in(h)));  h += down(silu(gate(x)) * up(x)), x = RMSNorm_post(h)
Qwen3 applies per-head RMSNorm to q and k *before* RoPE. RoPE is the half-split `rotate_half`
layout with inv_freq = theta^(-2i/H). Positions are 0..L-1 and are not shifted for left padding.

The GR00T feature (spec 3.4) is HF `hidden_states[select_layer]` of the truncated model, which
HF defines as the final `norm` applied to the last kept layer's output: `__call__` returns it.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Array, Bool, Float, Int

from groot_jax.config import LlmConfig
from groot_jax.models.layers import (
    Dense,
    RMSNorm,
    attention,
    param,
    run_layers,
    stack_layers,
    unstack_for_inference,
)


def rope_frequencies(positions: Int[Array, "*p"], dim: int, theta: float) -> Float[Array, "*p f"]:
    """Angles positions * theta^(-2i/dim), i < dim/2, in float32 (HF's default inv_freq)."""
    inv_freq = 1.0 / (theta ** (jnp.arange(0, dim, 2, dtype=jnp.float32) / dim))
    return positions.astype(jnp.float32)[..., None] * inv_freq


def rope_tables(positions: Int[Array, " l"], head_dim: int, theta: float):
    """cos, sin [L, H] in float32, as HF's default rotary embedding computes them."""
    freqs = rope_frequencies(positions, head_dim, theta)
    emb = jnp.concatenate([freqs, freqs], axis=-1)
    return jnp.cos(emb), jnp.sin(emb)


def mrope_tables(position_ids: Int[Array, "3 b l"], head_dim: int, theta: float,
                 section: tuple[int, int, int]):
    """Interleaved M-RoPE (HF `Qwen3VLTextRotaryEmbedding`): cos, sin [B, L, H] in float32.

    Frequency j takes its angle from position row h (1) when j % 3 == 1 and j < 3 * section[1],
    from row w (2) when j % 3 == 2 and j < 3 * section[2], else from row t (0); then the
    half-split layout [f, f] as `rope_tables`. Equal rows reduce to `rope_tables`."""
    freqs = rope_frequencies(position_ids, head_dim, theta)  # [3, B, L, H/2]
    j = np.arange(head_dim // 2)
    row = np.zeros_like(j)
    row[(j % 3 == 1) & (j < 3 * section[1])] = 1
    row[(j % 3 == 2) & (j < 3 * section[2])] = 2
    freqs = jnp.where(row == 1, freqs[1], jnp.where(row == 2, freqs[2], freqs[0]))
    emb = jnp.concatenate([freqs, freqs], axis=-1)
    return jnp.cos(emb), jnp.sin(emb)


def apply_rope(x: Float[Array, "b l n h"], cos, sin) -> Float[Array, "b l n h"]:
    """`rotate_half` RoPE; cos, sin are [L, H] (shared by the batch) or [B, L, H]."""
    half = x.shape[-1] // 2
    rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    cos, sin = (cos[None, :, None], sin[None, :, None]) if cos.ndim == 2 else (cos[:, :, None],
                                                                              sin[:, :, None])
    return x * cos.astype(x.dtype) + rotated * sin.astype(x.dtype)


def causal_mask(attention_mask: Bool[Array, "b l"] | None, batch: int,
                seq: int) -> Bool[Array, "b l l"]:
    """Causal mask [B, T, S] (True = attend), with the padding of `attention_mask` removed."""
    causal = jnp.tril(jnp.ones((seq, seq), dtype=bool))[None]
    mask = causal if attention_mask is None else causal & attention_mask[:, None, :].astype(bool)
    return jnp.broadcast_to(mask, (batch, seq, seq))


class DecoderLayer(nnx.Module):
    def __init__(self, cfg: LlmConfig, *, rngs: nnx.Rngs):
        d, f, h = cfg.hidden_size, cfg.intermediate_size, cfg.head_dim
        self.cfg = cfg
        self.input_layernorm = RMSNorm(d, eps=cfg.rms_norm_eps, rngs=rngs)
        self.q_proj = Dense(d, cfg.num_heads * h, rngs=rngs, use_bias=False, axes=("embed", "heads"))
        self.k_proj = Dense(d, cfg.num_kv_heads * h, rngs=rngs, use_bias=False,
                            axes=("embed", "kv_heads"))
        self.v_proj = Dense(d, cfg.num_kv_heads * h, rngs=rngs, use_bias=False,
                            axes=("embed", "kv_heads"))
        self.o_proj = Dense(cfg.num_heads * h, d, rngs=rngs, use_bias=False, axes=("heads", "embed"))
        if cfg.qk_norm:
            self.q_norm = RMSNorm(h, eps=cfg.rms_norm_eps, rngs=rngs, axis_name=None)
            self.k_norm = RMSNorm(h, eps=cfg.rms_norm_eps, rngs=rngs, axis_name=None)
        else:
            self.q_norm = self.k_norm = None
        self.post_attention_layernorm = RMSNorm(d, eps=cfg.rms_norm_eps, rngs=rngs)
        self.gate_proj = Dense(d, f, rngs=rngs, use_bias=False, axes=("embed", "mlp"))
        self.up_proj = Dense(d, f, rngs=rngs, use_bias=False, axes=("embed", "mlp"))
        self.down_proj = Dense(f, d, rngs=rngs, use_bias=False, axes=("mlp", "embed"))

    def __call__(self, x, cos, sin, mask):
        cfg = self.cfg
        b, seq, _ = x.shape
        h = self.input_layernorm(x)
        q = self.q_proj(h).reshape(b, seq, cfg.num_heads, cfg.head_dim)
        k = self.k_proj(h).reshape(b, seq, cfg.num_kv_heads, cfg.head_dim)
        v = self.v_proj(h).reshape(b, seq, cfg.num_kv_heads, cfg.head_dim)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        a = attention(q, k, v, scale=cfg.head_dim**-0.5, mask=mask)
        x = x + self.o_proj(a.reshape(b, seq, -1))
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(jax.nn.silu(self.gate_proj(h)) * self.up_proj(h))


class DecoderLM(nnx.Module):
    """Token embedding + `num_layers` decoder layers + final RMSNorm (no LM head: the tied
    `lm_head` of the checkpoint is the embedding itself, and GR00T never uses its logits)."""

    def __init__(self, cfg: LlmConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        self.embed_tokens = param(rngs, nnx.initializers.normal(0.02),
                                  (cfg.vocab_size, cfg.hidden_size), ("vocab", "embed"))
        self.layers = stack_layers(lambda r: DecoderLayer(cfg, rngs=r), cfg.num_layers, rngs)
        self.norm = RMSNorm(cfg.hidden_size, eps=cfg.rms_norm_eps, rngs=rngs)

    def unroll(self, release: bool = False) -> None:
        """Switch the decoder layers to the inference layout (`layers.unstack_for_inference`)."""
        self.layers = unstack_for_inference(self.layers, release=release)

    def embed(self, input_ids: Int[Array, "b l"]) -> Float[Array, "b l d"]:
        return jnp.take(self.embed_tokens[...], input_ids, axis=0)

    def __call__(self, inputs_embeds: Float[Array, "b l d"],
                 attention_mask: Bool[Array, "b l"] | None = None, *,
                 return_hidden_states: bool = False):
        """Final-norm(last layer output) [B, L, D]. With `return_hidden_states`, also HF's
        `hidden_states` tuple stacked: [embeddings, layer_1, ..., layer_{n-1}, norm(layer_n)]."""
        b, seq, _ = inputs_embeds.shape
        cos, sin = rope_tables(jnp.arange(seq), self.cfg.head_dim, self.cfg.rope_theta)
        mask = causal_mask(attention_mask, b, seq)
        out, per_layer = run_layers(self.layers, inputs_embeds,
                                    lambda layer, h, _: layer(h, cos, sin, mask),
                                    collect=return_hidden_states, remat=self.cfg.remat)
        feature = self.norm(out)
        if return_hidden_states:
            states = jnp.concatenate([inputs_embeds[None], per_layer[:-1], feature[None]], axis=0)
            return feature, states
        return feature
