"""The data pyramid as a data spec with levels: weights per level, checks, batches through the one
input pipeline (groot_jax/train/input_pipeline.py), and the model's loss on them (flow matching
masked per sample, FLARE on everything with a future frame)."""
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from groot_jax.data.embodiments import embodiment_id
from groot_jax.latent.demo_pyramid import make_demo_data, tiny_model_overrides
from groot_jax.train.cli import load_module
from groot_jax.train.config import TrainConfig, apply_overrides
from groot_jax.train.data_spec import DatasetSpec, DataSpec
from groot_jax.train.input_pipeline import (
    build_pipeline,
    model_batch,
    resolve,
    sized_to_tokenizer,
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
def cfg(demo):
    os.environ["GROOT_PYRAMID_DATA"] = str(demo)
    try:
        base = load_module(CONFIG).get_config()
    finally:
        del os.environ["GROOT_PYRAMID_DATA"]
    return sized_to_tokenizer(apply_overrides(base, ["batch_size=24"]))


def _one(cfg, spec: DatasetSpec, future=4, flare=True) -> TrainConfig:
    model = dict(cfg.model_overrides)
    model["action_head"] = dataclasses.replace(model["action_head"], flare=dataclasses.replace(
        model["action_head"].flare, enabled=flare))
    return dataclasses.replace(cfg, model_overrides=tuple(model.items()), data=dataclasses.replace(
        cfg.data, datasets=(dataclasses.replace(spec, level=None),), level_weights=(),
        future_offset=future))


def test_level_weights_and_names(cfg):
    r = resolve(cfg)
    w = {s.name: s.weight for s in r.specs}
    assert sum(w.values()) == pytest.approx(1.0)
    assert w["real_robot/robot:robot"] == pytest.approx(0.3)
    assert w["simulation/sim:sim"] == pytest.approx(0.2)
    # the human level is split between latent actions and FLARE-only video
    assert w["human_video/human:human.latent_actions"] == pytest.approx(0.15)
    assert w["human_video/human:human"] == pytest.approx(0.15)
    assert w["neural_trajectories/neural:neural.idm_actions.new_embodiment"] == pytest.approx(0.2)
    tags = {s.name.split("/")[0]: s.config.embodiment_tag for s in r.specs
            if "latent" in s.name or "idm" in s.name}
    assert tags == {"human_video": "latent_action", "neural_trajectories": "new_embodiment"}
    # FLARE's future frames are transformed on the host: the fast path is not taken, and why
    assert not r.path.device_augment and "FLARE" in r.path.describe()
    # the spec is the run config's: it survives run_config.json
    assert TrainConfig.from_json(cfg.to_json()) == cfg


def test_validate_refuses_silent_mistakes(cfg, demo):
    wrong_slot = DatasetSpec(str(demo / "human"), kind="actionless", embodiment="new_embodiment",
                             action_sidecar=str(demo / "human.latent_actions"))
    with pytest.raises(ValueError, match="dedicated 'latent_action' embodiment slot"):
        resolve(_one(cfg, wrong_slot))
    idm_in_latent = DatasetSpec(str(demo / "neural"), kind="actionless", embodiment="latent_action",
                                action_sidecar=str(demo / "neural.idm_actions.new_embodiment"))
    with pytest.raises(ValueError, match="belong to a robot embodiment"):
        resolve(_one(cfg, idm_in_latent))
    video_only = DatasetSpec(str(demo / "human"), kind="actionless")
    with pytest.raises(ValueError, match="trains nothing unless FLARE"):
        resolve(_one(cfg, video_only, future=None, flare=False))
    with pytest.raises(ValueError, match="set data.future_offset"):
        resolve(_one(cfg, video_only, future=None))
    with pytest.raises(ValueError, match="levels .*'nowhere'"):
        DataSpec(source="datasets", datasets=(DatasetSpec("x", level="a"),),
                 level_weights=(("a", 1.0), ("nowhere", 1.0)))


def test_batches_and_masked_loss(cfg):
    """One pyramid batch: every level present, latent actions in their slot, FLARE-only rows with
    an all-zero action mask; the model's flow-matching term ignores those rows exactly."""
    logged = []
    pipe = build_pipeline(cfg, log=logged.append)
    assert logged == ["data path: host transforms (FLARE future frames are transformed on the "
                      "host)"], logged
    raw = next(iter(pipe))
    names = [s.name for s in pipe.specs]
    src = np.array([names[i] for i in raw["sample_id"][:, 0]])
    assert set(src) == set(names)
    latent = src == "human_video/human:human.latent_actions"
    flare_only = src == "human_video/human:human"
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


def test_model_sized_to_the_tokenizer(cfg, demo):
    m = cfg.model_config()
    assert m.backbone.image_token_index == 4 and m.backbone.tokens_per_image == 16
    assert m.backbone.llm.vocab_size % 64 == 0 and m.action_head.flare.enabled
    assert sized_to_tokenizer(cfg) == cfg   # idempotent: a resume sizes it the same
    assert dict(tiny_model_overrides(512, 4))["backbone"].llm.vocab_size == 512


@pytest.mark.slow
def test_groot_jax_pyramid_train_runs(demo):
    """`groot-jax pyramid train` (the alias of `groot-jax train`) trains on the pyramid mixture
    (a few steps), not on the loop's built-in synthetic task."""
    env = {**os.environ, "GROOT_PYRAMID_DATA": str(demo), "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-m", "groot_jax.cli", "pyramid", "train", "--config",
                          str(CONFIG), "--set", "steps=4", "--set", "batch_size=8",
                          "--set", "progress=False"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "done at step 4" in out.stdout, out.stdout[-3000:]
    assert "data path: host transforms" in out.stdout, out.stdout[-3000:]


def test_device_augment_batches(cfg, demo):
    """data.device_augment=True: combined with FLARE future frames it is refused with a clear
    error; without FLARE (the robot level alone) the model batch carries the uint8 frames and
    jitter draws in place of pixel_values, chosen by default."""
    from groot_jax.data.errors import DataError

    with pytest.raises(ValueError, match="device_augment=True cannot be combined with FLARE"):
        resolve(apply_overrides(cfg, ["data.device_augment=True"]))
    robot = _one(cfg, DatasetSpec(str(demo / "robot")), future=None, flare=False)
    logged = []
    pipe = build_pipeline(apply_overrides(robot, ["batch_size=4"]), log=logged.append)
    # the demo's videos are lossless RGB (libx264rgb): device augmentation, RGB transport
    assert logged and logged[0].startswith("data path: device augment (") and "gbrp" in logged[0]
    batch = model_batch(next(iter(pipe)), flare=False)
    assert set(batch) == {"input_ids", "attention_mask", "pixel_u8", "augment", "state",
                          "embodiment_id", "action", "action_mask"}
    assert batch["pixel_u8"].dtype == np.uint8 and batch["augment"].shape[-1] == 8
    with pytest.raises(DataError, match="YUV transport needs yuv420p"):
        resolve(apply_overrides(robot, ["data.device_yuv=True"]))
    # with YUV transport the planes replace pixel_u8
    yuv = {k: v for k, v in batch.items() if k != "pixel_u8"}
    yuv.update(pixel_y=0, pixel_u=0, pixel_v=0, yuv_meta=0)
    assert set(model_batch(yuv, flare=False)) == set(yuv)
    with pytest.raises(DataError, match="yuv_meta"):
        model_batch({k: v for k, v in yuv.items() if k != "yuv_meta"}, flare=False)
