"""A training run directory used as a model: Policy, eval open-loop, export and serve read the
data config, statistics and tokenizer stored with it (no --data-config), on a layout no preset
has (one camera `front`, 6-d `state.state`, 6-d `action.action`, as LeRobot v3.0 derives it)."""
import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx

from groot_jax import cli
from groot_jax.config import GR00TConfig
from groot_jax.convert import checkpoint as ck
from groot_jax.convert import processor_files as pf
from groot_jax.convert.run_dir import is_run_dir, load_run, run_steps
from groot_jax.data.lerobot_v2 import LeRobotV2Source
from groot_jax.data.modality import DataConfig
from groot_jax.data.stats import dataset_metadata, source_stats
from groot_jax.eval.policy import Policy
from tests.data.conftest import v3_root  # noqa: F401 (the LeRobot v3.0 fixture)
from tests.data.fixtures import write_tokenizer, write_v2_dataset
from tests.tiny_model import tiny_config_for

ROOT = Path(__file__).resolve().parents[2]
TOKEN_BUCKET = 320
MODALITY = {"state": {"state": {"start": 0, "end": 6}}, "action": {"action": {"start": 0, "end": 6}},
            "video": {"front": {"original_key": "observation.images.front"}},
            "annotation": {"human.task_description": {}}}
DATA = DataConfig(name="front_6dof", embodiment_tag="new_embodiment", video_keys=("video.front",),
                  state_keys=("state.state",), action_keys=("action.action",),
                  language_keys=("annotation.human.task_description",),
                  state_normalization={"state.state": "min_max"},
                  action_normalization={"action.action": "min_max"})


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run dir as training leaves it: 2 steps of the tiny model on the synthetic task (Orbax
    checkpoints and run_config.json from the loop), then processor/ for a v2.1 dataset."""
    from groot_jax.train import loop, optimizer
    from tests.train.run_tiny import tiny_config

    root = tmp_path_factory.mktemp("run_dir")
    tok = write_tokenizer(root / "tokenizer")
    # The synthetic prompts use ids up to 5000: keep the tiny vocabulary, take the image id of
    # the fixture tokenizer (which Policy checks).
    backbone = dataclasses.replace(GR00TConfig.tiny().backbone,
                                   image_token_index=tiny_config_for(tok).backbone.image_token_index)
    cfg = tiny_config(str(root / "run"), steps=2, every=1, model_overrides=(("backbone", backbone),))
    result = loop.train(cfg, log=lambda _: None)
    dataset = write_v2_dataset(root / "v2", lengths=(20, 9), cameras=("front",), hw=(48, 64),
                               state_dim=6, action_dim=6, modality_override=MODALITY)
    source = LeRobotV2Source(dataset)
    metadata = json.loads(json.dumps(
        {"new_embodiment": dataset_metadata(source, source_stats(source), "new_embodiment")}))
    pf.write_processor(root / "run" / pf.PROCESSOR_DIR, data_configs={"new_embodiment": DATA},
                       metadata=metadata, tokenizer_dir=tok)
    saved = optimizer.flatten(optimizer.merge_params(jax.device_get(result.state.params),
                                                     jax.device_get(result.state.frozen), cfg))
    return root / "run", dataset, metadata, saved


@pytest.fixture(scope="module")
def policy(run):
    return Policy(run[0], token_buckets=(TOKEN_BUCKET,), batch_buckets=(1,))


def _obs(seed=0, task="pick up the red cube"):
    rng = np.random.default_rng(seed)
    return {"video.front": rng.integers(0, 256, (1, 48, 64, 3), dtype=np.uint8),
            "state.state": rng.uniform(-1, 1, (1, 6)).astype(np.float32),
            "annotation.human.task_description": task}


def _expected_actions(policy, obs, seed):
    """The sampler's normalised chunk, un-normalised by hand with the run's action statistics
    (min_max), independent of the codec."""
    from groot_jax.eval.policy import SEED_LIMIT

    items = policy.validate(obs, batch=False)
    noise = np.asarray(policy._noise(np.uint32(seed % SEED_LIMIT)))[None]
    raw = policy._run(items, noise, TOKEN_BUCKET, 1)[0]  # [16, 32] normalised
    st = policy.statistics["action"]["action"]
    return (raw[:, :6] + 1) / 2 * (st["max"] - st["min"]) + st["min"]


def test_load_run_restores_the_saved_weights(run):
    from groot_jax.train import optimizer

    path, _, metadata, saved = run
    assert is_run_dir(path) and run_steps(path) == [1, 2]
    cfg, params, processor = load_run(path)
    got = optimizer.flatten(nnx.to_pure_dict(params))
    assert got.keys() == saved.keys()
    for k, v in saved.items():
        assert got[k].dtype == v.dtype, k  # as saved: fp32 trainable, bf16 frozen
        np.testing.assert_array_equal(got[k], np.asarray(v), err_msg=k)
    assert {str(v.dtype) for v in got.values()} == {"float32", "bfloat16"}
    assert processor.data_configs == {"new_embodiment": DATA} and processor.metadata == metadata
    _, older, _ = load_run(path, step=1, dtype="float32")
    older = optimizer.flatten(nnx.to_pure_dict(older))
    assert {str(v.dtype) for v in older.values()} == {"float32"}
    trained = "action_head/action_decoder/layer1/W"
    assert not np.array_equal(older[trained], got[trained])  # step 1 is not step 2


def test_policy_from_run_dir_needs_no_data_config(run, policy):
    assert policy.data_config == DATA
    meta = policy.metadata()
    assert meta["actions"] == {"action.action": [16, 6]}
    assert meta["observation"]["state.state"]["shape"] == [1, 6]
    action = policy.get_action(_obs(), seed=7)
    assert set(action) == {"action.action"} and action["action.action"].shape == (16, 6)
    np.testing.assert_allclose(action["action.action"], _expected_actions(policy, _obs(), 7),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["v2.1", "v3.0"])
def test_eval_open_loop_with_only_model_and_dataset(run, policy, kind, request, tmp_path, capsys):
    dataset = run[1] if kind == "v2.1" else request.getfixturevalue("v3_root")
    argv = ["eval", "open-loop", "--model", str(run[0]), "--dataset", str(dataset),
            "--batch-size", "1", "--every", "16"]
    out = tmp_path / "ol"
    if kind == "v3.0":
        argv += ["--out", str(out)]
    else:  # the default: beside the weights
        out = run[0] / "eval" / "open_loop"
    assert cli.main(argv, handle_errors=True) == 0, capsys.readouterr().err
    summary = json.loads((out / "open_loop.json").read_text())
    assert summary["data_config"] == "front_6dof" and summary["episodes"] in (2, 3)
    assert set(summary["per_key"]) == {"action.action"} and np.isfinite(summary["mse"])
    base = summary["mean_action"]
    assert set(base) == {"per_key", "mse", "mae"} and base["mse"] > 0
    assert base["mse"] != summary["mse"]
    assert len(summary["plots"]) == summary["episodes"]
    for p in summary["plots"]:
        assert Path(p).parent == out / "plots" and Path(p).read_bytes()[:4] == b"\x89PNG"


def test_mean_action_baseline_is_the_training_mean(run, policy):
    from groot_jax.eval.open_loop import open_loop

    source = LeRobotV2Source(run[1])
    result = open_loop(policy, source, [1], every=16, batch_size=1)
    mean = np.asarray(run[2]["new_embodiment"]["statistics"]["action"]["action"]["mean"])
    truth = result["truth"][1]["action.action"]
    assert result["mean_action"]["mse"] == pytest.approx(float(np.mean((truth - mean) ** 2)),
                                                         rel=1e-5)


def test_export_from_run_dir(run, tmp_path, capsys):
    from groot_jax.train import optimizer

    path, _, metadata, _ = run
    out = tmp_path / "gr00t"
    assert cli.main(["convert", "export", str(path), str(out)], handle_errors=True) == 0, \
        capsys.readouterr().err
    exported = json.loads((out / ck.METADATA_FILE).read_text())
    assert exported == metadata
    mods = exported["new_embodiment"]["modalities"]
    assert mods["state"]["state"]["shape"] == [6] and mods["action"]["action"]["shape"] == [6]
    assert list(mods["video"]) == ["front"]
    assert pf.read_data_configs(out / "experiment_cfg" / pf.DATA_CONFIGS) == {"new_embodiment": DATA}
    assert ck.has_tokenizer(out)
    cfg, params, _ = load_run(path, dtype="float32")
    cfg2, _, params2, meta2 = ck.load_pretrained(out)
    assert cfg2 == cfg and meta2 == metadata
    a = optimizer.flatten(nnx.to_pure_dict(params))
    b = optimizer.flatten(nnx.to_pure_dict(params2))
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(np.asarray(b[k]), a[k], err_msg=k)


def test_served_get_action_has_dataset_widths_unnormalised(run, policy, tmp_path):
    from groot_jax.serve.client import PolicyClient
    from tests.serve.conftest import free_port

    port = free_port()
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "JAX_COMPILATION_CACHE_DIR": jax.config.jax_compilation_cache_dir,
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
           "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
    err = open(tmp_path / "stderr.txt", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "groot_jax.cli", "serve", "--model",
                             str(run[0]), "--port", str(port), "--token-buckets",
                             str(TOKEN_BUCKET), "--batch-buckets", "1"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        for line in proc.stdout:
            if "serving" in line:
                break
        else:
            err.seek(0)
            pytest.fail(f"server exited: {err.read()[-3000:]}")
        client = PolicyClient(f"tcp://127.0.0.1:{port}")
        action = client.get_action(_obs(3), seed=11)
        client.close()
    finally:
        proc.terminate()
        proc.wait(60)
    assert set(action) == {"action.action"} and action["action.action"].shape == (16, 6)
    np.testing.assert_allclose(action["action.action"], _expected_actions(policy, _obs(3), 11),
                               rtol=1e-5, atol=1e-5)


def _one_line_error(argv, capsys) -> str:
    assert cli.main(argv, handle_errors=True) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "rerun with --debug" in err[1], err
    return err[0]


def test_bad_model_paths_are_one_line(run, tmp_path, capsys):
    path, dataset = run[0], run[1]
    msg = _one_line_error(["eval", "open-loop", "--model", str(dataset), "--dataset",
                           str(dataset)], capsys)
    assert f"--model {dataset}: neither a training run" in msg
    fresh = tmp_path / "fresh"  # started, no checkpoint saved yet
    fresh.mkdir()
    shutil.copy(path / pf.RUN_CONFIG, fresh / pf.RUN_CONFIG)
    shutil.copytree(path / pf.PROCESSOR_DIR, fresh / pf.PROCESSOR_DIR)
    msg = _one_line_error(["eval", "open-loop", "--model", str(fresh), "--dataset",
                           str(dataset)], capsys)
    assert f"{fresh}: no checkpoint yet" in msg
    msg = _one_line_error(["convert", "export", str(path), str(tmp_path / "x"), "--step", "7"],
                          capsys)
    assert f"{path}: no checkpoint of step 7; it has steps [1, 2]" in msg
    assert not (tmp_path / "x").exists()
    old = tmp_path / "old"  # trained before processor files existed
    shutil.copytree(path, old, ignore=shutil.ignore_patterns(pf.PROCESSOR_DIR, "eval"))
    msg = _one_line_error(["convert", "export", str(old), str(tmp_path / "y")], capsys)
    assert "trained before processor files were written" in msg and "--data-config" in msg
