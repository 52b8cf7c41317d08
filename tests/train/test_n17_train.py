"""GR00T N1.7 through the same user path as N1.5, with no N1.7-specific code in train/, eval/ or
serve/: `groot-jax train --config finetune_tiny_n1_7` (the `tiny_n1_7` preset: Qwen3-VL backbone
with DeepStack, AlternateVLDiT head) on a LeRobot dataset with a Qwen3-VL-format tokenizer ->
`eval open-loop` -> a served `get_action`; and the dry-run memory estimate of `n1_7_3b` on a
TPU v5e chip (compiled ahead of time for TPU on this CPU)."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from groot_jax import cli
from groot_jax.data.prompt import train_tiny_tokenizer
from groot_jax.train.config import TrainConfig
from tests.data.fixtures import write_v2_dataset
from tests.train.test_user_path_train import CAMERAS, FAST, MODALITY, _losses, _train


@pytest.fixture(scope="module")
def robot(tmp_path_factory):
    return write_v2_dataset(tmp_path_factory.mktemp("robot") / "arm", lengths=(12, 9),
                            cameras=CAMERAS, hw=(24, 32), fps=7, state_dim=6, action_dim=6,
                            modality_override=MODALITY)


def test_tiny_n1_7_trains_evaluates_and_serves_through_the_cli(robot, tmp_path, capsys,
                                                              monkeypatch):
    from groot_jax.demo import serve_one_action

    tok = train_tiny_tokenizer(tmp_path / "tok", ["pick up the red cube"],
                               prompt_format="qwen3_vl")
    run = tmp_path / "run"
    out = _train(["train", "--config", "finetune_tiny_n1_7", "--dataset", str(robot),
                  "--tokenizer", str(tok), f"checkpoint.dir={run}", *FAST], capsys)
    losses = _losses(out)
    assert len(losses) == 3 and all(np.isfinite(losses)), out
    assert "done at step 3" in out and (run / "3").is_dir()
    cfg = TrainConfig.from_json((run / "run_config.json").read_text())
    model = cfg.model_config()
    assert model.model_type == "gr00t_n1_7" and type(model.backbone).__name__ == "Qwen3VLConfig"
    assert model.backbone.image_token_id < 512     # sized to the tokenizer, run config restores it

    ev = tmp_path / "eval"
    assert cli.main(["eval", "open-loop", "--model", str(run), "--dataset", str(robot),
                     "--out", str(ev)]) == 0
    summary = json.loads((ev / "open_loop.json").read_text())
    assert summary["mse"] > 0 and np.isfinite(summary["mse"])
    assert re.search(r"every 4th frame", capsys.readouterr().out)   # N1.7 tiny: horizon 4

    rng = np.random.default_rng(0)
    obs = {**{f"video.{c}": rng.integers(0, 256, (1, 24, 32, 3), dtype=np.uint8) for c in CAMERAS},
           "state.joints": rng.normal(size=(1, 5)).astype(np.float32),
           "state.grip": rng.normal(size=(1, 1)).astype(np.float32),
           "annotation.human.task_description": "pick up the red cube"}
    action = serve_one_action(run, obs)
    assert {k: np.asarray(v).shape for k, v in action.items()} == {
        "action.joints": (4, 5), "action.grip": (4, 1)}
    assert all(np.isfinite(np.asarray(v)).all() for v in action.values())

    # export (lerobot's N1.7 layout) -> import -> fine-tune from it, with relative paths as a
    # user types them (Orbax itself refuses relative paths).
    monkeypatch.chdir(tmp_path)
    assert cli.main(["convert", "export", "run", "exported"]) == 0
    assert json.loads((tmp_path / "exported" / "config.json").read_text())
    assert (tmp_path / "exported" / "embodiment_id.json").is_file()
    assert cli.main(["convert", "import", "exported", "imported"]) == 0
    out = _train(["train", "--config", "finetune_tiny_n1_7", "--dataset", str(robot), "--init",
                  "imported", "checkpoint.dir=run2", *FAST], capsys)
    assert "done at step 3" in out and all(np.isfinite(_losses(out)))


def test_train_eval_serve_name_no_backbone():
    """The seam: train/, eval/ and serve/ reach a backbone only through groot_jax.models.backbone
    and the config's protocol, so N1.7 needed no branch there."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "groot_jax"
    pattern = re.compile(r"eagle|siglip|qwen|\.llm\b|\.vision\b|mlp1|image_token_index", re.I)
    hits = [f"{p.relative_to(root)}:{i}: {line.strip()}"
            for d in ("train", "eval", "serve") for p in sorted((root / d).rglob("*.py"))
            for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    allowed = ("Eagle | Qwen3-VL",)   # train/config.py's comment on the backbone union
    assert [h for h in hits if not any(a in h for a in allowed)] == []


@pytest.mark.parametrize("tpu,overrides,fits", [
    ("v5e:1x1", (), False),                                 # the default fine-tune: refused
    # LoRA on the DiT fits one chip, or FSDP over four (~2 min of TPU compile each: `make slow`)
    pytest.param("v5e:1x1", ("lora_rank=32",), True, marks=pytest.mark.slow),
    pytest.param("v5e:2x2", ("mesh.data=1", "mesh.fsdp=4"), True, marks=pytest.mark.slow),
])
def test_n1_7_default_finetune_memory_on_v5e(tpu, overrides, fits):
    """`groot-jax train --config finetune_n17 --dry-run --tpu ...`: the TPU compiler's own
    verdict for GR00T N1.7-3B at batch 8 (README "Training memory")."""
    from tests.train.test_tpu_aot import GiB, _dry_run, _report

    rc, out = _dry_run("finetune_n17", tpu, *overrides)
    if not fits:
        assert rc == 1 and "does NOT fit on v5e:1x1" in out and "HBM" in out, out
        return
    assert rc == 0, out
    r = _report(out)
    assert r["batch_size"] == 8 and r["peak_bytes"] <= 16 * GiB, r
    assert r["trainable"] + r["frozen"] == 3_144_016_000 + (r["trainable"] if overrides[0]
                                                           .startswith("lora") else 0)
