"""Transformer blocks of the action head: the DiT and the VL self-attention transformer.

Mirrors lerobot 0.5.1 / Isaac-GR00T `cross_attention_dit.py` with diffusers 0.30 primitives
(spec 4.4, 4.5):
  timestep: Timesteps(256, flip_sin_to_cos=True, shift=1) -> [cos, sin] -> Linear-SiLU-Linear
  block:    [scale, shift] = norm1.linear(silu(temb))              (SCALE first)
            h += Attn(LN(h) * (1 + scale) + shift, kv = vl (even blocks) or itself (odd))
            h += FF(LN(h))                                          (norm3: plain, no affine)
  output:   [shift, scale] = proj_out_1(silu(temb))                (SHIFT first)
            proj_out_2(LN_eps1e-6(h) * (1 + scale) + shift)
Dropout (training only) sits where diffusers puts it: attention to_out, the block's
final_dropout on the attention output, FF after the activation and after the output.

Even (cross) and odd (self) blocks have different K/V input widths, so they are stacked as two
scanned groups and applied pairwise. `cross_kv` lets the sampler project the VL tokens to K/V
once per call instead of once per denoising step (the original recomputes them every step).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float

from groot_jax.config import DiTConfig, VLSelfAttentionConfig
from groot_jax.models.layers import (
    Dense,
    LayerNorm,
    attention,
    dropout,
    remat_scan_body,
    scan_layers,
    split_or_none,
    stack_layers,
)


def timestep_sinusoid(t: Float[Array, " b"], channels: int) -> Float[Array, "b c"]:
    """diffusers `get_timestep_embedding(t, channels, flip_sin_to_cos=True,
    downscale_freq_shift=1)`: cos first, frequencies exp(-ln(1e4) * j / (half - 1))."""
    half = channels // 2
    exponent = -math.log(10000.0) * jnp.arange(half, dtype=jnp.float32) / (half - 1)
    args = t.astype(jnp.float32)[:, None] * jnp.exp(exponent)[None, :]
    return jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)


class FeedForward(nnx.Module):
    """diffusers FeedForward('gelu-approximate'): Linear(d, 4d) -> GELU(tanh) -> Linear(4d, d)."""

    def __init__(self, dim: int, *, rngs: nnx.Rngs, rate: float):
        self.proj_in = Dense(dim, 4 * dim, rngs=rngs, axes=("embed", "mlp"))
        self.proj_out = Dense(4 * dim, dim, rngs=rngs, axes=("mlp", "embed"))
        self.rate = rate

    def __call__(self, x, rng=None):
        r1, r2 = split_or_none(rng, 2)
        h = dropout(jax.nn.gelu(self.proj_in(x), approximate=True), self.rate, r1)
        return dropout(self.proj_out(h), self.rate, r2)


class Attention(nnx.Module):
    """diffusers `Attention`: biased to_q/to_k/to_v/to_out, scale 1/sqrt(head_dim), no mask."""

    def __init__(self, dim: int, kv_dim: int, heads: int, head_dim: int, *, rngs: nnx.Rngs,
                 rate: float):
        inner = heads * head_dim
        self.heads, self.head_dim, self.rate = heads, head_dim, rate
        self.to_q = Dense(dim, inner, rngs=rngs, axes=("embed", "heads"))
        self.to_k = Dense(kv_dim, inner, rngs=rngs, axes=("embed", "heads"))
        self.to_v = Dense(kv_dim, inner, rngs=rngs, axes=("embed", "heads"))
        self.to_out = Dense(inner, dim, rngs=rngs, axes=("heads", "embed"))

    def project_kv(self, context: Float[Array, "b s e"]):
        b, s, _ = context.shape
        shape = (b, s, self.heads, self.head_dim)
        return self.to_k(context).reshape(shape), self.to_v(context).reshape(shape)

    def __call__(self, x, kv, rng=None):
        b, t, _ = x.shape
        q = self.to_q(x).reshape(b, t, self.heads, self.head_dim)
        out = attention(q, *kv, scale=self.head_dim**-0.5)
        return dropout(self.to_out(out.reshape(b, t, -1)), self.rate, rng)


class DiTBlock(nnx.Module):
    """One DiT block: adaptive LayerNorm (timestep) before attention, plain LayerNorm before FF."""

    def __init__(self, cfg: DiTConfig, kv_dim: int, *, rngs: nnx.Rngs):
        d = cfg.inner_dim
        self.rate = cfg.dropout
        self.norm_eps = cfg.norm_eps
        self.norm1_linear = Dense(d, 2 * d, rngs=rngs, axes=("embed", "mlp"))
        self.norm = LayerNorm(d, eps=cfg.norm_eps, affine=False)
        self.attn = Attention(d, kv_dim, cfg.num_heads, cfg.head_dim, rngs=rngs, rate=cfg.dropout)
        self.ff = FeedForward(d, rngs=rngs, rate=cfg.dropout)

    def __call__(self, x, temb, kv=None, rng=None):
        """kv=None: self-attention over the normalised x; else precomputed (K, V)."""
        r_attn, r_final, r_ff = split_or_none(rng, 3)
        scale, shift = jnp.split(self.norm1_linear(jax.nn.silu(temb)), 2, axis=-1)
        n = self.norm(x) * (1 + scale[:, None]) + shift[:, None]
        if kv is None:
            kv = self.attn.project_kv(n)
        x = x + dropout(self.attn(n, kv, r_attn), self.rate, r_final)
        return x + self.ff(self.norm(x), r_ff)


def _dense_t(x, p):
    """Dense with a transposed ([out, in]) kernel, as laid out by `DiT.inference_weights`."""
    y = jnp.einsum("...i,oi->...o", x, p["kernel"].astype(x.dtype))
    return y + p["bias"].astype(x.dtype) if "bias" in p else y


def _project_kv_t(p, context, heads, head_dim):
    b, s, _ = context.shape
    shape = (b, s, heads, head_dim)
    return _dense_t(context, p["to_k"]).reshape(shape), _dense_t(context, p["to_v"]).reshape(shape)


def _dit_block_t(p, x, temb, kv, norm, heads, head_dim):
    """`DiTBlock.__call__` at inference (rng=None) on `inference_weights` layout."""
    scale, shift = jnp.split(_dense_t(jax.nn.silu(temb), p["norm1_linear"]), 2, axis=-1)
    n = norm(x) * (1 + scale[:, None]) + shift[:, None]
    if kv is None:
        kv = _project_kv_t(p["attn"], n, heads, head_dim)
    b, t, _ = n.shape
    q = _dense_t(n, p["attn"]["to_q"]).reshape(b, t, heads, head_dim)
    out = attention(q, *kv, scale=head_dim**-0.5)
    x = x + _dense_t(out.reshape(b, t, -1), p["attn"]["to_out"])
    h = jax.nn.gelu(_dense_t(norm(x), p["ff"]["proj_in"]), approximate=True)
    return x + _dense_t(h, p["ff"]["proj_out"])


class TimestepEncoder(nnx.Module):
    def __init__(self, cfg: DiTConfig, *, rngs: nnx.Rngs):
        self.channels = cfg.timestep_channels
        self.linear_1 = Dense(cfg.timestep_channels, cfg.inner_dim, rngs=rngs, axes=(None, "embed"))
        self.linear_2 = Dense(cfg.inner_dim, cfg.inner_dim, rngs=rngs, axes=("embed", "embed"))

    def __call__(self, buckets, dtype):
        proj = timestep_sinusoid(buckets, self.channels).astype(dtype)
        return self.linear_2(jax.nn.silu(self.linear_1(proj)))


class DiT(nnx.Module):
    def __init__(self, cfg: DiTConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        d = cfg.inner_dim
        kv_dim = cfg.cross_attention_dim or d
        n_cross = cfg.num_layers // 2 if cfg.interleave_self_attention else cfg.num_layers
        self.timestep_encoder = TimestepEncoder(cfg, rngs=rngs)
        self.cross_blocks = stack_layers(lambda r: DiTBlock(cfg, kv_dim, rngs=r), n_cross, rngs)
        self.self_blocks = (stack_layers(lambda r: DiTBlock(cfg, d, rngs=r), cfg.num_layers // 2,
                                         rngs) if cfg.interleave_self_attention else None)
        self.norm_out = LayerNorm(d, eps=cfg.final_norm_eps, affine=False)
        self.proj_out_1 = Dense(d, 2 * d, rngs=rngs, axes=("embed", "mlp"))
        self.proj_out_2 = Dense(d, cfg.output_dim, rngs=rngs, axes=("embed", None))

    def cross_kv(self, vl: Float[Array, "b s e"]):
        """K and V of the VL tokens for every cross block: two [n_cross, B, S, heads, hd]."""
        graphdef, state = nnx.split(self.cross_blocks)
        return jax.lax.map(lambda st: nnx.merge(graphdef, st).attn.project_kv(vl), state)

    # --- Inference layout (see `inference_weights`) -------------------------------------------

    def inference_weights(self) -> list[dict]:
        """The blocks' weights for the sampler, laid out once (outside jit) for XLA:CPU.

        One pure dict per block in application order (cross 0, self 0, cross 1, ...), every
        Dense kernel transposed to torch's [out, in] and stored as its own array. Why (measured
        on XLA:CPU, whose dots go through YNNPACK): a dot with an [in, out] kernel runs ~1.6x
        slower than with [out, in], and a `lax.scan` over stacked layers copies each layer's
        weights out of the stack (a dynamic-slice fusion) on every call, i.e. on every Euler
        step; both transposing inside the jitted sampler and slicing a stack there cost a copy
        of every weight per call. Values are unchanged (a transpose), so are the numerics."""
        def per_layer(blocks):
            pure = nnx.to_pure_dict(nnx.state(blocks, nnx.Param))
            layers = [dict() for _ in range(jax.tree.leaves(pure)[0].shape[0])]

            def put(path, leaf):
                keys = [str(getattr(k, "key", k)) for k in path]
                stacked = jnp.swapaxes(leaf, 1, 2) if keys[-1] == "kernel" else leaf
                for i, layer in enumerate(layers):
                    node = layer
                    for k in keys[:-1]:
                        node = node.setdefault(k, {})
                    node[keys[-1]] = jnp.array(stacked[i], copy=True)
                del stacked

            jax.tree_util.tree_map_with_path(put, pure)
            return layers

        cross = per_layer(self.cross_blocks)
        if self.self_blocks is None:
            return cross
        own = per_layer(self.self_blocks)
        return [blk for pair in zip(cross, own, strict=True) for blk in pair]

    def cross_kv_fast(self, vl: Float[Array, "b s e"], weights: list[dict]):
        """`cross_kv` from `inference_weights`: a list (one (K, V) per cross block)."""
        step = 2 if self.self_blocks is not None else 1
        return [_project_kv_t(w["attn"], vl, self.cfg.num_heads, self.cfg.head_dim)
                for w in weights[::step]]

    def apply_fast(self, x: Float[Array, "b t d"], buckets, cross_kv: list, weights: list[dict]):
        """`__call__(x, buckets, cross_kv=...)` for inference (no dropout) on the layers laid
        out by `inference_weights`, unrolled (no per-layer weight copies)."""
        temb = self.timestep_encoder(buckets, x.dtype)
        step = 2 if self.self_blocks is not None else 1
        norm = LayerNorm(self.cfg.inner_dim, eps=self.cfg.norm_eps, affine=False)
        for i, w in enumerate(weights):
            kv = cross_kv[i // step] if i % step == 0 else None
            x = _dit_block_t(w, x, temb, kv, norm, self.cfg.num_heads, self.cfg.head_dim)
        shift, scale = jnp.split(self.proj_out_1(jax.nn.silu(temb)), 2, axis=-1)
        return self.proj_out_2(self.norm_out(x) * (1 + scale[:, None]) + shift[:, None])

    def __call__(self, x: Float[Array, "b t d"], buckets, *, vl=None, cross_kv=None, rng=None,
                 return_hidden_states: bool = False):
        """x: state/future/action tokens; buckets: int timestep bucket [B]. Give `vl` [B, S, E]
        or its precomputed `cross_kv`. Returns [B, T, output_dim] (and per-block outputs)."""
        if cross_kv is None:
            cross_kv = self.cross_kv(vl)
        temb = self.timestep_encoder(buckets, x.dtype)
        n_cross = self.cfg.num_layers // 2 if self.self_blocks is not None else self.cfg.num_layers
        keys = (None if rng is None else jax.random.split(rng, (n_cross, 2)))
        if self.self_blocks is None:
            def body(block, h, inp):
                kv, key = inp
                return block(h, temb, kv, None if key is None else key[0])
            out, per = scan_layers(self.cross_blocks, x, body, (cross_kv, keys),
                                   collect=return_hidden_states, remat=self.cfg.remat)
        else:
            c_graph, c_state = nnx.split(self.cross_blocks)
            s_graph, s_state = nnx.split(self.self_blocks)

            def pair(h, inp):
                cs, ss, kv, key = inp
                h = nnx.merge(c_graph, cs)(h, temb, kv, None if key is None else key[0])
                h1 = h
                h = nnx.merge(s_graph, ss)(h, temb, None, None if key is None else key[1])
                return h, (jnp.stack([h1, h]) if return_hidden_states else None)

            out, per = jax.lax.scan(remat_scan_body(pair, self.cfg.remat), x,
                                    (c_state, s_state, cross_kv, keys))
            if return_hidden_states:
                per = per.reshape(-1, *per.shape[2:])
        shift, scale = jnp.split(self.proj_out_1(jax.nn.silu(temb)), 2, axis=-1)
        y = self.proj_out_2(self.norm_out(out) * (1 + scale[:, None]) + shift[:, None])
        return (y, per) if return_hidden_states else y


class SelfAttentionBlock(nnx.Module):
    """diffusers-style BasicTransformerBlock, norm_type 'layer_norm' (affine, eps 1e-5)."""

    def __init__(self, cfg: VLSelfAttentionConfig, *, rngs: nnx.Rngs):
        d = cfg.num_heads * cfg.head_dim
        self.rate = cfg.dropout
        self.norm1 = LayerNorm(d, eps=cfg.norm_eps, rngs=rngs)
        self.attn = Attention(d, d, cfg.num_heads, cfg.head_dim, rngs=rngs, rate=cfg.dropout)
        self.norm3 = LayerNorm(d, eps=cfg.norm_eps, rngs=rngs)
        self.ff = FeedForward(d, rngs=rngs, rate=cfg.dropout)

    def __call__(self, x, rng=None):
        r_attn, r_final, r_ff = split_or_none(rng, 3)
        n = self.norm1(x)
        x = x + dropout(self.attn(n, self.attn.project_kv(n), r_attn), self.rate, r_final)
        return x + self.ff(self.norm3(x), r_ff)


class SelfAttentionTransformer(nnx.Module):
    """The VL self-attention stack: no positions, no mask (padding tokens are attended)."""

    def __init__(self, cfg: VLSelfAttentionConfig, *, rngs: nnx.Rngs):
        self.num_layers = cfg.num_layers
        self.remat = cfg.remat
        self.blocks = stack_layers(lambda r: SelfAttentionBlock(cfg, rngs=r), cfg.num_layers, rngs)

    def __call__(self, x, rng=None):
        keys = None if rng is None else jax.random.split(rng, self.num_layers)
        out, _ = scan_layers(self.blocks, x, lambda block, h, key: block(h, key), keys,
                             remat=self.remat)
        return out
