"""A run trained on 1 device resumes on 8 simulated devices (data=2 x fsdp=4) through the CLI
alone: the data spec comes back from the run's run_config.json (the resume names no dataset),
the Grain iterator continues with the same batches, and the losses stay within the sharding
test's tolerance of the uninterrupted 1-device run.

One uninterrupted 6-step run (a checkpoint every step) is the reference; its directory, cut back
to step 3 (later steps and the TensorBoard events removed, as a run killed after step 3 leaves
it), is resumed on the 8-device mesh. Runs are subprocesses, so this pytest process keeps its
single device."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.data.fixtures import write_tokenizer, write_v2_dataset
from tests.train.test_faults import read_scalars
from tests.train.test_sharding import TOL

ROOT = Path(__file__).resolve().parents[2]
STEPS, CUT = 6, 3


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    cache = os.environ.get("JAX_TEST_CACHE", str(ROOT / ".jax_cache"))
    env.update(JAX_COMPILATION_CACHE_DIR=cache, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
               JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    return env


def _train(run: Path, *flags: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "groot_jax.cli", "train", "--config", "finetune_tiny", *flags,
           f"checkpoint.dir={run}", f"steps={STEPS}", "checkpoint.every=1",
           f"checkpoint.keep={STEPS + 1}", "batch_size=8", "log_every=1", "progress=False"]
    return subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)


def _iter_state(run: Path, step: int) -> dict:
    files = sorted((run / str(step) / "data_iter").glob("*.json"))
    assert files, f"no Grain iterator state in {run / str(step)}"
    return {f.name: json.loads(f.read_text()) for f in files}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    d = tmp_path_factory.mktemp("layout")
    ds, tok = write_v2_dataset(d / "ds"), write_tokenizer(d / "tok")
    run = d / "ref"
    p = _train(run, "--dataset", str(ds), "--tokenizer", str(tok))
    assert p.returncode == 0, p.stderr[-3000:]
    losses = read_scalars(run / "tb")
    assert sorted(losses) == list(range(1, STEPS + 1)), losses
    return d, ds, run, losses


def test_resume_on_eight_devices_continues_the_same_batches(reference, tmp_path):
    d, ds, ref, ref_losses = reference
    run = tmp_path / "run"
    shutil.copytree(ref, run)
    for p in run.iterdir():
        if (p.name.isdigit() and int(p.name) > CUT) or p.name == "tb":
            shutil.rmtree(p)
    # No --dataset / --tokenizer: the data spec is the run's own (run_config.json).
    p = _train(run, "--cpu-devices", "8", "mesh.fsdp=4")
    assert p.returncode == 0, p.stderr[-3000:]
    log = p.stdout + p.stderr
    assert f"resumed from {run}/{CUT}" in log, log[-3000:]
    assert "'data': 2, 'fsdp': 4" in log, log[-3000:]
    assert str(ds) in json.loads((run / "run_config.json").read_text())["data"]["datasets"][0][
        "path"]

    resumed = read_scalars(run / "tb")
    assert sorted(resumed) == list(range(CUT + 1, STEPS + 1)), resumed
    for n in resumed:
        assert abs(resumed[n] - ref_losses[n]) <= TOL * abs(ref_losses[n]), (n, resumed, ref_losses)
        # The same position in the data after every step.
        assert _iter_state(run, n) == _iter_state(ref, n), n
    # The tolerance tells batches apart: consecutive steps' losses differ far more than it.
    later = [ref_losses[n] for n in range(CUT, STEPS + 1)]
    gaps = [abs(later[i + 1] - later[i]) / abs(later[i]) for i in range(len(later) - 1)]
    assert min(gaps) > 100 * TOL, later


def test_resume_refuses_other_data(reference, tmp_path):
    d, _, ref, _ = reference
    run = tmp_path / "run"
    shutil.copytree(ref, run)
    other = write_v2_dataset(tmp_path / "other", lengths=(12, 10))
    p = _train(run, "--dataset", str(other))
    assert p.returncode == 1, p.stderr[-3000:]
    assert "it trained on data" in p.stderr and str(other) in p.stderr, p.stderr[-3000:]


def test_a_run_dir_is_an_init_source(reference):
    """`--init RUN_DIR` fine-tunes from the run's latest step: its recorded model config and
    processor statistics, and exactly its weights."""
    import numpy as np
    from flax import nnx

    from groot_jax.convert.run_dir import load_run
    from groot_jax.train import optimizer
    from groot_jax.train.config import TrainConfig
    from groot_jax.train.init_from import init_from

    _, _, ref, _ = reference
    cfg, params, processor = load_run(ref)
    src = init_from(ref, TrainConfig(model="tiny"), log=None)
    assert src.cfg.model_config() == cfg and src.metadata == processor.metadata
    assert src.metadata_file == ref / "processor" / "metadata.json"
    got, want = optimizer.flatten(src.params_fn()), optimizer.flatten(nnx.to_pure_dict(params))
    assert sorted(got) == sorted(want)
    for k in want:
        np.testing.assert_array_equal(np.asarray(got[k]), np.asarray(want[k]), err_msg=k)
