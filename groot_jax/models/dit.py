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
scanned groups and applied pairwise. With `DiTConfig.attend_text_every_n_blocks` (N1.6/N1.7
`AlternateVLDiT`) the cross blocks take boolean key masks built from the backbone's
attention_mask and image_mask: block idx % (2n) == 0 attends the valid text (non-image) tokens,
the other cross blocks the valid image tokens (`DiT.cross_masks`). `cross_kv` lets the sampler
project the VL tokens to K/V once per call instead of once per denoising step (the original
recomputes them every step; the key masks apply to the cached K/V alike).
`unroll` switches both stacks to the inference layout (one module per block, [out, in]
kernels, applied unrolled: `layers.unstack_for_inference`).
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
    is_unrolled,
    remat_scan_body,
    run_layers,
    scan_layers,
    split_or_none,
    stack_layers,
    unstack_for_inference,
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
    """diffusers `Attention`: biased to_q/to_k/to_v/to_out, scale 1/sqrt(head_dim); an optional
    boolean key mask [B, 1, S] (True = attend, as SDPA's boolean attn_mask)."""

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

    def __call__(self, x, kv, rng=None, mask=None):
        b, t, _ = x.shape
        q = self.to_q(x).reshape(b, t, self.heads, self.head_dim)
        out = attention(q, *kv, scale=self.head_dim**-0.5, mask=mask)
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

    def __call__(self, x, temb, kv=None, rng=None, mask=None):
        """kv=None: self-attention over the normalised x; else precomputed (K, V), with an
        optional boolean key mask [B, 1, S]."""
        r_attn, r_final, r_ff = split_or_none(rng, 3)
        scale, shift = jnp.split(self.norm1_linear(jax.nn.silu(temb)), 2, axis=-1)
        n = self.norm(x) * (1 + scale[:, None]) + shift[:, None]
        if kv is None:
            kv = self.attn.project_kv(n)
        x = x + dropout(self.attn(n, kv, r_attn, mask), self.rate, r_final)
        return x + self.ff(self.norm(x), r_ff)


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
        """K and V of the VL tokens for every cross block: two [n_cross, B, S, heads, hd]; in
        the inference layout a list of one (K, V) per cross block."""
        if is_unrolled(self.cross_blocks):
            return [block.attn.project_kv(vl) for block in self.cross_blocks]
        graphdef, state = nnx.split(self.cross_blocks)
        return jax.lax.map(lambda st: nnx.merge(graphdef, st).attn.project_kv(vl), state)

    def cross_masks(self, attention_mask=None, image_mask=None):
        """Boolean key masks of the cross blocks, [n_cross, B, 1, S], or None (no masking).

        With the text/image alternation (`attend_text_every_n_blocks`) both masks [B, S] are
        required: text blocks get ~image_mask & attention_mask, image blocks image_mask &
        attention_mask (lerobot 0.6.1 AlternateVLDiT). Without it the DiT attends every VL token
        (N1/N1.5, as the original) and masks are refused rather than silently dropped."""
        n = self.cfg.attend_text_every_n_blocks
        if n is None:
            if attention_mask is not None or image_mask is not None:
                raise ValueError("this DiT attends every VL token; attention_mask/image_mask "
                                 "need DiTConfig.attend_text_every_n_blocks")
            return None
        if attention_mask is None or image_mask is None:
            raise ValueError("the text/image alternating DiT needs attention_mask and image_mask")
        attn = jnp.asarray(attention_mask).astype(bool)
        img = jnp.asarray(image_mask).astype(bool)
        text_mask, image_mask = ~img & attn, img & attn
        n_cross = self.cfg.num_layers // 2
        text = jnp.asarray([self.cfg.cross_block_attends_text(i) for i in range(n_cross)])
        return jnp.where(text[:, None, None], text_mask[None], image_mask[None])[:, :, None, :]

    def unroll(self, release: bool = False) -> None:
        """Switch the blocks to the inference layout (`layers.unstack_for_inference`): one
        module per block, [out, in] kernels, applied unrolled. `release` empties the stacks."""
        self.cross_blocks = unstack_for_inference(self.cross_blocks, release=release)
        if self.self_blocks is not None:
            self.self_blocks = unstack_for_inference(self.self_blocks, release=release)

    def _apply_unrolled(self, x, temb, cross_kv, keys, masks, collect: bool):
        """The blocks of the inference layout in application order (cross 0, self 0, cross 1,
        ...): (output, per-block outputs [num_layers, B, T, D] when `collect`)."""
        own = self.self_blocks if self.self_blocks is not None else [None] * len(cross_kv)
        hidden = []
        for i, (cross, block) in enumerate(zip(self.cross_blocks, own, strict=True)):
            key = (None, None) if keys is None else (keys[i, 0], keys[i, 1])
            x = cross(x, temb, cross_kv[i], key[0], None if masks is None else masks[i])
            hidden.append(x)
            if block is not None:
                x = block(x, temb, None, key[1])
                hidden.append(x)
        return x, (jnp.stack(hidden) if collect else None)

    def __call__(self, x: Float[Array, "b t d"], buckets, *, vl=None, cross_kv=None, rng=None,
                 attention_mask=None, image_mask=None, return_hidden_states: bool = False):
        """x: state/future/action tokens; buckets: int timestep bucket [B]. Give `vl` [B, S, E]
        or its precomputed `cross_kv`; the alternating DiT also takes the VL tokens' bool
        `attention_mask` and `image_mask` [B, S]. Returns [B, T, output_dim] (and per-block
        outputs)."""
        masks = self.cross_masks(attention_mask, image_mask)
        if cross_kv is None:
            cross_kv = self.cross_kv(vl)
        temb = self.timestep_encoder(buckets, x.dtype)
        n_cross = self.cfg.num_layers // 2 if self.self_blocks is not None else self.cfg.num_layers
        keys = (None if rng is None else jax.random.split(rng, (n_cross, 2)))
        if is_unrolled(self.cross_blocks):
            out, per = self._apply_unrolled(x, temb, cross_kv, keys, masks,
                                            return_hidden_states)
        elif self.self_blocks is None:
            def body(block, h, inp):
                kv, key = inp
                return block(h, temb, kv, None if key is None else key[0])
            out, per = scan_layers(self.cross_blocks, x, body, (cross_kv, keys),
                                   collect=return_hidden_states, remat=self.cfg.remat)
        else:
            c_graph, c_state = nnx.split(self.cross_blocks)
            s_graph, s_state = nnx.split(self.self_blocks)

            def pair(h, inp):
                cs, ss, kv, key, mask = inp
                h = nnx.merge(c_graph, cs)(h, temb, kv, None if key is None else key[0], mask)
                h1 = h
                h = nnx.merge(s_graph, ss)(h, temb, None, None if key is None else key[1])
                return h, (jnp.stack([h1, h]) if return_hidden_states else None)

            out, per = jax.lax.scan(remat_scan_body(pair, self.cfg.remat), x,
                                    (c_state, s_state, cross_kv, keys, masks))
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
        out, _ = run_layers(self.blocks, x, lambda block, h, key: block(h, key), keys,
                            remat=self.remat)
        return out

    def unroll(self, release: bool = False) -> None:
        """Switch to the inference layout (`layers.unstack_for_inference`)."""
        self.blocks = unstack_for_inference(self.blocks, release=release)
