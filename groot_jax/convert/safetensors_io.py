"""Reading and writing (sharded) safetensors checkpoints, tensor by tensor.

Only safetensors are ever read: pickled `.bin`/`.pt` weights are refused, never unpickled.
Headers are parsed and checked against the file size before any tensor is touched, so a
truncated or corrupt file fails with its name instead of a crash deep inside a read.
"""
from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Callable, Iterable

import ml_dtypes
import numpy as np
from safetensors.numpy import save_file

SINGLE = "model.safetensors"
INDEX = "model.safetensors.index.json"
# The safetensors header's dtype codes (the file format's own names). Not the same map as
# convert.checkpoint.DTYPES, which holds the names a user types (--dtype bf16).
DTYPES = {"F32": np.float32, "BF16": ml_dtypes.bfloat16, "F16": np.float16, "F64": np.float64,
          "I64": np.int64, "I32": np.int32, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}
NAMES = {np.dtype(v): k for k, v in DTYPES.items()}


class CheckpointFileError(ValueError):
    """A checkpoint file is missing, truncated, corrupt or of a refused kind."""


def read_header(path: Path) -> tuple[dict, int]:
    """({key: {"dtype", "shape", "data_offsets"}}, byte offset of the data) of one safetensors
    file, validated against the file size."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise CheckpointFileError(f"{path}: truncated (only {size} bytes, no safetensors header)")
        (n,) = struct.unpack("<Q", raw)
        if n > size - 8 or n > 100_000_000:
            raise CheckpointFileError(f"{path}: corrupt or truncated safetensors header (claims "
                                      f"{n} header bytes, file has {size})")
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CheckpointFileError(f"{path}: corrupt safetensors header ({e})") from e
    header.pop("__metadata__", None)
    end = max((v["data_offsets"][1] for v in header.values()), default=0)
    if 8 + n + end > size:
        raise CheckpointFileError(
            f"{path}: truncated: the header describes {8 + n + end} bytes but the file has "
            f"{size}; re-download or re-export it")
    for key, v in header.items():
        if v.get("dtype") not in DTYPES:
            raise CheckpointFileError(f"{path}: tensor {key!r} has unsupported dtype {v.get('dtype')}")
        nbytes = int(np.prod(v["shape"], dtype=np.int64)) * np.dtype(DTYPES[v["dtype"]]).itemsize
        begin, stop = v["data_offsets"]
        if stop - begin != nbytes:
            raise CheckpointFileError(f"{path}: tensor {key!r} of shape {v['shape']} "
                                      f"({v['dtype']}) spans {stop - begin} bytes, not {nbytes}")
    return header, 8 + n


class SafetensorsCheckpoint:
    """The tensors of a checkpoint directory (single file or sharded with an index): `shapes`
    costs no tensor reads; `get` reads one tensor with a positioned read straight into its
    array (no memory map, so pages already read do not stay in the process's memory)."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.files: dict[str, Path] = {}   # key -> file
        self.headers: dict[Path, dict] = {}
        self.data_start: dict[Path, int] = {}
        index, single = self.directory / INDEX, self.directory / SINGLE
        if index.exists():
            try:
                weight_map = json.loads(index.read_text())["weight_map"]
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise CheckpointFileError(f"{index}: not a valid safetensors index ({e})") from e
            for name in sorted(set(weight_map.values())):
                shard = self.directory / name
                if not shard.exists():
                    raise CheckpointFileError(f"{index} lists {name}, which does not exist")
                self.headers[shard], self.data_start[shard] = read_header(shard)
            for key, name in weight_map.items():
                shard = self.directory / name
                if key not in self.headers[shard]:
                    raise CheckpointFileError(f"{index} maps {key!r} to {name}, which lacks it")
                self.files[key] = shard
        elif single.exists():
            self.headers[single], self.data_start[single] = read_header(single)
            self.files = {k: single for k in self.headers[single]}
        else:
            pickled = sorted(p.name for p in self.directory.glob("*")
                             if p.suffix in (".bin", ".pt", ".pth"))
            hint = (f" Found pickled weights {pickled}: they are never unpickled here; convert them "
                    "to safetensors with the PyTorch side first." if pickled else "")
            raise CheckpointFileError(f"{self.directory}: no {SINGLE} or {INDEX}.{hint}")
        self._handles = {}

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {k: tuple(self.headers[f][k]["shape"]) for k, f in self.files.items()}

    def dtype(self, key: str) -> str:
        return self.headers[self.files[key]][key]["dtype"]

    def get(self, key: str) -> np.ndarray:
        path = self.files[key]
        info = self.headers[path][key]
        out = np.empty(info["shape"], DTYPES[info["dtype"]])
        if path not in self._handles:
            self._handles[path] = open(path, "rb", buffering=0)  # noqa: SIM115 - closed in close()
        handle = self._handles[path]
        handle.seek(self.data_start[path] + info["data_offsets"][0])
        view = memoryview(out.reshape(-1).view(np.uint8))
        got = 0
        while got < out.nbytes:
            n = handle.readinto(view[got:])
            if not n:
                raise CheckpointFileError(f"{path}: ended while reading tensor {key!r}")
            got += n
        return out

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()


def plan_shards(sizes: Iterable[tuple[str, int]], max_shard_bytes: int) -> list[list[str]]:
    """Consecutive keys grouped into shards of at most `max_shard_bytes` (a larger single
    tensor gets a shard of its own)."""
    shards, current, used = [], [], 0
    for key, nbytes in sizes:
        if current and used + nbytes > max_shard_bytes:
            shards.append(current)
            current, used = [], 0
        current.append(key)
        used += nbytes
    if current:
        shards.append(current)
    return shards


def write_checkpoint(directory: Path, keys_and_sizes: list[tuple[str, int]],
                     get: Callable[[str], np.ndarray], *,
                     max_shard_bytes: int = 5 * 2**30) -> list[Path]:
    """Write tensors as `model.safetensors` or sharded `model-0000i-of-0000n.safetensors` plus
    the index. `get(key)` produces each tensor when it is written, so only one shard is held in
    memory at a time. Files are written under a temporary name and renamed when complete."""
    directory.mkdir(parents=True, exist_ok=True)
    shards = plan_shards(keys_and_sizes, max_shard_bytes)
    names = ([SINGLE] if len(shards) == 1 else
             [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))])
    weight_map, total, written = {}, 0, []
    for name, keys in zip(names, shards, strict=True):
        tensors = {k: np.ascontiguousarray(get(k)) for k in keys}
        total += sum(t.nbytes for t in tensors.values())
        tmp = directory / f".{name}.tmp"
        save_file(tensors, str(tmp), metadata={"format": "pt"})
        os.replace(tmp, directory / name)
        written.append(directory / name)
        weight_map.update({k: name for k in keys})
        del tensors
    if len(shards) > 1:
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (directory / INDEX).write_text(json.dumps(index, indent=2) + "\n")
    return written
