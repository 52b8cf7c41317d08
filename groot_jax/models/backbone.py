"""The backbone seam: what GR00T, training, evaluation and conversion may ask of a VLM backbone.

A backbone is chosen by its config type (`groot_jax.config.BackboneConfig`): `EagleConfig`
(N1: SmolLM2 + pixel shuffle; N1.5: SigLIP + Qwen3) or `Qwen3VLConfig` (N1.7: Qwen3-VL with
DeepStack). Everything outside `groot_jax/models` and `groot_jax/convert` goes through these
functions and the config's protocol properties, never through a backbone's own fields:

  build(cfg, rngs)                  -> the module; `module(input_ids, attention_mask,
                                       pixel_values)` -> BackboneOutput
  trainable_groups(cfg)             -> {"tune_visual": path prefixes, "tune_llm": prefixes}
  forward_flops(cfg, seq_len, views)-> {"vision": FLOPs, "llm": FLOPs} per example

Inputs are the same for every backbone: input_ids int [B, L], attention_mask bool [B, L] and
pixel_values float [B, V, H, W, 3] in [-1, 1] with H = W = cfg.image_size (each backbone turns
frames into its own patches on the device).
"""
from __future__ import annotations

import dataclasses

import jax
from flax import nnx
from jaxtyping import Array, Bool, Float

from groot_jax.config import BackboneConfig, EagleConfig, Qwen3VLConfig


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class BackboneOutput:
    """features [B, L, D] (the VL tokens the action head reads), with the prompt's validity
    mask and its image-token positions (both bool [B, L])."""

    features: Float[Array, "b l d"]
    attention_mask: Bool[Array, "b l"]
    image_mask: Bool[Array, "b l"]


def build(cfg: BackboneConfig, *, rngs: nnx.Rngs) -> nnx.Module:
    if isinstance(cfg, EagleConfig):
        from groot_jax.models.eagle import EagleBackbone
        return EagleBackbone(cfg, rngs=rngs)
    if isinstance(cfg, Qwen3VLConfig):
        from groot_jax.models.qwen3_vl import Qwen3VLBackbone
        return Qwen3VLBackbone(cfg, rngs=rngs)
    raise TypeError(f"no backbone for config type {type(cfg).__name__}")


def trainable_groups(cfg: BackboneConfig) -> dict[str, tuple[str, ...]]:
    """Parameter path prefixes ('backbone/...') of the original's tune_visual / tune_llm groups
    (Isaac-GR00T eagle_backbone.py; N1.7's qwen3_backbone.py: visual vs language_model)."""
    if isinstance(cfg, EagleConfig):
        return {"tune_visual": ("backbone/vision", "backbone/mlp1"), "tune_llm": ("backbone/llm",)}
    if isinstance(cfg, Qwen3VLConfig):
        return {"tune_visual": ("backbone/vision",), "tune_llm": ("backbone/text",)}
    raise TypeError(f"no backbone for config type {type(cfg).__name__}")


def _decoder_flops(m, seq_len: int) -> float:
    d, q, kv = m.hidden_size, m.num_heads * m.head_dim, m.num_kv_heads * m.head_dim
    return m.num_layers * (2 * seq_len * (2 * d * q + 2 * d * kv + 3 * d * m.intermediate_size)
                           + 4 * seq_len**2 * q)


def forward_flops(cfg: BackboneConfig, seq_len: int, num_views: int = 1) -> dict[str, float]:
    """Forward FLOPs per example: 2 * tokens * (in * out) per matmul weight, plus
    4 * T * S * width per attention (scores and weighted sum)."""
    if isinstance(cfg, EagleConfig):
        v = cfg.vision
        p = v.num_patches * num_views
        vis = 2 * p * (v.patch_size**2 * v.num_channels) * v.hidden_size
        vis += v.num_layers * (2 * p * (4 * v.hidden_size**2
                                        + 2 * v.hidden_size * v.intermediate_size)
                               + num_views * 4 * v.num_patches**2 * v.hidden_size)
        vis += 2 * cfg.tokens_per_image * num_views * cfg.connector_in_dim * cfg.llm.hidden_size
        llm = _decoder_flops(cfg.llm, seq_len)
        if cfg.project_to_dim:
            llm += 2 * seq_len * cfg.llm.hidden_size * cfg.project_to_dim
        return {"vision": float(vis), "llm": float(llm)}
    if isinstance(cfg, Qwen3VLConfig):
        v = cfg.vision
        t, h, w = cfg.grid_thw
        n = t * h * w                        # patches per frame
        p = n * num_views
        d, m2 = v.hidden_size, v.spatial_merge_size**2
        vis = 2 * p * v.patch_dim * d                                       # patch embedding
        vis += v.num_layers * (2 * p * (4 * d * d + 2 * d * v.intermediate_size)
                               + num_views * 4 * n * n * d)
        merged = p // m2
        mergers = 1 + len(v.deepstack_visual_indexes)
        vis += mergers * 2 * merged * (m2 * d * m2 * d + m2 * d * v.out_hidden_size)
        return {"vision": float(vis), "llm": float(_decoder_flops(cfg.text, seq_len))}
    raise TypeError(f"no backbone for config type {type(cfg).__name__}")
