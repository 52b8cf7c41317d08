"""The tiny preset on the synthetic task (groot_jax/train/synthetic.py): for tests and dry runs.

Command:  groot-jax train --config tiny_synthetic --set checkpoint.dir=/tmp/tiny
Hardware: any CPU (2 cores). Time: about a minute for 300 steps of the tiny preset.
Expected: loss falls well below its first value.
"""
from groot_jax.train.config import CheckpointConfig, MeshConfig, OptimConfig, TrainConfig


def get_config() -> TrainConfig:
    return TrainConfig(name="tiny_synthetic", model="tiny", batch_size=16, steps=300, log_every=25,
                       optim=OptimConfig(lr=1e-3, warmup_ratio=0.05),
                       mesh=MeshConfig(min_shard_bytes=0),
                       checkpoint=CheckpointConfig(dir=None, every=100, keep=2))
