"""The fine-tune path at CPU size: the tiny preset on your LeRobot dataset, fp32, from scratch
(or `--init` a tiny groot-jax model dir, whose config then fixes the model).

Command:  groot-jax train --config finetune_tiny --dataset DIR --tokenizer TOK_DIR \
              checkpoint.dir=runs/tiny steps=200
          (`--init MODEL_DIR` instead of `--tokenizer`: the model's tokenizer is used)
Model:    the tiny preset with 32x32 images (16 tokens per image) so that a step takes well under
          a second on 2 CPU cores; the LLM vocabulary and <IMG_CONTEXT> id are taken from the
          tokenizer when the run starts (model_from_tokenizer) and recorded in run_config.json.
Data:     the dataset's own keys (meta/modality.json, else meta/info.json features), min_max
          normalised; statistics from meta/stats.json or computed into <checkpoint.dir>/stats/.
Hardware: any CPU. Time and result: see tests/train/test_user_path_train.py (a few steps).
"""
import dataclasses

from groot_jax.config import GR00TConfig
from groot_jax.train.config import CheckpointConfig, MeshConfig, OptimConfig, TrainConfig
from groot_jax.train.data_spec import DataSpec


def _small_images() -> tuple:
    """32x32 images, and the action head without dropout: at width 32 the original's 0.2
    dropout (tuned for width 1536) drowns the signal of a few-hundred-step run."""
    tiny = GR00TConfig.tiny()
    base, ah = tiny.backbone, tiny.action_head
    head = dataclasses.replace(
        ah, dit=dataclasses.replace(ah.dit, dropout=0.0),
        vl_self_attention=dataclasses.replace(ah.vl_self_attention, dropout=0.0))
    return (("backbone", dataclasses.replace(
        base, vision=dataclasses.replace(base.vision, image_size=32, patch_size=8))),
        ("action_head", head))


def get_config() -> TrainConfig:
    return TrainConfig(
        name="finetune_tiny", model="tiny", model_overrides=_small_images(),
        model_from_tokenizer=True,
        # From scratch: train the (random) VLM too; fp32 on CPU.
        tune_visual=True, tune_llm=True, category_init="fan_in", param_dtype="float32",
        frozen_dtype="float32", compute_dtype="float32", batch_size=8, steps=200, log_every=10,
        optim=OptimConfig(lr=1e-3, warmup_ratio=0.05), mesh=MeshConfig(min_shard_bytes=0),
        checkpoint=CheckpointConfig(dir=None, every=100, keep=2),
        data=DataSpec(source="datasets"))
