"""Optional on-device video augmentation (off by default): the host decodes and crops uint8 frames,
the accelerator does the resize, colour jitter and normalization inside the jitted train step.

Host (groot_jax/data/device_inputs.py): `SampleTransform(..., device_augment=True)` emits, instead
of `pixel_values`,
  pixel_u8  uint8   [T*V, ch, cw, 3]  the cropped frames, images ordered (t v)
  augment   float32 [T*V, 8]          (fb, fc, fs, fh, op0, op1, op2, op3): jitter factors and
                                      order (0 brightness, 1 contrast, 2 saturation, 3 hue; -1 none)
drawn from the sample rng exactly as the host path draws them (same crops, same factors).
Device: `pixel_values = augment_images(pixel_u8, augment, 224)` -> float32 [..., T*V, 224, 224, 3]
in [-1, 1], or `apply(batch)` on a collated batch.

With `PipelineConfig(device_yuv=True)` the host does not even convert to RGB: it ships the crop of
the decoded yuv420p planes,
  pixel_y   uint8 [T*V, ch, cw]      the luma crop
  pixel_u   uint8 [T*V, ch2, cw2]    the chroma rows/columns covering it (ch2 = min(ch//2+1, H/2))
  pixel_v   uint8 [T*V, ch2, cw2]
  yuv_meta  int32 [T*V, 3]           (row, column) of the crop in the 2x-upsampled chroma window,
                                     and the conversion (groot_jax.data.video.YUV_CONVERSIONS)
(about half the bytes of the RGB crop, and no swscale call on the host), and `yuv_to_rgb` rebuilds
the RGB crop from swscale's own conversion, tabulated exhaustively (groot_jax/data/yuv_tables.py):
bit-exact to the host's RGB, so the tolerance below is unchanged.

Equality with the host path (groot_jax/data/image_transforms.py, bit-exact to torchvision): the same
operations in float32. uint8 <-> float conversions go through the host's lookup values; the
antialiased resize is applied tap by tap in torch's order with each step rounded like a fused
multiply-add (Dekker/Knuth error-free float32 arithmetic, no float64 needed), which reproduces the
host resize bit for bit on CPU. The colour jitter uses jnp formulas (mean reduction order, jnp.mod,
division lowering differ), so a few values land on the other side of the truncating x255 uint8
cast. Stated tolerance, checked by tests/data/test_device_augment.py on frames with flat and grey
regions: every pixel value within one uint8 level (1/127.5) of the host's, and fewer than 1e-3 of
the values differing (measured on CPU: 0 without jitter, <= 1.5e-5 with jitter). Not bit-exact,
hence off by default.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from groot_jax.data.image_transforms import aa_taps, gray
from groot_jax.data.yuv_tables import yuv_tables

_U8_TO_F32 = np.arange(256, dtype=np.float32) / np.float32(255.0)  # == host u8 / 255
_U8_TO_PIX = (_U8_TO_F32 - np.float32(0.5)) / np.float32(0.5)  # == host to_pixel_values


@functools.lru_cache(maxsize=32)
def resize_matrix(in_size: int, out_size: int) -> np.ndarray:
    """Dense float32 [out, in] matrix of the antialiased bilinear taps (rows sum to 1)."""
    idx, wts = aa_taps(in_size, out_size)
    m = np.zeros((out_size, in_size), np.float32)
    for k in range(idx.shape[1]):
        np.add.at(m, (np.arange(out_size), idx[:, k]), wts[:, k])
    return m


def _split(a):
    """Veltkamp split of float32 a into 12-bit halves: a == hi + lo exactly."""
    c = a * np.float32(4097.0)
    hi = c - (c - a)
    return hi, a - hi


def _split_np(a: np.ndarray):
    a = a.astype(np.float32)
    c = a * np.float32(4097.0)
    hi = (c - (c - a)).astype(np.float32)
    return hi, (a - hi).astype(np.float32)


def _fma(x, w_hi, w_lo, w, acc):
    """round32(acc + x*w) (x*w exact), as torch's FMA kernel and the host emulation compute it,
    from float32 operations only: Dekker's exact product, Knuth's exact sum, one final rounding
    of the small terms (equal to a fused multiply-add except in rare double-rounding ties)."""
    p = x * w
    x_hi, x_lo = _split(x)
    e = ((x_hi * w_hi - p) + x_hi * w_lo + x_lo * w_hi) + x_lo * w_lo  # x*w == p + e
    s = acc + p
    bb = s - acc
    t = (acc - (s - bb)) + (p - bb)  # acc + p == s + t
    return s + (t + e)


def _resample(x, axis: int, out_size: int):
    """One separable pass, tap by tap in torch's order: out = x0*w0, then out = fma(xk, wk, out)."""
    idx, wts = aa_taps(x.shape[axis], out_size)
    shape = [1] * x.ndim
    shape[axis] = out_size
    acc = jnp.take(x, idx[:, 0], axis=axis) * wts[:, 0].reshape(shape)
    for k in range(1, idx.shape[1]):
        w = wts[:, k].reshape(shape)
        w_hi, w_lo = _split_np(w)
        acc = _fma(jnp.take(x, idx[:, k], axis=axis), w_hi, w_lo, w, acc)
    return acc


def _hue(x, fh):
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    maxc = jnp.maximum(jnp.maximum(r, g), b)
    minc = jnp.minimum(jnp.minimum(r, g), b)
    eqc = maxc == minc
    cr = maxc - minc
    s = cr / jnp.where(eqc, 1.0, maxc)
    crd = jnp.where(eqc, 1.0, cr)
    rc, gc, bc = (maxc - r) / crd, (maxc - g) / crd, (maxc - b) / crd
    h = jnp.where(maxc == r, bc - gc, jnp.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = jnp.mod(h * jnp.float32(1 / 6) + 1.0, 1.0)
    h = jnp.mod(h + fh, 1.0)
    h6, vs = h * 6.0, maxc * s
    out = [
        maxc - vs * jnp.clip(jnp.minimum(k, 4.0 - k), 0.0, 1.0)
        for k in (jnp.mod(n + h6, 6.0) for n in (5.0, 3.0, 1.0))
    ]
    return jnp.stack(out, -1)


def _jitter_one(x, p):
    """x float32 [S, S, 3] in [0, 1]; p [8] = (fb, fc, fs, fh, op0..op3)."""
    fb, fc, fs, fh = p[0], p[1], p[2], p[3]
    luma = lambda x: gray(x[..., 0], x[..., 1], x[..., 2])
    branches = (
        lambda x: jnp.clip(x * fb, 0.0, 1.0),
        lambda x: jnp.clip(fc * x + (1 - fc) * jnp.mean(luma(x)), 0.0, 1.0),
        lambda x: jnp.clip(fs * x + (1 - fs) * luma(x)[..., None], 0.0, 1.0),
        lambda x: _hue(x, fh),
        lambda x: x,  # op -1: no jitter
    )
    for i in range(4):
        op = p[4 + i].astype(jnp.int32)
        x = jax.lax.switch(jnp.where(op < 0, 4, op), branches, x)
    return x


@functools.partial(jax.jit, static_argnames=("image_size",))
def augment_images(pixel_u8: jax.Array, augment: jax.Array, image_size: int = 224) -> jax.Array:
    """uint8 [..., ch, cw, 3] cropped frames + float32 [..., 8] parameters -> pixel_values float32
    [..., S, S, 3] in [-1, 1]: resize (horizontal, then vertical), jitter, x255 truncation to
    uint8 levels, (u8 / 255 - 0.5) / 0.5."""
    lead = pixel_u8.shape[:-3]
    ch, cw = pixel_u8.shape[-3:-1]
    # uint8 -> float by table: XLA may turn x / 255 into x * (1/255), which rounds differently
    x = jnp.asarray(_U8_TO_F32)[pixel_u8.reshape((-1, ch, cw, 3))]
    p = augment.reshape((-1, 8)).astype(jnp.float32)
    if cw != image_size:
        x = _resample(x, 2, image_size)
    if ch != image_size:
        x = _resample(x, 1, image_size)
    x = jax.vmap(_jitter_one)(x, p)
    u8 = jnp.clip(jnp.trunc(x * 255.0), 0.0, 255.0).astype(jnp.uint8)
    out = jnp.asarray(_U8_TO_PIX)[u8]
    return out.reshape(lead + (image_size, image_size, 3))


@jax.jit
def yuv_to_rgb(pixel_y: jax.Array, pixel_u: jax.Array, pixel_v: jax.Array, yuv_meta: jax.Array
               ) -> jax.Array:
    """Cropped yuv420p planes (see the module docstring) -> uint8 [..., ch, cw, 3], equal to
    swscale's RGB of the frame, cropped. Nearest chroma: each chroma sample covers 2x2 pixels."""
    lead, (ch, cw) = pixel_y.shape[:-2], pixel_y.shape[-2:]
    ch2, cw2 = pixel_u.shape[-2:]
    meta = yuv_meta.reshape(-1, 3).astype(jnp.int32)

    def upsample(c, m):  # [ch2, cw2] -> [ch, cw] at the crop's offset
        up = jnp.repeat(jnp.repeat(c, 2, axis=0), 2, axis=1)
        return jax.lax.dynamic_slice(up, (m[0], m[1]), (ch, cw))

    u = jax.vmap(upsample)(pixel_u.reshape(-1, ch2, cw2), meta).astype(jnp.int32)
    v = jax.vmap(upsample)(pixel_v.reshape(-1, ch2, cw2), meta).astype(jnp.int32)
    y = pixel_y.reshape(-1, ch, cw).astype(jnp.int32)
    t = yuv_tables()
    c = meta[:, 2, None, None] * 256
    r = jnp.asarray(t.r)[((c + v) << 8) + y]
    b = jnp.asarray(t.b)[((c + u) << 8) + y]
    g = jnp.asarray(t.g)[(jnp.asarray(t.g_class)[((c + u) << 8) + v] << 8) + y]
    return jnp.stack([r, g, b], -1).reshape(lead + (ch, cw, 3))


YUV_KEYS = ("pixel_y", "pixel_u", "pixel_v", "yuv_meta")


def apply(batch: dict, image_size: int = 224) -> dict:
    """A collated batch with `pixel_u8` [B, N, ch, cw, 3] (or the yuv420p crops `pixel_y`,
    `pixel_u`, `pixel_v`, `yuv_meta`) + `augment` [B, N, 8] -> the same batch with `pixel_values`
    [B, N, S, S, 3] (those keys removed). Other batches pass unchanged."""
    if "pixel_y" in batch:
        pixel_u8 = yuv_to_rgb(*(batch[k] for k in YUV_KEYS))
    elif "pixel_u8" in batch:
        pixel_u8 = batch["pixel_u8"]
    else:
        return batch
    out = {k: v for k, v in batch.items() if k not in ("pixel_u8", "augment", *YUV_KEYS)}
    out["pixel_values"] = augment_images(pixel_u8, batch["augment"], image_size)
    return out
