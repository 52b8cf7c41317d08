"""N1.7 inputs: the jit-traceable M-RoPE positions for GR00T's fixed frame grid against the
host-side `mrope_position_ids` (itself exact to transformers' `get_rope_index` in
tests/parity/test_qwen3_vl_parity.py), and the Qwen3-VL prompt format."""
import numpy as np
import pytest

from groot_jax.config import GR00TConfig, Qwen3VLConfig
from groot_jax.data.errors import DataError
from groot_jax.data.prompt import (
    PromptTokenizer,
    check_model_config,
    formalize_language,
    train_tiny_tokenizer,
)
from groot_jax.models.qwen3_vl_text import mrope_position_ids, mrope_position_ids_for_grid


@pytest.mark.parametrize("grid", [(1, 8, 8), (1, 4, 8)])
def test_grid_positions_equal_host_positions(grid):
    cfg = Qwen3VLConfig.tiny()
    n = grid[0] * grid[1] * grid[2] // cfg.vision.spatial_merge_size**2
    img, vs, ve = cfg.image_token_id, cfg.vision_start_token_id, cfg.vision_end_token_id
    rows = [[1, 2, vs] + [img] * n + [ve, vs] + [img] * n + [ve, 5, 6, 7],   # two images
            [3, vs] + [img] * n + [ve, 9],                                  # one, left-padded
            [4, 5, 6]]                                                      # text only
    length = max(map(len, rows)) + 2
    ids = np.full((3, length), 7, np.int64)
    mask = np.zeros((3, length), bool)
    for b, row in enumerate(rows):
        ids[b, length - len(row):], mask[b, length - len(row):] = row, True
    images = sum(r.count(img) for r in rows) // n
    host, _ = mrope_position_ids(cfg, ids, np.array([grid] * images), mask)
    ours = np.asarray(mrope_position_ids_for_grid(cfg, ids, mask, grid))
    np.testing.assert_array_equal(ours, host)
    assert ours[:, 1, -1].tolist() != [0, 0, 0]                             # not trivially zero


def test_qwen3_vl_prompt_layout_and_model_check(tmp_path):
    tok_dir = train_tiny_tokenizer(tmp_path / "tok", ["Pick up the red cube!"],
                                   prompt_format="qwen3_vl")
    tok = PromptTokenizer(str(tok_dir), tokens_per_image=4)
    assert tok.prompt_format == "qwen3_vl"
    text = tok.tokenizer.decode(tok(2, "Pick up the red cube!"))
    block = "<|vision_start|>" + "<|image_pad|>" * 4 + "<|vision_end|>"
    assert text == f"<|im_start|>user\n{block}{block}pick up the red cube<|im_end|>\n"
    assert formalize_language("Open the Drawer, now!") == "open the drawer now"
    assert formalize_language("") == "perform the task"

    n17 = GR00TConfig.tiny_n1_7()
    with pytest.raises(DataError, match="image token id"):
        check_model_config(tok, n17)                      # the real ids, not the tiny tokenizer's
    sized = GR00TConfig.tiny_n1_7(backbone=n17.backbone.with_vocab(
        512, tok.image_token_id, **tok.special_token_ids()))
    tok4 = PromptTokenizer(str(tok_dir), tokens_per_image=sized.backbone.tokens_per_image)
    check_model_config(tok4, sized)
    eagle = PromptTokenizer(str(train_tiny_tokenizer(tmp_path / "eagle", ["x"])))
    with pytest.raises(DataError, match="'eagle' prompts; the model's backbone reads 'qwen3_vl'"):
        check_model_config(eagle, sized)
