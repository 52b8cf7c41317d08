"""Shared base of the episode sources: random access by (episode, frame) -> raw sample.

A raw sample (before transforms) for a DataConfig with T_o observation indices, T_a action indices:
  video.<k>       uint8   [T_o, H, W, 3]
  state.<k>       float32 [T_o, d_k]
  action.<k>      float32 [T_a, d_k]      (absent when the source has no actions)
  annotation.<k>  list[str] of length T_o
  __episode__, __frame__ ints, __source__ str (for debugging and tests)

Subclasses implement `_episode_table` (columns of one episode as numpy arrays), `_video_location`
(file + time offset of one episode's video) and the metadata attributes.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import os
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa

from groot_jax.data.errors import DataError
from groot_jax.data.modality import DataConfig, LeRobotModality, clamp_indices, pad_edges
from groot_jax.data.video import VideoDecoder

_F32_EXACT_INT = 2**24


def column_to_numpy(col: pa.ChunkedArray | pa.Array, file: str, name: str) -> np.ndarray:
    """A parquet column -> numpy [N, D] (vector columns) or [N, 1] (scalars).

    Vector columns must have one width; ragged lists raise DataError naming file and column.
    """
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    t = col.type
    n = len(col)
    if pa.types.is_fixed_size_list(t):
        width = t.list_size
        flat = col.flatten().to_numpy(zero_copy_only=False)
        return flat.reshape(n, width)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        lengths = np.diff(col.offsets.to_numpy())
        if n and (lengths != lengths[0]).any():
            raise DataError(
                f"{file}: column {name!r} is ragged (row widths {sorted({int(x) for x in lengths})})"
            )
        width = int(lengths[0]) if n else 0
        return col.flatten().to_numpy(zero_copy_only=False).reshape(n, width)
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
        return col.to_numpy(zero_copy_only=False).reshape(n, 1)
    raise DataError(f"{file}: column {name!r} has unsupported type {t}")


def to_float32(array: np.ndarray, file: str, name: str) -> np.ndarray:
    """State/action values as float32, never a silent truncation.

    Floats are rounded to float32. Integer and boolean columns are converted only if every value is
    exactly representable in float32 (|x| < 2**24); otherwise DataError.
    """
    if array.dtype.kind == "f":
        return array.astype(np.float32, copy=False)
    if array.dtype.kind in "iub":
        if (
            array.dtype.kind != "b"
            and array.size
            and np.abs(array.astype(np.int64)).max() >= _F32_EXACT_INT
        ):
            raise DataError(
                f"{file}: integer column {name!r} has values beyond 2**24 that float32 "
                f"cannot hold exactly (max |x| = {np.abs(array).max()})"
            )
        return array.astype(np.float32)
    raise DataError(f"{file}: column {name!r} has non-numeric dtype {array.dtype}")


@dataclasses.dataclass
class Episode:
    """One episode's table: columns [T, D] float32 (state/action), timestamps [T], tasks [T]."""

    index: int
    length: int
    columns: dict[str, np.ndarray]
    timestamps: np.ndarray
    annotations: dict[str, np.ndarray]  # original_key -> int task indices [T] or str array
    file: str
    # Values computed from this episode by its users (the pipeline's encoded state/action
    # tables), evicted with it.
    derived: dict = dataclasses.field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        n = self.timestamps.nbytes + sum(a.nbytes for a in self.columns.values())
        return n + sum(a.nbytes for a in self.annotations.values())


class EpisodeSource:
    """Random access by (episode position, frame). Subclasses fill the metadata fields."""

    root: Path
    name: str
    modality: LeRobotModality
    episode_indices: np.ndarray  # [E] episode ids
    episode_lengths: np.ndarray  # [E]
    tasks: dict[int, str]
    fps: float
    video_resolution: dict[str, tuple[int, int]]  # video name -> (W, H)
    has_actions: bool = True

    def __init__(self, cache_bytes: int = 1 << 30, decoder: VideoDecoder | None = None):
        """cache_bytes: episodes (their state/action/timestamp/annotation columns) kept per
        process, least recently used first out, but at least one. The default 1 GiB holds every
        episode of datasets up to ~2M frames at 100 dims, so each episode file is read once per
        process; random access over more episodes than fit reads one parquet file per sample."""
        self._cache: collections.OrderedDict[int, Episode] = collections.OrderedDict()
        self._cache_bytes = cache_bytes
        self._cached_bytes = 0
        self._lock = threading.Lock()
        self.decoder = decoder or VideoDecoder()
        # (pos, video key) -> (path string, timestamp offset): resolved once, not per sample.
        self._video_locations: dict[tuple[int, str], tuple[str, float]] = {}

    # -- pickling for Grain workers: caches are rebuilt in the worker
    def __getstate__(self):
        s = dict(self.__dict__)
        s["_cache"] = collections.OrderedDict()
        s["_cached_bytes"] = 0
        del s["_lock"]
        return s

    def __setstate__(self, s):
        self.__dict__.update(s)
        self._lock = threading.Lock()

    # -- subclass hooks
    def _load_episode(self, pos: int) -> Episode:
        raise NotImplementedError

    def _video_location(self, pos: int, video_name: str) -> tuple[Path, float]:
        raise NotImplementedError

    # -- index
    def __len__(self) -> int:
        return int(self.episode_lengths.sum())

    @property
    def cumulative(self) -> np.ndarray:
        c = getattr(self, "_cum", None)
        if c is None:
            c = self._cum = np.concatenate([[0], np.cumsum(self.episode_lengths)])
        return c

    def locate(self, step: int) -> tuple[int, int]:
        """Global step -> (episode position, frame)."""
        if not 0 <= step < len(self):
            raise IndexError(f"{self.name}: step {step} out of range [0, {len(self)})")
        pos = int(np.searchsorted(self.cumulative, step, side="right") - 1)
        return pos, int(step - self.cumulative[pos])

    def episode(self, pos: int) -> Episode:
        with self._lock:
            return self._episode(pos)

    def _episode(self, pos: int) -> Episode:
        ep = self._cache.get(pos)
        if ep is None:
            ep = self._load_episode(pos)
            if ep.length != int(self.episode_lengths[pos]):
                raise DataError(
                    f"{ep.file}: episode {ep.index} has {ep.length} rows but the episode "
                    f"metadata says {int(self.episode_lengths[pos])}"
                )
            if ep.length == 0:
                raise DataError(f"{ep.file}: episode {ep.index} is empty")
            self._cache[pos] = ep
            self._cached_bytes += ep.nbytes
            while self._cached_bytes > self._cache_bytes and len(self._cache) > 1:
                self._cached_bytes -= self._cache.popitem(last=False)[1].nbytes
        else:
            self._cache.move_to_end(pos)
        return ep

    def check_config(self, cfg: DataConfig) -> None:
        """Fail early (DataError naming modality.json and the key) on keys the dataset lacks."""
        keys = list(cfg.video_keys) + list(cfg.state_keys) + list(cfg.language_keys)
        if self.has_actions:
            keys += list(cfg.action_keys)
        for k in keys:
            self.modality.lookup(k, self._modality_json)

    @functools.cached_property
    def _modality_json(self) -> str:  # for error messages; built once, off the per-sample path
        return os.path.join(str(self.root), "meta", "modality.json")

    def key_column(self, ep: Episode, key: str) -> np.ndarray:
        """The whole episode's values of one state/action key: float32 [T, d] (a view)."""
        meta = self.modality.lookup(key, self._modality_json)
        col = ep.columns.get(meta.original_key)
        if col is None:
            raise DataError(
                f"{ep.file}: column {meta.original_key!r} (for {key}) not found; "
                f"columns: {sorted(ep.columns)}"
            )
        if col.shape[1] < meta.end:
            raise DataError(
                f"{ep.file}: column {meta.original_key!r} has width {col.shape[1]} but "
                f"{key} needs [{meta.start}:{meta.end}] (modality.json)"
            )
        return col[:, meta.start : meta.end]

    def is_absolute(self, key: str) -> bool:
        return self.modality.lookup(key, self._modality_json).absolute

    def state_action(self, ep: Episode, key: str, step_indices: np.ndarray) -> np.ndarray:
        return pad_edges(self.key_column(ep, key), step_indices, self.is_absolute(key))

    def language(self, ep: Episode, key: str, step_indices: np.ndarray) -> list[str]:
        orig = self.modality.lookup(key, self._modality_json)
        vals = ep.annotations.get(orig)
        if vals is None:
            raise DataError(f"{ep.file}: annotation column {orig!r} (for {key}) not found")
        idx = clamp_indices(step_indices, ep.length)
        out = []
        for v in vals[idx]:
            if isinstance(v, (str, bytes)):
                out.append(v.decode() if isinstance(v, bytes) else v)
            else:
                t = int(v)
                if t not in self.tasks:
                    raise DataError(f"{ep.file}: {orig}={t} is not a task index of the dataset")
                out.append(self.tasks[t])
        return out

    def video(self, pos: int, ep: Episode, key: str, step_indices: np.ndarray, yuv: bool = False):
        """uint8 [T, H, W, 3] RGB frames, or with `yuv` a list of T Yuv420Frame (decoded planes)."""
        loc = self._video_locations.get((pos, key))
        if loc is None:
            name = key.split(".", 1)[1]
            self.modality.lookup(key, self._modality_json)
            path, offset = self._video_location(pos, name)
            loc = self._video_locations[(pos, key)] = (str(path), offset)
        idx = clamp_indices(step_indices, ep.length)
        ts = ep.timestamps[idx].astype(np.float64) + loc[1]
        return self.decoder.frames_yuv420(loc[0], ts) if yuv else self.decoder.frames(loc[0], ts)

    def get(
        self, pos: int, base: int, cfg: DataConfig, state_action: bool = True, yuv: bool = False
    ) -> dict:
        """The raw sample at (episode position, frame). `state_action=False` leaves out the state
        and action windows (the pipeline gathers them from per-episode encoded tables instead);
        `yuv`: video as decoded YUV 4:2:0 planes (see VideoDecoder.frames_yuv420)."""
        ep = self.episode(pos)
        obs = base + np.asarray(cfg.observation_indices)
        out: dict = {"__episode__": int(ep.index), "__frame__": int(base), "__source__": self.name}
        for k in cfg.video_keys:
            out[k] = self.video(pos, ep, k, obs, yuv)
        if state_action:
            for k in cfg.state_keys:
                out[k] = self.state_action(ep, k, obs)
        if self.has_actions and state_action:
            act = base + np.asarray(cfg.action_indices)
            for k in cfg.action_keys:
                out[k] = self.state_action(ep, k, act)
        for k in cfg.language_keys:
            out[k] = self.language(ep, k, obs)
        return out

    def __getitem__(self, step: int) -> dict:
        raise TypeError("use source.get(episode_pos, frame, data_config) or a pipeline")


def check_finite(columns: dict[str, np.ndarray], file: str) -> None:
    """NaN/inf in state or action -> DataError naming file, column, first row and dim."""
    for name, a in columns.items():
        if a.dtype.kind == "f":
            bad = ~np.isfinite(a)
            if bad.any():
                r, d = np.argwhere(bad)[0]
                raise DataError(
                    f"{file}: column {name!r} has a non-finite value {a[r, d]} at row {r}, dim {d}"
                )
