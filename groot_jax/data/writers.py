"""Write episodes as GR00T-flavour LeRobot v2.1 datasets, LeRobot v3.0 datasets (the layout current
lerobot writes) or action-less video directories: the project's one writer of each layout, used
by the synthetic worlds (groot_jax/latent), the demo, the demo pyramid and the test fixtures
(tests/data/fixtures.py), so generated data goes through the real readers (lerobot_v2.py,
lerobot_v3.py, actionless.py) exactly as a user's dataset would.

LeRobot v2.1 layout (spec 10): meta/{info.json, episodes.jsonl, tasks.jsonl, modality.json},
data/chunk-XXX/episode_XXXXXX.parquet (observation.state, action, timestamp, indices, task),
videos/chunk-XXX/observation.images.<camera>/episode_XXXXXX.mp4 (lossless libx264rgb by default).
Default modality keys: state.pos [0:S], action.move [0:A], video.<camera>,
annotation.human.task_description.
LeRobot v3.0 layout (lerobot_v3.py; what lerobot's `LeRobotDataset.create(...).finalize()` writes):
meta/{info.json, stats.json, tasks.parquet, episodes/chunk-000/file-000.parquet}, all episodes in
data/chunk-000/file-000.parquet and, per camera, one h264 yuv420p videos/<key>/chunk-000/file-000.mp4
(an episode's frames start at its `from_timestamp`); modality.json only when given.
Action-less layout (actionless.py): meta/episodes.jsonl + videos/clipXXXXXX.mp4.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from groot_jax.data.video import write_video

DEFAULT_TASK = "move the red dot"
CHUNK_SIZE = 1000


def _column(v) -> pa.Array:
    v = np.asarray(v)
    if v.ndim == 2:
        return pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), v.shape[1])
    return pa.array(v)


def _values(v) -> np.ndarray:
    """State/action values as stored: floats as float32, integers kept (integer-state datasets)."""
    v = np.asarray(v)
    return v.astype(np.float32) if v.dtype.kind == "f" else v


def _video_feature(h: int, w: int, fps: int) -> dict:
    return {"dtype": "video", "shape": [h, w, 3], "names": ["height", "width", "channel"],
            "info": {"video.fps": fps, "video.height": h, "video.width": w, "video.channels": 3,
                     "video.codec": "h264", "video.pix_fmt": "rgb24", "video.is_depth_map": False,
                     "has_audio": False}}


def _new_root(root: str | Path) -> Path:
    root = Path(root)
    if (root / "meta").exists():
        raise FileExistsError(f"{root} already holds a dataset")
    (root / "meta").mkdir(parents=True)
    return root


def _robot_views(episodes: list[dict], camera: str) -> tuple[list[dict], list[str], tuple]:
    """Each episode's {camera: frames}, the camera names and the frame size, after checking that
    every episode has what a LeRobot robot dataset needs."""
    if not episodes:
        raise ValueError("no episodes to write")
    for i, ep in enumerate(episodes):
        for k in ("frames", "actions", "state"):
            if ep.get(k) is None:
                raise ValueError(f"episode {i}: LeRobot robot datasets need {k!r}")
    videos = [ep["frames"] if isinstance(ep["frames"], dict) else {camera: ep["frames"]}
              for ep in episodes]
    cameras = list(videos[0])
    return videos, cameras, tuple(np.asarray(videos[0][cameras[0]]).shape[1:3])


def write_lerobot_v2(episodes: list[dict], root: str | Path, *, camera: str = "front",
                     tasks: Sequence[str] = (DEFAULT_TASK,), fps: int = 10,
                     modality: dict | None = None, codec: str = "libx264rgb", gop: int = 2,
                     first_episode: int = 0,
                     mutate_episode: Callable[[int, dict], None] | None = None) -> Path:
    """Episodes with `frames` (uint8 [T, H, W, 3] for the one camera `camera`, or {camera: frames}
    for several), `actions` [T, A] and `state` [T, S] (floats are stored as float32, integers as
    they are), and optionally `task` (one of `tasks`, the dataset's task table; default the first).
    `modality`: the modality.json to write (default: state.pos / action.move over the whole
    vectors). Episode k gets episode_index first_episode + k. `mutate_episode(e, columns)` may
    alter an episode's parquet columns just before they are written (bad-input tests)."""
    videos, cameras, (h, w) = _robot_views(episodes, camera)
    tasks = list(tasks)
    root = _new_root(root)
    state0, action0 = _values(episodes[0]["state"]), _values(episodes[0]["actions"])
    scalar = {"dtype": "int64", "shape": [1], "names": None}
    features = {
        "observation.state": {"dtype": str(state0.dtype), "shape": [state0.shape[1]], "names": None},
        "action": {"dtype": str(action0.dtype), "shape": [action0.shape[1]], "names": None},
        "timestamp": {"dtype": "float32", "shape": [1], "names": None},
        "frame_index": scalar, "episode_index": scalar, "index": scalar, "task_index": scalar,
        "annotation.human.task_description": scalar,
        **{f"observation.images.{c}": _video_feature(h, w, fps) for c in cameras},
    }
    n_total = int(sum(len(ep["state"]) for ep in episodes))
    info = {"codebase_version": "v2.1", "robot_type": "synthetic", "fps": fps,
            "chunks_size": CHUNK_SIZE, "total_episodes": len(episodes), "total_frames": n_total,
            "total_tasks": len(tasks), "splits": {"train": f"0:{len(episodes)}"},
            "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
            "video_path": "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4",
            "features": features}
    (root / "meta" / "info.json").write_text(json.dumps(info, indent=1))
    if modality is None:
        modality = {"state": {"pos": {"start": 0, "end": state0.shape[1]}},
                    "action": {"move": {"start": 0, "end": action0.shape[1]}},
                    "video": {c: {"original_key": f"observation.images.{c}"} for c in cameras},
                    "annotation": {"human.task_description": {}}}
    (root / "meta" / "modality.json").write_text(json.dumps(modality, indent=1))
    (root / "meta" / "tasks.jsonl").write_text(
        "".join(json.dumps({"task_index": i, "task": t}) + "\n" for i, t in enumerate(tasks)))
    index, lines = 0, []
    for k, (ep, views) in enumerate(zip(episodes, videos, strict=True)):
        e = first_episode + k
        n = len(ep["state"])
        task = ep.get("task", tasks[0])
        lines.append(json.dumps({"episode_index": e, "tasks": [task], "length": n}))
        cols = {"observation.state": _values(ep["state"]), "action": _values(ep["actions"]),
                "timestamp": (np.arange(n) / fps).astype(np.float32),
                "frame_index": np.arange(n, dtype=np.int64),
                "episode_index": np.full(n, e, np.int64),
                "index": np.arange(index, index + n, dtype=np.int64),
                "task_index": np.full(n, tasks.index(task), np.int64),
                "annotation.human.task_description": np.full(n, tasks.index(task), np.int64)}
        if mutate_episode is not None:
            mutate_episode(e, cols)
        chunk = e // CHUNK_SIZE
        p = root / info["data_path"].format(episode_chunk=chunk, episode_index=e)
        p.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({name: _column(v) for name, v in cols.items()}), p)
        for c in cameras:
            vp = root / info["video_path"].format(episode_chunk=chunk, episode_index=e,
                                                  video_key=f"observation.images.{c}")
            vp.parent.mkdir(parents=True, exist_ok=True)
            write_video(str(vp), views[c], fps, codec=codec, gop=gop)
        index += n
    (root / "meta" / "episodes.jsonl").write_text("\n".join(lines) + "\n")
    return root


V3_STATS = ("min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99")


def _v3_stats(values: np.ndarray) -> dict:
    """meta/stats.json entry of one [N, D] column, with lerobot's statistic names."""
    v = np.asarray(values, np.float64)
    q = {f"q{p:02d}": np.quantile(v, p / 100, axis=0).tolist() for p in (1, 10, 50, 90, 99)}
    return {"min": v.min(0).tolist(), "max": v.max(0).tolist(), "mean": v.mean(0).tolist(),
            "std": v.std(0).tolist(), "count": [len(v)], **q}


def _hf_features(features: dict) -> bytes:
    """The `huggingface` schema metadata lerobot's reader (datasets.Dataset.from_parquet) uses to
    type the data file's columns."""
    out = {}
    for name, f in features.items():
        if f["dtype"] == "video":
            continue
        value = {"dtype": f["dtype"], "_type": "Value"}
        out[name] = (value if f["shape"] == [1] else
                     {"feature": value, "length": f["shape"][0], "_type": "List"})
    return json.dumps({"info": {"features": out}}).encode()


def _write_tasks_v3(path: Path, tasks: list[str]) -> None:
    """tasks.parquet as pandas writes a DataFrame indexed by task string (lerobot reads it with
    pd.read_parquet and looks tasks up by that index)."""
    pandas_meta = {"index_columns": ["__index_level_0__"],
                   "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode",
                                       "numpy_type": "object", "metadata": {"encoding": "UTF-8"}}],
                   "columns": [{"name": "task_index", "field_name": "task_index",
                                "pandas_type": "int64", "numpy_type": "int64", "metadata": None},
                               {"name": None, "field_name": "__index_level_0__",
                                "pandas_type": "unicode", "numpy_type": "object",
                                "metadata": None}],
                   "attributes": {}, "creator": {"library": "pyarrow"}, "pandas_version": "2.2.0"}
    table = pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()),
                      "__index_level_0__": pa.array(tasks, pa.string())})
    pq.write_table(table.replace_schema_metadata({"pandas": json.dumps(pandas_meta)}), path)


def write_lerobot_v3(episodes: list[dict], root: str | Path, *, tasks: Sequence[str] = (DEFAULT_TASK,),
                     fps: int = 10, robot_type: str = "synthetic", camera: str = "front",
                     gop: int = 2, modality: dict | None = None) -> Path:
    """Episodes as for `write_lerobot_v2` (`frames` uint8 [T, H, W, 3] or {camera: frames},
    `actions` [T, A], `state` [T, S], optional `task`), written in the LeRobot v3.0 layout with
    h264 yuv420p video (as lerobot encodes it, so YUV transport applies) and meta/stats.json.
    `modality`: also write it as meta/modality.json (the GR00T flavour: named state / action
    slices; lerobot ignores the file), else none is written."""
    videos, cameras, (h, w) = _robot_views(episodes, camera)
    tasks = list(tasks)
    root = _new_root(root)
    if h % 2 or w % 2:
        raise ValueError(f"yuv420p video needs an even frame size, got {h}x{w}")
    state = np.concatenate([_values(ep["state"]) for ep in episodes])
    action = np.concatenate([_values(ep["actions"]) for ep in episodes])
    lengths = [len(ep["state"]) for ep in episodes]
    scalar = {"dtype": "int64", "shape": [1], "names": None}
    video = {**_video_feature(h, w, fps), "names": ["height", "width", "channels"]}
    video["info"] = {**video["info"], "video.pix_fmt": "yuv420p"}
    features = {
        "observation.state": {"dtype": str(state.dtype), "shape": [state.shape[1]], "names": None},
        "action": {"dtype": str(action.dtype), "shape": [action.shape[1]], "names": None},
        **{f"observation.images.{c}": video for c in cameras},
        "timestamp": {"dtype": "float32", "shape": [1], "names": None},
        "frame_index": scalar, "episode_index": scalar, "index": scalar, "task_index": scalar,
    }
    info = {"codebase_version": "v3.0", "robot_type": robot_type, "total_episodes": len(episodes),
            "total_frames": int(sum(lengths)), "total_tasks": len(tasks),
            "chunks_size": CHUNK_SIZE, "data_files_size_in_mb": 100,
            "video_files_size_in_mb": 200, "fps": fps, "splits": {"train": f"0:{len(episodes)}"},
            "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
            "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
            "features": features}
    (root / "meta" / "info.json").write_text(json.dumps(info, indent=4))
    if modality is not None:
        (root / "meta" / "modality.json").write_text(json.dumps(modality, indent=1))
    task_of = [tasks.index(ep.get("task", tasks[0])) for ep in episodes]
    starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    cols = {"observation.state": state, "action": action,
            "timestamp": np.concatenate([np.arange(n) / fps for n in lengths]).astype(np.float32),
            "frame_index": np.concatenate([np.arange(n) for n in lengths]).astype(np.int64),
            "episode_index": np.repeat(np.arange(len(episodes)), lengths).astype(np.int64),
            "index": np.arange(starts[-1], dtype=np.int64),
            "task_index": np.repeat(task_of, lengths).astype(np.int64)}
    data = root / info["data_path"].format(chunk_index=0, file_index=0)
    data.parent.mkdir(parents=True)
    table = pa.table({k: _column(v) for k, v in cols.items()})
    pq.write_table(table.replace_schema_metadata({"huggingface": _hf_features(features)}), data)
    # One file per camera: episode e occupies [starts[e], starts[e+1]) / fps seconds of it.
    for c in cameras:
        key = f"observation.images.{c}"
        vp = root / info["video_path"].format(video_key=key, chunk_index=0, file_index=0)
        vp.parent.mkdir(parents=True)
        write_video(str(vp), np.concatenate([v[c] for v in videos]), fps, codec="libx264",
                    gop=gop, crf=18)
    ep_cols = {"episode_index": pa.array(range(len(episodes)), pa.int64()),
               "tasks": pa.array([[tasks[t]] for t in task_of], pa.list_(pa.string())),
               "length": pa.array(lengths, pa.int64()),
               "data/chunk_index": pa.array([0] * len(episodes), pa.int64()),
               "data/file_index": pa.array([0] * len(episodes), pa.int64()),
               "dataset_from_index": pa.array(starts[:-1]), "dataset_to_index": pa.array(starts[1:])}
    for c in cameras:
        key = f"videos/observation.images.{c}"
        ep_cols[f"{key}/chunk_index"] = pa.array([0] * len(episodes), pa.int64())
        ep_cols[f"{key}/file_index"] = pa.array([0] * len(episodes), pa.int64())
        ep_cols[f"{key}/from_timestamp"] = pa.array(starts[:-1] / fps, pa.float64())
        ep_cols[f"{key}/to_timestamp"] = pa.array(starts[1:] / fps, pa.float64())
    ep_cols["meta/episodes/chunk_index"] = pa.array([0] * len(episodes), pa.int64())
    ep_cols["meta/episodes/file_index"] = pa.array([0] * len(episodes), pa.int64())
    ep_path = root / "meta" / "episodes" / "chunk-000" / "file-000.parquet"
    ep_path.parent.mkdir(parents=True)
    pq.write_table(pa.table(ep_cols), ep_path)
    _write_tasks_v3(root / "meta" / "tasks.parquet", tasks)
    stats = {"observation.state": _v3_stats(state), "action": _v3_stats(action)}
    for k in ("timestamp", "frame_index", "episode_index", "index", "task_index"):
        stats[k] = _v3_stats(cols[k][:, None])
    (root / "meta" / "stats.json").write_text(json.dumps(stats, indent=4))
    return root


def write_actionless(episodes: list[dict], root: str | Path, *, task: str = DEFAULT_TASK,
                     fps: int = 10) -> Path:
    """Frames only (actions and state are dropped): human / generated video."""
    root = _new_root(root)
    (root / "videos").mkdir()
    lines = []
    for e, ep in enumerate(episodes):
        rel = f"videos/clip{e:06d}.mp4"
        write_video(str(root / rel), ep["frames"], fps)
        lines.append(json.dumps({"episode_index": e, "video": rel, "task": task}))
    (root / "meta" / "episodes.jsonl").write_text("\n".join(lines) + "\n")
    return root
