"""Pyramid pretraining, tiny model, on the synthetic goal-reaching world (CPU, minutes).

Data (run once; ~1 min on 2 cores; GROOT_PYRAMID_DATA overrides the location):
    groot-jax latent-actions pyramid-demo runs/pyramid_tiny_data
Train:
    groot-jax pyramid train --config configs/pyramid_tiny.py [--set steps=50]

Levels and weights (the pyramid: few real-robot frames, more simulation, most video):
  real_robot           0.3  LeRobot, recorded actions              (new_embodiment slot)
  simulation           0.2  LeRobot, recorded actions, other look  (new_embodiment slot)
  human_video          0.3  action-less: half latent actions       (latent_action slot)
                            and half FLARE only (flow matching masked, alignment trains)
  neural_trajectories  0.2  action-less with IDM pseudo-actions    (new_embodiment slot)
FLARE: future frame 4 steps ahead, weight 0.2 (groot_jax/config.py FlareConfig).
"""
import os
from pathlib import Path

from groot_jax.data.mixture import SourceSpec
from groot_jax.train.config import CheckpointConfig, MeshConfig, OptimConfig, TrainConfig
from groot_jax.train.pyramid import (
    Pyramid,
    PyramidLevel,
    demo_data_configs,
    tiny_model_overrides,
    tokenizer_ids,
)

ROOT = Path(os.environ.get("GROOT_PYRAMID_DATA", "runs/pyramid_tiny_data"))
# The demo tokenizer (groot_jax.data.prompt.train_tiny_tokenizer): special tokens come first,
# <IMG_CONTEXT> is id 4; get_pyramid checks both against the tokenizer on disk.
VOCAB, IMAGE_TOKEN = 512, 4


def get_config() -> TrainConfig:
    return TrainConfig(
        name="pyramid_tiny", model="tiny",
        model_overrides=tiny_model_overrides(VOCAB, IMAGE_TOKEN, flare=True),
        # From scratch: train the (random) VLM too; fp32 on CPU.
        tune_visual=True, tune_llm=True, param_dtype="float32", frozen_dtype="float32",
        compute_dtype="float32", batch_size=32, steps=300, log_every=25,
        optim=OptimConfig(lr=1e-3, warmup_ratio=0.05), mesh=MeshConfig(min_shard_bytes=0),
        checkpoint=CheckpointConfig(dir=None, every=100, keep=2), data="pyramid")


def get_pyramid(cfg: TrainConfig) -> Pyramid:
    if not (ROOT / "paths.json").exists():
        raise FileNotFoundError(f"{ROOT}: no demo pyramid; run `groot-jax latent-actions "
                                f"pyramid-demo {ROOT}` (or set GROOT_PYRAMID_DATA)")
    vocab, img = tokenizer_ids(ROOT / "tokenizer")
    if vocab > VOCAB or img != IMAGE_TOKEN:
        raise ValueError(f"{ROOT / 'tokenizer'}: vocabulary {vocab} / <IMG_CONTEXT> {img} do not fit "
                         f"the model (vocab_size {VOCAB}, image_token_index {IMAGE_TOKEN})")
    c = demo_data_configs()
    return Pyramid(
        levels=(
            PyramidLevel("real_robot", (SourceSpec(str(ROOT / "robot"), c["robot"]),), 0.3),
            PyramidLevel("simulation", (SourceSpec(str(ROOT / "sim"), c["robot"]),), 0.2),
            PyramidLevel("human_video", (
                SourceSpec(str(ROOT / "human"), c["latent"], kind="actionless",
                           action_sidecar=str(ROOT / "human.latent_actions")),
                SourceSpec(str(ROOT / "human"), c["video"], kind="actionless"),
            ), 0.3),
            PyramidLevel("neural_trajectories", (
                SourceSpec(str(ROOT / "neural"), c["idm"], kind="actionless",
                           action_sidecar=str(ROOT / "neural.idm_actions.new_embodiment")),
            ), 0.2),
        ),
        tokenizer=str(ROOT / "tokenizer"), future_offset=4, max_seq_len=64)
