"""Our LeRobot v3.0 writer (groot_jax.data.writers.write_lerobot_v3): what it writes reads back
through our reader, and through lerobot's own metadata and data readers."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from groot_jax.data.lerobot_v3 import LeRobotV3Source
from groot_jax.data.writers import write_lerobot_v3
from tests.data.conftest import LEROBOT_VENV

LENGTHS, TASKS = (12, 7, 9), ("reach the cup", "push the block")


def _episodes():
    r = np.random.default_rng(0)
    out = []
    for i, n in enumerate(LENGTHS):
        # Smooth frames (h264 at crf 18 is lossy: compare within a few grey levels).
        base = np.linspace(0, 200, 48, dtype=np.float32)[None, None, :, None]
        frames = {c: np.broadcast_to(base + 5 * np.arange(n)[:, None, None, None] + 20 * k,
                                     (n, 32, 48, 3)).astype(np.uint8)
                  for k, c in enumerate(("top", "wrist"))}
        out.append(dict(frames=frames, state=r.normal(size=(n, 5)), actions=r.normal(size=(n, 3)),
                        task=TASKS[i % 2]))
    return out


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    eps = _episodes()
    return eps, write_lerobot_v3(eps, tmp_path_factory.mktemp("v3w") / "ds", tasks=TASKS, fps=15)


def test_reads_back_through_our_reader(written):
    eps, root = written
    src = LeRobotV3Source(root)
    assert list(src.episode_lengths) == list(LENGTHS)
    assert src.tasks == {0: TASKS[0], 1: TASKS[1]} and src.fps == 15
    assert sorted(src.modality.video) == ["top", "wrist"]
    for pos, ep in enumerate(eps):
        e = src.episode(pos)
        np.testing.assert_array_equal(e.columns["observation.state"],
                                      ep["state"].astype(np.float32))
        idx = np.arange(e.length)
        for cam in ("top", "wrist"):
            frames = src.video(pos, e, f"video.{cam}", idx)
            assert frames.shape == ep["frames"][cam].shape
            assert np.abs(frames.astype(int) - ep["frames"][cam]).mean() < 3.0
    stats = json.loads((root / "meta" / "stats.json").read_text())
    allact = np.concatenate([ep["actions"] for ep in eps])
    np.testing.assert_allclose(stats["action"]["mean"], allact.mean(0), rtol=1e-5)
    np.testing.assert_allclose(stats["action"]["q99"], np.quantile(allact, 0.99, axis=0),
                               rtol=1e-5)


def test_lerobot_reads_it(written):
    eps, root = written
    if not (LEROBOT_VENV / ".installed").exists():
        pytest.fail(f"lerobot environment missing: run `bash tests/data/install_lerobot_writer.sh "
                    f"{LEROBOT_VENV}`")
    r = subprocess.run([str(LEROBOT_VENV / "bin" / "python"),
                        str(Path(__file__).parent / "read_v3_with_lerobot.py"), str(root)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    seen = json.loads(r.stdout.strip().splitlines()[-1])
    assert seen["total_episodes"] == 3 and seen["total_frames"] == sum(LENGTHS)
    assert seen["fps"] == 15 and seen["lengths"] == list(LENGTHS)
    assert seen["video_keys"] == ["observation.images.top", "observation.images.wrist"]
    assert seen["tasks"] == {TASKS[0]: 0, TASKS[1]: 1}
    starts = np.cumsum([0, *LENGTHS[:-1]]) / 15
    np.testing.assert_allclose(seen["from_timestamp"]["observation.images.top"], starts)
    np.testing.assert_allclose(seen["state"], np.concatenate([e["state"] for e in eps]),
                               rtol=1e-6)
    assert seen["task_index"] == [i % 2 for i, n in enumerate(LENGTHS) for _ in range(n)]
    np.testing.assert_allclose(seen["stats_action_mean"],
                               np.concatenate([e["actions"] for e in eps]).mean(0), rtol=1e-5)
