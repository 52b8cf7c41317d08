"""Execute colab/finetune_n15.ipynb on CPU with the tiny preset and the synthetic dataset."""
from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]


def test_colab_notebook_runs_on_cpu(tmp_path, monkeypatch):
    env = {"GROOT_COLAB_PRESET": "tiny", "GROOT_COLAB_OUT": str(tmp_path / "run"),
           "GROOT_COLAB_STEPS": "4", "GROOT_COLAB_BATCH": "2",
           "JAX_COMPILATION_CACHE_DIR": str(ROOT / ".jax_cache"),
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    nb = nbformat.read(ROOT / "colab" / "finetune_n15.ipynb", as_version=4)
    NotebookClient(nb, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT)}}).execute()
    text = "\n".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "done: 4 steps" in text, text[-2000:]
    exp = tmp_path / "run" / "export"
    assert (exp / "model" / "groot_config.json").exists()    # groot-jax model dir
    assert (exp / "gr00t" / "config.json").exists()          # PyTorch GR00T layout
    assert list((exp / "gr00t").glob("*.safetensors")), sorted(p.name for p in (exp / "gr00t").iterdir())
    assert "open_loop_mse" in text and "mean_action_mse" in text
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [1, 2, 3, 4]
    assert os.path.isdir(tmp_path / "run" / "checkpoints" / "4")
