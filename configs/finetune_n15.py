"""Fine-tune GR00T N1.5-3B as Isaac-GR00T's gr00t_finetune.py does (VLM frozen; projector,
DiT, VL self-attention and future tokens trained), aimed at one 16 GiB TPU chip.

Command:  groot-jax train --config finetune_n15 --set checkpoint.dir=/ckpt/run1
Memory:   groot-jax train --config finetune_n15 --dry-run --tpu v5e:1x1   (README "Training
          memory"): the TPU compiler, targeting one v5e chip ahead of time, gives a 13.43 GiB
          peak at batch 8 with this config (fp32 master weights, bf16 Adam moments, bf16
          gradients). fp32 moments cannot fit one 16 GiB chip: their train state alone is
          14.45 GiB, and the TPU compiler refuses that step even at batch 1.
Hardware: Colab TPU v5e-1 (16 GiB HBM). Time and result: not measured yet (no TPU in this
          project's CI). The CLI trains on the synthetic task; LeRobot data goes through
          `loop.train(cfg, data_iter=...)` (as colab/finetune_n15.ipynb does).
"""
from groot_jax.train.config import CheckpointConfig, MeshConfig, OptimConfig, TrainConfig


def get_config() -> TrainConfig:
    return TrainConfig(name="finetune_n15", model="n1_5_3b", batch_size=8, steps=10_000,
                       remat="full", mesh=MeshConfig(data=-1, fsdp=1),
                       # What makes the step fit one 16 GiB chip (tests/train/test_tpu_aot.py):
                       optim=OptimConfig(moments_dtype="bfloat16"), grad_dtype="bfloat16",
                       checkpoint=CheckpointConfig(dir=None, every=1000, keep=3))
