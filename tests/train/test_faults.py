"""Training runs never lose work: a corrupt newest checkpoint is set aside and its step saved
again, unusable checkpoint directories fail at start-up in one line, a SIGTERM exits 75 with a
resume hint, and a SIGKILLed run's TensorBoard file holds every step up to its last checkpoint.

The end-to-end test drives `groot-jax train` (the real program) three times on one directory:
SIGKILL, then a restart with the newest checkpoint corrupted, SIGTERMed while it compiles, then
a restart that finishes. The runs share the compile cache (tests/train/run_tiny.py's config,
so test_resume.py's runs warm it too)."""
from __future__ import annotations

import os
import re
import signal
import struct
import subprocess
import sys
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

from groot_jax.train.checkpoints import (
    CheckpointDirError,
    Checkpoints,
    NoRestorableCheckpoint,
    check_writable_dir,
)
from groot_jax.train.config import CheckpointConfig

ROOT = Path(__file__).resolve().parents[2]


def _steps(d: Path) -> list[int]:
    return sorted(int(p.name) for p in d.iterdir() if p.name.isdigit()) if d.exists() else []


def _corrupt(step_dir: Path) -> None:
    for f in (step_dir / "state").rglob("*"):
        if f.is_file() and f.stat().st_size > 0:
            f.write_bytes(b"\x00garbage" * 8)


def read_scalars(log_dir: Path, tag: str = "train/loss") -> dict[int, float]:
    """step -> value of `tag` in every TensorBoard event file under log_dir (TFRecord framing,
    CRCs checked; neither tensorboard nor tensorflow is installed, tensorboardX has no reader)."""
    from tensorboardX.proto.event_pb2 import Event
    from tensorboardX.record_writer import masked_crc32c

    out = {}
    for path in sorted(log_dir.glob("events.out.tfevents.*")):
        data, i = path.read_bytes(), 0
        while i + 12 <= len(data):
            header = data[i:i + 8]
            (n,) = struct.unpack("Q", header)
            assert struct.unpack("I", data[i + 8:i + 12])[0] == masked_crc32c(header), path
            body = data[i + 12:i + 12 + n]
            assert len(body) == n, f"{path}: truncated record"
            assert struct.unpack("I", data[i + 12 + n:i + 16 + n])[0] == masked_crc32c(body)
            i += 16 + n
            ev = Event.FromString(body)
            for v in ev.summary.value:
                if v.tag == tag:
                    out[ev.step] = v.simple_value
    return out


# ----------------------------------------------------------------- in-process, seconds

def _save(ck: Checkpoints, step: int) -> None:
    ck.save(step, {"w": jnp.full(4, float(step))}, None, {"step": step})


def test_corrupt_newest_is_set_aside_not_counted_and_resaved(tmp_path):
    d = tmp_path / "ckpt"
    abstract = {"w": jax.ShapeDtypeStruct((4,), jnp.float32)}
    ck = Checkpoints(CheckpointConfig(dir=str(d), keep=2, async_save=False))
    for s in (1, 2, 3):
        _save(ck, s)
    assert ck.steps() == [2, 3]
    _corrupt(d / "3")
    reports = []
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        state, meta, step = ck.restore_latest(abstract, None, report=reports.append)
    assert step == 2 and meta["step"] == 2 and float(state["w"][0]) == 2.0
    aside = [p.name for p in d.iterdir() if p.name.startswith("3.corrupt-")]
    assert len(aside) == 1 and not (d / "3").exists()
    assert len(reports) == 1 and f"moved it to {d / aside[0]}" in reports[0], reports
    assert ck.steps() == [2]
    # Step 3 is saved again (Orbax would skip a step it still listed), and keep=2 counts only
    # good checkpoints: 2 goes, the set-aside one stays.
    assert ck.save(3, {"w": jnp.full(4, 3.0)}, None, {"step": 3})
    _save(ck, 4)
    assert ck.steps() == [3, 4]
    assert sorted(p.name for p in d.iterdir()) == ["3", aside[0], "4"]
    ck.close()
    ck = Checkpoints(CheckpointConfig(dir=str(d), keep=2, async_save=False))
    assert ck.restore_latest(abstract, None)[2] == 4
    # When no checkpoint loads (a changed model?), nothing is renamed and the error says so.
    _corrupt(d / "3")
    _corrupt(d / "4")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(NoRestorableCheckpoint, match=r"steps \[4, 3\]"):
            ck.restore_latest(abstract, None)
    assert _steps(d) == [3, 4]
    ck.close()


def test_unwritable_checkpoint_dir_fails_before_step_one(tmp_path, capsys):
    from groot_jax import cli

    regular = tmp_path / "file"
    regular.write_text("x")
    # Running as root (as here), chmod does not stop writes: use sysfs, which nobody can write.
    if os.geteuid() == 0:
        read_only = Path("/sys")
    else:
        read_only = tmp_path / "ro"
        read_only.mkdir(mode=0o500)
    for bad in (regular / "ckpt", regular, read_only):
        with pytest.raises(CheckpointDirError, match="is not a writable directory"):
            check_writable_dir(str(bad))
        rc = cli.main(["train", "--config", "tiny_synthetic", f"checkpoint.dir={bad}"],
                      handle_errors=True)
        out, err = capsys.readouterr()
        assert rc == 1 and "Traceback" not in err, err
        assert f"checkpoint.dir={bad} is not a writable directory" in err, err
        assert len(err.strip().splitlines()) <= 2 and "compiling" not in out, (out, err)
    rc = cli.main(["train", "--config", "tiny_synthetic", f"checkpoint.dir={tmp_path / 'ok'}",
                   f"log_dir={regular}/tb"], handle_errors=True)
    assert rc == 1 and f"log_dir={regular}/tb is not a writable directory" in capsys.readouterr().err


# ----------------------------------------------------------------- the real program

CONFIG = """from tests.train.run_tiny import tiny_config


def get_config():
    return tiny_config(None, steps=10, every=2)   # keep=3, log_every=2, progress=False
"""


def _train(cfg: Path, ckpt: Path) -> subprocess.Popen:
    # stdout is a pipe (not a terminal): the loss must still be printed, as plain lines.
    return subprocess.Popen([sys.executable, "-m", "groot_jax.cli", "train", "--config", str(cfg),
                             f"checkpoint.dir={ckpt}"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _read_until(proc: subprocess.Popen, text: str, timeout=600) -> str:
    seen, t0 = [], time.time()
    for line in proc.stdout:
        seen.append(line)
        if text in line:
            return "".join(seen)
        assert time.time() - t0 < timeout, "timed out"
    raise AssertionError(f"exited before {text!r}: {''.join(seen)[-2000:]}"
                         f"{proc.stderr.read()[-3000:]}")


def test_sigkill_corrupt_newest_sigterm_then_finish(tmp_path):
    cfg, ckpt = tmp_path / "tiny_run.py", tmp_path / "ckpt"
    cfg.write_text(CONFIG)

    # 1. SIGKILL once two checkpoints are committed.
    proc = _train(cfg, ckpt)
    t0 = time.time()
    while len(_steps(ckpt)) < 2:
        assert proc.poll() is None, proc.communicate()
        assert time.time() - t0 < 600, "timed out"
        time.sleep(0.02)
    proc.kill()
    out, _ = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, "the run finished before the kill"
    assert "compiling the train step..." in out and "step 2/10  loss " in out, out
    kept = _steps(ckpt)
    last = kept[-1]
    losses = read_scalars(ckpt / "tb")
    assert set(range(1, last + 1)) <= set(losses), (kept, sorted(losses))

    # 2. Newest checkpoint corrupted: the restart falls back, sets it aside and says so. A
    # SIGTERM sent while it compiles (deterministic: compiling takes seconds) is honoured after
    # the first step: that step is saved, exit status 75, the resume hint.
    _corrupt(ckpt / str(last))
    proc = _train(cfg, ckpt)
    head = _read_until(proc, "compiling the train step...")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=300)
    out2 = head + out
    prev = kept[-2]
    assert f"checkpoint step {last} in {ckpt} could not be restored" in head, head
    assert f"resumed from {ckpt}/{prev}" in head, head
    aside = [p.name for p in ckpt.iterdir() if p.name.startswith(f"{last}.corrupt-")]
    assert len(aside) == 1 and f"moved it to {ckpt / aside[0]}" in head, head
    assert proc.returncode == 75, (proc.returncode, err[-3000:])
    m = re.search(r"preempted at step (\d+), resume with the same command", err)
    assert m and "Traceback" not in err, err[-3000:]
    preempted = int(m.group(1))
    assert prev < preempted < 10 and f"saving checkpoint step {preempted}" in out2, out2
    assert preempted in _steps(ckpt)

    # 3. The same command finishes: the set-aside step is trained and saved again, and keep=3
    # counts only good checkpoints.
    proc = _train(cfg, ckpt)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    assert f"resumed from {ckpt}/{preempted}" in out and "done at step 10" in out, out
    assert f"saving checkpoint step {last}" in out2 + out, out
    assert _steps(ckpt) == [6, 8, 10]
    assert sorted(p.name for p in ckpt.iterdir() if not p.name.isdigit()) == sorted(
        aside + ["metrics.jsonl", "run_config.json", "tb"])
    assert set(read_scalars(ckpt / "tb")) == set(range(1, 11))
