"""The `small` preset trained from scratch on your LeRobot dataset on a CPU (or any device):
GR00T N1.5's structure at widths that learn in tens of minutes on 2 cores, 64x64 images.

Command:  groot-jax record metaworld --tasks mt10 --episodes 50 --seed 0,2 --image 64 \
              --out data/mt10 --tokenizer-out data/mt10_tokenizer
          groot-jax train --config finetune_small --dataset data/mt10 \
              --tokenizer data/mt10_tokenizer checkpoint.dir=runs/mt10 steps=1500
          groot-jax eval closed-loop --model runs/mt10 --tasks mt10 --episodes 50 --seed 1 \
              --image 64 --baselines
Model:    `GR00TConfig.small` (SigLIP 4x128 on 8x8 patches, Qwen3 4x128, VL self-attention 2,
          DiT 4 blocks of 128), vocabulary and <IMG_CONTEXT> from the tokenizer
          (model_from_tokenizer), fan-in init of the per-embodiment MLPs, everything trained, fp32.
Data:     the dataset's keys (meta/modality.json), min_max normalised, batch 32.
Results:  experiments/closed_loop/README.md (30 min on one core, ~1030-1340 steps: MT10 27-28%
          with the 21-d state, 12-16% with proprio state).
"""
from groot_jax.train.config import CheckpointConfig, MeshConfig, OptimConfig, TrainConfig
from groot_jax.train.data_spec import DataSpec


def get_config() -> TrainConfig:
    return TrainConfig(
        name="finetune_small", model="small", model_from_tokenizer=True,
        tune_visual=True, tune_llm=True, category_init="fan_in", param_dtype="float32",
        frozen_dtype="float32", compute_dtype="float32", batch_size=32, steps=20000,
        log_every=50, optim=OptimConfig(lr=1e-3, warmup_ratio=0.02),
        mesh=MeshConfig(min_shard_bytes=0),
        checkpoint=CheckpointConfig(dir=None, every=1000, keep=3),
        data=DataSpec(source="datasets"))
