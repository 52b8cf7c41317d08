"""Host video kernels of the sample transform, bit-exact to torchvision (spec 9.3).

uint8 [T, H, W, 3] -> float/255 -> crop (size int(H*0.95), int(W*0.95); random in training, centre
in eval) -> resize to S x S bilinear with antialias (torchvision's Resize on tensors) -> colour
jitter (training) -> x255 and truncating cast to uint8 (as the original) -> (u8/255-0.5)/0.5.
`video_transform` stops at the uint8 frames, `views_to_pixel_values` runs the whole chain for the
views of one sample. The antialiased taps (`aa_taps`) and the luma weights (`gray`) are shared with
the accelerator's version of this chain (groot_jax/data/device_augment.py).
"""

from __future__ import annotations

import functools
import threading

import numpy as np

from groot_jax.data.errors import DataError
from groot_jax.data.modality import DataConfig

# Implementation notes (speed; every output is bit-identical to the straightforward formulation,
# see tests/data/test_fast_transforms.py, which keeps that formulation as its reference):
# * images are processed planar ([3, T, H, W], channels outermost) so every plane is contiguous;
#   all operations are elementwise or per-plane, so the layout does not change a single bit;
# * the crop is taken on the uint8 frames (before conversion);
# * intermediates live in per-thread workspace buffers reused across samples (fresh multi-100 kB
#   arrays cost page faults that were most of the time of the resize), ops run in place;
# * np.mod in the HSV conversion (slow) is replaced by adding/subtracting 0 or 1 (or 6) by mask:
#   exact on the value ranges that occur (Sterbenz), hence the same floats as np.mod.

_F32 = np.float32


class _Workspace(threading.local):
    def __init__(self):
        self.bufs: dict = {}


_WS = _Workspace()
_WS_MAX_BYTES = 16 << 20  # larger scratch arrays are not kept


def _buf(name: str, shape, dtype=np.float32) -> np.ndarray:
    """A per-thread scratch array (contents undefined), reused by later calls with the same name,
    shape and dtype: valid until the next call that asks for it. Arrays over 16 MB are fresh."""
    key = (name, tuple(shape), np.dtype(dtype))
    b = _WS.bufs.get(key)
    if b is None:
        if int(np.prod(shape)) * key[2].itemsize > _WS_MAX_BYTES:  # e.g. a whole episode
            return np.empty(shape, dtype)
        if len(_WS.bufs) >= 256:  # many different image sizes: start over
            _WS.bufs.clear()
        b = _WS.bufs[key] = np.empty(shape, dtype)
    return b


@functools.lru_cache(maxsize=64)
def aa_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices int [out, K], weights float32 [out, K]) of antialiased bilinear resampling, computed
    with PyTorch's float32 arithmetic (`_compute_indices_min_size_weights_aa`, separable AA kernel),
    so that results match torchvision's Resize(antialias=True) on float tensors bit for bit in
    almost all pixels (unused taps have weight 0 and index 0)."""
    f32 = np.float32
    scale = f32(f32(in_size) / f32(out_size))
    support = f32(scale) if scale >= 1.0 else f32(1.0)
    invscale = f32(1.0) / scale if scale >= 1.0 else f32(1.0)
    rows = []
    for i in range(out_size):
        center = f32(float(scale) * (i + 0.5))
        xmin = max(int(float(center) - float(support) + 0.5), 0)
        xsize = min(int(float(center) + float(support) + 0.5), in_size) - xmin
        ws = []
        for j in range(xsize):
            arg = f32((j + xmin - float(center) + 0.5) * float(invscale))
            arg = abs(arg)
            ws.append(f32(1.0) - arg if arg < 1.0 else f32(0.0))
        total = f32(0.0)
        for w in ws:
            total = f32(total + w)
        if total != 0:
            ws = [f32(w / total) for w in ws]
        rows.append((xmin, ws))
    k = max(len(ws) for _, ws in rows)
    idx = np.zeros((out_size, k), np.int64)
    wts = np.zeros((out_size, k), np.float32)
    for i, (xmin, ws) in enumerate(rows):
        idx[i, : len(ws)] = np.arange(xmin, xmin + len(ws))
        wts[i, : len(ws)] = ws
    idx.flags.writeable = False
    wts.flags.writeable = False
    return idx, wts


@functools.lru_cache(maxsize=64)
def _tap_planes(in_size: int, out_size: int):
    """aa_taps per tap: (indices [K, out] intp, weights float32 [K, out], weights float64 [K, out])."""
    idx, wts = aa_taps(in_size, out_size)
    out = (
        np.ascontiguousarray(idx.T.astype(np.intp)),
        np.ascontiguousarray(wts.T),
        np.ascontiguousarray(wts.T.astype(np.float64)),
    )
    for a in out:
        a.flags.writeable = False
    return out


def _resample_planar(x: np.ndarray, axis: int, out_size: int) -> np.ndarray:
    """One separable pass over float32 `x` along `axis` (-1 or -2) into a workspace buffer.
    Accumulation emulates torch's CPU kernel compiled with fused multiply-add: out = x0*w0
    (float32), then for each further tap out = float32(float64(out) + float64(xk) * float64(wk))
    (the float64 product of two float32 values is exact)."""
    idx, w32, w64 = _tap_planes(x.shape[axis], out_size)
    shape = [1] * x.ndim
    shape[axis] = out_size
    oshape = list(x.shape)
    oshape[axis] = out_size
    acc = _buf(f"resample{axis}", oshape)
    np.take(x, idx[0], axis=axis, out=acc, mode="clip")
    acc *= w32[0].reshape(shape)
    if idx.shape[0] > 1:
        x64 = _buf(f"resample{axis}_x64", x.shape, np.float64)
        np.copyto(x64, x)
        term = _buf(f"resample{axis}_term", oshape, np.float64)
        for k in range(1, idx.shape[0]):
            np.take(x64, idx[k], axis=axis, out=term, mode="clip")
            term *= w64[k].reshape(shape)
            np.add(acc, term, out=acc, casting="same_kind")  # float64 sum, rounded to float32
    return acc


def _resize_planar(x: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """float32 [..., H, W] planes -> [..., out_h, out_w] (a workspace buffer unless no pass runs):
    horizontal pass, then vertical."""
    if x.shape[-1] != out_w:
        x = _resample_planar(x, -1, out_w)
    if x.shape[-2] != out_h:
        x = _resample_planar(x, -2, out_h)
    return x


def resize_aa(x: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """float32 [..., H, W, C] -> [..., out_h, out_w, C]; bilinear, antialias, align_corners=False
    (torchvision Resize on tensors): horizontal pass first, then vertical."""
    x = np.asarray(x, np.float32)
    p = np.ascontiguousarray(np.moveaxis(x, -1, 0))
    return np.array(np.moveaxis(_resize_planar(p, out_h, out_w), 0, -1), order="C", copy=True)


def crop_box(h: int, w: int, scale: float, rng: np.random.Generator | None):
    ch, cw = int(h * scale), int(w * scale)
    if rng is None:  # torchvision CenterCrop
        top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
    else:  # RandomCrop
        top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    return top, left, ch, cw


def gray(r, g, b, out: np.ndarray | None = None):
    """Luma 0.299 r + 0.587 g + 0.114 b of float32 planes (torchvision's rgb_to_grayscale), summed
    left to right in float32: the one definition for the host and the accelerator. numpy planes
    with `out` are computed in place (one workspace temporary); without `out` it is the plain
    expression, which jax arrays take too (groot_jax/data/device_augment.py)."""
    if out is None:
        return r * _F32(0.299) + g * _F32(0.587) + b * _F32(0.114)
    tmp = _buf("gray_tmp", out.shape)
    np.multiply(r, _F32(0.299), out=out)
    np.multiply(g, _F32(0.587), out=tmp)
    out += tmp
    np.multiply(b, _F32(0.114), out=tmp)
    out += tmp
    return out


def _select(dst: np.ndarray, mask: np.ndarray, src) -> None:
    """dst = where(mask, src, dst) on contiguous float32, in place and bitwise (branch-free: numpy's
    masked copies cost ~10x more on irregular masks). src: float32 array or scalar."""
    d = dst.view(np.int32)
    m = _buf("select_mask", dst.shape, np.int32)
    np.subtract(np.int32(0), mask.view(np.uint8), out=m)  # 0 or all ones
    tmp = _buf("select_tmp", dst.shape, np.int32)
    sb = np.float32(src).view(np.int32) if np.ndim(src) == 0 else src.view(np.int32)
    np.bitwise_xor(d, sb, out=tmp)
    tmp &= m
    d ^= tmp


def _rgb_to_hsv(r, g, b):
    """torchvision's _rgb2hsv on float planes in [0, 1] -> (h, s, v) planes, h in [0, 1).
    The results are workspace buffers (valid until the next call)."""
    shp, one = r.shape, _F32(1)
    maxc, minc = _buf("hsv_max", shp), _buf("hsv_min", shp)
    np.maximum(r, g, out=maxc)
    np.maximum(maxc, b, out=maxc)
    np.minimum(r, g, out=minc)
    np.minimum(minc, b, out=minc)
    eqc = np.equal(maxc, minc, out=_buf("hsv_eq", shp, bool))
    cr = np.subtract(maxc, minc, out=_buf("hsv_cr", shp))
    den = minc  # minc is not needed any more: den = where(eqc, 1, maxc)
    np.copyto(den, maxc)
    _select(den, eqc, one)
    s = np.divide(cr, den, out=_buf("hsv_s", shp))
    _select(cr, eqc, one)  # cr becomes crd = where(eqc, 1, cr)
    rc = np.subtract(maxc, r, out=_buf("hsv_rc", shp))
    rc /= cr
    gc = np.subtract(maxc, g, out=_buf("hsv_gc", shp))
    gc /= cr
    bc = np.subtract(maxc, b, out=_buf("hsv_bc", shp))
    bc /= cr
    # h = where(maxc == r, bc - gc, where(maxc == g, 2 + rc - bc, 4 + gc - rc))
    h = np.add(_F32(4.0), gc, out=_buf("hsv_h", shp))
    h -= rc
    t, m = den, eqc
    np.add(_F32(2.0), rc, out=t)
    t -= bc
    np.equal(maxc, g, out=m)
    _select(h, m, t)
    np.subtract(bc, gc, out=t)
    np.equal(maxc, r, out=m)
    _select(h, m, t)
    # h = mod(h / 6 + 1, 1); h / 6 + 1 lies in [5/6, 11/6], where mod is an exact subtraction
    h *= _F32(1 / 6)
    h += one
    np.greater_equal(h, one, out=m)
    h -= m  # subtracts 1.0 where h >= 1, 0.0 elsewhere
    return h, s, maxc


def _hsv_to_rgb_into(h, s, v, out):
    """Inverse of _rgb_to_hsv (the sector formula torchvision's _hsv2rgb implements), written into
    planar `out` [3, ...]. k = mod(n + 6h, 6) with n + 6h in [n, n + 6]: an exact subtraction."""
    shp = h.shape
    h6 = np.multiply(h, _F32(6), out=_buf("rgb_h6", shp))
    vs = np.multiply(v, s, out=_buf("rgb_vs", shp))
    k, m = _buf("rgb_k", shp), _buf("rgb_m", shp)
    mask = _buf("rgb_mask", shp, bool)
    six, four = _F32(6), _F32(4)
    for c, n in enumerate((5.0, 3.0, 1.0)):
        np.add(_F32(n), h6, out=k)
        np.greater_equal(k, six, out=mask)
        np.multiply(mask, six, out=m)
        k -= m  # k - 6 where k >= 6, k - 0 elsewhere
        np.subtract(four, k, out=m)
        np.minimum(k, m, out=m)
        np.clip(m, 0, 1, out=m)
        m *= vs
        np.subtract(v, m, out=out[c])
    return out


def draw_jitter(rng: np.random.Generator, brightness, contrast, saturation, hue):
    """The random draws of one color_jitter call, in order: (fb, fc, fs, fh float32, order [4]
    of 0 brightness / 1 contrast / 2 saturation / 3 hue)."""
    fb = np.float32(rng.uniform(max(0, 1 - brightness), 1 + brightness))
    fc = np.float32(rng.uniform(max(0, 1 - contrast), 1 + contrast))
    fs = np.float32(rng.uniform(max(0, 1 - saturation), 1 + saturation))
    fh = np.float32(rng.uniform(-hue, hue))
    return fb, fc, fs, fh, rng.permutation(4)


def _jitter_planar(
    x: np.ndarray, rng: np.random.Generator, brightness, contrast, saturation, hue
) -> np.ndarray:
    """color_jitter on planar float32 [3, T, H, W] (modified in place and returned)."""
    fb, fc, fs, fh, order = draw_jitter(rng, brightness, contrast, saturation, hue)
    for op in order:
        if op == 0:
            x *= fb
            np.clip(x, 0, 1, out=x)
        elif op == 1:
            g = gray(x[0], x[1], x[2], _buf("jitter_gray", x.shape[1:]))
            mean = g.mean(axis=(-2, -1), keepdims=True, dtype=np.float32)
            x *= fc
            x += (1 - fc) * mean
            np.clip(x, 0, 1, out=x)
        elif op == 2:
            g = gray(x[0], x[1], x[2], _buf("jitter_gray", x.shape[1:]))
            g *= 1 - fs
            x *= fs
            x += g
            np.clip(x, 0, 1, out=x)
        else:
            h, sat, v = _rgb_to_hsv(x[0], x[1], x[2])
            h += fh  # mod(h + fh, 1), h + fh in [-0.5, 1.5]
            mask = _buf("jitter_mask", h.shape, bool)
            np.less(h, 0, out=mask)
            h += mask  # + 1 where h < 0 (rounded like np.mod's fmod(h, 1) + 1)
            np.greater_equal(h, 1, out=mask)
            h -= mask
            x = _hsv_to_rgb_into(h, sat, v, x)
    return x


def color_jitter(
    x: np.ndarray,
    rng: np.random.Generator,
    brightness: float,
    contrast: float,
    saturation: float,
    hue: float,
) -> np.ndarray:
    """torchvision ColorJitter semantics on float [T, H, W, 3] in [0, 1]: random order of the four
    adjustments, factors uniform in [1-b, 1+b] etc., hue shift uniform in [-hue, hue]. One set of
    factors per call (the original applies one transform to the whole [T] stack of a view)."""
    p = np.array(np.moveaxis(np.asarray(x, np.float32), -1, 0), order="C", copy=True)
    p = _jitter_planar(p, rng, brightness, contrast, saturation, hue)
    return np.ascontiguousarray(np.moveaxis(p, 0, -1))


def _video_planar_u8(
    frames: np.ndarray, cfg: DataConfig, rng: np.random.Generator | None, key: str
) -> np.ndarray:
    """uint8 [T, H, W, 3] -> uint8 planar [3, T, S, S] in a workspace buffer (see video_transform)."""
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise DataError(f"{key}: expected uint8 [T,H,W,3], got {frames.dtype} {frames.shape}")
    t, h, w = frames.shape[:3]
    top, left, ch, cw = crop_box(h, w, cfg.crop_scale, rng)
    x = _buf("video_in", (3, t, ch, cw))
    np.copyto(x, frames[:, top : top + ch, left : left + cw].transpose(3, 0, 1, 2))
    x /= _F32(255.0)
    x = _resize_planar(x, cfg.image_size, cfg.image_size)
    if rng is not None and cfg.color_jitter is not None:  # x is a workspace buffer: in place
        x = _jitter_planar(x, rng, *cfg.color_jitter)
    x *= _F32(255)
    out = _buf("video_out", x.shape, np.uint8)
    np.copyto(out, x, casting="unsafe")  # truncating cast, as astype(uint8)
    return out


def video_transform(
    frames: np.ndarray, cfg: DataConfig, rng: np.random.Generator | None, key: str = "video"
) -> np.ndarray:
    """uint8 [T, H, W, 3] -> uint8 [T, S, S, 3] (S = cfg.image_size). rng None = eval."""
    return np.ascontiguousarray(_video_planar_u8(frames, cfg, rng, key).transpose(1, 2, 3, 0))


def _pixel_values_inplace(x: np.ndarray) -> np.ndarray:
    x /= _F32(255.0)
    x -= _F32(0.5)
    x /= _F32(0.5)
    return x


def to_pixel_values(u8: np.ndarray) -> np.ndarray:
    """uint8 -> float32 (u8 / 255 - 0.5) / 0.5."""
    return _pixel_values_inplace(u8.astype(np.float32))


def views_to_pixel_values(
    views: list[np.ndarray], cfg: DataConfig, rng: np.random.Generator | None
) -> np.ndarray:
    """{view: uint8 [T, H, W, 3]} in cfg.video_keys order -> pixel_values float32
    [T*V, S, S, 3] ordered (t v): video_transform per view (drawing from `rng` view by view),
    then to_pixel_values."""
    out = None
    for i, (k, frames) in enumerate(zip(cfg.video_keys, views, strict=True)):
        u8 = _video_planar_u8(frames, cfg, rng, k)
        if out is None:
            out = np.empty((u8.shape[1], len(views)) + u8.shape[2:] + (3,), np.float32)
        elif u8.shape[1] != out.shape[0]:
            raise DataError(f"{k}: {u8.shape[1]} frames, the first view has {out.shape[0]}")
        np.copyto(out[:, i], u8.transpose(1, 2, 3, 0))
    return _pixel_values_inplace(out.reshape((-1,) + out.shape[2:]))

