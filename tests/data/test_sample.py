"""For a fixed index, the transformed sample equals values computed independently here: stats by
numpy over the parquet rows, the original's formulas, torch's antialiased resize, the prompt
tokenized by the raw `tokenizers` library."""

import numpy as np
import pyarrow.parquet as pq
import torch
from tokenizers import Tokenizer

from groot_jax.data.lerobot_v2 import LeRobotV2Source
from groot_jax.data.processor import SampleTransform
from groot_jax.data.prompt import PromptTokenizer
from groot_jax.data.stats import source_stats
from tests.data import synth
from tests.data.fixtures import TASKS, V2_DATA_CONFIG

CFG = V2_DATA_CONFIG


def _rows(root, col):
    files = sorted((root / "data").glob("chunk-*/episode_*.parquet"))
    return np.concatenate(
        [np.asarray(pq.read_table(f).column(col).to_pylist(), np.float32) for f in files]
    )


def _expected_pixels(img_u8):
    h, w = img_u8.shape[:2]
    ch, cw = int(h * 0.95), int(w * 0.95)
    top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
    x = torch.from_numpy(img_u8[top : top + ch, left : left + cw].astype(np.float32) / 255.0)
    x = torch.nn.functional.interpolate(
        x.permute(2, 0, 1)[None], size=(224, 224), mode="bilinear", antialias=True, align_corners=False
    )[0].permute(1, 2, 0)
    u8 = (x * 255).to(torch.uint8).numpy()
    return (u8.astype(np.float32) / 255.0 - 0.5) / 0.5


def test_fixed_index_sample_matches_independent_computation(v2_root, tokenizer_dir):
    src = LeRobotV2Source(v2_root)
    tok = PromptTokenizer(str(tokenizer_dir))
    t = SampleTransform(CFG, src.modality, source_stats(src, use_stats_json=False), tok)
    ep, frame = 2, 7
    out = t(src.get(ep, frame, CFG), rng=None)  # eval mode: centre crop, no jitter

    S, A = (
        _rows(v2_root, "observation.state").astype(np.float64),
        _rows(v2_root, "action").astype(np.float64),
    )
    s = synth.state_row(2, 7, 8).astype(np.float64)
    arm = 2 * (s[:6] - S[:, :6].min(0)) / (S[:, :6].max(0) - S[:, :6].min(0)) - 1
    grip = (s[6:8] - S[:, 6:8].mean(0)) / S[:, 6:8].std(0)
    assert out["state"].shape == (1, 64) and out["state"].dtype == np.float32
    np.testing.assert_allclose(out["state"][0, :8], np.concatenate([arm, grip]), rtol=1e-5, atol=1e-5)
    assert (out["state"][0, 8:] == 0).all()
    assert (
        out["state_mask"].dtype == bool
        and out["state_mask"][0, :8].all()
        and not out["state_mask"][0, 8:].any()
    )

    a = np.stack([synth.action_row(2, i, 7) for i in range(7, 23)]).astype(np.float64)
    q01, q99 = np.quantile(A[:, :6], 0.01, 0), np.quantile(A[:, :6], 0.99, 0)
    want_arm = np.clip(2 * (a[:, :6] - q01) / (q99 - q01) - 1, -1, 1)
    assert out["action"].shape == (16, 32) and out["action"].dtype == np.float32
    np.testing.assert_allclose(out["action"][:, :6], want_arm, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(out["action"][:, 6], (a[:, 6] > 0.5).astype(np.float32))
    assert (out["action"][:, 7:] == 0).all()
    np.testing.assert_array_equal(out["action_mask"], np.pad(np.ones((16, 7)), ((0, 0), (0, 25))))
    assert out["embodiment_id"] == 31

    # pixels: two views, (t v) order, [-1, 1]
    assert out["pixel_values"].shape == (2, 224, 224, 3) and out["pixel_values"].dtype == np.float32
    for v in range(2):
        want = _expected_pixels(synth.frame(2, 7, 60, 80, v))
        # bit-exact: the resize emulates torch's float32 FMA kernel (the truncating uint8 cast would
        # expose any 1-ulp difference on the flat regions of these frames)
        np.testing.assert_array_equal(out["pixel_values"][v], want)

    # prompt: the spec's layout, tokenized by the raw tokenizers library
    text = (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
        + "".join(f"<image {k}><img>" + "<IMG_CONTEXT>" * 256 + "</img>" for k in (1, 2))
        + TASKS[2]
        + "<|im_end|>\n<|im_start|>assistant\n"
    )
    raw = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
    want_ids = raw.encode(text, add_special_tokens=False).ids
    np.testing.assert_array_equal(out["input_ids"], np.asarray(want_ids, np.int32))
    img_id = raw.token_to_id("<IMG_CONTEXT>")
    assert (out["input_ids"] == img_id).sum() == 512


def test_inference_language_quirk(v2_root, tokenizer_dir):
    src = LeRobotV2Source(v2_root)
    tok = PromptTokenizer(str(tokenizer_dir))
    stats = source_stats(src, use_stats_json=False)
    plain = SampleTransform(CFG, src.modality, stats, tok)(src.get(0, 0, CFG))
    quirk = SampleTransform(CFG, src.modality, stats, tok, inference_language_quirk=True)(
        src.get(0, 0, CFG)
    )
    dec = tok.tokenizer.decode(quirk["input_ids"])
    assert f"['{TASKS[0]}']<|im_end|>" in dec
    assert f"</img>{TASKS[0]}<|im_end|>" in tok.tokenizer.decode(plain["input_ids"])


def test_action_roundtrip_through_inverse_path(v2_root):
    src = LeRobotV2Source(v2_root)
    cfg = CFG.replace(action_normalization={"action.arm": "min_max", "action.gripper": "mean_std"})
    t = SampleTransform(cfg, src.modality, source_stats(src, use_stats_json=False), None)
    raw = src.get(0, 3, cfg)
    out = t(raw)
    back = t.codec.unapply_action(out["action"][None])  # batch axis kept
    np.testing.assert_allclose(back["action.arm"][0], raw["action.arm"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(back["action.gripper"][0], raw["action.gripper"], rtol=1e-5, atol=1e-5)


def test_builtin_template_equals_spec_template(tokenizer_dir):
    """A checkpoint tokenizer without a chat template falls back to EAGLE_CHAT_TEMPLATE, which must
    render exactly what the spec's template (the fixture's) renders."""
    a = PromptTokenizer(str(tokenizer_dir))
    b = PromptTokenizer(str(tokenizer_dir))
    b.tokenizer.chat_template = None
    for n, text in ((0, "x"), (1, TASKS[0]), (3, "['quoted']")):
        np.testing.assert_array_equal(a(n, text), b(n, text))
