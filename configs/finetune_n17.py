"""Fine-tune GR00T N1.7-3B as lerobot 0.6.1 does by default (VLM frozen: tune_visual and
tune_llm off; state/action encoders, decoder, DiT and VL self-attention trained), the same
memory recipe as finetune_n15 (bf16 Adam moments, bf16 gradients, remat).

Command:  groot-jax train --config finetune_n17 --dataset DIR --init GR00T-N1.7-3B_DIR \
              checkpoint.dir=/ckpt/run1   (the tokenizer: --tokenizer QWEN3_VL_TOKENIZER_DIR,
          e.g. Cosmos-Reason2-2B's; the released checkpoint ships none)
Memory:   groot-jax train --config finetune_n17 --dry-run --tpu v5e:1x1   (README "Training
          memory"; tests/train/test_n17_train.py).
Hardware: one accelerator with more than 16 GiB (see the README's memory table), or FSDP.
"""
from groot_jax.train.config import CheckpointConfig, MeshConfig, OptimConfig, TrainConfig
from groot_jax.train.data_spec import DataSpec


def get_config() -> TrainConfig:
    return TrainConfig(name="finetune_n17", model="n1_7_3b", batch_size=8, steps=10_000,
                       remat="full", mesh=MeshConfig(data=-1, fsdp=1),
                       optim=OptimConfig(moments_dtype="bfloat16"), grad_dtype="bfloat16",
                       checkpoint=CheckpointConfig(dir=None, every=1000, keep=3),
                       data=DataSpec(source="datasets"))
