"""Train every parameter of GR00T N1.5-3B (tune_visual, tune_llm on) with FSDP over 8 chips.

Command:  groot-jax train --config full_n15_fsdp8 --set checkpoint.dir=gs://bucket/run
Memory:   groot-jax train --config full_n15_fsdp8 --dry-run --tpu v5e:2x4: 5.62 GiB peak per
          chip (the TPU compiler's analysis, ahead of time, batch 8; README "Training memory").
Hardware: 8 x 16 GiB TPU chips (v5e-8). Time and result: not measured yet.
"""
from groot_jax.train.config import CheckpointConfig, MeshConfig, TrainConfig


def get_config() -> TrainConfig:
    return TrainConfig(name="full_n15_fsdp8", model="n1_5_3b", batch_size=8, steps=20_000,
                       tune_visual=True, tune_llm=True, remat="full",
                       mesh=MeshConfig(data=1, fsdp=8),
                       checkpoint=CheckpointConfig(dir=None, every=1000, keep=3))
