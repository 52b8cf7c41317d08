"""The Meta-World path through the CLI, short: `groot-jax record metaworld` -> lerobot reads the
dataset -> `groot-jax train` on it -> `groot-jax eval closed-loop --baselines --videos` on
held-out variations. Minutes, not a result: experiments/closed_loop/README.md has the numbers."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from groot_jax.cli import main
from groot_jax.data.mixture import open_reader
from tests.data.conftest import LEROBOT_VENV

TASKS = ("reach-v3", "drawer-close-v3")


def cli(*argv) -> int:
    return main([str(a) for a in argv], handle_errors=True)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    root = tmp_path_factory.mktemp("mw")
    assert cli("record", "metaworld", "--tasks", ",".join(TASKS), "--episodes", 2,
               "--out", root / "dataset", "--image", 32,
               "--tokenizer-out", root / "tokenizer") == 0
    return root


def test_record_writes_a_lerobot_v3_dataset(recorded):
    ds = recorded / "dataset"
    rec = json.loads((ds / "meta" / "recording.json").read_text())
    assert set(rec["tasks"]) == set(TASKS)
    for t in TASKS:  # the scripted expert solves these variations
        assert rec["tasks"][t]["expert_successes"] == 2 == rec["tasks"][t]["episodes_written"]
        assert rec["tasks"][t]["seed_variation"] == [[0, 0], [0, 1]]
    src = open_reader(str(ds), "lerobot")
    assert len(src.episode_lengths) == 4
    modality = json.loads((ds / "meta" / "modality.json").read_text())
    assert list(modality["state"]) == ["hand", "gripper"]
    assert list(modality["action"]) == ["ee_delta", "gripper"]
    if not (LEROBOT_VENV / ".installed").exists():
        pytest.fail(f"lerobot environment missing: run `bash tests/data/install_lerobot_writer.sh "
                    f"{LEROBOT_VENV}`")
    r = subprocess.run([str(LEROBOT_VENV / "bin" / "python"),
                        str(Path(__file__).parents[1] / "data" / "read_v3_with_lerobot.py"),
                        str(ds)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    seen = json.loads(r.stdout.strip().splitlines()[-1])
    assert seen["total_episodes"] == 4
    assert seen["total_frames"] == sum(rec["tasks"][t]["frames"] for t in TASKS)
    assert seen["video_keys"] == ["observation.images.corner"]
    assert sorted(seen["tasks"]) == sorted(rec["tasks"][t]["text"] for t in TASKS)
    state = np.asarray(seen["state"])
    assert state.shape[1] == 4 and np.all(np.isfinite(state))


def test_train_then_closed_loop_with_baselines(recorded, tmp_path):
    run, out = tmp_path / "run", tmp_path / "cl"
    assert cli("train", "--config", "finetune_tiny", "--dataset", recorded / "dataset",
               "--tokenizer", recorded / "tokenizer", "steps=3", "batch_size=4",
               f"checkpoint.dir={run}", "checkpoint.every=3", "progress=False") == 0
    assert cli("eval", "closed-loop", "--model", run, "--env", "metaworld",
               "--tasks", ",".join(TASKS), "--episodes", 2, "--max-steps", 16, "--image", 32,
               "--baselines", "--videos", 1, "--out", out) == 0
    report = json.loads((out / "closed_loop.json").read_text())
    assert set(report["results"]) == {"groot-jax", "zero action", "mean demo action",
                                      "random action"}
    for per_task in report["results"].values():
        assert set(per_task) == set(TASKS)
        for r in per_task.values():
            assert r["episodes"] == 2 and 0 <= r["successes"] <= 2
            lo, hi = r["wilson95"]
            assert 0 <= lo <= r["rate"] <= hi <= 1
    assert report["seed"] == 1  # held-out variations: the recording used seed 0
    assert (out / "closed_loop.png").stat().st_size > 1000
    assert sorted(p.name for p in (out / "videos").iterdir()) == [
        f"{t}_variation0.mp4" for t in sorted(TASKS)]


def test_bad_task_name_is_one_line(capsys):
    assert cli("record", "metaworld", "--tasks", "reach-v9", "--episodes", 1,
               "--out", "/nonexistent/never") == 1
    err = capsys.readouterr().err
    assert "reach-v9" in err and "reach-v3" in err


def test_more_demonstrations_than_one_seed_has_asks_for_another_seed(capsys, tmp_path):
    assert cli("record", "metaworld", "--tasks", "reach-v3", "--episodes", 51,
               "--out", tmp_path / "ds") == 1
    err = capsys.readouterr().err
    assert "--episodes 51" in err and "50 variations" in err and "--seed" in err
    assert not (tmp_path / "ds").exists()


def test_baselines_need_no_rendering():
    """Observation-blind policies run on black frames (software rendering is most of a step)."""
    from groot_jax.sim.metaworld import MetaWorldTask

    blind = MetaWorldTask("reach-v3", 0, image_size=32, render=False)
    seen = MetaWorldTask("reach-v3", 0, image_size=32)
    try:
        a, b = blind.reset(), seen.reset()
        np.testing.assert_array_equal(a["state.hand"], b["state.hand"])
        assert a["video.corner"].shape == b["video.corner"].shape == (1, 32, 32, 3)
        assert a["video.corner"].max() == 0 < b["video.corner"].max()
    finally:
        blind.close()
        seen.close()


def test_mt10_state_layout_records_objects_and_goal_and_drives_a_policy(tmp_path):
    """`--state mt10`: observation.state = [hand, gripper, objects, goal] (21-d) as the env
    observes them, and a model trained on it reads those keys back from the simulator."""
    import pyarrow.parquet as pq

    from groot_jax.sim.metaworld import MetaWorldTask

    ds = tmp_path / "dataset"
    assert cli("record", "metaworld", "--tasks", "push-v3", "--episodes", 2, "--state", "mt10",
               "--out", ds, "--image", 32, "--tokenizer-out", tmp_path / "tokenizer") == 0
    modality = json.loads((ds / "meta" / "modality.json").read_text())
    assert {k: (v["start"], v["end"]) for k, v in modality["state"].items()} == {
        "hand": (0, 3), "gripper": (3, 4), "objects": (4, 18), "goal": (18, 21)}
    assert json.loads((ds / "meta" / "recording.json").read_text())["state_layout"] == "mt10"
    table = pq.read_table(next((ds / "data").rglob("*.parquet")))
    state = np.stack(table.column("observation.state").to_numpy(zero_copy_only=False))
    state = state[table.column("episode_index").to_numpy() == 0]
    env = MetaWorldTask("push-v3", 0, image_size=32, render=False)
    try:
        first = env.reset()
        goal = env.env.unwrapped._target_pos
    finally:
        env.close()
    assert state.shape[1] == 21
    np.testing.assert_allclose(state[0], np.concatenate(
        [first[f"state.{k}"][0] for k in ("hand", "gripper", "objects", "goal")]), atol=1e-6)
    np.testing.assert_allclose(state[:, 18:], np.broadcast_to(goal, (len(state), 3)), atol=1e-6)
    assert np.linalg.norm(state[0, 4:7] - goal) > 0.05  # the puck starts away from the goal

    run = tmp_path / "run"
    assert cli("train", "--config", "finetune_tiny", "--dataset", ds, "--tokenizer",
               tmp_path / "tokenizer", "steps=2", "batch_size=2", f"checkpoint.dir={run}",
               "checkpoint.every=2", "progress=False") == 0
    assert cli("eval", "closed-loop", "--model", run, "--env", "metaworld", "--tasks",
               "push-v3", "--episodes", 1, "--max-steps", 8, "--image", 32,
               "--out", tmp_path / "cl") == 0
    report = json.loads((tmp_path / "cl" / "closed_loop.json").read_text())
    assert report["results"]["groot-jax"]["push-v3"]["episodes"] == 1
