"""Whole episodes as arrays, for consumers that take an episode at a time (latent-action / IDM
training and labelling, groot_jax/latent) rather than the pipeline's (episode, frame) samples.

An episode is a dict
  frames:  uint8[T, H, W, 3]    one camera, RGB
  actions: float32[T, A] | None (a_t moves frame t to t+1; None for action-less video)
  state:   float32[T, S] | None
and an `EpisodeArrays` reader offers `episode_ids()` and `load(episode_id)`. There is one episode
source in the data layer, `source.EpisodeSource` (random access by (episode, frame)); this module
only views it whole (`SourceEpisodes`), or reads the synthetic worlds' `episode_XXXXXX.npz`
directories (`NpzEpisodeDir`). `open_episodes(DIR)` picks the reader for a dataset directory,
opening data-layer datasets through mixture.open_source.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from groot_jax.data.image_transforms import resize_aa
from groot_jax.data.mixture import SourceSpec, detect_kind, open_source
from groot_jax.data.modality import DataConfig


class EpisodeArrays(Protocol):
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


def write_npz_dir(episodes: list[dict], root: str | Path) -> Path:
    """The episodes as `NpzEpisodeDir` files (None entries are left out)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for i, ep in enumerate(episodes):
        np.savez(root / f"episode_{i:06d}.npz", **{k: v for k, v in ep.items() if v is not None})
    return root


class SourceEpisodes:
    """Whole episodes of a data-layer `EpisodeSource` (LeRobot v2.x / v3.0, action-less video, ...):
    one camera's frames resized to `image_size` (the VQ-VAE / IDM input), the actions and states
    concatenated over the modality.json keys in their order, in the dataset's units.

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


def open_episodes(dataset: str | Path, image_size: int = 32,
                  video_key: str | None = None) -> EpisodeArrays:
    """The whole-episode reader of a dataset directory: a directory of `episode_*.npz`
    (synthetic world), or any dataset mixture.open_source reads (LeRobot v2.x / v3.0 with
    `meta/info.json`, action-less video with `meta/episodes.jsonl` only), frames resized to
    `image_size`."""
    path = Path(dataset)
    if not path.is_dir():
        raise FileNotFoundError(f"dataset directory {path} does not exist")
    if any(path.glob("episode_*.npz")):
        return NpzEpisodeDir(path)
    kind = detect_kind(path)
    if kind is None:
        raise FileNotFoundError(f"{path}: no episode_*.npz files, no LeRobot meta/info.json and no "
                                f"action-less meta/episodes.jsonl")
    # No keys to check: any dataset of that kind; the view picks the keys from modality.json.
    cfg = DataConfig(name=path.name, embodiment_tag="new_embodiment", video_keys=(),
                     state_keys=(), action_keys=(), language_keys=())
    return SourceEpisodes(open_source(SourceSpec(str(path), cfg, kind=kind)), image_size, video_key)
