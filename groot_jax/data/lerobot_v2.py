"""LeRobot v2.0/v2.1 datasets, GR00T flavour (spec 10).

Layout: meta/info.json (data_path, video_path, chunks_size, features), meta/episodes.jsonl
(episode_index, length), meta/tasks.jsonl (task_index, task), meta/modality.json (required),
meta/stats.json (optional), data/chunk-XXX/episode_XXXXXX.parquet,
videos/chunk-XXX/<original_key>/episode_XXXXXX.mp4 (video time = the row's `timestamp`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from groot_jax.data.errors import DataError
from groot_jax.data.modality import LeRobotModality
from groot_jax.data.source import Episode, EpisodeSource, check_finite, column_to_numpy, to_float32


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        raise DataError(f"{path}: not found")
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def read_info(root: Path) -> dict:
    p = root / "meta" / "info.json"
    if not p.exists():
        raise DataError(f"{p}: not found (is {root} a LeRobot dataset?)")
    with open(p) as f:
        return json.load(f)


def video_resolutions(info: dict, modality: LeRobotModality) -> dict[str, tuple[int, int]]:
    out = {}
    for name, key in modality.video.items():
        feat = info.get("features", {}).get(key)
        if feat is None:
            raise DataError(f"meta/info.json: video feature {key!r} (video.{name}) not in features")
        vi = feat.get("info") or feat.get("video_info") or {}
        if "video.height" in vi:
            out[name] = (int(vi["video.width"]), int(vi["video.height"]))
        else:
            shape = feat["shape"]
            names = feat.get("names") or ["height", "width", "channel"]
            h = shape[names.index("height")] if "height" in names else shape[0]
            w = shape[names.index("width")] if "width" in names else shape[1]
            out[name] = (int(w), int(h))
    return out


class LeRobotV2Source(EpisodeSource):
    def __init__(self, root: str | Path, name: str | None = None, **kw):
        super().__init__(**kw)
        self.root = Path(root)
        self.name = name or self.root.name
        info = read_info(self.root)
        self.info = info
        ver = str(info.get("codebase_version", "v2.1"))
        if ver.startswith("v3"):
            raise DataError(f"{self.root}: codebase_version {ver}; use LeRobotV3Source")
        self.modality = LeRobotModality.load(self.root / "meta" / "modality.json")
        eps = read_jsonl(self.root / "meta" / "episodes.jsonl")
        self.episode_indices = np.array([int(e["episode_index"]) for e in eps], np.int64)
        self.episode_lengths = np.array([int(e["length"]) for e in eps], np.int64)
        self.tasks = {
            int(t["task_index"]): t["task"] for t in read_jsonl(self.root / "meta" / "tasks.jsonl")
        }
        self.fps = float(info.get("fps", 30))
        self.chunks_size = int(info.get("chunks_size", 1000))
        self.data_path = info.get(
            "data_path", "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
        )
        self.video_path = info.get(
            "video_path", "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
        )
        self.video_resolution = video_resolutions(info, self.modality)
        self.has_actions = bool(self.modality.action)

    def _columns_needed(self) -> set[str]:
        cols = {m.original_key for m in self.modality.state.values()}
        cols |= {m.original_key for m in self.modality.action.values()}
        return cols

    def _load_episode(self, pos: int) -> Episode:
        ep = int(self.episode_indices[pos])
        path = self.root / self.data_path.format(episode_chunk=ep // self.chunks_size, episode_index=ep)
        if not path.exists():
            raise DataError(f"{path}: parquet file of episode {ep} not found")
        table = pq.read_table(path)
        names = set(table.column_names)
        cols = {}
        for c in self._columns_needed():
            if c not in names:
                raise DataError(
                    f"{path}: column {c!r} (named in modality.json) not found; has {sorted(names)}"
                )
            cols[c] = to_float32(column_to_numpy(table.column(c), str(path), c), str(path), c)
        check_finite(cols, str(path))
        if "timestamp" not in names:
            raise DataError(f"{path}: no 'timestamp' column")
        ts = table.column("timestamp").to_numpy().astype(np.float64)
        ann = {}
        for orig in self.modality.annotation.values():
            if orig in names:
                ann[orig] = np.asarray(table.column(orig).to_numpy(zero_copy_only=False))
        return Episode(
            index=ep, length=table.num_rows, columns=cols, timestamps=ts, annotations=ann, file=str(path)
        )

    def _video_location(self, pos: int, video_name: str) -> tuple[Path, float]:
        ep = int(self.episode_indices[pos])
        key = self.modality.video[video_name]
        p = self.root / self.video_path.format(
            episode_chunk=ep // self.chunks_size, episode_index=ep, video_key=key
        )
        return p, 0.0
