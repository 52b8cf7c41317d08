"""Actions from a label sidecar: latent actions or inverse-dynamics pseudo-actions as the action
target of an episode source that has none (human video, generated video) or that should be
relabelled.

`groot-jax latent-actions label DATASET` / `groot-jax idm label DATASET --embodiment TAG` write
`DATASET.latent_actions/` / `DATASET.idm_actions.TAG/` beside the dataset (format and reader:
sidecar.py): `manifest.json` plus one `episode_XXXXXX.npz` per episode, whose arrays are indexed
by the episode's frame t and checked against the manifest's sha256 on every read.
`SidecarActionSource(base, sidecar_dir)` exposes that per-frame array as an action column, so the
rest of the data layer (action_indices, edge padding, statistics, normalization, the embodiment's
projector slot) treats it exactly like recorded actions:

  latent actions  column `latent_actions` [T, N*D], one key `action.latent` (use the
                  `latent_action` embodiment tag: a dedicated projector slot);
  IDM labels      column `actions` [T, A], keys from the manifest's `action_layout` (the action keys
                  of the robot dataset the IDM was trained on), else one key `action.pseudo`.

Rows whose pair (t, t+H) ran past the episode end (`valid` false) repeat the last valid row, the same
rule edge padding applies beyond the end of an episode.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from groot_jax.data.errors import DataError
from groot_jax.data.modality import StateActionMeta
from groot_jax.data.sidecar import load_episode, read_manifest, sidecar_kind
from groot_jax.data.source import Episode, EpisodeSource

COLUMN_PREFIX = "sidecar."
DEFAULT_COLUMN = {"latent_actions": "latent_actions", "idm_actions": "actions"}
DEFAULT_KEY = {"latent_actions": "latent", "idm_actions": "pseudo"}


class SidecarActionSource(EpisodeSource):
    """`base` with its actions taken from the label sidecar at `sidecar` (see module docstring).

    `column`: the sidecar array to use (default by kind); `action_keys`: {name: (start, end)}
    slices of that array as `action.<name>` keys (default: the manifest's `action_layout`, else the
    whole width as one key)."""

    has_actions = True

    def __init__(self, base: EpisodeSource, sidecar: str | Path, *, column: str | None = None,
                 action_keys: dict[str, tuple[int, int]] | None = None):
        super().__init__(cache_bytes=base._cache_bytes, decoder=base.decoder)
        self.base = base
        self.sidecar = Path(sidecar)
        self._manifest = read_manifest(self.sidecar)
        kind = self.kind = sidecar_kind(self._manifest, self.sidecar)
        self.column = column or DEFAULT_COLUMN[kind]
        # Metadata is the base's: same episodes, frames, videos, language.
        for attr in ("root", "name", "episode_indices", "episode_lengths", "tasks", "fps",
                     "video_resolution"):
            setattr(self, attr, getattr(base, attr))
        listed = self._manifest["episodes"]
        for idx, n in zip(self.episode_indices, self.episode_lengths, strict=True):
            entry = listed.get(str(int(idx)))
            if entry is None:
                raise DataError(f"{self.sidecar}: episode {int(idx)} of {base.root} is not labelled "
                                f"(labelled: {len(listed)} of {len(self.episode_indices)}; rerun the "
                                f"label command, it resumes)")
            if int(entry["length"]) != int(n):
                raise DataError(f"{self.sidecar}: episode {int(idx)} has {entry['length']} label rows "
                                f"but the dataset episode has {int(n)} frames")
        width = self._width()
        if action_keys is None:
            layout = self._manifest.get("action_layout")
            if kind == "idm_actions" and layout:
                action_keys = {name: (int(a), int(b)) for name, a, b in layout}
            else:
                action_keys = {DEFAULT_KEY[kind]: (0, width)}
        for name, (a, b) in action_keys.items():
            if not 0 <= a < b <= width:
                raise DataError(f"{self.sidecar}: action key {name!r} slice [{a}:{b}] does not fit "
                                f"the label width {width} of column {self.column!r}")
        meta = {name: StateActionMeta(start=a, end=b, original_key=COLUMN_PREFIX + self.column)
                for name, (a, b) in action_keys.items()}
        self.modality = dataclasses.replace(base.modality, action=meta)

    def _width(self) -> int:
        first = int(self.episode_indices[0])
        arr = self._labels(first)
        return int(arr.shape[1])

    def _labels(self, episode_index: int) -> np.ndarray:
        entry = self._manifest["episodes"][str(episode_index)]
        path = self.sidecar / entry["file"]
        z = load_episode(self.sidecar, episode_index, self._manifest)  # sha256-checked
        if self.column not in z:
            raise DataError(f"{path}: no array {self.column!r} (has {sorted(z)})")
        arr = np.asarray(z[self.column], np.float32)
        valid = np.asarray(z["valid"], bool) if "valid" in z else None
        if arr.ndim != 2 or arr.shape[0] != int(entry["length"]):
            raise DataError(f"{path}: {self.column!r} has shape {arr.shape}, expected "
                            f"[{entry['length']}, width]")
        if not np.isfinite(arr).all():
            raise DataError(f"{path}: {self.column!r} has non-finite values")
        if valid is not None and valid.any() and not valid.all():
            last = int(np.nonzero(valid)[0][-1])
            arr = arr.copy()
            arr[~valid & (np.arange(len(arr)) > last)] = arr[last]
        return arr

    def _load_episode(self, pos: int) -> Episode:
        ep = self.base._load_episode(pos)
        labels = self._labels(int(ep.index))
        return dataclasses.replace(ep, columns={**ep.columns, COLUMN_PREFIX + self.column: labels})

    def _video_location(self, pos: int, video_name: str):
        return self.base._video_location(pos, video_name)

    def video(self, pos: int, ep: Episode, key: str, step_indices: np.ndarray, yuv: bool = False):
        return self.base.video(pos, ep, key, step_indices, yuv)
