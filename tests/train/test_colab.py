"""Execute colab/finetune_n15.ipynb on CPU: finetune_tiny, `--init` a tiny Isaac-GR00T directory,
on a generated LeRobot v3.0 dataset (the demo's), then open-loop eval and export."""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from groot_jax import demo
from groot_jax.convert.checkpoint import export_gr00t
from groot_jax.models import groot
from tests.tiny_model import tiny_config_for

ROOT = Path(__file__).resolve().parents[2]


def _released_tiny(out: Path, tokenizer: Path) -> Path:
    """A random tiny model as an Isaac-GR00T directory (no metadata: a new embodiment)."""
    cfg = tiny_config_for(tokenizer)
    cfg = dataclasses.replace(cfg, backbone=dataclasses.replace(
        cfg.backbone, vision=dataclasses.replace(cfg.backbone.vision, image_size=32,
                                                 patch_size=8)))
    _, params = groot.init(cfg, seed=5)
    return export_gr00t(out, cfg, params, {})


def test_colab_notebook_runs_on_cpu(tmp_path, monkeypatch):
    dataset, heldout, tokenizer = demo.write_demo_data(tmp_path / "data", episodes=6, length=24,
                                                       heldout=2)
    init = _released_tiny(tmp_path / "released", tokenizer)
    env = {"GROOT_COLAB_CONFIG": "finetune_tiny", "GROOT_COLAB_DATASET": str(dataset),
           "GROOT_COLAB_EVAL_DATASET": str(heldout), "GROOT_COLAB_INIT": str(init),
           "GROOT_COLAB_TOKENIZER": str(tokenizer), "GROOT_COLAB_OUT": str(tmp_path / "out"),
           "GROOT_COLAB_STEPS": "4", "GROOT_COLAB_BATCH": "2",
           "JAX_COMPILATION_CACHE_DIR": str(ROOT / ".jax_cache"),
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    nb = nbformat.read(ROOT / "colab" / "finetune_n15.ipynb", as_version=4)
    NotebookClient(nb, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT)}}).execute()
    text = "\n".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "4 steps, loss" in text and "mean-action baseline" in text, text[-2000:]
    run, exp = tmp_path / "out" / "run", tmp_path / "out" / "export"
    assert [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()] == [
        1, 2, 3, 4]
    assert os.path.isdir(run / "4") and (run / "processor" / "metadata.json").exists()
    assert json.loads((run / "run_config.json").read_text())["init"] == str(init)
    # The export carries the dataset's statistics at its widths (state [4], action [2]).
    meta = json.loads((exp / "experiment_cfg" / "metadata.json").read_text())
    stats = meta["new_embodiment"]["statistics"]
    assert [len(v["mean"]) for v in stats["state"].values()] == [4]
    assert [len(v["mean"]) for v in stats["action"].values()] == [2]
    assert (exp / "config.json").exists() and list(exp.glob("*.safetensors"))
    summary = json.loads((tmp_path / "out" / "eval" / "open_loop.json").read_text())
    assert summary["episodes"] == 2 and summary["mse"] > 0
