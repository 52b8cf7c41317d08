"""msgpack encoding of nested dicts/lists holding numpy arrays (imports numpy and msgpack only).

Arrays travel as {"__nd__": True, "dtype": str, "shape": [...], "data": bytes} in C order.
Object and other non-numeric dtypes are refused on both sides (nothing is ever unpickled).
"""
from __future__ import annotations

import math
from typing import Any

import msgpack
import numpy as np

ALLOWED_KINDS = set("biufc")  # bool, int, uint, float, complex
MAX_DIMS = 8


class WireError(ValueError):
    """A message that does not decode to the expected structure."""


def _default(obj):
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in ALLOWED_KINDS:
            raise TypeError(f"cannot send arrays of dtype {obj.dtype}")
        return {"__nd__": True, "dtype": obj.dtype.str, "shape": list(obj.shape),
                "data": np.ascontiguousarray(obj).tobytes()}
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"cannot encode {type(obj).__name__}")


def _hook(obj: dict):
    if obj.get("__nd__") is not True:
        return obj
    try:
        dtype = np.dtype(obj["dtype"])
        shape = tuple(int(s) for s in obj["shape"])
        data = obj["data"]
    except (KeyError, TypeError, ValueError) as e:
        raise WireError(f"malformed array: {e}") from e
    if dtype.kind not in ALLOWED_KINDS or len(shape) > MAX_DIMS or any(s < 0 for s in shape):
        raise WireError(f"refused array dtype {dtype} / shape {shape}")
    expected = math.prod(shape) * dtype.itemsize  # Python ints: np.prod(int64) wraps to 0
    if not isinstance(data, bytes) or len(data) != expected:
        raise WireError(f"array of shape {shape} and dtype {dtype} needs {expected} bytes, "
                        f"got {len(data) if isinstance(data, bytes) else type(data).__name__}")
    return np.frombuffer(data, dtype=dtype).reshape(shape).copy()


def pack(obj: Any) -> bytes:
    return msgpack.packb(obj, default=_default, use_bin_type=True)


def unpack(data: bytes) -> Any:
    try:
        return msgpack.unpackb(data, object_hook=_hook, raw=False, strict_map_key=True)
    except WireError:
        raise
    except Exception as e:  # msgpack's own errors: truncated, extra data, bad types
        raise WireError(f"not a valid msgpack message: {type(e).__name__}: {e}") from e
