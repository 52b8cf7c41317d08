"""`groot-jax stats` / `groot-jax data inspect` (through register()), and the checks where the
tokenizer, data config and model config meet."""

import argparse
import dataclasses
import json

import numpy as np
import pytest
from PIL import Image

from groot_jax.config import GR00TConfig
from groot_jax.data.cli import register
from groot_jax.data.embodiments import EMBODIMENT_TAG_TO_ID, PRESETS
from groot_jax.data.errors import DataError
from groot_jax.data.prompt import PromptTokenizer, check_model_config
from groot_jax.data.stats import load_metadata, load_stats_json
from tests.data.test_sample import CFG


def _run(argv):
    ap = argparse.ArgumentParser()
    register(ap.add_subparsers(dest="cmd", required=True))
    args = ap.parse_args(argv)
    return args.func(args)


def test_stats_cli(v2_root, tmp_path, capsys):
    assert (
        _run(
            [
                "stats",
                str(v2_root),
                "--out",
                str(tmp_path / "stats.json"),
                "--metadata",
                str(tmp_path / "experiment_cfg" / "metadata.json"),
            ]
        )
        == 0
    )
    st = load_stats_json(tmp_path / "stats.json")
    assert st["observation.state"]["mean"].shape == (8,)
    md = load_metadata(tmp_path / "experiment_cfg" / "metadata.json")
    assert set(md["new_embodiment"]["statistics"]["action"]) == {"arm", "gripper"}
    assert "wrote" in capsys.readouterr().out


def test_inspect_cli(v2_root, tmp_path, capsys):
    png = tmp_path / "grid.png"
    assert _run(["data", "inspect", str(v2_root), "--frames", "3", "--png", str(png)]) == 0
    out = capsys.readouterr().out
    assert "episodes 3, frames 63" in out and "state.arm: observation.state[0:6]" in out
    grid = np.asarray(Image.open(png))
    assert grid.shape == (2 * 60, 3 * 80, 3)  # 2 cameras x 3 frames


def test_presets_and_tags():
    assert EMBODIMENT_TAG_TO_ID == {
        "gr1": 24,
        "oxe_droid": 17,
        "agibot_genie1": 26,
        "new_embodiment": 31,
        "latent_action": 30,  # ours: the VQ-VAE latent-action slot (not in the original)
    }
    for name, make in PRESETS.items():
        cfg = make()
        assert cfg.embodiment_tag in EMBODIMENT_TAG_TO_ID, name
        assert cfg.action_indices == tuple(range(16)) and cfg.observation_indices == (0,)
    json.dumps(PRESETS["oxe_droid"]().state_target_rotations)


def test_image_token_checked_against_model_config(tokenizer_dir):
    tok = PromptTokenizer(str(tokenizer_dir))
    base = GR00TConfig()
    with pytest.raises(DataError, match="image token id 151669"):
        check_model_config(tok, base, CFG)
    good = dataclasses.replace(
        base, backbone=dataclasses.replace(base.backbone, image_token_index=tok.image_token_id)
    )
    check_model_config(tok, good, CFG)
    with pytest.raises(DataError, match="max_action_dim 16 != model 32"):
        check_model_config(tok, good, CFG.replace(max_action_dim=16))
    with pytest.raises(DataError, match="differs from the model config"):
        PromptTokenizer(str(tokenizer_dir), expected_image_token_id=151669)
