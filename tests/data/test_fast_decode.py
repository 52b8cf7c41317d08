"""VideoDecoder converts to RGB with a swscale context kept per open file; the pixels equal PyAV's
own `frame.to_ndarray(format="rgb24")` on lossy yuv420p h264 (where the colour conversion
matters), for random and forward access."""

import av
import numpy as np
import pytest

from groot_jax.data.video import VideoDecoder


@pytest.fixture(scope="module")
def yuv_clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("yuv") / "clip.mp4"
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (24, 48, 64, 3), dtype=np.uint8)
    frames[:, :16] = np.arange(64, dtype=np.uint8)[None, None, :, None] * 4  # smooth gradient
    with av.open(str(path), "w") as c:
        s = c.add_stream("h264", rate=30)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.options = {"g": "2", "crf": "23", "preset": "veryfast"}
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    with av.open(str(path)) as c:
        ref = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    return path, ref


def test_decoder_rgb_equals_pyav_to_ndarray(yuv_clip):
    path, ref = yuv_clip
    dec = VideoDecoder()
    order = list(np.random.default_rng(1).permutation(len(ref))) + list(range(len(ref)))
    for i in order:
        np.testing.assert_array_equal(dec.frames(str(path), [i / 30])[0], ref[i])
    got = dec.frames(str(path), [3 / 30, 4 / 30, 5 / 30])
    np.testing.assert_array_equal(got, ref[3:6])
    assert dec.opens == 1
