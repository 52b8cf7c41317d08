"""The user's path end to end through the CLI: `groot-jax train --config finetune_tiny --dataset
DIR` on a LeRobot v2.1 dataset (the project's writer) and on a v3.0 dataset (lerobot's own
writer), with camera names, widths and fps of no preset -> the run holds the processor ->
`eval open-loop` with only --model and --dataset -> `convert export` whose metadata.json has the
dataset's statistics at its widths -> a served `get_action` (a `groot-jax serve` process) with
the dataset's action widths, un-normalised. Also: the dry run on the real batch shapes, the data
spec in run_config.json, and bad input (one line naming file and key, the dataset untouched)."""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from groot_jax import cli
from groot_jax.train.cli import build_config, register
from groot_jax.train.config import TrainConfig, apply_overrides
from groot_jax.train.data_spec import DatasetSpec, DataSpec
from tests.data.fixtures import write_v2_dataset

REPO = Path(__file__).resolve().parents[2]
# A robot no preset knows: two cameras "overhead" / "palm", 5 joints + 1 gripper, 7 fps.
CAMERAS = ("overhead", "palm")
MODALITY = {"state": {"joints": {"start": 0, "end": 5}, "grip": {"start": 5, "end": 6}},
            "action": {"joints": {"start": 0, "end": 5}, "grip": {"start": 5, "end": 6}},
            "video": {c: {"original_key": f"observation.images.{c}"} for c in CAMERAS},
            "annotation": {"human.task_description": {}}}
STATS = ("mean", "std", "min", "max", "q01", "q99")
FAST = ["steps=3", "batch_size=2", "log_every=1", "progress=False", "checkpoint.every=100"]


def _tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def robot(tmp_path_factory) -> Path:
    return write_v2_dataset(tmp_path_factory.mktemp("robot") / "arm", lengths=(12, 9),
                            cameras=CAMERAS, hw=(24, 32), fps=7, state_dim=6, action_dim=6,
                            modality_override=MODALITY)


def _columns(root: Path, column: str) -> np.ndarray:
    rows = [np.stack(pq.read_table(f).column(column).to_numpy(zero_copy_only=False))
            for f in sorted(root.glob("data/**/*.parquet"))]
    return np.concatenate(rows).astype(np.float64)


def _expected_stats(x: np.ndarray) -> dict:
    return {"mean": x.mean(0), "std": x.std(0), "min": x.min(0), "max": x.max(0),
            "q01": np.quantile(x, 0.01, axis=0), "q99": np.quantile(x, 0.99, axis=0)}


def _check_processor(run: Path, dataset: Path, layout: dict, cameras: tuple):
    """processor/ holds the derived data config and the dataset's own statistics: its
    meta/stats.json when it has one (lerobot writes one), else those of its rows."""
    shipped = dataset / "meta" / "stats.json"
    shipped = json.loads(shipped.read_text()) if shipped.exists() else None
    configs = json.loads((run / "processor" / "data_configs.json").read_text())
    meta = json.loads((run / "processor" / "metadata.json").read_text())
    assert set(configs) == set(meta) == {"new_embodiment"}
    c, m = configs["new_embodiment"], meta["new_embodiment"]
    assert c["video_keys"] == [f"video.{k}" for k in cameras]
    for group, column in (("state", "observation.state"), ("action", "action")):
        values = _columns(dataset, column)
        assert c[f"{group}_keys"] == [f"{group}.{k}" for k in layout[group]]
        for name, (a, b) in layout[group].items():
            assert m["modalities"][group][name]["shape"] == [b - a]
            want = ({k: np.asarray(v, np.float64).reshape(-1)[a:b]
                     for k, v in shipped[column].items() if k in STATS}
                    if shipped else _expected_stats(values[:, a:b]))
            assert set(want) == set(STATS)
            for stat, v in want.items():
                np.testing.assert_allclose(m["statistics"][group][name][stat], v, rtol=1e-5,
                                           atol=1e-5, err_msg=f"{group}.{name} {stat}")
    assert (run / "processor" / "tokenizer_config.json").is_file()


def _config(argv: list[str]) -> TrainConfig:
    """The TrainConfig `groot-jax train ARGV` runs (flags, run config, run directory)."""
    p = argparse.ArgumentParser()
    register(p.add_subparsers())
    return build_config(p.parse_args(argv))[0]


def _train(argv: list[str], capsys) -> str:
    rc = cli.main(argv)
    out = capsys.readouterr().out
    assert rc == 0, out[-3000:]
    return out


def _losses(out: str) -> list[float]:
    return [float(x) for x in re.findall(r"step \d+/\d+\s+loss (\S+)", out)]


def _rest_of_the_path(run: Path, dataset: Path, observation: dict, action_widths: dict,
                      tmp_path: Path, capsys) -> None:
    """eval open-loop (only --model/--dataset) -> convert export -> one served get_action."""
    from groot_jax.demo import serve_one_action

    before = _tree_hash(dataset)
    ev = tmp_path / "eval"
    assert cli.main(["eval", "open-loop", "--model", str(run), "--dataset", str(dataset),
                     "--out", str(ev)]) == 0
    summary = json.loads((ev / "open_loop.json").read_text())
    assert summary["mse"] > 0 and summary["mean_action"]["mse"] > 0 and summary["plots"]
    assert all(Path(f).is_file() for f in summary["plots"])
    exp = tmp_path / "export"
    assert cli.main(["convert", "export", str(run), str(exp)]) == 0
    exported = json.loads((exp / "experiment_cfg" / "metadata.json").read_text())
    processor = json.loads((run / "processor" / "metadata.json").read_text())
    assert exported == processor
    (entry,) = exported.values()
    assert {k: len(v["max"]) for k, v in entry["statistics"]["action"].items()} == action_widths
    capsys.readouterr()
    action = serve_one_action(run, observation)
    assert {k.split(".", 1)[1]: np.asarray(v).shape for k, v in action.items()} == {
        k: (16, w) for k, w in action_widths.items()}
    for key, value in action.items():   # un-normalised: on the scale of the recorded actions
        st = entry["statistics"]["action"][key.split(".", 1)[1]]
        span = np.asarray(st["max"]) - np.asarray(st["min"])
        assert np.isfinite(value).all() and np.all(np.abs(value - np.asarray(st["mean"])) < 10 * span)
    assert _tree_hash(dataset) == before


def test_train_on_a_v2_dataset(robot, tokenizer_dir, tmp_path, capsys):
    before = _tree_hash(robot)
    run = tmp_path / "run"
    out = _train(["train", "--config", "finetune_tiny", "--dataset", str(robot), "--tokenizer",
                  str(tokenizer_dir), f"checkpoint.dir={run}", *FAST], capsys)
    losses = _losses(out)
    assert len(losses) == 3 and all(np.isfinite(losses)), out
    assert "done at step 3" in out
    # these videos are lossless RGB (libx264rgb): on-device augmentation with RGB transport
    assert re.search(r"data path: device augment \(.*overhead.*is gbrp, not yuv420p", out), out
    assert (run / "3").is_dir()
    _check_processor(run, robot, {"state": {"joints": (0, 5), "grip": (5, 6)},
                                  "action": {"joints": (0, 5), "grip": (5, 6)}}, CAMERAS)
    # no stats.json in the dataset: computed and written beside the run, not into the dataset
    assert list((run / "stats").glob("arm-*.json")) and _tree_hash(robot) == before
    # run_config.json restores the run's TrainConfig exactly, data spec included
    cfg = TrainConfig.from_json((run / "run_config.json").read_text())
    assert cfg.data.source == "datasets" and cfg.data.datasets == (DatasetSpec(str(robot)),)
    assert cfg.model_config().backbone.image_token_index != 151669   # sized to the tokenizer
    assert TrainConfig.from_json(cfg.to_json()) == cfg
    # resuming with other data is refused, naming both; without --dataset the spec is the run's
    other = tmp_path / "other"
    other.mkdir()
    rc = cli.main(["train", "--config", "finetune_tiny", "--dataset", str(other),
                   f"checkpoint.dir={run}", *FAST], handle_errors=True)
    err = capsys.readouterr().err
    assert rc == 1 and str(other) in err and str(robot) in err and "run_config.json" in err, err
    assert _config(["train", "--config", "finetune_tiny", f"checkpoint.dir={run}"]).data == cfg.data
    rng = np.random.default_rng(0)
    obs = {**{f"video.{c}": rng.integers(0, 256, (1, 24, 32, 3), dtype=np.uint8) for c in CAMERAS},
           "state.joints": rng.normal(size=(1, 5)).astype(np.float32),
           "state.grip": rng.normal(size=(1, 1)).astype(np.float32),
           "annotation.human.task_description": "pick up the red cube"}
    _rest_of_the_path(run, robot, obs, {"joints": 5, "grip": 1}, tmp_path, capsys)


def test_train_on_a_v3_dataset_written_by_lerobot(v3_root, tokenizer_dir, tmp_path, capsys):
    before = _tree_hash(v3_root)
    run = tmp_path / "run"
    out = _train(["train", "--config", "finetune_tiny", "--dataset", str(v3_root), "--tokenizer",
                  str(tokenizer_dir), f"checkpoint.dir={run}", *FAST], capsys)
    losses = _losses(out)
    assert len(losses) == 3 and all(np.isfinite(losses)), out
    assert "data path: device augment" in out and (run / "3").is_dir()
    # v3.0 without modality.json: keys from meta/info.json features
    _check_processor(run, v3_root, {"state": {"state": (0, 6)}, "action": {"action": (0, 6)}},
                     ("front",))
    assert _tree_hash(v3_root) == before
    rng = np.random.default_rng(0)
    obs = {"video.front": rng.integers(0, 256, (1, 48, 64, 3), dtype=np.uint8),
           "state.state": rng.normal(size=(1, 6)).astype(np.float32),
           "annotation.human.task_description": "open the drawer"}
    _rest_of_the_path(run, v3_root, obs, {"action": 6}, tmp_path, capsys)


def test_dry_run_counts_the_real_batch(robot, tokenizer_dir, capsys):
    assert cli.main(["train", "--config", "finetune_tiny", "--dataset", str(robot),
                     "--tokenizer", str(tokenizer_dir), "--dry-run", "--json",
                     "batch_size=2"]) == 0
    out = capsys.readouterr().out
    r = json.loads(out.strip().splitlines()[-1])
    assert r["batch_source"] == "data pipeline", r
    # two cameras -> two views of the cropped uint8 frames (device augmentation); the prompt
    # holds 2 x 16 image tokens plus the task text
    m = re.search(r"input_ids \[2, (\d+)\] int32", r["batch"])
    assert m and int(m.group(1)) > 32, r["batch"]
    assert re.search(r"pixel_u8 \[2, 2, \d+, \d+, 3\] uint8", r["batch"]), r["batch"]
    assert "batch (data pipeline)" in out and "peak" in out


def _fails(capsys, argv: list[str], *names: str) -> str:
    rc = cli.main(argv, handle_errors=True)
    err = capsys.readouterr().err
    assert rc == 1, (rc, err)
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 2, err
    first = err.strip().splitlines()[0]
    for name in names:
        assert name in first, (name, err)
    return first


def test_bad_input_names_file_and_key(robot, tokenizer_dir, tmp_path, capsys):
    tok = ["--tokenizer", str(tokenizer_dir), f"checkpoint.dir={tmp_path / 'run'}", *FAST]
    before = _tree_hash(robot)
    # not a LeRobot dataset
    plain = tmp_path / "photos"
    (plain / "img").mkdir(parents=True)
    _fails(capsys, ["train", "--config", "finetune_tiny", "--dataset", str(plain), *tok],
           str(plain), "meta/info.json", "not a LeRobot dataset")
    # a preset whose keys the dataset does not define
    _fails(capsys, ["train", "--config", "finetune_tiny", "--dataset", str(robot),
                    "--data-config", "so100", *tok],
           str(robot / "meta" / "modality.json"), "video.webcam")
    assert _tree_hash(robot) == before
    # wider than the model (the tiny preset pads actions to 32)
    wide = write_v2_dataset(tmp_path / "wide", lengths=(4,), hw=(16, 16), action_dim=40,
                            modality_override={**MODALITY, "video": {"front": {}},
                                               "action": {"all": {"start": 0, "end": 40}}},
                            cameras=("front",))
    _fails(capsys, ["train", "--config", "finetune_tiny", "--dataset", str(wide), *tok],
           str(wide), "action is 40 wide", "max_action_dim is 32")
    # statistics with no range for a normalised key (a broken meta/stats.json)
    flat = write_v2_dataset(tmp_path / "flat", lengths=(4, 3), cameras=CAMERAS, hw=(16, 16),
                            state_dim=6, action_dim=6, modality_override=MODALITY)
    stats = {}
    for column in ("observation.state", "action"):
        x = _columns(flat, column)
        s = {k: v.tolist() for k, v in _expected_stats(x).items()}
        if column == "action":
            s["min"] = s["max"] = [0.5] * 6
        stats[column] = s
    (flat / "meta" / "stats.json").write_text(json.dumps(stats))
    before_flat = _tree_hash(flat)
    _fails(capsys, ["train", "--config", "finetune_tiny", "--dataset", str(flat), *tok],
           str(flat / "meta" / "stats.json"), "action.joints", "no range")
    assert _tree_hash(flat) == before_flat
    # a real model never trains on the synthetic task
    _fails(capsys, ["train", "--config", "finetune_n15"], "finetune_n15 needs --dataset DIR")
    _fails(capsys, ["train", "--config", "finetune_tiny", "--dataset", str(robot),
                    "--data-config", "so100", "--data-config", "so100", "--dataset", str(robot),
                    "--dataset", str(robot), *tok], "--data-config given 2 times for 3")


def test_flags_build_the_data_spec(tokenizer_dir):
    d = _config(["train", "--config", "finetune_tiny", "--dataset", "a", "--weight", "3",
                 "--dataset", "b", "--embodiment", "gr1", "--embodiment", "new_embodiment",
                 "--tokenizer", str(tokenizer_dir), "--dry-run", "data.num_workers=2",
                 "data.device_augment=False"]).data
    assert [(x.path, x.weight, x.embodiment) for x in d.datasets] == [
        ("a", 3.0, "gr1"), ("b", 1.0, "new_embodiment")]
    assert d.weights() == [0.75, 0.25] and d.num_workers == 2 and d.device_augment is False
    assert d.tokenizer == str(tokenizer_dir) and d.source == "datasets"
    with pytest.raises(ValueError, match="set by its command-line flags"):
        apply_overrides(TrainConfig(), ["data.datasets=()"])
    with pytest.raises(ValueError, match="unknown data config 'nope'"):
        DatasetSpec("x", data_config="nope")
    with pytest.raises(ValueError, match="no level while others do"):
        DataSpec(source="datasets", datasets=(DatasetSpec("a", level="x"), DatasetSpec("b")),
                 level_weights=(("x", 1.0),))


TRAIN_MODULES = sorted(p.stem for p in (REPO / "groot_jax" / "train").glob("*.py"))


def test_train_imports_no_latent_module_and_has_no_cycle():
    """Every groot_jax.train module imports alone in a fresh interpreter (an import cycle fails
    there), and none names groot_jax.latent."""
    for path in (REPO / "groot_jax" / "train").glob("*.py"):
        assert not re.search(r"groot_jax\.latent|from groot_jax import latent",
                             path.read_text()), path
    code = ";".join(f"import groot_jax.train.{m}" for m in TRAIN_MODULES)
    code += ";import sys;print(sorted(m for m in sys.modules if m.startswith('groot_jax.latent')))"
    for m in TRAIN_MODULES:   # each first, alone: a cycle shows only when its module goes first
        r = subprocess.run([sys.executable, "-c", f"import groot_jax.train.{m}"], cwd=REPO,
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, (m, r.stderr[-2000:])
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "[]", (r.stdout, r.stderr[-2000:])
