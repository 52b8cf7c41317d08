"""Host halves of the optional on-device augmentation and YUV transport (the accelerator halves are
groot_jax/data/device_augment.py, which imports JAX; this module does not, so worker processes can
use it). Both draw exactly what the host path (image_transforms.views_to_pixel_values) draws, in
the same order, so switching the device path on changes no crop and no jitter factor.
"""

from __future__ import annotations

import numpy as np

from groot_jax.data.errors import DataError
from groot_jax.data.image_transforms import crop_box, draw_jitter
from groot_jax.data.modality import DataConfig


def device_augment_inputs(
    views: list[np.ndarray], cfg: DataConfig, rng: np.random.Generator | None
) -> tuple[np.ndarray, np.ndarray]:
    """Host half of the optional on-device augmentation (device_augment.py):
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

