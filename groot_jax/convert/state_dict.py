"""In-memory conversion between a PyTorch GR00T state dict and our parameters.

`from_torch_state_dict` checks everything before building anything: missing keys, unexpected
keys and wrong shapes are all reported in one error naming each key with expected and found
shapes. File-level import/export (safetensors, sharding, metadata) builds on this.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Mapping

import jax
import numpy as np
from flax import nnx

from groot_jax.config import GR00TConfig
from groot_jax.convert.keymap import (
    Entry,
    gr00t_entries,
    ignorable_keys,
    to_ours,
    to_torch,
    torch_shape,
)

LEROBOT_PREFIX = "_groot_model."  # lerobot-saved finetunes wrap GR00TN15 in `_groot_model`


class StateDictError(ValueError):
    """A state dict does not match the model: says which keys and shapes, and what to do."""


def _get(tree: dict, path: tuple[str, ...]):
    for p in path:
        tree = tree[p]
    return tree


def _set(tree: dict, path: tuple[str, ...], value) -> None:
    for p in path[:-1]:
        tree = tree[p]
    tree[path[-1]] = value


def _limit(lines: list[str], n: int = 40) -> str:
    more = f"\n  ... and {len(lines) - n} more" if len(lines) > n else ""
    return "\n  " + "\n  ".join(lines[:n]) + more


def check_state_dict(entries: Iterable[Entry], shapes: Mapping[str, tuple[int, ...]],
                     target: dict, *, ignore: set[str] = frozenset(), source: str = "state dict"):
    """Raise `StateDictError` listing every missing, unexpected or mis-shaped key."""
    entries = list(entries)
    known = {e.torch_key for e in entries}
    missing = [e.torch_key for e in entries if e.torch_key not in shapes]
    unexpected = sorted(k for k in shapes if k not in known and k not in ignore)
    wrong = []
    for e in entries:
        if e.torch_key not in shapes:
            continue
        ours = tuple(_get(target, e.path).shape)
        expected = torch_shape(e.kind, ours[1:] if e.layer is not None else ours)
        if tuple(shapes[e.torch_key]) != expected:
            wrong.append(f"{e.torch_key}: expected {expected}, found {tuple(shapes[e.torch_key])}")
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s):{_limit(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s):{_limit(unexpected)}")
    if wrong:
        problems.append(f"{len(wrong)} key(s) with the wrong shape:{_limit(wrong)}")
    if problems:
        raise StateDictError(
            f"{source} does not match the model config: " + "\n".join(problems) +
            "\nCheck that the checkpoint and the config preset are the same model (N1.5 vs N1, "
            "same sizes, same select_layer).")


def load_into(entries: Iterable[Entry], state_dict: Mapping[str, np.ndarray], target: nnx.State,
              *, ignore: set[str] = frozenset(), dtype=None, source: str = "state dict"):
    """Parameters shaped like `target` (abstract or concrete) filled from `state_dict`."""
    entries = list(entries)
    pure = nnx.to_pure_dict(target)
    check_state_dict(entries, {k: np.shape(v) for k, v in state_dict.items()}, pure,
                     ignore=ignore, source=source)
    stacked: dict[tuple[str, ...], list[Entry]] = defaultdict(list)
    for e in entries:
        if e.layer is None:
            leaf = _get(pure, e.path)
            value = np.asarray(to_ours(e.kind, np.asarray(state_dict[e.torch_key])))
            _set(pure, e.path, value.astype(dtype or leaf.dtype))
        else:
            stacked[e.path].append(e)
    for path, group in stacked.items():
        leaf = _get(pure, path)
        out = np.empty(leaf.shape, dtype=dtype or leaf.dtype)
        for e in group:
            out[e.layer] = to_ours(e.kind, np.asarray(state_dict[e.torch_key]))
        _set(pure, path, out)
    params = jax.tree.map(lambda x: x, target)  # a copy with the same structure
    nnx.replace_by_pure_dict(params, jax.tree.map(jax.numpy.asarray, pure))
    return params


def export_from(entries: Iterable[Entry], params: nnx.State, dtype=None) -> dict[str, np.ndarray]:
    """Torch-layout numpy arrays keyed by checkpoint name, in `entries` order."""
    pure = nnx.to_pure_dict(params)
    out = {}
    for e in entries:
        value = np.asarray(_get(pure, e.path))
        if e.layer is not None:
            value = value[e.layer]
        value = np.ascontiguousarray(to_torch(e.kind, value))
        out[e.torch_key] = value.astype(dtype) if dtype is not None else value
    return out


def strip_lerobot_prefix(state_dict: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    if state_dict and all(k.startswith(LEROBOT_PREFIX) for k in state_dict):
        return {k[len(LEROBOT_PREFIX):]: v for k, v in state_dict.items()}
    return dict(state_dict)


def from_torch_state_dict(cfg: GR00TConfig, state_dict: Mapping[str, np.ndarray], target=None,
                          *, dtype=None, source: str = "state dict") -> nnx.State:
    """Our parameters from a GR00T state dict (torch key names, numpy or torch-free arrays).
    `target` defaults to the abstract parameters of `cfg`."""
    if target is None:
        from groot_jax.models.groot import abstract
        _, target = abstract(cfg)
    return load_into(gr00t_entries(cfg), strip_lerobot_prefix(state_dict), target,
                     ignore=ignorable_keys(cfg), dtype=dtype, source=source)


def to_torch_state_dict(cfg: GR00TConfig, params: nnx.State, dtype=None) -> dict[str, np.ndarray]:
    return export_from(gr00t_entries(cfg), params, dtype)
