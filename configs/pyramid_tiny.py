"""Pyramid pretraining, tiny model, on the synthetic goal-reaching world (CPU, minutes).

Data (run once; ~1 min on 2 cores; GROOT_PYRAMID_DATA overrides the location):
    groot-jax latent-actions pyramid-demo runs/pyramid_tiny_data
Train (the pyramid is a data spec with levels; `groot-jax pyramid train` is an alias):
    groot-jax train --config configs/pyramid_tiny.py [steps=50]

Levels and weights (groot_jax/latent/demo_pyramid.py pyramid_data_spec):
  real_robot           0.3  LeRobot, recorded actions              (new_embodiment slot)
  simulation           0.2  LeRobot, recorded actions, other look  (new_embodiment slot)
  human_video          0.3  action-less: half latent actions       (latent_action slot)
                            and half FLARE only (flow matching masked, alignment trains)
  neural_trajectories  0.2  action-less with IDM pseudo-actions    (new_embodiment slot)
FLARE: future frame 4 steps ahead, weight 0.2 (groot_jax/config.py FlareConfig); with FLARE's
future frames the images are transformed on the host (the run log says so).
"""
import os

from groot_jax.latent.demo_pyramid import pyramid_data_spec, tiny_model_overrides
from groot_jax.train.config import CheckpointConfig, MeshConfig, OptimConfig, TrainConfig

ROOT = os.environ.get("GROOT_PYRAMID_DATA", "runs/pyramid_tiny_data")


def get_config() -> TrainConfig:
    return TrainConfig(
        name="pyramid_tiny", model="tiny", model_overrides=tiny_model_overrides(flare=True),
        model_from_tokenizer=True,   # the demo's tiny tokenizer sizes the vocabulary
        # From scratch: train the (random) VLM too; fp32 on CPU.
        tune_visual=True, tune_llm=True, param_dtype="float32", frozen_dtype="float32",
        compute_dtype="float32", batch_size=32, steps=300, log_every=25,
        optim=OptimConfig(lr=1e-3, warmup_ratio=0.05), mesh=MeshConfig(min_shard_bytes=0),
        checkpoint=CheckpointConfig(dir=None, every=100, keep=2), data=pyramid_data_spec(ROOT))
