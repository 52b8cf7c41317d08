"""Two JAX processes on this machine (jax.distributed on localhost, gloo CPU collectives, one
device each, each loading only its half of every batch) train the same as one process with two
devices."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_processes_train_like_one():
    port = str(_port())
    procs = [subprocess.Popen([sys.executable, "-m", "tests.train.two_process", str(i), port],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    outs = [p.communicate(timeout=900) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    multi = json.loads(outs[0][0].strip().splitlines()[-1])
    single = subprocess.run([sys.executable, "-m", "tests.train.two_process", "--single"],
                            cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert single.returncode == 0, single.stderr[-3000:]
    one = json.loads(single.stdout.strip().splitlines()[-1])
    assert multi["processes"] == 2 and one["processes"] == 1
    assert multi["local_rows"] == 2 and one["local_rows"] == 4
    for a, b in zip(multi["losses"], one["losses"], strict=True):
        assert abs(a - b) <= 1e-5 * abs(b), (multi, one)
    assert abs(multi["param_sq"] - one["param_sq"]) <= 1e-5 * one["param_sq"], (multi, one)
