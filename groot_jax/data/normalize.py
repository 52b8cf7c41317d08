"""Normalizers (spec 9.2, original `state_action.py` `Normalizer`), with inverses for inference.

All in float32, elementwise over the last dim [..., D]; stats vectors are [D].
  min_max   2(x-min)/(max-min)-1;   0 where min == max        inverse (x+1)/2(max-min)+min
  q99       2(x-q01)/(q99-q01)-1 clipped to [-1,1]; x where q01 == q99   inverse (x+1)/2(q99-q01)+q01
  mean_std  (x-mean)/std;  x where std == 0                   inverse x*std+mean
  binary    float(x > 0.5)                                    inverse float(x > 0.5)
  scale     x / max(|min|,|max|);  x where that is 0          inverse x*max(|min|,|max|)
No mode divides by a zero range: the masked-out dims never enter a division.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from groot_jax.data.errors import DataError

MODES = ("min_max", "q99", "mean_std", "binary", "scale")


@dataclasses.dataclass(frozen=True)
class Normalizer:
    mode: str
    stats: dict  # name -> float32 [D]
    key: str = ""

    def __post_init__(self):
        if self.mode not in MODES:
            raise DataError(f"{self.key}: unknown normalization mode {self.mode!r} (known {MODES})")
        need = {
            "min_max": ("min", "max"),
            "q99": ("q01", "q99"),
            "mean_std": ("mean", "std"),
            "binary": (),
            "scale": ("min", "max"),
        }[self.mode]
        for n in need:
            if n not in self.stats:
                raise DataError(f"{self.key}: mode {self.mode} needs statistic {n!r}")

    def _s(self, name, x):
        v = np.asarray(self.stats[name], np.float32)
        if v.shape != x.shape[-1:]:
            raise DataError(
                f"{self.key}: statistic {name!r} has shape {v.shape}, data has last dim {x.shape[-1]}"
            )
        return v

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float32)
        out = np.zeros_like(x)
        if self.mode == "min_max":
            lo, hi = self._s("min", x), self._s("max", x)
            m = lo != hi
            out[..., m] = (x[..., m] - lo[m]) / (hi[m] - lo[m])
            out[..., m] = 2 * out[..., m] - 1
            return out
        if self.mode == "q99":
            lo, hi = self._s("q01", x), self._s("q99", x)
            m = lo != hi
            out[..., m] = (x[..., m] - lo[m]) / (hi[m] - lo[m])
            out[..., m] = 2 * out[..., m] - 1
            out[..., ~m] = x[..., ~m]
            return np.clip(out, -1, 1)
        if self.mode == "mean_std":
            mu, sd = self._s("mean", x), self._s("std", x)
            m = sd != 0
            out[..., m] = (x[..., m] - mu[m]) / sd[m]
            out[..., ~m] = x[..., ~m]
            return out
        if self.mode == "binary":
            return (x > 0.5).astype(np.float32)
        a = np.maximum(np.abs(self._s("min", x)), np.abs(self._s("max", x)))
        m = a != 0
        out[..., m] = x[..., m] / a[m]
        out[..., ~m] = x[..., ~m]
        return out

    def inverse(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float32)
        if self.mode == "min_max":
            lo, hi = self._s("min", x), self._s("max", x)
            return (x + 1) / 2 * (hi - lo) + lo
        if self.mode == "q99":
            lo, hi = self._s("q01", x), self._s("q99", x)
            return (x + 1) / 2 * (hi - lo) + lo
        if self.mode == "mean_std":
            return x * self._s("std", x) + self._s("mean", x)
        if self.mode == "binary":
            return (x > 0.5).astype(np.float32)
        a = np.maximum(np.abs(self._s("min", x)), np.abs(self._s("max", x)))
        return np.where(a != 0, x * a, x).astype(np.float32)
