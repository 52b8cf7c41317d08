"""Fine-tune GR00T N1.5-3B as Isaac-GR00T's gr00t_finetune.py does (VLM frozen; projector,
DiT, VL self-attention and future tokens trained), aimed at one 16 GiB TPU chip.

Command:  groot-jax train --config finetune_n15 --set checkpoint.dir=/ckpt/run1
Memory:   groot-jax train --config finetune_n15 --dry-run   (README "Training memory"): XLA's
          CPU analysis gives 24.64 GiB per device at batch 8 and 20.24 GiB at batch 1 with
          optim.moments_dtype=bfloat16, i.e. NOT under 16 GiB on CPU; TPU not measured.
Hardware: Colab TPU v5e-1 (16 GiB HBM). Time and result: not measured yet (no TPU in this
          project's CI). The CLI trains on the synthetic task; LeRobot data goes through
          `loop.train(cfg, data_iter=...)` (as colab/finetune_n15.ipynb does).
"""
from groot_jax.train.config import CheckpointConfig, MeshConfig, TrainConfig


def get_config() -> TrainConfig:
    return TrainConfig(name="finetune_n15", model="n1_5_3b", batch_size=8, steps=10_000,
                       remat="full", mesh=MeshConfig(data=-1, fsdp=1),
                       checkpoint=CheckpointConfig(dir=None, every=1000, keep=3))
