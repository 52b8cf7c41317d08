"""Session fixtures for the data tests: datasets and a tokenizer built on the fly (no downloads)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.data.fixtures import write_tokenizer, write_v2_dataset

REPO = Path(__file__).resolve().parents[2]
LEROBOT_VENV = Path(os.environ.get("GROOT_LEROBOT_WRITER_VENV", REPO / ".venv-lerobot"))


@pytest.fixture(scope="session")
def v2_root(tmp_path_factory):
    return write_v2_dataset(tmp_path_factory.mktemp("v2") / "ds")


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory):
    return write_tokenizer(tmp_path_factory.mktemp("tok") / "tokenizer")


@pytest.fixture(scope="session")
def v3_root(tmp_path_factory):
    """A LeRobot v3.0 dataset written by lerobot 0.4.4's own writer in the throwaway environment
    (build it with `bash tests/data/install_lerobot_writer.sh .venv-lerobot`). Fails loudly if the
    environment is missing."""
    py = LEROBOT_VENV / "bin" / "python"
    if not (LEROBOT_VENV / ".installed").exists():
        pytest.fail(
            f"lerobot writer environment missing: run `bash tests/data/install_lerobot_writer.sh "
            f"{LEROBOT_VENV}` (or set GROOT_LEROBOT_WRITER_VENV)"
        )
    out = tmp_path_factory.mktemp("v3") / "ds"
    r = subprocess.run(
        [str(py), str(Path(__file__).parent / "write_lerobot_v3.py"), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if r.returncode != 0:
        pytest.fail(f"lerobot v3.0 writer failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return out
