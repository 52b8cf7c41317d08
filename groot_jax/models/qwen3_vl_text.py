"""Qwen3-VL text decoder with M-RoPE and DeepStack, N1.7 spec 1.1 (Cosmos-Reason2-2B).

Mirrors transformers 5.24 `models/qwen3_vl/modeling_qwen3_vl.py`: `Qwen3VLTextModel` (its layers,
`Qwen3VLTextDecoderLayer`, are the Qwen3 layers of `llm.DecoderLayer`; rotary angles from
`Qwen3VLTextRotaryEmbedding`, see `llm.mrope_tables`), the image-token scatter and DeepStack
wiring of `Qwen3VLModel.forward` / `Qwen3VLTextModel._deepstack_process`, and
`Qwen3VLModel.get_rope_index` (`mrope_position_ids`, host-side numpy).

  h = embed(input_ids), image tokens' rows replaced by the vision tower's tokens (in order)
  for layer i < num_layers:  h = layer_i(h)  [recorded];  if i < k: h[image tokens] += deepstack_i
  feature = the last recorded state, before the final RMSNorm (GR00T N1.7's backbone feature).

Shapes: input_ids [B, L]; attention_mask [B, L] (left padding: False/0 before the prompt);
position_ids [3, B, L] (t, h, w rows; padded positions are 0 as HF leaves them); visual_embeds
and each DeepStack feature [M, D] with M = the number of True entries of visual_mask [B, L]
(row-major over batch and length, as torch's boolean indexing). `num_layers` of the config is
the layers kept (GR00T's `select_layer`); the recorded states follow HF's `hidden_states`
convention: a layer's output before its DeepStack addition.

jit: every shape is static; M must equal visual_mask.sum(), which cannot be checked on traced
values (an excess is dropped, a shortfall repeats the last row): build both from the same
input_ids and grid_thw. Padded query positions output zeros from attention (`layers.attention`),
where HF's eager path averages over masked keys; only valid positions are comparable.
"""
from __future__ import annotations

import itertools

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from groot_jax.config import Qwen3VLConfig
from groot_jax.models.layers import run_layers
from groot_jax.models.llm import DecoderLM, causal_mask, mrope_tables


def mrope_position_ids(cfg: Qwen3VLConfig, input_ids: np.ndarray, image_grid_thw: np.ndarray,
                       attention_mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """HF `Qwen3VLModel.get_rope_index` for images: (position_ids [3, B, L], deltas [B, 1]).

    Over each row's valid tokens: a run of n text tokens takes positions cur..cur+n-1 on all
    three rows; a run of image tokens takes the next grid (images in order over the batch) and
    positions (cur + t', cur + h', cur + w') over its merged t x h x w tokens, after which cur
    advances by max(h, w) / spatial_merge_size. Padding keeps 0. `deltas` = max position + 1 -
    valid length (HF's `rope_deltas`, for decoding past the prompt). Tokens are typed by
    `input_ids == image_token_id`, as GR00T N1.7 synthesises `mm_token_type_ids`."""
    ids = np.asarray(input_ids)
    valid = np.ones(ids.shape, bool) if attention_mask is None else np.asarray(attention_mask) != 0
    m = cfg.vision.spatial_merge_size
    grids = iter(np.asarray(image_grid_thw).reshape(-1, 3).tolist())
    positions = np.zeros((3, *ids.shape), np.int64)
    deltas = []
    for b in range(ids.shape[0]):
        kinds = ids[b][valid[b]] == cfg.image_token_id
        cur, pieces = 0, []
        for is_image, run in itertools.groupby(kinds):
            n = len(list(run))
            if not is_image:
                pieces.append(np.broadcast_to(np.arange(n) + cur, (3, n)))
                cur += n
                continue
            try:
                t, h, w = next(grids)
            except StopIteration:
                raise ValueError(f"row {b} has more image-token runs than image_grid_thw "
                                 "has images") from None
            gt, gh, gw = t, h // m, w // m
            if n != gt * gh * gw:
                raise ValueError(f"row {b}: a run of {n} image tokens, but its grid ({t}, {h}, "
                                 f"{w}) merges to {gt * gh * gw}")
            tt, hh, ww = np.meshgrid(np.arange(gt), np.arange(gh), np.arange(gw), indexing="ij")
            pieces.append(np.stack([tt, hh, ww]).reshape(3, -1) + cur)
            cur += max(h, w) // m
        row = np.concatenate(pieces, axis=1) if pieces else np.zeros((3, 0), np.int64)
        positions[:, b, valid[b]] = row
        deltas.append((row.max() + 1 if row.size else 0) - int(valid[b].sum()))
    return positions, np.asarray(deltas, np.int64)[:, None]


def mrope_position_ids_for_grid(cfg: Qwen3VLConfig, input_ids: Int[Array, "b l"],
                                attention_mask: Bool[Array, "b l"],
                                grid_thw: tuple[int, int, int]) -> Int[Array, "3 b l"]:
    """`mrope_position_ids` (positions only) traceable under jit when every image has the same
    static grid, as GR00T's fixed-size frames do: each run of image tokens is one image of
    t * h * w / m^2 tokens. A text token sits at (text tokens before it) + (images before it) *
    max(h, w) / m on all three rows; the j-th token of an image at that base + (t', h', w') of
    j over the merged grid. Padding keeps 0."""
    t, h, w = grid_thw
    m = cfg.vision.spatial_merge_size
    gh, gw = h // m, w // m
    per_image, advance = t * gh * gw, max(h, w) // m
    ids = jnp.asarray(input_ids)
    valid = jnp.asarray(attention_mask).astype(bool)
    image = (ids == cfg.image_token_id) & valid
    text = valid & ~image
    images_seen = jnp.cumsum(image, axis=1)                  # image tokens up to here, inclusive
    text_before = jnp.cumsum(text, axis=1) - text
    j = jnp.maximum(images_seen - 1, 0) % per_image
    base = text_before + jnp.where(image, jnp.maximum(images_seen - 1, 0) // per_image,
                                   images_seen // per_image) * advance
    offsets = jnp.stack([j // (gh * gw), (j // gw) % gh, j % gw])
    pos = base[None] + jnp.where(image[None], offsets, 0)
    return jnp.where(valid[None], pos, 0).astype(jnp.int32)


def image_token_mask(cfg: Qwen3VLConfig, input_ids: Int[Array, "b l"]) -> Bool[Array, "b l"]:
    """The image-token positions, `visual_mask` for images (HF `get_placeholder_mask`)."""
    return jnp.asarray(input_ids) == cfg.image_token_id


def _visual_rows(visual_mask: Bool[Array, "b l"], num_rows: int) -> Int[Array, "b l"]:
    """For each position, the index of its row in the [M, D] visual features (mask order)."""
    order = jnp.cumsum(visual_mask.reshape(-1).astype(jnp.int32)) - 1
    return jnp.clip(order, 0, max(num_rows - 1, 0)).reshape(visual_mask.shape)


class Qwen3VLTextModel(DecoderLM):
    """`llm.DecoderLM` (embed_tokens, stacked Qwen3 layers, norm: the same parameter tree, so
    `convert.keymap.llm_entries` maps HF `Qwen3VLTextModel` keys) run with M-RoPE positions,
    visual tokens and DeepStack."""

    def __call__(self, input_ids: Int[Array, "b l"] | None = None, *,
                 inputs_embeds: Float[Array, "b l d"] | None = None,
                 attention_mask: Bool[Array, "b l"] | None = None,
                 position_ids: Int[Array, "3 b l"] | None = None,
                 visual_mask: Bool[Array, "b l"] | None = None,
                 visual_embeds: Float[Array, "m d"] | None = None,
                 deepstack_embeds: list[Float[Array, "m d"]] | tuple = (),
                 return_hidden_states: bool = False):
        """The last kept layer's output [B, L, D] before the final norm; with
        `return_hidden_states` also [embeddings (after the visual scatter), layer_1, ...,
        layer_n] stacked as [n + 1, B, L, D], each layer's output before its DeepStack
        addition (HF's `hidden_states` entries, whose last one HF replaces by norm(output))."""
        cfg = self.cfg
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Qwen3VLTextModel: pass exactly one of input_ids and inputs_embeds")
        h = self.embed(input_ids) if inputs_embeds is None else inputs_embeds
        b, seq, _ = h.shape
        if position_ids is None:  # text only: positions 0..L-1 on all three rows
            position_ids = jnp.broadcast_to(jnp.arange(seq), (3, b, seq))
        cos, sin = mrope_tables(position_ids, cfg.head_dim, cfg.rope_theta, cfg.mrope_section)
        mask = causal_mask(attention_mask, b, seq)

        num_ds = len(deepstack_embeds)
        if (visual_embeds is not None or num_ds) and visual_mask is None:
            raise ValueError("Qwen3VLTextModel: visual features need visual_mask (image tokens)")
        if visual_mask is not None:
            num_rows = (visual_embeds if visual_embeds is not None else deepstack_embeds[0]).shape[0]
            rows = _visual_rows(visual_mask, num_rows)
            at_visual = visual_mask[..., None]
        if visual_embeds is not None:
            h = jnp.where(at_visual, jnp.take(visual_embeds.astype(h.dtype), rows, axis=0), h)
        deepstack = jnp.stack(list(deepstack_embeds)).astype(h.dtype) if num_ds else None

        def body(layer, carry, i):
            h, _ = carry
            out = layer(h, cos, sin, mask)
            if deepstack is None:
                return out, out
            feature = jnp.take(jnp.take(deepstack, jnp.minimum(i, num_ds - 1), axis=0), rows,
                               axis=0)
            return jnp.where(at_visual & (i < num_ds), out + feature, out), out

        (_, feature), per_layer = run_layers(
            self.layers, (h, h), body, jnp.arange(cfg.num_layers),
            collect=return_hidden_states, remat=cfg.remat)
        if return_hidden_states:
            return feature, jnp.concatenate([h[None], per_layer[1]], axis=0)
        return feature

    def final_norm(self, x: Float[Array, "b l d"]) -> Float[Array, "b l d"]:
        """The decoder's final RMSNorm (HF `last_hidden_state` = final_norm of the last layer's
        output after DeepStack); GR00T N1.7 does not apply it."""
        return self.norm(x)

