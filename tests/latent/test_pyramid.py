"""The pyramid mixture: weights per level, checks, batches through the data layer, and the model's
loss on them (flow matching masked per sample, FLARE on everything with a future frame)."""
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from groot_jax.data.embodiments import embodiment_id
from groot_jax.data.mixture import SourceSpec
from groot_jax.latent.demo_pyramid import make_demo_data
from groot_jax.train.config import TrainConfig
from groot_jax.train.pyramid import (
    Pyramid,
    PyramidLevel,
    build_pipeline,
    demo_data_configs,
    load_run,
    model_batch,
    tiny_model_overrides,
    tokenizer_ids,
    validate,
)

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs" / "pyramid_tiny.py"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("pyr") / "data"
    make_demo_data(root, robot=3, sim=3, human=4, neural=4, length=12, lam_steps=30, idm_steps=30,
                   log=lambda s: None)
    return root


@pytest.fixture(scope="module")
def run_cfg(demo):
    os.environ["GROOT_PYRAMID_DATA"] = str(demo)
    try:
        cfg, pyramid = load_run(CONFIG, ["batch_size=24"])
    finally:
        del os.environ["GROOT_PYRAMID_DATA"]
    return cfg, pyramid


def test_level_weights_and_names(run_cfg):
    _, pyramid = run_cfg
    specs = pyramid.specs()
    w = {s.name: s.weight for s in specs}
    assert sum(w.values()) == pytest.approx(1.0)
    assert w["real_robot/robot:robot"] == pytest.approx(0.3)
    assert w["simulation/sim:robot"] == pytest.approx(0.2)
    # the human level is split between latent actions and FLARE-only video
    assert w["human_video/human:latent"] == pytest.approx(0.15)
    assert w["human_video/human:video"] == pytest.approx(0.15)
    assert w["neural_trajectories/neural:idm"] == pytest.approx(0.2)
    assert {lv.name for lv in pyramid.levels} == {"real_robot", "simulation", "human_video",
                                                  "neural_trajectories"}


def test_validate_refuses_silent_mistakes(run_cfg, demo):
    cfg, pyramid = run_cfg
    c = demo_data_configs()
    model = cfg.model_config()

    def one(spec, future=4):
        return Pyramid((PyramidLevel("x", (spec,), 1.0),), tokenizer="t", future_offset=future)

    wrong_slot = SourceSpec(str(demo / "human"), c["idm"], kind="actionless",
                            action_sidecar=str(demo / "human.latent_actions"))
    with pytest.raises(ValueError, match="dedicated 'latent_action' embodiment slot"):
        validate(one(wrong_slot), model)
    idm_in_latent = SourceSpec(str(demo / "neural"), c["latent"], kind="actionless",
                               action_sidecar=str(demo / "neural.idm_actions.new_embodiment"))
    with pytest.raises(ValueError, match="belong to a robot embodiment"):
        validate(one(idm_in_latent), model)
    video_only = SourceSpec(str(demo / "human"), c["video"], kind="actionless")
    no_flare = dataclasses.replace(model, action_head=dataclasses.replace(
        model.action_head, flare=dataclasses.replace(model.action_head.flare, enabled=False)))
    with pytest.raises(ValueError, match="trains nothing unless FLARE"):
        validate(one(video_only), no_flare)
    with pytest.raises(ValueError, match="set Pyramid.future_offset"):
        validate(one(video_only, future=None), model)
    validate(pyramid, model)


def test_batches_and_masked_loss(run_cfg):
    """One pyramid batch: every level present, latent actions in their slot, FLARE-only rows with
    an all-zero action mask; the model's flow-matching term ignores those rows exactly."""
    cfg, pyramid = run_cfg
    pipe = build_pipeline(cfg, pyramid)
    raw = next(iter(pipe))
    names = [s.name for s in pyramid.specs()]
    src = np.array([names[i] for i in raw["sample_id"][:, 0]])
    assert set(src) == set(names)
    latent = src == "human_video/human:latent"
    flare_only = src == "human_video/human:video"
    assert (raw["embodiment_id"][latent] == embodiment_id("latent_action")).all()
    assert (raw["embodiment_id"][~latent] == embodiment_id("new_embodiment")).all()
    assert (raw["action_mask"][flare_only] == 0).all() and flare_only.any()
    assert (raw["action_mask"][~flare_only].sum((1, 2)) > 0).all()
    assert raw["future_pixel_values"].shape == raw["pixel_values"].shape
    batch = model_batch(raw, flare=True)
    assert set(batch) == {"input_ids", "attention_mask", "pixel_values", "state", "embodiment_id",
                          "action", "action_mask", "future_pixel_values", "future_mask"}

    from groot_jax.models import groot

    fns, params = groot.init(cfg.model_config(), seed=0)
    loss = jax.jit(lambda p, b: fns.loss(p, b, jax.random.key(0), train=False, return_terms=True))
    total, terms = loss(params, batch)
    # Scramble the action targets of the FLARE-only rows: the flow-matching term must not move.
    scrambled = dict(batch, action=np.where(flare_only[:, None, None], 5.0, batch["action"]))
    total2, terms2 = loss(params, scrambled)
    assert float(terms2["flow_matching"]) == float(terms["flow_matching"])
    # ... while scrambling a labelled row's targets does move it
    labelled = np.nonzero(~flare_only)[0][0]
    moved = dict(batch, action=batch["action"].copy())
    moved["action"][labelled] += 1.0
    assert float(loss(params, moved)[1]["flow_matching"]) != float(terms["flow_matching"])
    assert np.isfinite(float(terms["flare_alignment"])) and float(total) > float(
        terms["flow_matching"])


def test_config_matches_tokenizer(demo):
    assert tokenizer_ids(demo / "tokenizer")[1] == 4
    overrides = dict(tiny_model_overrides(512, 4))
    assert overrides["backbone"].tokens_per_image == 16
    assert TrainConfig(model="tiny", model_overrides=tuple(overrides.items())).model_config(
        ).action_head.flare.enabled


@pytest.mark.slow
def test_groot_jax_pyramid_train_runs(demo):
    """`groot-jax train --config configs/pyramid_tiny.py` trains on the pyramid mixture (a few
    steps), not on the loop's built-in synthetic task."""
    env = {**os.environ, "GROOT_PYRAMID_DATA": str(demo), "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-m", "groot_jax.cli", "train", "--config",
                          str(CONFIG), "--set", "steps=4", "--set", "batch_size=8",
                          "--set", "progress=False"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "done at step 4" in out.stdout, out.stdout[-3000:]


def test_device_augment_batches(run_cfg):
    """Pyramid(device_augment=True): the model batch carries the uint8 frames and jitter draws in
    place of pixel_values; combined with FLARE future frames it is refused with a clear error."""
    from groot_jax.data.errors import DataError

    cfg, pyramid = run_cfg
    fast = dataclasses.replace(pyramid, device_augment=True)
    with pytest.raises(DataError, match="device_augment=True cannot be combined with future_offset"):
        build_pipeline(cfg, fast)
    # the robot level alone (it has actions), through the data layer with device augmentation
    from groot_jax.data.pipeline import PipelineConfig
    from groot_jax.data.pipeline import build_pipeline as data_pipeline

    robot = [s for s in pyramid.specs() if s.name.startswith("real_robot/")]
    assert len(robot) == 1
    from groot_jax.data.prompt import PromptTokenizer

    tok = PromptTokenizer(pyramid.tokenizer,
                          tokens_per_image=cfg.model_config().backbone.tokens_per_image)
    pipe = data_pipeline(robot, PipelineConfig(batch_size=4, device_augment=True, max_seq_len=64),
                         tok)
    batch = model_batch(next(iter(pipe)), flare=False)
    assert set(batch) == {"input_ids", "attention_mask", "pixel_u8", "augment", "state",
                          "embodiment_id", "action", "action_mask"}
    assert batch["pixel_u8"].dtype == np.uint8 and batch["augment"].shape[-1] == 8
    # with YUV transport the planes replace pixel_u8 (these fixture videos are lossless RGB, so
    # the pipeline itself refuses them: tests/data/test_device_yuv.py)
    yuv = {k: v for k, v in batch.items() if k != "pixel_u8"}
    yuv.update(pixel_y=0, pixel_u=0, pixel_v=0, yuv_meta=0)
    assert set(model_batch(yuv, flare=False)) == set(yuv)
    with pytest.raises(DataError, match="yuv_meta"):
        model_batch({k: v for k, v in yuv.items() if k != "yuv_meta"}, flare=False)
