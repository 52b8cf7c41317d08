"""Decoded frames equal written frames (lossless libx264rgb), decoder cache, truncated files."""

import numpy as np
import pytest

from groot_jax.data.errors import DataError
from groot_jax.data.video import VideoDecoder, read_all_frames, write_video
from tests.data import synth


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    frames = np.stack([synth.frame(3, i, 50, 70) for i in range(45)])
    p = tmp_path_factory.mktemp("vid") / "clip.mp4"
    write_video(str(p), frames, fps=15, gop=4)
    return p, frames


def test_lossless_roundtrip_sequential_and_random(clip):
    path, frames = clip
    assert np.array_equal(read_all_frames(path), frames)
    dec = VideoDecoder()
    ts = np.arange(len(frames)) / 15
    assert np.array_equal(dec.frames(path, ts), frames)
    assert dec.opens == 1 and dec.seeks == 1, (dec.opens, dec.seeks)  # sequential: one open, one seek
    order = np.random.default_rng(0).permutation(len(frames))
    got = np.stack([dec.frames(path, [ts[i]])[0] for i in order])
    assert np.array_equal(got, frames[order])
    assert dec.opens == 1  # cache: never reopened
    # every decoded frame is distinct, so a decoder stuck on one frame would fail above
    assert len({f.tobytes() for f in frames}) == len(frames)


def test_timestamp_without_frame_raises(clip):
    path, frames = clip
    dec = VideoDecoder()
    with pytest.raises(DataError, match=r"clip\.mp4.*no frame at t=3\.0"):
        dec.frames(path, [len(frames) / 15])
    with pytest.raises(DataError, match="no frame"):
        dec.frames(path, [0.5 / 15])  # between two frames


def test_truncated_mp4_raises(clip, tmp_path):
    path, frames = clip
    data = path.read_bytes()
    bad = tmp_path / "truncated.mp4"
    bad.write_bytes(data[: len(data) // 2])
    dec = VideoDecoder()
    with pytest.raises(DataError, match="truncated.mp4"):
        dec.frames(bad, np.arange(len(frames)) / 15)


def test_forward_gaps_seek_once_the_keyframe_interval_is_known(clip):
    """After decoding through two keyframes (GOP 4 at 15 fps: interval 4/15 s), a forward gap of
    up to half the interval plus a frame (3 frames) decodes through; a longer gap seeks. The frames
    are the written ones either way."""
    path, frames = clip
    dec = VideoDecoder()
    ts = np.arange(len(frames)) / 15
    assert np.array_equal(dec.frames(path, ts[:6]), frames[:6])  # keyframes at 0 and 4
    assert dec.seeks == 1
    assert np.array_equal(dec.frames(path, [ts[7]])[0], frames[7])  # gap of 2 frames: through
    assert dec.seeks == 1
    assert np.array_equal(dec.frames(path, [ts[11]])[0], frames[11])  # gap of 4 frames: seek
    assert dec.seeks == 2
    assert np.array_equal(dec.frames(path, [ts[12]])[0], frames[12])  # next frame: through
    assert dec.seeks == 2
