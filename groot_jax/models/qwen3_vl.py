"""GR00T N1.7's backbone: Qwen3-VL (Cosmos-Reason2-2B) cut at `select_layer`, N1.7 spec 1.1.

  frames [B, V, H, W, 3] in [-1, 1] -> patch rows (qwen3_vl_vision.frames_to_patches), grid
  (1, H/P, W/P) per frame -> vision tower: image tokens + DeepStack features
  -> text decoder over the prompt with the image tokens scattered in, M-RoPE positions
  (qwen3_vl_text.mrope_position_ids_for_grid), DeepStack added after its first layers, the
  first `text.num_layers` layers kept
  -> BackboneOutput(features = the last kept layer's output BEFORE the final RMSNorm,
     attention_mask, image_mask = input_ids == image_token_id)

lerobot 0.6.1 reads the same pre-norm tensor (a forward hook on the last kept layer); the final
norm's weight stays in the checkpoint and in our parameters, unused. Frames of one call share a
size (the config's `image_size`), so the grid and the vision geometry are static under jit.

`from_patches` is the computation on transformers' own inputs (the HF processor's `pixel_values`
rows and `image_grid_thw`, images of any sizes); `__call__` makes those from the frames and
calls it.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Array, Bool, Float, Int

from groot_jax.config import Qwen3VLConfig
from groot_jax.models.backbone import BackboneOutput
from groot_jax.models.layers import transpose_dense
from groot_jax.models.qwen3_vl_text import (
    Qwen3VLTextModel,
    image_token_mask,
    mrope_position_ids,
    mrope_position_ids_for_grid,
)
from groot_jax.models.qwen3_vl_vision import Qwen3VLVisionTower, frames_to_patches


class Qwen3VLBackbone(nnx.Module):
    def __init__(self, cfg: Qwen3VLConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        self.vision = Qwen3VLVisionTower(cfg.vision, rngs=rngs)
        self.text = Qwen3VLTextModel(cfg.text, rngs=rngs)

    def to_inference_layout(self, release: bool = False) -> None:
        """Vision blocks and text layers one module each, every Dense kernel [out, in], applied
        unrolled (`layers.unstack_for_inference`); same numbers."""
        self.vision.unroll(release)
        self.text.unroll(release)
        transpose_dense(self)

    def __call__(self, input_ids: Int[Array, "b l"], attention_mask: Bool[Array, "b l"],
                 pixel_values: Float[Array, "b v h w c"]) -> BackboneOutput:
        """Frames of one size: patch rows on the device, their static grid and traceable
        positions, then `from_patches`."""
        cfg = self.cfg
        b, v, h, w, c = pixel_values.shape
        rows = frames_to_patches(cfg.vision, pixel_values.reshape(b * v, h, w, c))
        grid = (1, h // cfg.vision.patch_size, w // cfg.vision.patch_size)
        positions = mrope_position_ids_for_grid(cfg, input_ids, attention_mask.astype(bool), grid)
        return self.from_patches(input_ids, attention_mask, rows, (grid,) * (b * v), positions)

    def from_patches(self, input_ids: Int[Array, "b l"], attention_mask: Bool[Array, "b l"],
                     pixel_values: Float[Array, "n cthw"], image_grid_thw,
                     position_ids: Int[Array, "r b l"] | None = None) -> BackboneOutput:
        """HF-style inputs: `pixel_values` [N, C*T*P*P] and `image_grid_thw` [n_images, 3] as the
        Qwen2-VL image processor gives them (static: numpy or a tuple of tuples, never traced),
        images in prompt order over the batch. `position_ids`: [3, B, L] (t, h, w rows) or
        lerobot's [4, B, L] (text row first, dropped); if None they are computed on the host
        (`mrope_position_ids`), which needs concrete `input_ids` and `attention_mask` (outside
        jit, or pass them in)."""
        cfg = self.cfg
        grid = tuple(tuple(int(x) for x in g) for g in np.asarray(image_grid_thw).reshape(-1, 3))
        mask = attention_mask.astype(bool)
        if position_ids is None:
            position_ids, _ = mrope_position_ids(cfg, np.asarray(input_ids), np.asarray(grid),
                                                 np.asarray(mask))
        position_ids = jnp.asarray(position_ids, jnp.int32)
        if position_ids.shape[0] == 4:
            position_ids = position_ids[1:]
        if position_ids.shape[0] != 3:
            raise ValueError(f"position_ids must be [3 or 4, B, L], got {tuple(position_ids.shape)}")
        embeds, deepstack = self.vision(pixel_values, grid)
        image_mask = image_token_mask(cfg, input_ids)
        features = self.text(input_ids, attention_mask=mask, position_ids=position_ids,
                             visual_mask=image_mask, visual_embeds=embeds,
                             deepstack_embeds=deepstack)
        return BackboneOutput(features, mask, image_mask)
