"""Eagle VLM backbone (spec 3, 11).

N1.5 (Eagle 2.5):  SigLIP last_hidden_state -> mlp1 = Linear(1152->2048)          [256 tok/img]
N1   (Eagle 2):    SigLIP -> pixel shuffle(0.5) -> mlp1 = LN -> Linear -> GELU -> Linear  [64]
                   -> ... -> backbone.linear (2048 -> 1536)
Image embeddings overwrite the embeddings of the `<IMG_CONTEXT>` tokens in flattened (B*L)
row-major order, images taken in (batch, view) order. The LLM output (final RMSNorm of the last
kept layer) is the backbone feature.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Array, Bool, Float, Int

from groot_jax.config import EagleConfig
from groot_jax.models.layers import Dense, LayerNorm, transpose_dense
from groot_jax.models.llm import DecoderLM
from groot_jax.models.siglip import SiglipVisionTower


def pixel_shuffle(x: Float[Array, "n w h c"], factor: int) -> Float[Array, "n w2 h2 c2"]:
    """Eagle 2 / InternVL `pixel_shuffle` (ps_version v2) with scale 1/factor: folds each
    factor x factor patch neighbourhood into channels, reproducing the original's view/permute
    order exactly (it treats the first spatial axis as width)."""
    n, w, h, c = x.shape
    x = x.reshape(n, w, h // factor, c * factor)
    x = x.transpose(0, 2, 1, 3)
    x = x.reshape(n, h // factor, w // factor, c * factor * factor)
    return x.transpose(0, 2, 1, 3)


class LnMlpConnector(nnx.Module):
    """N1 `mlp1`: LayerNorm(in) -> Linear(in, d) -> GELU (exact) -> Linear(d, d)."""

    def __init__(self, in_dim: int, out_dim: int, *, rngs: nnx.Rngs):
        self.norm = LayerNorm(in_dim, eps=1e-5, rngs=rngs, axis_name=None)
        self.fc1 = Dense(in_dim, out_dim, rngs=rngs, axes=(None, "embed"))
        self.fc2 = Dense(out_dim, out_dim, rngs=rngs, axes=("embed", "embed"))

    def __call__(self, x):
        return self.fc2(jax.nn.gelu(self.fc1(self.norm(x)), approximate=False))


class EagleBackbone(nnx.Module):
    def __init__(self, cfg: EagleConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        self.vision = SiglipVisionTower(cfg.vision, rngs=rngs)
        if cfg.use_pixel_shuffle:
            self.mlp1 = LnMlpConnector(cfg.connector_in_dim, cfg.llm.hidden_size, rngs=rngs)
        else:
            self.mlp1 = Dense(cfg.connector_in_dim, cfg.llm.hidden_size, rngs=rngs,
                              axes=(None, "embed"))
        self.llm = DecoderLM(cfg.llm, rngs=rngs)
        self.projection = (Dense(cfg.llm.hidden_size, cfg.project_to_dim, rngs=rngs,
                                 axes=("embed", None)) if cfg.project_to_dim else None)

    def to_inference_layout(self, release: bool = False) -> None:
        """SigLIP's and the LLM's layers one module each, every Dense kernel [out, in], applied
        unrolled (`layers.unstack_for_inference`); same numbers. `release`: see there."""
        self.vision.unroll(release)
        self.llm.unroll(release)
        transpose_dense(self)

    def image_embeddings(self, pixels: Float[Array, "n h w c"]) -> Float[Array, "n p d"]:
        """Vision tower + connector: [N_img, tokens_per_image, llm width]."""
        x = self.vision(pixels)
        if self.cfg.use_pixel_shuffle:
            n, p, c = x.shape
            g = int(round(p**0.5))
            x = pixel_shuffle(x.reshape(n, g, g, c), self.cfg.shuffle_factor)
            x = x.reshape(n, -1, x.shape[-1])
        return self.mlp1(x)

    def merge_image_tokens(self, input_ids: Int[Array, "b l"],
                           image_embeds: Float[Array, "n p d"]) -> Float[Array, "b l d"]:
        """Token embeddings with the k-th <IMG_CONTEXT> position (row-major over B*L) replaced
        by the k-th image-token embedding. Counts are checked whenever they are concrete."""
        is_image = input_ids == self.cfg.image_token_index
        flat_images = image_embeds.reshape(-1, image_embeds.shape[-1])
        if not isinstance(is_image, jax.core.Tracer):
            n_slots = int(np.asarray(is_image).sum())
            if n_slots != flat_images.shape[0]:
                raise ValueError(
                    f"input_ids hold {n_slots} <IMG_CONTEXT> tokens (id "
                    f"{self.cfg.image_token_index}) but the images give {flat_images.shape[0]} "
                    f"embeddings ({image_embeds.shape[0]} images x {image_embeds.shape[1]} "
                    "tokens); the prompt must expand each image to exactly that many tokens")
        text = self.llm.embed(input_ids)
        order = jnp.cumsum(is_image.reshape(-1)) - 1
        picked = flat_images[jnp.clip(order, 0, flat_images.shape[0] - 1)]
        picked = picked.reshape(text.shape).astype(text.dtype)
        return jnp.where(is_image[..., None], picked, text)

    def __call__(self, input_ids: Int[Array, "b l"], attention_mask: Bool[Array, "b l"],
                 pixel_values: Float[Array, "b v h w c"]) -> Float[Array, "b l d"]:
        """Backbone features [B, L, feature_dim] for token ids, their mask and V images per
        sample (float pixels in [-1, 1], channels last)."""
        b, v = pixel_values.shape[:2]
        images = self.image_embeddings(pixel_values.reshape(b * v, *pixel_values.shape[2:]))
        embeds = self.merge_image_tokens(input_ids, images)
        features = self.llm(embeds, attention_mask)
        if self.projection is not None:
            features = self.projection(features)
        return features
