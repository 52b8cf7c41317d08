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
"""

from __future__ import annotations

import functools

import numpy as np

from groot_jax.data import rotation as rot
from groot_jax.data.embodiments import embodiment_id
from groot_jax.data.errors import DataError
from groot_jax.data.modality import DataConfig, LeRobotModality
from groot_jax.data.normalize import Normalizer
from groot_jax.data.prompt import PromptTokenizer, format_language

# ---------------------------------------------------------------- video


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
    return idx, wts


def _resample(x: np.ndarray, axis: int, out_size: int) -> np.ndarray:
    """One separable pass. Accumulation emulates torch's CPU kernel compiled with fused multiply-add:
    out = x0*w0 (float32), then out = fma(xk, wk, out) rounded to float32 once per tap (the float64
    product of two float32 values is exact)."""
    idx, wts = _aa_taps(x.shape[axis], out_size)
    shape = [1] * x.ndim
    shape[axis] = out_size
    acc = np.take(x, idx[:, 0], axis=axis) * wts[:, 0].reshape(shape)
    for k in range(1, idx.shape[1]):
        term = np.take(x, idx[:, k], axis=axis).astype(np.float64) * wts[:, k].astype(
            np.float64
        ).reshape(shape)
        acc = (acc + term).astype(np.float32)
    return acc


def resize_aa(x: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """float32 [..., H, W, C] -> [..., out_h, out_w, C]; bilinear, antialias, align_corners=False
    (torchvision Resize on tensors): horizontal pass first, then vertical."""
    x = np.asarray(x, np.float32)
    h, w = x.shape[-3], x.shape[-2]
    if w != out_w:
        x = _resample(x, x.ndim - 2, out_w)
    if h != out_h:
        x = _resample(x, x.ndim - 3, out_h)
    return x


def crop_box(h: int, w: int, scale: float, rng: np.random.Generator | None):
    ch, cw = int(h * scale), int(w * scale)
    if rng is None:  # torchvision CenterCrop
        top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
    else:  # RandomCrop
        top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    return top, left, ch, cw


def _gray(x):
    return 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]


def _rgb_to_hsv(r, g, b):
    """torchvision's _rgb2hsv on float planes in [0, 1] -> (h, s, v) planes, h in [0, 1)."""
    maxc = np.maximum(np.maximum(r, g), b)
    minc = np.minimum(np.minimum(r, g), b)
    eqc = maxc == minc
    cr = maxc - minc
    one = np.float32(1)
    s = cr / np.where(eqc, one, maxc)
    crd = np.where(eqc, one, cr)
    rc, gc, bc = (maxc - r) / crd, (maxc - g) / crd, (maxc - b) / crd
    h = np.where(maxc == r, bc - gc, np.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = np.mod(h * np.float32(1 / 6) + one, one)
    return h, s, maxc


def _hsv_to_rgb(h, s, v):
    """Inverse of _rgb_to_hsv (the sector formula torchvision's _hsv2rgb implements) -> [..., 3]."""
    h6 = h * np.float32(6)
    vs = v * s
    out = []
    for n in (5.0, 3.0, 1.0):
        k = np.mod(np.float32(n) + h6, np.float32(6))
        out.append(v - vs * np.clip(np.minimum(k, np.float32(4) - k), 0, 1))
    return np.stack(out, -1)


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
    fb = np.float32(rng.uniform(max(0, 1 - brightness), 1 + brightness))
    fc = np.float32(rng.uniform(max(0, 1 - contrast), 1 + contrast))
    fs = np.float32(rng.uniform(max(0, 1 - saturation), 1 + saturation))
    fh = np.float32(rng.uniform(-hue, hue))
    for op in rng.permutation(4):
        if op == 0:
            x = np.clip(x * fb, 0, 1)
        elif op == 1:
            mean = _gray(x).mean(axis=(-2, -1), keepdims=True, dtype=np.float32)[..., None]
            x = np.clip(fc * x + (1 - fc) * mean, 0, 1)
        elif op == 2:
            g = _gray(x)[..., None]
            x = np.clip(fs * x + (1 - fs) * g, 0, 1)
        else:
            r, g, b = (np.ascontiguousarray(x[..., c]) for c in range(3))
            h, sat, v = _rgb_to_hsv(r, g, b)
            x = _hsv_to_rgb(np.mod(h + fh, np.float32(1)), sat, v)
    return x.astype(np.float32, copy=False)


def video_transform(
    frames: np.ndarray, cfg: DataConfig, rng: np.random.Generator | None, key: str = "video"
) -> np.ndarray:
    """uint8 [T, H, W, 3] -> uint8 [T, S, S, 3] (S = cfg.image_size). rng None = eval."""
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise DataError(f"{key}: expected uint8 [T,H,W,3], got {frames.dtype} {frames.shape}")
    x = frames.astype(np.float32) / 255.0
    h, w = x.shape[1:3]
    top, left, ch, cw = crop_box(h, w, cfg.crop_scale, rng)
    x = x[:, top : top + ch, left : left + cw]
    x = resize_aa(x, cfg.image_size, cfg.image_size)
    if rng is not None and cfg.color_jitter is not None:
        x = color_jitter(x, rng, *cfg.color_jitter)
    return (x * 255).astype(np.uint8)


def to_pixel_values(u8: np.ndarray) -> np.ndarray:
    return ((u8.astype(np.float32) / 255.0 - 0.5) / 0.5).astype(np.float32)


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
    ):
        self.cfg = cfg
        self.pseudo_action_slot = pseudo_action_slot
        self.codec = StateActionCodec(cfg, modality, stats)
        self.tokenizer = tokenizer
        self.has_actions = has_actions
        self.quirk = inference_language_quirk
        self.embodiment_id = np.int32(embodiment_id(cfg.embodiment_tag))

    def __call__(self, sample: dict, rng: np.random.Generator | None = None) -> dict:
        cfg = self.cfg
        views = [video_transform(sample[k], cfg, rng, k) for k in cfg.video_keys]  # each [T,S,S,3]
        imgs = np.stack(views, 1).reshape((-1,) + views[0].shape[1:]) if views else None  # (t v)
        out = {"embodiment_id": self.embodiment_id}
        if imgs is not None:
            out["pixel_values"] = to_pixel_values(imgs)
        out["state"], out["state_mask"] = self.codec.state(sample)
        if self.has_actions and all(k in sample for k in cfg.action_keys):
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
            out["input_ids"] = self.tokenizer(0 if imgs is None else imgs.shape[0], text)
        return out
