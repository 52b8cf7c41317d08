"""The optional on-device augmentation (groot_jax/data/device_augment.py) equals the host path
(image_transforms.views_to_pixel_values, bit-exact to torchvision) within its stated tolerance: the same
crops and jitter draws, pixel values within one uint8 level,
fewer than 1e-3 of them differing."""

import dataclasses

import numpy as np
import pytest

from groot_jax.data import device_augment as D
from groot_jax.data import device_inputs as H
from groot_jax.data import image_transforms as T
from groot_jax.data.errors import DataError
from groot_jax.data.modality import DataConfig
from groot_jax.data.processor import SampleTransform

LEVEL = np.float32(1 / 127.5)  # one uint8 level in pixel_values
CFG = DataConfig(
    name="t",
    embodiment_tag="new_embodiment",
    video_keys=("video.a", "video.b"),
    state_keys=(),
    action_keys=(),
    language_keys=(),
)


def _frames(rng, t, h, w):
    x = rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8)
    x[:, : h // 3] = rng.integers(0, 256, (1, 1, 1, 3), dtype=np.uint8)  # flat colour
    x[:, h // 3 : h // 2] = rng.integers(0, 256, (t, h // 2 - h // 3, w, 1), dtype=np.uint8)  # grey
    x[:, -4:] = 255
    return x


def _compare(views, cfg, seed):
    r1 = None if seed is None else np.random.default_rng(seed)
    r2 = None if seed is None else np.random.default_rng(seed)
    want = T.views_to_pixel_values(views, cfg, r1)
    u8, aug = H.device_augment_inputs(views, cfg, r2)
    if r1 is not None:  # the same number of draws
        assert r1.integers(1 << 30) == r2.integers(1 << 30)
    got = np.asarray(D.augment_images(u8[None], aug[None], cfg.image_size))[0]
    assert got.shape == want.shape and got.dtype == np.float32
    assert np.abs(got - want).max() <= LEVEL * 1.001, np.abs(got - want).max() / LEVEL
    levels = np.abs(np.rint((got + 1) * 127.5) - np.rint((want + 1) * 127.5))  # uint8 levels
    assert levels.max() <= 1
    return float((levels > 0).mean())


@pytest.mark.parametrize("hw", [(256, 256), (60, 80), (480, 640)])
def test_device_path_matches_host_within_one_level(hw):
    fracs = []
    for seed in [None, 0, 1, 2, 3, 4, 5]:
        rng = np.random.default_rng(100 + (seed or 0))
        views = [_frames(rng, 2, *hw) for _ in range(2)]
        for jitter in (None, (0.3, 0.4, 0.5, 0.08)):
            fracs.append(_compare(views, dataclasses.replace(CFG, color_jitter=jitter), seed))
    assert max(fracs) < 1e-3, fracs


def test_sample_transform_device_mode_and_apply(v2_root, tokenizer_dir):
    from groot_jax.data.lerobot_v2 import LeRobotV2Source
    from groot_jax.data.prompt import PromptTokenizer
    from groot_jax.data.stats import source_stats
    from tests.data.fixtures import V2_DATA_CONFIG

    cfg = V2_DATA_CONFIG
    src = LeRobotV2Source(v2_root)
    tok = PromptTokenizer(str(tokenizer_dir))
    stats = source_stats(src, use_stats_json=False)
    host = SampleTransform(cfg, src.modality, stats, tok)
    dev = SampleTransform(cfg, src.modality, stats, tok, device_augment=True)
    assert host.device_augment is False  # off by default
    raw = src.get(2, 7, cfg)
    a = host(raw, np.random.default_rng(3))
    b = dev(raw, np.random.default_rng(3))
    assert "pixel_values" not in b and b["pixel_u8"].dtype == np.uint8
    assert b["pixel_u8"].shape[0] == 2 and b["augment"].shape == (2, 8)
    for k in a:
        if k != "pixel_values":
            np.testing.assert_array_equal(a[k], b[k])
    batch = {k: np.stack([v, v]) for k, v in b.items() if k != "input_ids"}
    out = D.apply(batch)
    assert "pixel_u8" not in out and "augment" not in out
    got = np.asarray(out["pixel_values"])
    assert got.shape == (2,) + a["pixel_values"].shape
    assert np.abs(got[0] - a["pixel_values"]).max() <= LEVEL * 1.001
    assert D.apply(a) is a  # host batches pass through


def test_views_of_different_shapes_rejected():
    rng = np.random.default_rng(0)
    with pytest.raises(DataError):
        H.device_augment_inputs([_frames(rng, 1, 64, 64), _frames(rng, 1, 48, 64)], CFG, None)


def test_resize_matrix_rows_are_the_taps():
    m = D.resize_matrix(243, 224)
    idx, w = T.aa_taps(243, 224)
    np.testing.assert_allclose(m.sum(1), 1, atol=1e-6)
    x = np.random.default_rng(0).random(243).astype(np.float32)
    np.testing.assert_allclose(m @ x, (x[idx] * w).sum(1), rtol=1e-6, atol=1e-6)


def test_pipeline_switch_matches_host_pipeline_through_the_train_step_cast(v2_root, tokenizer_dir):
    """PipelineConfig(device_augment=True) batches, resized/jittered/normalised by the train
    step's input cast, equal the host pipeline's batches (same seed) within one uint8 level."""
    from groot_jax.data.mixture import SourceSpec
    from groot_jax.data.pipeline import PipelineConfig, build_pipeline
    from groot_jax.train.config import TrainConfig
    from groot_jax.train.step import cast_inputs
    from tests.data.fixtures import V2_DATA_CONFIG

    def first_batch(device: bool):
        p = build_pipeline([SourceSpec(str(v2_root), V2_DATA_CONFIG)],
                           PipelineConfig(batch_size=3, seed=5, device_augment=device),
                           str(tokenizer_dir))
        return next(iter(p))

    host, dev = first_batch(False), first_batch(True)
    assert "pixel_values" not in dev and dev["pixel_u8"].dtype == np.uint8
    for k in host:
        if k != "pixel_values":
            np.testing.assert_array_equal(host[k], dev[k], err_msg=k)
    cast = cast_inputs(dev, TrainConfig(model="tiny", compute_dtype="float32"))
    got = np.asarray(cast["pixel_values"])
    assert got.shape == host["pixel_values"].shape
    assert np.abs(got - host["pixel_values"]).max() <= LEVEL * 1.001
    assert np.mean(got != host["pixel_values"]) < 1e-3


def test_pipeline_switch_refuses_flare_future_frames(v2_root, tokenizer_dir):
    from groot_jax.data.mixture import SourceSpec
    from groot_jax.data.pipeline import PipelineConfig, build_pipeline
    from tests.data.fixtures import V2_DATA_CONFIG

    with pytest.raises(DataError, match="device_augment=True cannot be combined with future_offset"):
        build_pipeline([SourceSpec(str(v2_root), V2_DATA_CONFIG)],
                       PipelineConfig(batch_size=2, device_augment=True, future_offset=4),
                       str(tokenizer_dir))
