"""The fine-tune path at CPU size for GR00T N1.7: the `tiny_n1_7` preset (Qwen3-VL backbone with
DeepStack, AlternateVLDiT head; lerobot 0.6.1's tiny reference sizes) on your LeRobot dataset,
fp32, from scratch (or `--init` a tiny N1.7 model dir, whose config then fixes the model).

Command:  groot-jax train --config finetune_tiny_n1_7 --dataset DIR --tokenizer TOK_DIR \
              checkpoint.dir=runs/tiny_n17 steps=200
          TOK_DIR: a Qwen3-VL tokenizer (<|image_pad|>, <|vision_start|>, <|vision_end|>;
          `groot_jax.data.prompt.train_tiny_tokenizer(..., prompt_format="qwen3_vl")`)
Model:    `GR00TConfig.tiny_n1_7`: 64x64 frames, 4 tokens per image; the text vocabulary and
          special ids are the tokenizer's (model_from_tokenizer), recorded in run_config.json.
Data:     the dataset's keys (meta/modality.json), min_max normalised, padded to 8 / 7 dims.
Result:   tests/train/test_n17_train.py (a few steps through the CLI, then eval and export).
"""
from groot_jax.train.config import CheckpointConfig, MeshConfig, OptimConfig, TrainConfig
from groot_jax.train.data_spec import DataSpec


def get_config() -> TrainConfig:
    return TrainConfig(
        name="finetune_tiny_n1_7", model="tiny_n1_7", model_from_tokenizer=True,
        tune_visual=True, tune_llm=True, category_init="fan_in", param_dtype="float32",
        frozen_dtype="float32", compute_dtype="float32", batch_size=8, steps=200, log_every=10,
        optim=OptimConfig(lr=1e-3, warmup_ratio=0.05),
        mesh=MeshConfig(min_shard_bytes=0),
        checkpoint=CheckpointConfig(dir=None, every=100, keep=2),
        data=DataSpec(source="datasets"))
