"""State/action codec: rotation conversion, then normalization per key; `sin_cos` state keys become
[sin x, cos x]; keys concatenated in config order; zero padding to max_state_dim / max_action_dim
with masks; and the inverse path for inference (`unapply_action`). More dims than the maximum raise
DataError (the original silently truncates state above 64). `encode_episode` encodes a whole
episode once into `EncodedEpisode` tables whose rows a sample's windows gather.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from groot_jax.data import rotation as rot
from groot_jax.data.errors import DataError
from groot_jax.data.modality import DataConfig, LeRobotModality
from groot_jax.data.normalize import Normalizer


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
        target = self._target_rotation(key)
        if target is not None:
            x = rot.convert(x, meta.rotation_type, target)
        n = self.norm[key]
        if n == "sin_cos":
            return np.concatenate([np.sin(x), np.cos(x)], -1).astype(np.float32)
        return x if n is None else n(x)

    def _target_rotation(self, key: str) -> str | None:
        """The rotation representation the model sees for `key` (None: as stored)."""
        targets = (self.cfg.state_target_rotations if key.startswith("state.")
                   else self.cfg.action_target_rotations)
        return targets.get(key)

    def decode_key(self, key: str, y: np.ndarray) -> np.ndarray:
        n = self.norm[key]
        if n == "sin_cos":
            raise DataError(f"{key}: sin_cos has no inverse")
        x = y if n is None else n.inverse(y)
        meta = self.modality.lookup(key)
        target = self._target_rotation(key)
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

