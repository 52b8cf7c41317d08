"""LeRobot v3.0 datasets (what current lerobot writes).

Layout: meta/info.json, meta/tasks.parquet, meta/episodes/chunk-XXX/file-XXX.parquet (one row per
episode: length, data/{chunk,file}_index, dataset_{from,to}_index,
videos/<key>/{chunk,file}_index + from_timestamp), data/chunk-XXX/file-XXX.parquet (many episodes
per file), videos/<key>/chunk-XXX/file-XXX.mp4 (many episodes per file; an episode's frame at row
timestamp t is at from_timestamp + t in the file).

v3.0 has no modality.json. If meta/modality.json exists it is used (GR00T keys); otherwise a
default is derived: state.state = all of observation.state, action.action = all of action,
video.<cam> for each observation.images.<cam>, annotation.human.task_description = task_index.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from groot_jax.data.errors import DataError
from groot_jax.data.lerobot_v2 import read_info, video_resolutions
from groot_jax.data.modality import LeRobotModality, StateActionMeta
from groot_jax.data.source import Episode, EpisodeSource, check_finite, column_to_numpy, to_float32


def default_modality(info: dict) -> LeRobotModality:
    feats = info.get("features", {})
    state, action = {}, {}
    if "observation.state" in feats:
        state["state"] = StateActionMeta(
            0, int(np.prod(feats["observation.state"]["shape"])), "observation.state"
        )
    if "action" in feats:
        action["action"] = StateActionMeta(0, int(np.prod(feats["action"]["shape"])), "action")
    video = {k.split(".")[-1]: k for k, f in feats.items() if f.get("dtype") == "video"}
    return LeRobotModality(
        state=state, action=action, video=video, annotation={"human.task_description": "task_index"}
    )


class LeRobotV3Source(EpisodeSource):
    def __init__(self, root: str | Path, name: str | None = None, **kw):
        super().__init__(**kw)
        self.root = Path(root)
        self.name = name or self.root.name
        info = self.info = read_info(self.root)
        ver = str(info.get("codebase_version", ""))
        if not ver.startswith("v3"):
            raise DataError(f"{self.root}/meta/info.json: codebase_version {ver!r}, expected v3.x")
        mpath = self.root / "meta" / "modality.json"
        self.modality = LeRobotModality.load(mpath) if mpath.exists() else default_modality(info)
        ep_files = sorted((self.root / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
        if not ep_files:
            raise DataError(f"{self.root}/meta/episodes: no episode parquet files")
        rows = []
        for f in ep_files:
            t = pq.read_table(
                f, columns=[c for c in pq.read_schema(f).names if not c.startswith("stats/")]
            )
            rows += t.to_pylist()
        rows.sort(key=lambda r: r["episode_index"])
        self._ep_rows = rows
        self.episode_indices = np.array([r["episode_index"] for r in rows], np.int64)
        self.episode_lengths = np.array([r["length"] for r in rows], np.int64)
        tpath = self.root / "meta" / "tasks.parquet"
        if not tpath.exists():
            raise DataError(f"{tpath}: not found")
        tt = pq.read_table(tpath)
        task_col = (
            "task"
            if "task" in tt.column_names
            else next((c for c in tt.column_names if c != "task_index"), None)
        )
        if task_col is None or "task_index" not in tt.column_names:
            raise DataError(f"{tpath}: expected columns task_index and the task string")
        self.tasks = {
            int(i): str(s)
            for i, s in zip(
                tt.column("task_index").to_pylist(), tt.column(task_col).to_pylist(), strict=True
            )
        }
        self.fps = float(info.get("fps", 30))
        self.video_resolution = video_resolutions(info, self.modality)
        self.has_actions = bool(self.modality.action)
        self._file_cache: dict = {}

    def __getstate__(self):
        s = super().__getstate__()
        s["_file_cache"] = {}
        return s

    def _data_file(self, chunk: int, file: int):
        key = (chunk, file)
        t = self._file_cache.get(key)
        if t is None:
            path = self.root / self.info["data_path"].format(chunk_index=chunk, file_index=file)
            if not path.exists():
                raise DataError(f"{path}: data file not found")
            t = (path, pq.read_table(path))
            self._file_cache.clear()  # keep one data file in memory per process
            self._file_cache[key] = t
        return t

    def _load_episode(self, pos: int) -> Episode:
        r = self._ep_rows[pos]
        ep = int(r["episode_index"])
        path, table = self._data_file(int(r["data/chunk_index"]), int(r["data/file_index"]))
        sub = table.filter(pc.equal(table.column("episode_index"), ep))
        names = set(sub.column_names)
        needed = {m.original_key for m in self.modality.state.values()}
        needed |= {m.original_key for m in self.modality.action.values()}
        cols = {}
        for c in needed:
            if c not in names:
                raise DataError(f"{path}: column {c!r} not found; has {sorted(names)}")
            cols[c] = to_float32(column_to_numpy(sub.column(c), str(path), c), str(path), c)
        check_finite(cols, str(path))
        fi = sub.column("frame_index").to_numpy()
        if len(fi) and not (np.diff(fi) == 1).all():
            raise DataError(f"{path}: episode {ep} rows are not in frame order")
        ann = {}
        for orig in self.modality.annotation.values():
            if orig in names:
                ann[orig] = np.asarray(sub.column(orig).to_numpy(zero_copy_only=False))
        return Episode(
            index=ep,
            length=sub.num_rows,
            columns=cols,
            timestamps=sub.column("timestamp").to_numpy().astype(np.float64),
            annotations=ann,
            file=str(path),
        )

    def _video_location(self, pos: int, video_name: str) -> tuple[Path, float]:
        r = self._ep_rows[pos]
        key = self.modality.video[video_name]
        try:
            chunk = int(r[f"videos/{key}/chunk_index"])
            file = int(r[f"videos/{key}/file_index"])
            t0 = float(r[f"videos/{key}/from_timestamp"])
        except KeyError as e:
            raise DataError(f"{self.root}/meta/episodes: no video location for {key!r} ({e})") from e
        return self.root / self.info["video_path"].format(
            video_key=key, chunk_index=chunk, file_index=file
        ), t0
