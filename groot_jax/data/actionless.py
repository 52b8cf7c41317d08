"""Action-less sources: videos with language but no actions (human videos, generated videos).

Layout: <root>/meta/episodes.jsonl with one line per clip:
  {"episode_index": int, "video": "relative/path.mp4", "task": "language annotation"}
Keys exposed: video.ego_view and annotation.human.task_description. Samples carry
action_mask = 0 everywhere (no loss on actions) and, when the pipeline has an action-less source,
`pseudo_action` / `pseudo_action_mask` slots (zeros) that latent or inverse-dynamics actions fill
in a later stage. The state is empty (state_mask all False).
"""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np

from groot_jax.data.errors import DataError
from groot_jax.data.modality import LeRobotModality
from groot_jax.data.source import Episode, EpisodeSource

VIDEO_NAME = "ego_view"
LANG_KEY = "human.task_description"


def _frame_times(path: Path) -> np.ndarray:
    try:
        with av.open(str(path)) as c:
            s = c.streams.video[0]
            pts = sorted(p.pts for p in c.demux(s) if p.pts is not None)
            return np.asarray(pts, np.float64) * float(s.time_base)
    except (av.error.FFmpegError, IndexError, OSError) as e:
        raise DataError(f"{path}: cannot read video ({e})") from e


class ActionlessSource(EpisodeSource):
    has_actions = False

    def __init__(self, root: str | Path, name: str | None = None, **kw):
        super().__init__(**kw)
        self.root = Path(root)
        self.name = name or self.root.name
        p = self.root / "meta" / "episodes.jsonl"
        if not p.exists():
            raise DataError(f"{p}: not found")
        rows = [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
        for r in rows:
            for req in ("episode_index", "video", "task"):
                if req not in r:
                    raise DataError(f"{p}: a line lacks {req!r}: {r}")
        self._rows = rows
        self._times = [_frame_times(self.root / r["video"]) for r in rows]
        self.episode_indices = np.array([r["episode_index"] for r in rows], np.int64)
        self.episode_lengths = np.array([len(t) for t in self._times], np.int64)
        self.tasks = {}
        self.modality = LeRobotModality(
            state={}, action={}, video={VIDEO_NAME: VIDEO_NAME}, annotation={LANG_KEY: "task"}
        )
        with av.open(str(self.root / rows[0]["video"])) as c:
            s = c.streams.video[0]
            self.video_resolution = {VIDEO_NAME: (s.width, s.height)}
            self.fps = float(s.average_rate or 30)

    def _load_episode(self, pos: int) -> Episode:
        r = self._rows[pos]
        n = len(self._times[pos])
        return Episode(
            index=int(r["episode_index"]),
            length=n,
            columns={},
            timestamps=self._times[pos],
            annotations={"task": np.array([r["task"]] * n)},
            file=str(self.root / r["video"]),
        )

    def _video_location(self, pos: int, video_name: str):
        return self.root / self._rows[pos]["video"], 0.0
