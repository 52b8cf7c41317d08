"""Write episodes (frames, actions, state; see episodes.py) as GR00T-flavour LeRobot v2.1 datasets
or as action-less video directories, so the synthetic worlds go through the real data layer
(groot_jax/data) and the `latent-actions` / `idm` commands exactly as a user's dataset would.

LeRobot v2.1 layout (spec 10): meta/{info.json, episodes.jsonl, tasks.jsonl, modality.json},
data/chunk-000/episode_XXXXXX.parquet (observation.state, action, timestamp, indices, task),
videos/chunk-000/observation.images.<camera>/episode_XXXXXX.mp4 (lossless libx264rgb).
Modality keys: state.pos [0:S], action.move [0:A], video.<camera>, annotation.human.task_description.
Action-less layout (groot_jax/data/actionless.py): meta/episodes.jsonl + videos/clipXXXXXX.mp4.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from groot_jax.data.video import write_video


def _column(v: np.ndarray) -> pa.Array:
    v = np.asarray(v)
    if v.ndim == 2:
        return pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), v.shape[1])
    return pa.array(v)


def write_lerobot_v2(episodes: list[dict], root: str | Path, *, task: str = "move the red dot",
                     camera: str = "front", fps: int = 10) -> Path:
    """Episodes with frames uint8[T, S, S, 3], actions float32[T, A] and state float32[T, S_d]."""
    root = Path(root)
    if (root / "meta").exists():
        raise FileExistsError(f"{root} already holds a dataset")
    (root / "meta").mkdir(parents=True)
    if not episodes:
        raise ValueError("no episodes to write")
    for i, ep in enumerate(episodes):
        for k in ("frames", "actions", "state"):
            if ep.get(k) is None:
                raise ValueError(f"episode {i}: LeRobot robot datasets need {k!r}")
    h, w = episodes[0]["frames"].shape[1:3]
    a_dim, s_dim = episodes[0]["actions"].shape[1], episodes[0]["state"].shape[1]
    video_key = f"observation.images.{camera}"
    features = {
        "observation.state": {"dtype": "float32", "shape": [s_dim], "names": None},
        "action": {"dtype": "float32", "shape": [a_dim], "names": None},
        "timestamp": {"dtype": "float32", "shape": [1], "names": None},
        "frame_index": {"dtype": "int64", "shape": [1], "names": None},
        "episode_index": {"dtype": "int64", "shape": [1], "names": None},
        "index": {"dtype": "int64", "shape": [1], "names": None},
        "task_index": {"dtype": "int64", "shape": [1], "names": None},
        "annotation.human.task_description": {"dtype": "int64", "shape": [1], "names": None},
        video_key: {"dtype": "video", "shape": [h, w, 3], "names": ["height", "width", "channel"],
                    "info": {"video.fps": fps, "video.height": h, "video.width": w,
                             "video.channels": 3, "video.codec": "h264", "video.pix_fmt": "rgb24",
                             "video.is_depth_map": False, "has_audio": False}},
    }
    n_total = int(sum(len(e["frames"]) for e in episodes))
    info = {"codebase_version": "v2.1", "robot_type": "synthetic", "fps": fps, "chunks_size": 1000,
            "total_episodes": len(episodes), "total_frames": n_total, "total_tasks": 1,
            "splits": {"train": f"0:{len(episodes)}"},
            "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
            "video_path": "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4",
            "features": features}
    (root / "meta" / "info.json").write_text(json.dumps(info, indent=1))
    modality = {"state": {"pos": {"start": 0, "end": s_dim}},
                "action": {"move": {"start": 0, "end": a_dim}},
                "video": {camera: {"original_key": video_key}},
                "annotation": {"human.task_description": {}}}
    (root / "meta" / "modality.json").write_text(json.dumps(modality, indent=1))
    (root / "meta" / "tasks.jsonl").write_text(json.dumps({"task_index": 0, "task": task}) + "\n")
    index = 0
    lines = []
    for e, ep in enumerate(episodes):
        n = len(ep["frames"])
        lines.append(json.dumps({"episode_index": e, "tasks": [task], "length": n}))
        cols = {"observation.state": ep["state"].astype(np.float32),
                "action": ep["actions"].astype(np.float32),
                "timestamp": (np.arange(n) / fps).astype(np.float32),
                "frame_index": np.arange(n, dtype=np.int64),
                "episode_index": np.full(n, e, np.int64),
                "index": np.arange(index, index + n, dtype=np.int64),
                "task_index": np.zeros(n, np.int64),
                "annotation.human.task_description": np.zeros(n, np.int64)}
        p = root / info["data_path"].format(episode_chunk=0, episode_index=e)
        p.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({k: _column(v) for k, v in cols.items()}), p)
        vp = root / info["video_path"].format(episode_chunk=0, episode_index=e, video_key=video_key)
        vp.parent.mkdir(parents=True, exist_ok=True)
        write_video(str(vp), ep["frames"], fps)
        index += n
    (root / "meta" / "episodes.jsonl").write_text("\n".join(lines) + "\n")
    return root


def write_actionless(episodes: list[dict], root: str | Path, *, task: str = "move the red dot",
                     fps: int = 10) -> Path:
    """Frames only (actions and state are dropped): human / generated video."""
    root = Path(root)
    if (root / "meta").exists():
        raise FileExistsError(f"{root} already holds a dataset")
    (root / "meta").mkdir(parents=True)
    (root / "videos").mkdir()
    lines = []
    for e, ep in enumerate(episodes):
        rel = f"videos/clip{e:06d}.mp4"
        write_video(str(root / rel), ep["frames"], fps)
        lines.append(json.dumps({"episode_index": e, "video": rel, "task": task}))
    (root / "meta" / "episodes.jsonl").write_text("\n".join(lines) + "\n")
    return root
