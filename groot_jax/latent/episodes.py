"""The episode interface shared by training and labelling, and frame-pair sampling.

An *episode* is a dict:
  frames:  uint8[T, H, W, 3]   (one camera; RGB)
  actions: float32[T, A] | None (a_t moves frame t to t+1; None for action-less video)
  state:   float32[T, S] | None

An `EpisodeSource` yields `(episode_id, episode)` pairs; labelling needs nothing else, so a LeRobot
dataset plugs in by implementing it (`NpzEpisodeDir` is the reference implementation: a directory
of `episode_XXXXXX.npz` files holding the keys above).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, Protocol

import numpy as np


class EpisodeSource(Protocol):
    def episode_ids(self) -> list[int]: ...

    def load(self, episode_id: int) -> dict: ...


class NpzEpisodeDir:
    """`DIR/episode_XXXXXX.npz` files, each with frames, and optionally actions and state."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"dataset directory {self.root} does not exist")

    def episode_ids(self) -> list[int]:
        return sorted(int(p.stem.split("_")[1]) for p in self.root.glob("episode_*.npz"))

    def load(self, episode_id: int) -> dict:
        with np.load(self.root / f"episode_{episode_id:06d}.npz") as z:
            return {"frames": z["frames"], "actions": z["actions"] if "actions" in z else None,
                    "state": z["state"] if "state" in z else None}


class ListSource:
    """In-memory episodes (tests, synthetic data)."""

    def __init__(self, episodes: list[dict]):
        self.episodes = episodes

    def episode_ids(self) -> list[int]:
        return list(range(len(self.episodes)))

    def load(self, episode_id: int) -> dict:
        return self.episodes[episode_id]


def iterate(source: EpisodeSource) -> Iterator[tuple[int, dict]]:
    for i in source.episode_ids():
        yield i, source.load(i)


def write_npz_dir(episodes: list[dict], root: str | Path) -> Path:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for i, ep in enumerate(episodes):
        np.savez(root / f"episode_{i:06d}.npz", **{k: v for k, v in ep.items() if v is not None})
    return root


def to_float(frames: np.ndarray) -> np.ndarray:
    """uint8[..., H, W, 3] -> float32 in [-1, 1]."""
    return frames.astype(np.float32) / 127.5 - 1.0


def pair_index(length: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (t, min(t+H, T-1)) for every t of an episode of `length` frames."""
    t = np.arange(length)
    return t, np.minimum(t + horizon, length - 1)


def make_pairs(episodes: list[dict], horizon: int, with_chunks: bool = False) -> dict:
    """All full-horizon pairs (t, t+H) of the episodes.

    Returns x0, x1: float32[N, H, W, 3]; disp: float32[N, A] (sum of the actions between them);
    state: float32[N, S]; and, if `with_chunks`, chunk: float32[N, horizon, A].
    """
    out: dict[str, list] = {"x0": [], "x1": [], "disp": [], "state": [], "chunk": []}
    for ep in episodes:
        t = np.arange(len(ep["frames"]) - horizon)
        out["x0"].append(to_float(ep["frames"][t]))
        out["x1"].append(to_float(ep["frames"][t + horizon]))
        if ep.get("actions") is not None:
            chunk = np.stack([ep["actions"][t + k] for k in range(horizon)], 1)
            out["disp"].append(chunk.sum(1))
            if with_chunks:
                out["chunk"].append(chunk)
        if ep.get("state") is not None:
            out["state"].append(ep["state"][t])
    return {k: np.concatenate(v) for k, v in out.items() if v}


class DataLayerEpisodes:
    """An `EpisodeSource` over a groot_jax.data source (LeRobot v2.x / v3.0, or an action-less video
    directory): one camera's frames resized to `image_size` (the VQ-VAE / IDM input), the actions
    and states concatenated over the modality.json keys in their order, in the dataset's units.

    Episode ids are the dataset's `episode_index`, so sidecar files line up with the dataset.
    `action_layout` lists (key name, start, end) of the concatenated actions, recorded in IDM
    checkpoints and their sidecars so the data layer can split pseudo-actions back into keys."""

    def __init__(self, source, image_size: int, video_key: str | None = None):
        self.source = source
        self.image_size = image_size
        videos = sorted(source.modality.video)
        if not videos:
            raise ValueError(f"{source.root}: the dataset has no video key (modality.json 'video')")
        name = (video_key or videos[0]).removeprefix("video.")
        if name not in source.modality.video:
            raise ValueError(f"{source.root}: no video key {video_key!r}; has "
                             f"{['video.' + v for v in videos]}")
        self.video_key = "video." + name
        self._pos = {int(e): p for p, e in enumerate(source.episode_indices)}
        self.action_layout, start = [], 0
        for k, m in source.modality.action.items() if source.has_actions else ():
            self.action_layout.append((k, start, start + m.dim))
            start += m.dim

    def episode_ids(self) -> list[int]:
        return sorted(self._pos)

    def _concat(self, ep, group: str, idx: np.ndarray) -> np.ndarray | None:
        keys = list(getattr(self.source.modality, group))
        if not keys or (group == "action" and not self.source.has_actions):
            return None
        return np.concatenate([self.source.state_action(ep, f"{group}.{k}", idx) for k in keys], -1)

    def load(self, episode_id: int) -> dict:
        from groot_jax.data.transforms import resize_aa

        if episode_id not in self._pos:
            raise KeyError(f"{self.source.root}: no episode {episode_id}")
        pos = self._pos[episode_id]
        ep = self.source.episode(pos)
        idx = np.arange(ep.length)
        frames = self.source.video(pos, ep, self.video_key, idx)  # uint8 [T, H, W, 3]
        small = resize_aa(frames.astype(np.float32) / 255.0, self.image_size, self.image_size)
        frames = np.clip(np.round(small * 255.0), 0, 255).astype(np.uint8)
        return {"frames": frames, "actions": self._concat(ep, "action", idx),
                "state": self._concat(ep, "state", idx)}
