"""Resume to the bit: SIGKILL at a random step, SIGTERM preemption, non-finite loss, and a
corrupted latest checkpoint. Training runs in subprocesses (tests/train/run_tiny.py) that share
the persistent compile cache, so only the first one compiles."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STEPS = 10


def _cmd(ckpt, *extra):
    return [sys.executable, "-m", "tests.train.run_tiny", str(ckpt), "--steps", str(STEPS),
            "--every", "2", *extra]


def _run(ckpt, *extra, timeout=600):
    p = subprocess.run(_cmd(ckpt, *extra), cwd=ROOT, capture_output=True, text=True,
                       timeout=timeout)
    return p, (json.loads(p.stdout.strip().splitlines()[-1]) if p.stdout.strip() else None)


def _committed(ckpt: Path) -> list[int]:
    return sorted(int(x.name) for x in ckpt.iterdir() if x.name.isdigit()) if ckpt.exists() else []


def _wait_for_step(metrics: Path, proc: subprocess.Popen, step: int, timeout=600,
                   ckpt: Path | None = None) -> int:
    """Wait until `step` is logged (and, with `ckpt`, one checkpoint has been committed)."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        if metrics.exists() and (ckpt is None or _committed(ckpt)):
            lines = [json.loads(x) for x in metrics.read_text().splitlines() if x.strip()]
            if lines and lines[-1]["step"] >= step:
                return lines[-1]["step"]
        if proc.poll() is not None:
            raise AssertionError(f"training exited early: {proc.stderr.read()[-2000:]}")
        time.sleep(0.05)
    raise AssertionError("timed out waiting for training")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    d = tmp_path_factory.mktemp("ref")
    p, out = _run(d / "ckpt")
    assert p.returncode == 0, p.stderr[-3000:]
    assert out["status"] == "done" and out["start"] == 0
    return d / "ckpt", {int(k): v for k, v in out["losses"].items()}


def test_sigkill_resume_is_bit_identical(reference, tmp_path):
    _, ref = reference
    assert sorted(ref) == list(range(1, STEPS + 1))
    kill_at = random.Random().randint(3, STEPS - 2)
    metrics = tmp_path / "m.jsonl"
    proc = subprocess.Popen(_cmd(tmp_path / "ckpt", "--metrics", str(metrics)), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Kill after the first async checkpoint is committed, so the restart really resumes.
    seen = _wait_for_step(metrics, proc, kill_at, ckpt=tmp_path / "ckpt")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    first = {json.loads(x)["step"]: json.loads(x)["loss"] for x in metrics.read_text().splitlines()}
    p, out = _run(tmp_path / "ckpt")
    assert p.returncode == 0, p.stderr[-3000:]
    assert "resumed from" in p.stderr
    start = out["start"]
    assert 0 < start <= seen, (start, seen)
    merged = {k: v for k, v in first.items() if k <= start}
    merged.update({int(k): v for k, v in out["losses"].items()})
    assert sorted(merged) == list(range(1, STEPS + 1))
    # Bit-identical: exact float equality, step by step.
    assert [merged[k] for k in sorted(merged)] == [ref[k] for k in sorted(ref)], (kill_at, start)


def test_sigterm_saves_and_exits_cleanly(tmp_path):
    metrics = tmp_path / "m.jsonl"
    proc = subprocess.Popen(_cmd(tmp_path / "ckpt", "--metrics", str(metrics)), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_step(metrics, proc, 3)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    res = json.loads(out.strip().splitlines()[-1])
    assert res["status"] == "preempted"
    last = max(int(k) for k in res["losses"])
    assert last < STEPS
    steps = sorted(int(x.name) for x in (tmp_path / "ckpt").iterdir() if x.name.isdigit())
    assert steps[-1] == last, (steps, last)


def test_nonfinite_loss_stops_and_keeps_last_good(tmp_path):
    p, out = _run(tmp_path / "ckpt", "--nan-at", "5")
    assert p.returncode == 3, p.stderr[-3000:]
    assert out["status"] == "nonfinite" and "non-finite loss nan at step 5" in out["error"]
    steps = sorted(int(x.name) for x in (tmp_path / "ckpt").iterdir() if x.name.isdigit())
    assert steps == [2, 4]


def test_corrupted_latest_falls_back_with_warning(reference, tmp_path):
    import shutil

    from groot_jax import sharding
    from groot_jax.train import checkpoints, loop, state
    from tests.train.run_tiny import tiny_config

    src, _ = reference
    d = tmp_path / "ckpt"
    shutil.copytree(src, d)
    steps = sorted(int(x.name) for x in d.iterdir() if x.name.isdigit())
    assert steps == [6, 8, 10]
    for f in (d / "10" / "state").rglob("*"):
        if f.is_file() and f.stat().st_size > 0:
            f.write_bytes(b"\x00garbage" * 8)
    cfg = tiny_config(str(d), STEPS, 2)
    s = state.setup(cfg, sharding.make_mesh(devices=[__import__("jax").devices()[0]]))
    ck = checkpoints.Checkpoints(cfg.checkpoint)
    it = loop.default_data(cfg)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        restored = ck.restore_latest(s.abstract_state, it)
    ck.close()
    assert restored is not None
    _, meta, step = restored
    assert step == 8 and meta["step"] == 8
    assert any("checkpoint step 10" in str(x.message) for x in w), [str(x.message) for x in w]
