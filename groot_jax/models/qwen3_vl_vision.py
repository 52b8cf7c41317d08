"""Qwen3-VL vision tower, N1.7 spec 1.1 (Cosmos-Reason2-2B = Qwen3-VL-2B layout).

Mirrors transformers 5.24 `models/qwen3_vl/modeling_qwen3_vl.py`: `Qwen3VLVisionModel` with
`Qwen3VLVisionPatchEmbed`, `Qwen3VLVisionRotaryEmbedding`, `Qwen3VLVisionBlock` (`...Attention`,
`...MLP`) and `Qwen3VLVisionPatchMerger`; the position-table resampling, rotary positions and
attention segments are those of `transformers/vision_utils.py`
(`get_vision_interpolation_indices_and_weights`, `get_vision_position_ids`,
`get_vision_cu_seqlens`).

Input: `pixel_values` [N, C*T*P*P] and `grid_thw` [n_images, 3] exactly as the HF image processor
gives them: each image contributes t*h*w rows (t frame pairs, h x w patches), ordered per frame
by m x m merge block (block rows, block columns) and inside a block row-major (m =
spatial_merge_size), each row flattened as (C, T, P, P).

  patches @ conv kernel (Conv3d, stride = kernel)  + learned positions (48x48 table, bilinear,
  align_corners) -> blocks: x += proj(Attn(LN1(x))) with 2-D RoPE (h rows on the first quarter
  of frequencies, w on the second), attention within one frame of one image;
  x += fc2(gelu_tanh(fc1(LN2(x))))  -> merger: LN, m*m patches concatenated, fc2(gelu(fc1(.)))
  -> image tokens [N/m^2, D_text]. After block i in `deepstack_visual_indexes` its own merger
  (LN after the concatenation) gives one DeepStack feature [N/m^2, D_text].

jit: `grid_thw` fixes every shape and the attention segments, so it is static (a tuple of
(t, h, w) tuples or a numpy array, closed over or a static argument, never traced); the geometry
is computed on the host with numpy. Equal-size frames are attended as a batch [S, P, ...];
mixed sizes as one sequence with a block-diagonal mask.

Einsum letters as `layers.py`; here N = patches, D = vision width.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Array, Float

from groot_jax.config import Qwen3VLVisionConfig
from groot_jax.models.layers import (
    Dense,
    LayerNorm,
    attention,
    param,
    run_layers,
    stack_layers,
    unstack_for_inference,
)
from groot_jax.models.llm import apply_rope, rope_frequencies


@dataclasses.dataclass(frozen=True)
class VisionGeometry:
    """Host-side (numpy) per-patch tables derived from `grid_thw`."""

    interp_index: np.ndarray    # [N, 4] int32: taps into the flattened position table
    interp_weight: np.ndarray   # [N, 4] float32: their bilinear weights
    rope_position: np.ndarray   # [N, 2] int32: (row, column) of each patch in its frame
    segment_lengths: tuple[int, ...]  # one attention segment per frame of each image


def _axis_taps(index: np.ndarray, size: int, side: int) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear, align_corners=True taps of `index` (on an axis of `size`) into `side` entries;
    float32 arithmetic in transformers' order."""
    src = index.astype(np.float32) * np.float32(side - 1) / np.float32(max(size - 1, 1))
    floor = np.floor(src)
    offsets = np.arange(2)
    taps = np.clip(floor.astype(np.int64)[:, None] + offsets, 0, side - 1)
    distance = np.abs((src - floor)[:, None] - offsets.astype(np.float32))
    return taps, np.maximum(np.float32(1) - distance, np.float32(0))


def vision_geometry(cfg: Qwen3VLVisionConfig, grid_thw) -> VisionGeometry:
    """Position-table taps, rotary positions and attention segments of the patches of
    `grid_thw` (concrete [n_images, 3]), in the processor's patch order."""
    grid = np.asarray(grid_thw)
    if grid.ndim != 2 or grid.shape[1] != 3 or not np.issubdtype(grid.dtype, np.integer):
        raise ValueError(f"grid_thw must be concrete integers [n_images, 3], got {grid_thw!r}")
    m, side = cfg.spatial_merge_size, cfg.position_grid_side
    index, weight, position, segments = [], [], [], []
    for t, h, w in grid.tolist():
        if h % m or w % m:
            raise ValueError(f"grid_thw ({t}, {h}, {w}): h and w must be multiples of "
                             f"spatial_merge_size={m}")
        within = np.arange(h * w)
        in_col, in_row = within % m, (within // m) % m
        block_col, block_row = (within // (m * m)) % (w // m), within // (m * m * (w // m))
        row, col = block_row * m + in_row, block_col * m + in_col
        h_taps, h_weights = _axis_taps(row, h, side)
        w_taps, w_weights = _axis_taps(col, w, side)
        taps = (h_taps[:, :, None] * side + w_taps[:, None, :]).reshape(-1, 4)
        weights = (h_weights[:, :, None] * w_weights[:, None, :]).reshape(-1, 4)
        index.append(np.tile(taps, (t, 1)))
        weight.append(np.tile(weights, (t, 1)))
        position.append(np.tile(np.stack([row, col], -1), (t, 1)))
        segments += [h * w] * t
    return VisionGeometry(np.concatenate(index).astype(np.int32),
                          np.concatenate(weight).astype(np.float32),
                          np.concatenate(position).astype(np.int32), tuple(segments))


def vision_rope_tables(cfg: Qwen3VLVisionConfig, position: np.ndarray):
    """cos, sin [N, H]: angles [h_freqs(row), w_freqs(col)] over head_dim/2, then [f, f]."""
    dim = cfg.head_dim // 2
    freqs = jnp.concatenate([rope_frequencies(jnp.asarray(position[:, 0]), dim, cfg.rope_theta),
                             rope_frequencies(jnp.asarray(position[:, 1]), dim, cfg.rope_theta)],
                            axis=-1)
    emb = jnp.concatenate([freqs, freqs], axis=-1)
    return jnp.cos(emb), jnp.sin(emb)


class Qwen3VLVisionBlock(nnx.Module):
    """Pre-LN block; x is [S, P, D] (S attention segments of P patches, or S = 1 with a mask)."""

    def __init__(self, cfg: Qwen3VLVisionConfig, *, rngs: nnx.Rngs):
        d, f = cfg.hidden_size, cfg.intermediate_size
        self.num_heads, self.head_dim = cfg.num_heads, cfg.head_dim
        self.norm1 = LayerNorm(d, eps=cfg.layer_norm_eps, rngs=rngs)
        self.qkv = Dense(d, 3 * d, rngs=rngs, axes=("embed", "heads"))  # out = (3, N, H)
        self.proj = Dense(d, d, rngs=rngs, axes=("heads", "embed"))
        self.norm2 = LayerNorm(d, eps=cfg.layer_norm_eps, rngs=rngs)
        self.linear_fc1 = Dense(d, f, rngs=rngs, axes=("embed", "mlp"))
        self.linear_fc2 = Dense(f, d, rngs=rngs, axes=("mlp", "embed"))

    def __call__(self, x: Float[Array, "s p d"], cos, sin, mask=None) -> Float[Array, "s p d"]:
        s, p, _ = x.shape
        qkv = self.qkv(self.norm1(x)).reshape(s, p, 3, self.num_heads, self.head_dim)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        # HF rotates q and k in float32 whatever the activation dtype.
        q = apply_rope(q.astype(jnp.float32), cos, sin).astype(x.dtype)
        k = apply_rope(k.astype(jnp.float32), cos, sin).astype(x.dtype)
        a = attention(q, k, v, scale=self.head_dim**-0.5, mask=mask)
        x = x + self.proj(a.reshape(s, p, -1))
        h = self.linear_fc2(jax.nn.gelu(self.linear_fc1(self.norm2(x)), approximate=True))
        return x + h


class Qwen3VLPatchMerger(nnx.Module):
    """m*m neighbouring patches -> one LLM token. `postshuffle`: LayerNorm over the
    concatenated m*m*D (the DeepStack mergers) instead of over each patch (the main merger)."""

    def __init__(self, cfg: Qwen3VLVisionConfig, *, postshuffle: bool, rngs: nnx.Rngs):
        self.wide = cfg.hidden_size * cfg.spatial_merge_size**2
        self.postshuffle = postshuffle
        self.norm = LayerNorm(self.wide if postshuffle else cfg.hidden_size,
                              eps=cfg.layer_norm_eps, rngs=rngs)
        self.linear_fc1 = Dense(self.wide, self.wide, rngs=rngs, axes=("embed", "mlp"))
        self.linear_fc2 = Dense(self.wide, cfg.out_hidden_size, rngs=rngs, axes=("mlp", "embed"))

    def __call__(self, x: Float[Array, "n d"]) -> Float[Array, "n_merged d_text"]:
        if self.postshuffle:
            x = self.norm(x.reshape(-1, self.wide))
        else:
            x = self.norm(x).reshape(-1, self.wide)
        return self.linear_fc2(jax.nn.gelu(self.linear_fc1(x), approximate=False))


class Qwen3VLVisionTower(nnx.Module):
    def __init__(self, cfg: Qwen3VLVisionConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        d, ps, tp, c = cfg.hidden_size, cfg.patch_size, cfg.temporal_patch_size, cfg.num_channels
        # Conv3d kernel in Flax layout [T, P, P, C, D]; applied as one matmul over patch rows.
        self.patch_kernel = param(rngs, nnx.initializers.lecun_normal(), (tp, ps, ps, c, d),
                                  (None, None, None, None, "embed"))
        self.patch_bias = param(rngs, nnx.initializers.zeros, (d,), ("embed",))
        self.pos_embed = param(rngs, nnx.initializers.normal(0.02),
                               (cfg.num_position_embeddings, d), (None, "embed"))
        self.blocks = stack_layers(lambda r: Qwen3VLVisionBlock(cfg, rngs=r), cfg.num_layers, rngs)
        self.merger = Qwen3VLPatchMerger(cfg, postshuffle=False, rngs=rngs)
        self.deepstack_merger_list = nnx.List(
            [Qwen3VLPatchMerger(cfg, postshuffle=True, rngs=rngs)
             for _ in cfg.deepstack_visual_indexes])

    def unroll(self, release: bool = False) -> None:
        """Switch the blocks to the inference layout (`layers.unstack_for_inference`)."""
        self.blocks = unstack_for_inference(self.blocks, release=release)

    def embed_patches(self, pixel_values: Float[Array, "n cthw"],
                      geometry: VisionGeometry) -> Float[Array, "n d"]:
        cfg = self.cfg
        if pixel_values.shape != (len(geometry.interp_index), cfg.patch_dim):
            raise ValueError(f"pixel_values must be [{len(geometry.interp_index)}, "
                             f"{cfg.patch_dim}] for this grid_thw, got {tuple(pixel_values.shape)}")
        kernel = self.patch_kernel[...].transpose(3, 0, 1, 2, 4).reshape(cfg.patch_dim, -1)
        x = pixel_values @ kernel.astype(pixel_values.dtype)
        x = x + self.patch_bias[...].astype(x.dtype)
        table = self.pos_embed[...].astype(x.dtype)
        taps = jnp.take(table, jnp.asarray(geometry.interp_index), axis=0)  # [N, 4, D]
        return x + (taps * jnp.asarray(geometry.interp_weight, x.dtype)[:, :, None]).sum(1)

    def __call__(self, pixel_values: Float[Array, "n cthw"], grid_thw, *,
                 return_hidden_states: bool = False):
        """(image tokens [N/m^2, D_text], DeepStack features: list of [N/m^2, D_text]); with
        `return_hidden_states` also HF's vision `hidden_states` (embeddings, block_1, ...,
        block_L) stacked as [L + 1, N, D]. Images stay concatenated in `grid_thw` order."""
        cfg = self.cfg
        geometry = vision_geometry(cfg, grid_thw)
        x = self.embed_patches(pixel_values, geometry)
        n, d = x.shape
        cos, sin = vision_rope_tables(cfg, geometry.rope_position)
        lengths = geometry.segment_lengths
        if len(set(lengths)) == 1:  # equal frames: a batch of segments, no mask
            s, p = len(lengths), lengths[0]
            mask = None
        else:  # one sequence, attention only within each segment
            s, p = 1, n
            seg = np.repeat(np.arange(len(lengths)), lengths)
            mask = jnp.asarray(seg[:, None] == seg[None, :])[None]
        x = x.reshape(s, p, d)
        cos, sin = cos.reshape(s, p, -1), sin.reshape(s, p, -1)

        # The DeepStack inputs ride in the carry (a [k, S, P, D] buffer written at the listed
        # blocks), so the blocks stay one scan and no per-block output is kept.
        num_ds = len(cfg.deepstack_visual_indexes)
        slot = np.full(cfg.num_layers, -1, np.int32)
        slot[list(cfg.deepstack_visual_indexes)] = np.arange(num_ds)

        def body(block, carry, block_slot):
            h, buf = carry
            h = block(h, cos, sin, mask)
            hit = block_slot == jnp.arange(num_ds)
            return h, jnp.where(hit[:, None, None, None], h[None], buf)

        (h, buf), per_block = run_layers(
            self.blocks, (x, jnp.zeros((num_ds, s, p, d), x.dtype)), body, jnp.asarray(slot),
            collect=return_hidden_states, remat=cfg.remat)
        merged = self.merger(h.reshape(n, d))
        deepstack = [merger(buf[j].reshape(n, d))
                     for j, merger in enumerate(self.deepstack_merger_list)]
        if return_hidden_states:
            states = jnp.concatenate([x[None], per_block[0]], axis=0).reshape(-1, n, d)
            return merged, deepstack, states
        return merged, deepstack


def frames_to_patches(cfg: Qwen3VLVisionConfig,
                      frames: Float[Array, "n h w c"]) -> Float[Array, "rows cthw"]:
    """Still frames (already resized and normalised, channels last) -> the HF image processor's
    `pixel_values` rows, on the device: each frame fills the temporal patch by repetition, rows
    ordered by merge block, each flattened (C, T, P, P) (transformers
    `Qwen2VLImageProcessor.patchify`). Each frame's grid is (1, H / P, W / P)."""
    n, hgt, wid, c = frames.shape
    p, m, t = cfg.patch_size, cfg.spatial_merge_size, cfg.temporal_patch_size
    if c != cfg.num_channels or hgt % (p * m) or wid % (p * m):
        raise ValueError(f"frames must be [N, H, W, {cfg.num_channels}] with H and W multiples "
                         f"of patch_size * spatial_merge_size = {p * m}, got {tuple(frames.shape)}")
    gh, gw = hgt // p, wid // p
    x = frames.transpose(0, 3, 1, 2).reshape(n, c, gh // m, m, p, gw // m, m, p)
    x = x.transpose(0, 2, 5, 3, 6, 1, 4, 7)                 # n, bh, bw, m, m, C, P, P
    x = jnp.broadcast_to(x[..., None, :, :], (*x.shape[:6], t, p, p))
    return x.reshape(n * gh * gw, c * t * p * p)
