"""Run the lerobot 0.5.1 reference (tests/reference/lerobot_worker.py) in its own environment.

The reference environment (.venv-ref, built by `make .venv-ref` / tests/reference/install.sh)
is separate because lerobot 0.5.1 pins transformers 5.3.0 and installs without its dependency
list. A missing environment is a test failure, never a skip.
"""
import hashlib
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

ROOT = Path(__file__).resolve().parents[2]
WORKER = ROOT / "tests" / "reference" / "lerobot_worker.py"


def reference_python() -> Path:
    path = Path(os.environ.get("GROOT_REF_PYTHON", ROOT / ".venv-ref" / "bin" / "python"))
    if not path.exists():
        pytest.fail(f"reference environment missing: {path} does not exist. Build it with "
                    "`make .venv-ref` (tests/reference/install.sh); parity needs lerobot 0.5.1.",
                    pytrace=False)
    return path


def run_reference(case: str, out: Path, seed: int = 0, size: str = "tiny"):
    """Run the reference worker for `case` in `out`; for the dump cases, return
    (state_dict, io)."""
    env = dict(os.environ, HF_LEROBOT_HOME=str(out / "lerobot_home"), HF_HUB_OFFLINE="1")
    proc = subprocess.run([str(reference_python()), str(WORKER), case, str(out), "--seed",
                           str(seed), "--size", size], capture_output=True, text=True, env=env,
                          timeout=3000)
    if proc.returncode:
        pytest.fail(f"reference worker failed ({case}):\n{proc.stdout[-3000:]}\n"
                    f"{proc.stderr[-6000:]}", pytrace=False)
    if case in ("consume", "save_pretrained"):
        return None
    state_dict = load_file(str(out / "state_dict.safetensors"))
    io = dict(np.load(out / "io.npz"))
    return state_dict, io


N17_RECIPE = ROOT / "tests" / "reference" / "n17" / "install.sh"


def n17_reference_python() -> Path:
    """lerobot 0.6.1's GR00T N1.7 environment (Python 3.12), cached outside the clone under a
    name keyed by its recipe (as the Makefile's REF17): $GROOT_N17_REF_PYTHON, else
    ~/.cache/groot-jax/n17-ref-<sha256(install.sh)[:12]>/bin/python."""
    digest = hashlib.sha256(N17_RECIPE.read_bytes()).hexdigest()[:12]
    default = Path.home() / ".cache" / "groot-jax" / f"n17-ref-{digest}" / "bin" / "python"
    path = Path(os.environ.get("GROOT_N17_REF_PYTHON", default))
    if not path.exists():
        pytest.fail(f"N1.7 reference environment missing: {path} does not exist. Build it with "
                    "`make n17-ref` (tests/reference/n17/install.sh); N1.7 parity needs "
                    "lerobot 0.6.1.", pytrace=False)
    return path


def run_n17_reference(worker: str, out: Path, *args: str):
    """Run tests/reference/n17/`worker` with the N1.7 environment's Python, writing to `out`:
    (state_dict, io) from out/state_dict.safetensors and out/io.npz."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_LEROBOT_HOME=str(out / "lerobot_home"))
    proc = subprocess.run([str(n17_reference_python()), str(N17_RECIPE.parent / worker),
                           str(out), *args], capture_output=True, text=True, env=env,
                          timeout=1800)
    if proc.returncode:
        pytest.fail(f"N1.7 reference worker failed ({worker}):\n{proc.stdout[-3000:]}\n"
                    f"{proc.stderr[-6000:]}", pytrace=False)
    return load_file(str(out / "state_dict.safetensors")), dict(np.load(out / "io.npz"))
