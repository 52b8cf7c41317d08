"""The tiny preset sized to a fixture tokenizer (its vocabulary and <IMG_CONTEXT> id), for tests
that save a tiny model dir and run it through Policy, eval or serve."""
import dataclasses
import json
from pathlib import Path

from groot_jax.config import GR00TConfig


def tiny_config_for(tokenizer_dir: Path) -> GR00TConfig:
    tokens = json.loads((Path(tokenizer_dir) / "tokenizer.json").read_text())["added_tokens"]
    image_id = next(t["id"] for t in tokens if t["content"] == "<IMG_CONTEXT>")
    base = GR00TConfig.tiny()
    return dataclasses.replace(base, backbone=dataclasses.replace(
        base.backbone, image_token_index=image_id,
        llm=dataclasses.replace(base.backbone.llm, vocab_size=512)))
