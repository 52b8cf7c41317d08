"""The observation contract of a served policy and its checker (numpy only, no JAX).

A policy publishes a spec in its metadata (`health` returns it under "observation"):

    {"video.cam":  {"dtype": "uint8",   "shape": [1, "H", "W", 3]},
     "state.arm":  {"dtype": "float32", "shape": [1, 7]},
     "annotation.human.task_description": {"dtype": "str", "max_chars": 512, "frames": 1}}

Integer dims must match exactly (the first is T, the frames the model takes); named dims ("H",
"W") take any size in [MIN_SIDE, MAX_SIDE]. A "float32" key accepts any float dtype (cast to
float32); "uint8" only uint8; bool, int and complex arrays are refused, as are NaN and inf. Text
is a str (or a list of `frames` str, the data layer's per-frame form) of at most `max_chars`.

One observation has exactly the spec's shapes. A declared batch of B has a leading axis B on
every array and a list of B texts. `check_observation` returns the B single observations, so
batching never has to guess from shapes.
"""
from __future__ import annotations

from typing import Any

import numpy as np

MIN_SIDE, MAX_SIDE = 8, 4096  # image sides: smaller crop to nothing, larger are not a camera


class ObservationError(ValueError):
    """An observation that does not match the spec; the message names the key."""


def _shape_text(shape, batch: bool) -> str:
    return "[" + ", ".join(str(d) for d in (["B"] if batch else []) + list(shape)) + "]"


def _got(value) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype} {list(value.shape)}"
    return type(value).__name__


def _check_array(key: str, value, want: dict, batch: bool) -> np.ndarray:
    shape, dtype = list(want["shape"]), want["dtype"]
    expected = f"{dtype} {_shape_text(shape, batch)}"
    if dtype == "float32":
        expected += " (any float dtype)"
    if not isinstance(value, np.ndarray):
        raise ObservationError(f"{key}: expected {expected}, got {_got(value)}")
    ok_dtype = value.dtype.kind == "f" if dtype == "float32" else value.dtype == np.dtype(dtype)
    dims = list(value.shape[1:] if batch else value.shape)
    ok_rank = len(dims) == len(shape) and value.ndim >= batch
    bad_side = ok_rank and any(isinstance(s, str) and not MIN_SIDE <= d <= MAX_SIDE
                               for d, s in zip(dims, shape, strict=True))
    ok_dims = ok_rank and all(isinstance(s, str) or d == s for d, s in zip(dims, shape, strict=True))
    if not (ok_dtype and ok_dims) or bad_side:
        hint = ""
        if not batch and value.ndim == len(shape) + 1:
            hint = "; a batch is sent as {'observation': ..., 'batch': True}"
        elif batch and value.ndim == len(shape):
            hint = "; a declared batch needs a leading batch axis on every array"
        if bad_side:
            hint += f"; image sides must be within {MIN_SIDE}..{MAX_SIDE}"
        raise ObservationError(f"{key}: expected {expected}, got {_got(value)}{hint}")
    if dtype == "float32":
        with np.errstate(over="ignore"):  # float64 beyond float32 becomes inf, refused below
            value = value.astype(np.float32, copy=False)
        if not np.isfinite(value).all():
            where = tuple(int(i) for i in np.argwhere(~np.isfinite(value))[0])
            raise ObservationError(f"{key}: non-finite value {value[where]} at index "
                                   f"{list(where)}; expected finite {expected}")
    return value


def _check_text(key: str, value, want: dict, default: str | None) -> str:
    frames = want.get("frames", 1)
    if isinstance(value, (list, tuple)) and len(value) == frames and all(
            isinstance(v, str) for v in value):
        value = value[0]  # per-frame form: the model reads the first frame's text
    if not isinstance(value, str):
        raise ObservationError(f"{key}: expected a str (or a list of {frames} str), got "
                               f"{_got(value)}")
    if value == "":
        return _default_text(key, default)
    if len(value) > want["max_chars"]:
        raise ObservationError(f"{key}: instruction of {len(value)} characters exceeds "
                               f"max_chars {want['max_chars']}")
    return value


def _default_text(key: str, default: str | None) -> str:
    if default is None:
        raise ObservationError(f"{key}: no instruction given and this policy has no "
                               "default_instruction; send a str")
    return default


def check_observation(obs: Any, spec: dict, *, batch: bool = False, max_batch: int | None = None,
                      default_instruction: str | None = None) -> list[dict]:
    """The single observations in `obs` (one, or B for a declared batch), arrays cast and
    checked against `spec`; ObservationError naming the key and the expected dtype/shape."""
    if not isinstance(obs, dict) or not obs:
        raise ObservationError("an observation is a non-empty dict of arrays and texts; expected "
                               f"keys {sorted(spec)}")
    extra = sorted(str(k) for k in obs if k not in spec)
    if extra:
        raise ObservationError(f"unexpected keys {extra}; the policy takes {sorted(spec)}")
    missing = [k for k, w in spec.items() if k not in obs and
               (w["dtype"] != "str" or default_instruction is None)]
    if missing:
        raise ObservationError(f"observation lacks {missing}; expected " + ", ".join(
            f"{k}: " + ("str" if spec[k]["dtype"] == "str" else
                        f"{spec[k]['dtype']} {_shape_text(spec[k]['shape'], batch)}")
            for k in missing))
    arrays = [k for k, w in spec.items() if w["dtype"] != "str"]
    texts = [k for k, w in spec.items() if w["dtype"] == "str"]
    size = 1
    if batch:
        first = obs[arrays[0]] if arrays else obs.get(texts[0])
        size = len(first) if isinstance(first, (list, tuple)) or (
            isinstance(first, np.ndarray) and first.ndim) else 0
        if size < 1:
            raise ObservationError(f"{arrays[0] if arrays else texts[0]}: a declared batch needs a "
                                   f"leading batch axis of at least 1, got {_got(first)}")
        if max_batch is not None and size > max_batch:
            raise ObservationError(f"batch of {size} exceeds this server's max_batch {max_batch}")
    checked = {}
    for k in arrays:
        checked[k] = _check_array(k, obs[k], spec[k], batch)
        if batch and len(checked[k]) != size:
            raise ObservationError(f"{k}: batch of {len(checked[k])}, but {arrays[0]} has {size}")
    for k in texts:
        if k not in obs:
            checked[k] = [default_instruction] * size
        elif batch:
            if not isinstance(obs[k], (list, tuple)) or len(obs[k]) != size:
                raise ObservationError(f"{k}: expected a list of {size} str (one per batch row), "
                                       f"got {_got(obs[k])}")
            checked[k] = [_check_text(k, v, spec[k], default_instruction) for v in obs[k]]
        else:
            checked[k] = [_check_text(k, obs[k], spec[k], default_instruction)]
    if not batch:
        checked.update({k: checked[k][None] for k in arrays})
    return [{k: v[i] for k, v in checked.items()} for i in range(size)]
