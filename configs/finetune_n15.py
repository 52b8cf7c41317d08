"""Fine-tune GR00T N1.5-3B as Isaac-GR00T's gr00t_finetune.py does (VLM frozen; projector,
DiT, VL self-attention and future tokens trained), aimed at one 16 GiB TPU chip.

Command:  groot-jax train --config finetune_n15 --dataset DIR --init GR00T-N1.5-3B_DIR \
              checkpoint.dir=/ckpt/run1   [--dataset DIR2 --weight 0.3] [--data-config NAME]
          (the data config is derived from each dataset's meta/modality.json or meta/info.json
          unless --data-config names a preset; statistics come from meta/stats.json or are
          computed into /ckpt/run1/stats/; the tokenizer is the --init checkpoint's unless
          --tokenizer DIR is given). This config never trains on the synthetic task.
Memory:   groot-jax train --config finetune_n15 --dry-run --tpu v5e:1x1   (README "Training
          memory"): the TPU compiler, targeting one v5e chip ahead of time, gives a 13.43 GiB
          peak at batch 8 with this config (fp32 master weights, bf16 Adam moments, bf16
          gradients). fp32 moments cannot fit one 16 GiB chip: their train state alone is
          14.45 GiB, and the TPU compiler refuses that step even at batch 1.
          With --dataset the dry run compiles for the shapes of one real batch (views, prompt
          length); without it, for one view and a 24-token prompt.
Hardware: Colab TPU v5e-1 (16 GiB HBM). Time and result: not measured yet (no TPU in this
          project's CI).
"""
from groot_jax.train.config import CheckpointConfig, MeshConfig, OptimConfig, TrainConfig
from groot_jax.train.data_spec import DataSpec


def get_config() -> TrainConfig:
    return TrainConfig(name="finetune_n15", model="n1_5_3b", batch_size=8, steps=10_000,
                       remat="full", mesh=MeshConfig(data=-1, fsdp=1),
                       # What makes the step fit one 16 GiB chip (tests/train/test_tpu_aot.py):
                       optim=OptimConfig(moments_dtype="bfloat16"), grad_dtype="bfloat16",
                       checkpoint=CheckpointConfig(dir=None, every=1000, keep=3),
                       data=DataSpec(source="datasets"))
