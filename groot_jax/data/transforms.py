"""Per-sample transforms matching the original pipeline order (spec 9.3), and the inverse path.

`SampleTransform(cfg, stats, tokenizer, train)` turns a raw sample (see source.py) into the
unbatched model input:
  input_ids      int32   [L]               (prompt; batching left-pads)
  pixel_values   float32 [V*T_o, 224, 224, 3] in [-1, 1], images ordered (t v)
  state          float32 [T_o, max_state_dim]    state_mask bool [T_o, max_state_dim]
  action         float32 [T_a, max_action_dim]   action_mask float32 [T_a, max_action_dim]
  embodiment_id  int32   []
Video: uint8 -> float/255 -> crop (size int(H*0.95), int(W*0.95); random in training, centre in
eval) -> resize 224x224 bilinear with antialias (torchvision semantics) -> colour jitter (training)
-> x255 and truncating cast to uint8 (as the original) -> (u8/255-0.5)/0.5.
State/action: rotation conversion, then normalization per key; `sin_cos` state keys become
[sin x, cos x]; keys concatenated in config order; zero padding to 64/32 with masks. More dims than
the maximum raise DataError (the original silently truncates state above 64).
With `SampleTransform(..., device_augment=True)` (off by default) the sample carries the cropped
uint8 frames `pixel_u8` [V*T_o, ch, cw, 3] and the jitter draws `augment` [V*T_o, 8] instead of
`pixel_values`, which groot_jax.data.device_augment computes on the accelerator.
"""

from __future__ import annotations

import dataclasses
import functools
import threading

import numpy as np

from groot_jax.data import rotation as rot
from groot_jax.data.embodiments import embodiment_id
from groot_jax.data.errors import DataError
from groot_jax.data.modality import DataConfig, LeRobotModality
from groot_jax.data.normalize import Normalizer
from groot_jax.data.prompt import PromptTokenizer, format_language

# ---------------------------------------------------------------- video
#
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
def _aa_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
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
    """_aa_taps per tap: (indices [K, out] intp, weights float32 [K, out], weights float64 [K, out])."""
    idx, wts = _aa_taps(in_size, out_size)
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


def _gray(x, out=None):
    """Luma 0.299 r + 0.587 g + 0.114 b of planar float32 [3, ...] -> [...] (into `out`)."""
    if out is None:
        out = np.empty(x.shape[1:], np.float32)
    tmp = _buf("gray_tmp", x.shape[1:])
    np.multiply(x[0], _F32(0.299), out=out)
    np.multiply(x[1], _F32(0.587), out=tmp)
    out += tmp
    np.multiply(x[2], _F32(0.114), out=tmp)
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
            g = _gray(x, _buf("jitter_gray", x.shape[1:]))
            mean = g.mean(axis=(-2, -1), keepdims=True, dtype=np.float32)
            x *= fc
            x += (1 - fc) * mean
            np.clip(x, 0, 1, out=x)
        elif op == 2:
            g = _gray(x, _buf("jitter_gray", x.shape[1:]))
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


def device_augment_inputs(
    views: list[np.ndarray], cfg: DataConfig, rng: np.random.Generator | None
) -> tuple[np.ndarray, np.ndarray]:
    """Host half of the optional on-device augmentation (groot_jax/data/device_augment.py):
    the same random draws as views_to_pixel_values, in the same order, but only the crop is
    applied. Returns (pixel_u8 uint8 [T*V, ch, cw, 3] (t v), augment float32 [T*V, 8]) with
    augment = (fb, fc, fs, fh, op0..op3); ops are -1 when there is no jitter (eval / disabled)."""
    crops, params = [], []
    for k, frames in zip(cfg.video_keys, views, strict=True):
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise DataError(f"{k}: expected uint8 [T,H,W,3], got {frames.dtype} {frames.shape}")
        t, h, w = frames.shape[:3]
        top, left, ch, cw = crop_box(h, w, cfg.crop_scale, rng)
        crops.append(frames[:, top : top + ch, left : left + cw])
        params.append([_jitter_params(cfg, rng)] * t)
    if len(crops) == 1:  # one view: the crop as it is (a view; batching copies it once)
        return crops[0], np.array(params[0], np.float32)
    shapes = {c.shape for c in crops}
    if len(shapes) > 1:
        raise DataError(
            f"device augmentation needs views of one shape; crops are {sorted(shapes)} "
            f"({', '.join(cfg.video_keys)})"
        )
    u8 = np.stack(crops, 1)  # [T, V, ch, cw, 3]
    augment = np.array(params, np.float32).transpose(1, 0, 2).reshape(-1, 8)  # [V, T, 8] -> (t v)
    return u8.reshape((-1,) + u8.shape[2:]), augment


def _jitter_params(cfg: DataConfig, rng: np.random.Generator | None) -> list:
    """One view's jitter draws as augment values (fb, fc, fs, fh, op0..op3); ops -1 = none."""
    if rng is not None and cfg.color_jitter is not None:
        fb, fc, fs, fh, order = draw_jitter(rng, *cfg.color_jitter)
        return [fb, fc, fs, fh, *order]
    return [1, 1, 1, 0, -1, -1, -1, -1]


def _yuv_crop(f, cfg: DataConfig, rng, box=None):
    """One Yuv420Frame -> (luma crop, U and V rows/cols covering it, meta) for `box` (top, left,
    ch, cw), drawn by crop_box when None."""
    h, w = f.y.shape
    top, left, ch, cw = box if box is not None else crop_box(h, w, cfg.crop_scale, rng)
    ch2, cw2 = min(ch // 2 + 1, h // 2), min(cw // 2 + 1, w // 2)  # chroma rows/cols needed
    r0, c0 = min(top // 2, h // 2 - ch2), min(left // 2, w // 2 - cw2)
    return (f.y[top : top + ch, left : left + cw], f.u[r0 : r0 + ch2, c0 : c0 + cw2],
            f.v[r0 : r0 + ch2, c0 : c0 + cw2], (top - 2 * r0, left - 2 * c0, f.conversion))


def device_yuv_inputs(views: list, cfg: DataConfig, rng: np.random.Generator | None) -> dict:
    """Like device_augment_inputs (same draws, same order), from decoded yuv420p frames (a list of
    T groot_jax.data.video.Yuv420Frame per view) and without RGB conversion: the crop's luma and
    the chroma covering it, for groot_jax.data.device_augment.yuv_to_rgb. Returns pixel_y uint8
    [T*V, ch, cw], pixel_u / pixel_v uint8 [T*V, ch2, cw2], yuv_meta int32 [T*V, 3] (crop offset
    in the 2x-upsampled chroma window, conversion), augment float32 [T*V, 8]; images (t v)."""
    if len(views) == 1 and len(views[0]) == 1:  # one image: views into the decoded planes
        f = views[0][0]
        y, u, v, meta = _yuv_crop(f, cfg, rng)
        return {"pixel_y": y[None], "pixel_u": u[None], "pixel_v": v[None],
                "yuv_meta": np.array([meta], np.int32),
                "augment": np.array([_jitter_params(cfg, rng)], np.float32)}
    per_view = []
    for k, frames in zip(cfg.video_keys, views, strict=True):
        h, w = frames[0].y.shape
        if any(f.y.shape != (h, w) for f in frames):
            raise DataError(f"{k}: frames of one sample differ in size")
        box = crop_box(h, w, cfg.crop_scale, rng)  # one crop and one jitter per view
        p = _jitter_params(cfg, rng)
        per_view.append([(*_yuv_crop(f, cfg, rng, box), p) for f in frames])
    images = [img for step in zip(*per_view, strict=True) for img in step]  # (t v)
    if len({img[0].shape for img in images}) > 1:
        raise DataError(f"device augmentation needs views of one shape ({', '.join(cfg.video_keys)})")
    return {
        "pixel_y": np.stack([img[0] for img in images]),
        "pixel_u": np.stack([img[1] for img in images]),
        "pixel_v": np.stack([img[2] for img in images]),
        "yuv_meta": np.array([img[3] for img in images], np.int32),
        "augment": np.array([img[4] for img in images], np.float32),
    }


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


# ---------------------------------------------------------------- state / action


class StateActionCodec:
    """Rotation + normalization per key, concatenation, padding; and the inverse for inference.

    stats: {"state": {name: {stat: [d]}}, "action": {...}} (per-key, as in metadata.json).
    """

    def __init__(self, cfg: DataConfig, modality: LeRobotModality, stats: dict):
        self.cfg = cfg
        self.modality = modality
        self.norm: dict[str, Normalizer | str | None] = {}
        self.dims: dict[str, int] = {}
        for group, keys, modes, rots in (
            ("state", cfg.state_keys, cfg.state_normalization, cfg.state_target_rotations),
            ("action", cfg.action_keys, cfg.action_normalization, cfg.action_target_rotations),
        ):
            for key in keys:
                name = key.split(".", 1)[1]
                meta = modality.lookup(key)
                mode = modes.get(key)
                target = rots.get(key)
                if target is not None and meta.rotation_type is None:
                    raise DataError(
                        f"{key}: target rotation {target} but modality.json gives no rotation_type"
                    )
                d = rot.rotation_dim(target) if target else meta.dim
                if target is not None and meta.absolute and mode is not None:
                    b = rot.rotation_bounds(target)
                    self.norm[key] = Normalizer(
                        "min_max",
                        {"min": np.full(d, -b, np.float32), "max": np.full(d, b, np.float32)},
                        key,
                    )
                elif target is not None and not meta.absolute and mode is not None:
                    raise DataError(f"{key}: relative rotations cannot be normalized")
                elif mode == "sin_cos":
                    if group != "state":
                        raise DataError(f"{key}: sin_cos is a state transform")
                    self.norm[key] = "sin_cos"
                    d = 2 * d
                elif mode is None:
                    self.norm[key] = None
                else:
                    s = (stats.get(group) or {}).get(name)
                    if s is None and mode != "binary":
                        raise DataError(f"{key}: no statistics for mode {mode}")
                    self.norm[key] = Normalizer(mode, s or {}, key)
                self.dims[key] = d
        self.state_dim = sum(self.dims[k] for k in cfg.state_keys)
        self.action_dim = sum(self.dims[k] for k in cfg.action_keys)
        if self.state_dim > cfg.max_state_dim:
            raise DataError(
                f"{cfg.name}: state has {self.state_dim} dims > max_state_dim {cfg.max_state_dim}"
            )
        if self.action_dim > cfg.max_action_dim:
            raise DataError(
                f"{cfg.name}: action has {self.action_dim} dims > max_action_dim {cfg.max_action_dim}"
            )

    def encode_key(self, key: str, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float32)
        meta = self.modality.lookup(key)
        if x.shape[-1] != meta.dim:
            raise DataError(f"{key}: expected last dim {meta.dim}, got shape {x.shape}")
        target = (
            self.cfg.state_target_rotations
            if key.startswith("state.")
            else self.cfg.action_target_rotations
        ).get(key)
        if target is not None:
            x = rot.convert(x, meta.rotation_type, target)
        n = self.norm[key]
        if n == "sin_cos":
            return np.concatenate([np.sin(x), np.cos(x)], -1).astype(np.float32)
        return x if n is None else n(x)

    def decode_key(self, key: str, y: np.ndarray) -> np.ndarray:
        n = self.norm[key]
        if n == "sin_cos":
            raise DataError(f"{key}: sin_cos has no inverse")
        x = y if n is None else n.inverse(y)
        meta = self.modality.lookup(key)
        target = (
            self.cfg.state_target_rotations
            if key.startswith("state.")
            else self.cfg.action_target_rotations
        ).get(key)
        if target is not None:
            x = rot.convert(x, target, meta.rotation_type)
        return np.asarray(x, np.float32)

    def _concat_pad(self, sample, keys, width, t):
        parts = [self.encode_key(k, sample[k]) for k in keys]
        x = np.concatenate(parts, -1) if parts else np.zeros((t, 0), np.float32)
        t, d = x.shape
        out = np.zeros((t, width), np.float32)
        out[:, :d] = x
        mask = np.zeros((t, width), bool)
        mask[:, :d] = True
        return out, mask

    # -- per-episode tables: the same values as state() / action(), computed once per episode

    def _encode_group(self, source, ep, keys, width: int, indices) -> tuple[np.ndarray, int]:
        """(table float32 [lo + T + hi, width], lo): the episode's rows, encoded like a sample's
        window, with `lo` rows before and `hi` after for the indices of `indices` that fall
        outside the episode (pad_edges: the edge row for absolute keys, zeros for relative keys).
        Every encoding step (rotation, normalization, sin/cos) works row by row, so gathering
        rows of this table gives the values that encoding the gathered raw window gives."""
        t = ep.length
        lo, hi = max(0, -min(indices, default=0)), max(0, max(indices, default=0))
        parts = []
        for k in keys:
            col = source.key_column(ep, k)
            if source.is_absolute(k):
                rows = np.concatenate([np.zeros(lo, np.intp), np.arange(t), np.full(hi, t - 1)])
                raw = col[rows]
            else:
                raw = np.zeros((lo + t + hi, col.shape[1]), col.dtype)
                raw[lo : lo + t] = col
            parts.append(self.encode_key(k, raw))
        out = np.zeros((lo + t + hi, width), np.float32)
        if parts:
            x = np.concatenate(parts, -1)
            out[:, : x.shape[1]] = x
        return out, lo

    def encode_episode(self, source, ep, with_actions: bool) -> EncodedEpisode:
        cfg = self.cfg
        state, state_lo = self._encode_group(
            source, ep, cfg.state_keys, cfg.max_state_dim, cfg.observation_indices
        )
        action, action_lo = None, 0
        if with_actions:
            action, action_lo = self._encode_group(
                source, ep, cfg.action_keys, cfg.max_action_dim, cfg.action_indices
            )
        return EncodedEpisode(
            ep.length,
            state,
            action,
            state_lo + np.asarray(cfg.observation_indices, np.intp),
            action_lo + np.asarray(cfg.action_indices, np.intp),
        )

    @functools.cached_property
    def state_mask(self) -> np.ndarray:
        m = np.zeros((len(self.cfg.observation_indices), self.cfg.max_state_dim), bool)
        m[:, : self.state_dim] = True
        return m

    @functools.cached_property
    def action_mask(self) -> np.ndarray:
        m = np.zeros((len(self.cfg.action_indices), self.cfg.max_action_dim), np.float32)
        m[:, : self.action_dim] = 1.0
        return m

    def state(self, sample) -> tuple[np.ndarray, np.ndarray]:
        return self._concat_pad(
            sample, self.cfg.state_keys, self.cfg.max_state_dim, len(self.cfg.observation_indices)
        )

    def action(self, sample) -> tuple[np.ndarray, np.ndarray]:
        a, m = self._concat_pad(
            sample, self.cfg.action_keys, self.cfg.max_action_dim, len(self.cfg.action_indices)
        )
        return a, m.astype(np.float32)

    def unapply_action(self, action: np.ndarray) -> dict[str, np.ndarray]:
        """Normalised model output [..., T_a, max_action_dim] -> {action.<key>: [..., T_a, d]}
        in the dataset's units (padded tail dropped, normalization and rotation inverted)."""
        action = np.asarray(action, np.float32)
        out, start = {}, 0
        for k in self.cfg.action_keys:
            d = self.dims[k]
            out[k] = self.decode_key(k, action[..., start : start + d])
            start += d
        return out


@dataclasses.dataclass
class EncodedEpisode:
    """One episode's state (and action) after rotation, normalization, concatenation and padding
    (StateActionCodec.encode_episode), as tables float32 [lo + T + hi, max dim] that carry the
    edge padding rows: the window of frame f is `table[f + offsets]`, one gather."""

    length: int
    state: np.ndarray
    action: np.ndarray | None
    state_offsets: np.ndarray  # [T_o] intp: observation_indices + the table's leading pad rows
    action_offsets: np.ndarray  # [T_a] intp

    def state_window(self, frame: int) -> np.ndarray:
        return self.state[frame + self.state_offsets]

    def action_window(self, frame: int) -> np.ndarray:
        return self.action[frame + self.action_offsets]


class SampleTransform:
    """Raw sample -> model input (see module docstring). `rng` None = eval mode."""

    def __init__(
        self,
        cfg: DataConfig,
        modality: LeRobotModality,
        stats: dict,
        tokenizer: PromptTokenizer | None,
        has_actions: bool = True,
        inference_language_quirk: bool = False,
        pseudo_action_slot: bool = False,
        device_augment: bool = False,
        device_yuv: bool = False,
    ):
        """device_augment: emit cropped uint8 frames + augmentation parameters (`pixel_u8`,
        `augment`) instead of `pixel_values`, for groot_jax.data.device_augment to finish on the
        accelerator (equal to the host path within rounding; see that module). Off by default.
        device_yuv (with device_augment): the sample's video must come as decoded yuv420p planes
        (`source.get(..., yuv=True)`) and is emitted as their crop (`pixel_y`, `pixel_u`,
        `pixel_v`, `yuv_meta`); the accelerator converts it to RGB exactly as swscale does."""
        if device_yuv and not device_augment:
            raise DataError("device_yuv=True needs device_augment=True")
        self.cfg = cfg
        self.device_augment = device_augment
        self.device_yuv = device_yuv
        self.pseudo_action_slot = pseudo_action_slot
        self.codec = StateActionCodec(cfg, modality, stats)
        self.tokenizer = tokenizer
        self.has_actions = has_actions
        self.quirk = inference_language_quirk
        self.embodiment_id = np.int32(embodiment_id(cfg.embodiment_tag))

    def __getstate__(self):  # the prompt cache is rebuilt per process
        d = dict(self.__dict__)
        d["_prompt_cache"] = {}
        return d

    def _input_ids(self, num_images: int, text: str) -> np.ndarray:
        """Tokenized prompt, memoised: the prompt is a pure function of (num_images, text) and a
        dataset has few distinct task strings, while rendering + tokenizing costs ~0.5 ms."""
        cache = self.__dict__.setdefault("_prompt_cache", {})
        key = (id(self.tokenizer), num_images, text)
        ids = cache.get(key)
        if ids is None:
            ids = self.tokenizer(num_images, text)
            if len(cache) >= 4096:
                cache.clear()
            cache[key] = ids
        return ids.copy()

    def __call__(
        self,
        sample: dict,
        rng: np.random.Generator | None = None,
        encoded: EncodedEpisode | None = None,
    ) -> dict:
        """`encoded`: the sample's episode from `codec.encode_episode`; the state and action then
        come from its rows (the sample needs no raw state/action windows, only `__frame__`)."""
        cfg = self.cfg
        out = {"embodiment_id": self.embodiment_id}
        n_img = 0
        if cfg.video_keys and getattr(self, "device_yuv", False):
            out.update(device_yuv_inputs([sample[k] for k in cfg.video_keys], cfg, rng))
            n_img = out["pixel_y"].shape[0]
        elif cfg.video_keys and getattr(self, "device_augment", False):
            views = [sample[k] for k in cfg.video_keys]
            out["pixel_u8"], out["augment"] = device_augment_inputs(views, cfg, rng)
            n_img = out["pixel_u8"].shape[0]
        elif cfg.video_keys:  # [T*V, S, S, 3], images ordered (t v)
            out["pixel_values"] = views_to_pixel_values([sample[k] for k in cfg.video_keys], cfg, rng)
            n_img = out["pixel_values"].shape[0]
        if encoded is not None:
            out["state"] = encoded.state_window(sample["__frame__"])
            out["state_mask"] = self.codec.state_mask
        else:
            out["state"], out["state_mask"] = self.codec.state(sample)
        if encoded is not None and encoded.action is not None:
            out["action"] = encoded.action_window(sample["__frame__"])
            out["action_mask"] = self.codec.action_mask
        elif self.has_actions and all(k in sample for k in cfg.action_keys):
            out["action"], out["action_mask"] = self.codec.action(sample)
        else:
            t = len(cfg.action_indices)
            out["action"] = np.zeros((t, cfg.max_action_dim), np.float32)
            out["action_mask"] = np.zeros((t, cfg.max_action_dim), np.float32)
        if self.pseudo_action_slot:  # filled later by latent / inverse-dynamics actions
            t = len(cfg.action_indices)
            out["pseudo_action"] = np.zeros((t, cfg.max_action_dim), np.float32)
            out["pseudo_action_mask"] = np.zeros((t, cfg.max_action_dim), np.float32)
        if self.tokenizer is not None:
            lang = sample.get(cfg.language_keys[0]) if cfg.language_keys else None
            text = format_language(lang, self.quirk)
            out["input_ids"] = self._input_ids(n_img, text)
        return out
