"""YUV transport (PipelineConfig(device_yuv=True)): the host ships crops of the decoded yuv420p
planes and the accelerator converts them to RGB. The reference is PyAV's own swscale conversion
(what the host path uses): the device conversion must equal it bit for bit, and whole batches must
equal those of the RGB device-augment path."""

import dataclasses

import av
import numpy as np
import pytest

from groot_jax.data import device_augment as D
from groot_jax.data.errors import DataError
from groot_jax.data.mixture import SourceSpec
from groot_jax.data.pipeline import PipelineConfig, build_pipeline
from groot_jax.data.video import YUV_CONVERSIONS, VideoDecoder, yuv_conversion
from groot_jax.data.yuv_tables import swscale_rgb
from tests.data.fixtures import V2_DATA_CONFIG, write_v2_dataset


def _planes(i420: np.ndarray, h: int, w: int):
    flat = i420.ravel()
    y = flat[: h * w].reshape(h, w)
    u = flat[h * w : h * w * 5 // 4].reshape(h // 2, w // 2)
    v = flat[h * w * 5 // 4 :].reshape(h // 2, w // 2)
    return y, u, v


@pytest.mark.parametrize("conversion", range(len(YUV_CONVERSIONS)))
def test_device_conversion_equals_swscale(conversion):
    """Random planes (every Y, U, V value occurs) under each supported colour tagging: PyAV's RGB,
    cropped at every parity of offset, equals yuv_to_rgb of the cropped planes."""
    rng = np.random.default_rng(conversion)
    h, w = 58, 76
    i420 = rng.integers(0, 256, (h * 3 // 2, w), dtype=np.uint8)
    cs, cr = YUV_CONVERSIONS[conversion]
    want = swscale_rgb(i420, cs, cr)
    assert yuv_conversion(cs, cr) == conversion
    y, u, v = _planes(i420, h, w)
    ch, cw = 55, 72  # odd and even crop sizes
    ch2, cw2 = min(ch // 2 + 1, h // 2), min(cw // 2 + 1, w // 2)
    ys, us, vs, metas, wants = [], [], [], [], []
    for top in range(h - ch + 1):
        for left in (0, 1, 2, w - cw):
            r0, c0 = min(top // 2, h // 2 - ch2), min(left // 2, w // 2 - cw2)
            ys.append(y[top : top + ch, left : left + cw])
            us.append(u[r0 : r0 + ch2, c0 : c0 + cw2])
            vs.append(v[r0 : r0 + ch2, c0 : c0 + cw2])
            metas.append((top - 2 * r0, left - 2 * c0, conversion))
            wants.append(want[top : top + ch, left : left + cw])
    got = np.asarray(D.yuv_to_rgb(np.stack(ys), np.stack(us), np.stack(vs),
                                  np.array(metas, np.int32)))
    np.testing.assert_array_equal(got, np.stack(wants))


def test_other_colour_tags_are_refused():
    assert yuv_conversion(2, 0) == yuv_conversion(6, 1) == 0  # untagged frames: BT.601 limited
    with pytest.raises(DataError, match="colorspace=9"):
        yuv_conversion(9, 1, "x.mp4")  # BT.2020


def test_decoded_planes_convert_to_the_decoders_rgb(tmp_path):
    """An h264 yuv420p file: VideoDecoder.frames (swscale RGB) == device conversion of
    VideoDecoder.frames_yuv420, full frame."""
    frames = np.random.default_rng(0).integers(0, 256, (6, 48, 64, 3), dtype=np.uint8)
    path = str(tmp_path / "v.mp4")
    with av.open(path, "w") as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.options = {"g": "2", "crf": "18"}
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    ts = [0.0, 0.3, 0.1, 0.5]
    rgb = VideoDecoder().frames(path, ts)
    planes = VideoDecoder().frames_yuv420(path, ts)
    got = D.yuv_to_rgb(np.stack([p.y for p in planes]), np.stack([p.u for p in planes]),
                       np.stack([p.v for p in planes]),
                       np.array([(0, 0, p.conversion) for p in planes], np.int32))
    np.testing.assert_array_equal(np.asarray(got), rgb)


@pytest.fixture(scope="module")
def yuv_root(tmp_path_factory):
    return write_v2_dataset(tmp_path_factory.mktemp("yuv") / "ds", codec="libx264")


@pytest.mark.parametrize("train", [True, False])
def test_yuv_batches_equal_rgb_device_batches(yuv_root, tokenizer_dir, train):
    """Two views, two observation steps (one crop + jitter per view over both), odd crop height:
    the YUV batches, finished on the device, equal the RGB device-augment batches exactly."""
    cfg = dataclasses.replace(V2_DATA_CONFIG, observation_indices=(-1, 0))
    out = {}
    for yuv in (False, True):
        p = build_pipeline([SourceSpec(str(yuv_root), cfg)],
                           PipelineConfig(batch_size=4, seed=5, train=train, device_augment=True,
                                          device_yuv=yuv), str(tokenizer_dir))
        it = iter(p)
        out[yuv] = [next(it) for _ in range(3)]
    for rgb_batch, yuv_batch in zip(out[False], out[True], strict=True):
        assert yuv_batch["pixel_y"].shape == (4, 4, 57, 76)  # [B, T*V, ch, cw]
        assert yuv_batch["pixel_u"].shape == (4, 4, 29, 39)  # ch // 2 + 1, cw // 2 + 1
        want, got = D.apply(rgb_batch), D.apply(yuv_batch)
        assert set(want) == set(got)
        for k in want:
            np.testing.assert_array_equal(np.asarray(got[k]), np.asarray(want[k]), err_msg=k)


def test_yuv_transport_refuses_rgb_video(v2_root, tokenizer_dir):
    """The default fixture is lossless libx264rgb (not yuv420p): a clear error, not a wrong frame."""
    p = build_pipeline([SourceSpec(str(v2_root), V2_DATA_CONFIG)],
                       PipelineConfig(batch_size=2, device_augment=True, device_yuv=True),
                       str(tokenizer_dir))
    with pytest.raises(DataError, match=r"episode_\d+\.mp4: YUV transport needs yuv420p video"):
        next(iter(p))
    with pytest.raises(DataError, match="device_yuv=True needs device_augment=True"):
        build_pipeline([SourceSpec(str(v2_root), V2_DATA_CONFIG)],
                       PipelineConfig(batch_size=2, device_yuv=True), str(tokenizer_dir))
