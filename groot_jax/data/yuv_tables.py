"""swscale's yuv420p -> rgb24 conversion, tabulated so the accelerator can reproduce it bit for bit.

The host path converts each decoded frame with PyAV's `VideoReformatter.reformat(frame,
format="rgb24")` (groot_jax/data/video.py). For yuv420p input of the same size, swscale maps each
pixel through a fixed function of three bytes: its luma Y and the U, V of its 2x2 chroma block
(nearest chroma, no dithering into 8-bit RGB). The function depends on the frame's colour tags
(groot_jax.data.video.YUV_CONVERSIONS). Its exact integer rounding depends on the swscale build
and its SIMD paths, so instead of re-deriving formulas we measure it here, exhaustively, with the
same library the workers decode with: one 4096x4096 frame holds all 256^3 (Y, U, V) triples.

Structure found (and checked on every build, else an error): R depends on (Y, V) only, B on (Y, U)
only, and G on Y and a class of (U, V) (167 to 309 distinct G-versus-Y curves, by conversion,
measured with PyAV 18.1 / libswscale 9.5). So the whole
conversion fits in small tables, per conversion:
  r[V, Y] uint8, b[U, Y] uint8, g_class[U, V] int32, g[class, Y] uint8.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from groot_jax.data.video import YUV_CONVERSIONS

_N = 4096  # frame side: (N/2)^2 chroma blocks x 4 luma values = 256^3 triples


@dataclasses.dataclass(frozen=True)
class YuvTables:
    """All conversions of YUV_CONVERSIONS stacked; flat, for gathers (c = conversion index):
    R = r[(c*256 + V)*256 + Y], B = b[(c*256 + U)*256 + Y],
    G = g[g_class[(c*256 + U)*256 + V]*256 + Y]."""

    r: np.ndarray  # uint8 [C*65536]
    b: np.ndarray  # uint8 [C*65536]
    g_class: np.ndarray  # int32 [C*65536], global class ids
    g: np.ndarray  # uint8 [classes*256]


def _all_triples_frame() -> np.ndarray:
    """uint8 I420 [N*3/2, N]: chroma block k carries (U, V) = divmod(k // 64, 256) and the lumas
    4*(k % 64) + (0, 1 | 2, 3) in its 2x2 pixels."""
    c = _N // 2
    k = np.arange(c * c, dtype=np.int64).reshape(c, c)
    u, v = np.divmod(k // 64, 256)
    y0 = (k % 64) * 4
    y = np.empty((_N, _N), np.uint8)
    y[0::2, 0::2], y[0::2, 1::2], y[1::2, 0::2], y[1::2, 1::2] = y0, y0 + 1, y0 + 2, y0 + 3
    return np.concatenate([y.ravel(), u.astype(np.uint8).ravel(), v.astype(np.uint8).ravel()]
                          ).reshape(-1, _N)


def swscale_rgb(i420: np.ndarray, colorspace: int, color_range: int) -> np.ndarray:
    """uint8 I420 [H*3/2, W] -> uint8 [H, W, 3] exactly as the decoder converts a tagged frame."""
    import av
    from av.video.reformatter import VideoReformatter

    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(i420), format="yuv420p")
    frame.colorspace, frame.color_range = colorspace, color_range
    return VideoReformatter().reformat(frame, format="rgb24").to_ndarray()


def _tabulate(colorspace: int, color_range: int):
    rgb = swscale_rgb(_all_triples_frame(), colorspace, color_range)
    quads = np.stack([rgb[0::2, 0::2], rgb[0::2, 1::2], rgb[1::2, 0::2], rgb[1::2, 1::2]], 2)
    full = quads.reshape(65536, 256, 3)  # [U*256 + V, Y, channel] (Y = 4 * (k % 64) + quad)
    r = np.ascontiguousarray(full[0:256, :, 0])  # U = 0: [V, Y]
    b = np.ascontiguousarray(full[0::256, :, 2])  # V = 0: [U, Y]
    g_rows = np.ascontiguousarray(full[:, :, 1])
    rows = g_rows.view(np.dtype((np.void, 256))).ravel()  # a G-versus-Y curve as one value
    _, first, g_class = np.unique(rows, return_index=True, return_inverse=True)
    curves = g_rows[first]
    uv = full.reshape(256, 256, 256, 3)
    if not ((uv[..., 0] == r[None]).all() and (uv[..., 2] == b[:, None]).all()):
        # a swscale whose R or B mixes all three inputs: these tables would be wrong
        raise RuntimeError(
            "this libswscale's yuv420p->rgb24 conversion does not have the (Y,V)/(Y,U) structure "
            "the device YUV path relies on; use PipelineConfig(device_yuv=False)"
        )
    return r, b, g_class.reshape(-1).astype(np.int32), curves


@functools.lru_cache(maxsize=1)
def yuv_tables() -> YuvTables:
    """The tables of every conversion in YUV_CONVERSIONS (~1 s each, computed once per process)."""
    rs, bs, gcs, gs = [], [], [], []
    offset = 0
    for cs, cr in YUV_CONVERSIONS:
        r, b, g_class, curves = _tabulate(cs, cr)
        rs.append(r.ravel())
        bs.append(b.ravel())
        gcs.append(g_class + offset)
        gs.append(curves.ravel())
        offset += len(curves)
    return YuvTables(np.concatenate(rs), np.concatenate(bs), np.concatenate(gcs).astype(np.int32),
                     np.concatenate(gs))
