"""SigLIP vision tower (HF `SiglipVisionModel`, transformers modeling_siglip.py), spec 3.6.

pixels [N, H, W, C] in [-1, 1] -> patch conv (stride = kernel = patch) -> + learned positions
-> pre-LN encoder layers (scanned; unrolled in the inference layout) -> post_layernorm
-> [N, P, D]. No CLS token. The attention pooling head exists in the N1.5 checkpoint and is
loadable here, but is never computed (GR00T uses `last_hidden_state`, spec 3.2).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float

from groot_jax.config import SiglipConfig
from groot_jax.models.layers import (
    Dense,
    LayerNorm,
    attention,
    param,
    run_layers,
    stack_layers,
    unstack_for_inference,
)


class SiglipEncoderLayer(nnx.Module):
    def __init__(self, cfg: SiglipConfig, *, rngs: nnx.Rngs):
        d, f = cfg.hidden_size, cfg.intermediate_size
        self.num_heads, self.head_dim = cfg.num_heads, cfg.head_dim
        self.layer_norm1 = LayerNorm(d, eps=cfg.layer_norm_eps, rngs=rngs)
        self.q_proj = Dense(d, d, rngs=rngs, axes=("embed", "heads"))
        self.k_proj = Dense(d, d, rngs=rngs, axes=("embed", "heads"))
        self.v_proj = Dense(d, d, rngs=rngs, axes=("embed", "heads"))
        self.out_proj = Dense(d, d, rngs=rngs, axes=("heads", "embed"))
        self.layer_norm2 = LayerNorm(d, eps=cfg.layer_norm_eps, rngs=rngs)
        self.fc1 = Dense(d, f, rngs=rngs, axes=("embed", "mlp"))
        self.fc2 = Dense(f, d, rngs=rngs, axes=("mlp", "embed"))

    def __call__(self, x: Float[Array, "n p d"]) -> Float[Array, "n p d"]:
        n, p, _ = x.shape
        h = self.layer_norm1(x)
        heads = lambda y: y.reshape(n, p, self.num_heads, self.head_dim)  # noqa: E731
        a = attention(heads(self.q_proj(h)), heads(self.k_proj(h)), heads(self.v_proj(h)),
                      scale=self.head_dim**-0.5)
        x = x + self.out_proj(a.reshape(n, p, -1))
        h = self.fc2(jax.nn.gelu(self.fc1(self.layer_norm2(x)), approximate=True))
        return x + h


class SiglipPoolingHead(nnx.Module):
    """Parameters of HF `SiglipMultiheadAttentionPoolingHead`; kept for lossless load/export."""

    def __init__(self, cfg: SiglipConfig, *, rngs: nnx.Rngs):
        d, f = cfg.hidden_size, cfg.intermediate_size
        self.probe = param(rngs, nnx.initializers.normal(1.0), (1, 1, d), (None, None, "embed"))
        self.in_proj = Dense(d, 3 * d, rngs=rngs, axes=("embed", "heads"))
        self.out_proj = Dense(d, d, rngs=rngs, axes=("heads", "embed"))
        self.layernorm = LayerNorm(d, eps=cfg.layer_norm_eps, rngs=rngs)
        self.fc1 = Dense(d, f, rngs=rngs, axes=("embed", "mlp"))
        self.fc2 = Dense(f, d, rngs=rngs, axes=("mlp", "embed"))


class SiglipVisionTower(nnx.Module):
    def __init__(self, cfg: SiglipConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        d, ps, c = cfg.hidden_size, cfg.patch_size, cfg.num_channels
        # Conv kernel in Flax layout [ph, pw, c, d]; applied as one matmul over flattened patches.
        self.patch_kernel = param(rngs, nnx.initializers.lecun_normal(), (ps, ps, c, d),
                                  (None, None, None, "embed"))
        self.patch_bias = param(rngs, nnx.initializers.zeros, (d,), ("embed",))
        self.position_embedding = param(rngs, nnx.initializers.normal(d**-0.5),
                                        (cfg.num_patches, d), (None, "embed"))
        self.layers = stack_layers(lambda r: SiglipEncoderLayer(cfg, rngs=r), cfg.num_layers, rngs)
        self.post_layernorm = LayerNorm(d, eps=cfg.layer_norm_eps, rngs=rngs)
        self.head = SiglipPoolingHead(cfg, rngs=rngs) if cfg.has_pooling_head else None

    def unroll(self, release: bool = False) -> None:
        """Switch the encoder layers to the inference layout (`layers.unstack_for_inference`)."""
        self.layers = unstack_for_inference(self.layers, release=release)

    def embed_patches(self, pixels: Float[Array, "n h w c"]) -> Float[Array, "n p d"]:
        cfg = self.cfg
        n, h, w, c = pixels.shape
        if (h, w, c) != (cfg.image_size, cfg.image_size, cfg.num_channels):
            raise ValueError(f"SigLIP expects pixels [N, {cfg.image_size}, {cfg.image_size}, "
                             f"{cfg.num_channels}], got {tuple(pixels.shape)}")
        g, ps = cfg.grid_size, cfg.patch_size
        patches = pixels.reshape(n, g, ps, g, ps, c).transpose(0, 1, 3, 2, 4, 5)
        patches = patches.reshape(n, g * g, ps * ps * c)  # row-major grid, (ph, pw, c) inside
        kernel = self.patch_kernel[...].reshape(ps * ps * c, -1).astype(pixels.dtype)
        x = patches @ kernel + self.patch_bias[...].astype(pixels.dtype)
        return x + self.position_embedding[...].astype(x.dtype)

    def __call__(self, pixels: Float[Array, "n h w c"], *, return_hidden_states: bool = False):
        """Returns `last_hidden_state` [N, P, D] (after post_layernorm); with
        `return_hidden_states`, also the HF-style tuple (embeddings, layer_1, ..., layer_L)
        stacked as [L + 1, N, P, D] (pre-post_layernorm, as HF reports them)."""
        x = self.embed_patches(pixels)
        out, per_layer = run_layers(self.layers, x, lambda layer, h, _: layer(h),
                                    collect=return_hidden_states, remat=self.cfg.remat)
        last = self.post_layernorm(out)
        if return_hidden_states:
            return last, jnp.concatenate([x[None], per_layer], axis=0)
        return last
