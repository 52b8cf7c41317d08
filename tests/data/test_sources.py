"""LeRobot v2.1 (GR00T flavour) and v3.0 (written by lerobot's own writer) sources: values read at
fixed (episode, frame) equal the values written; edge padding; decoded frames."""

import json

import numpy as np
import pyarrow.parquet as pq

from groot_jax.data.lerobot_v2 import LeRobotV2Source
from groot_jax.data.lerobot_v3 import LeRobotV3Source
from groot_jax.data.modality import DataConfig
from groot_jax.data.stats import compute_column_stats
from tests.data import synth
from tests.data.fixtures import TASKS, V2_DATA_CONFIG

# Normalization is not part of what a source returns: the fixture config serves as is.
CFG2 = V2_DATA_CONFIG


def test_v2_sample_values(v2_root):
    src = LeRobotV2Source(v2_root)
    assert len(src) == 24 + 9 + 30
    pos, frame = src.locate(24 + 5)
    assert (pos, frame) == (1, 5)
    s = src.get(pos, frame, CFG2)
    assert s["state.arm"].shape == (1, 6) and s["state.arm"].dtype == np.float32
    np.testing.assert_array_equal(s["state.arm"][0], synth.state_row(1, 5, 8)[:6])
    np.testing.assert_array_equal(s["state.gripper"][0], synth.state_row(1, 5, 8)[6:8])
    # action chunk of 16 from frame 5 of a 9-frame episode: rows 5..8 then the last row repeated
    want = np.stack([synth.action_row(1, min(i, 8), 7) for i in range(5, 21)])
    np.testing.assert_array_equal(s["action.arm"], want[:, :6])
    np.testing.assert_array_equal(s["action.gripper"], want[:, 6:7])
    assert s["annotation.human.task_description"] == [TASKS[1]]
    np.testing.assert_array_equal(s["video.front"][0], synth.frame(1, 5, 60, 80, 0))
    np.testing.assert_array_equal(s["video.wrist"][0], synth.frame(1, 5, 60, 80, 1))


def test_v2_relative_action_pads_zeros(tmp_path):
    from tests.data.fixtures import write_v2_dataset

    modality = {
        "state": {"arm": {"start": 0, "end": 6}, "gripper": {"start": 6, "end": 8}},
        "action": {"arm": {"start": 0, "end": 6, "absolute": False}, "gripper": {"start": 6, "end": 7}},
        "video": {"front": {"original_key": "observation.images.front"}},
        "annotation": {"human.task_description": {}},
    }
    root = write_v2_dataset(
        tmp_path / "rel", lengths=(6,), cameras=("front",), modality_override=modality
    )
    src = LeRobotV2Source(root)
    cfg = CFG2.replace(video_keys=("video.front",), observation_indices=(-2, 0))
    s = src.get(0, 1, cfg)
    # observation index -1 -> absolute state pads with row 0
    np.testing.assert_array_equal(s["state.arm"][0], synth.state_row(0, 0, 8)[:6])
    np.testing.assert_array_equal(s["video.front"][0], synth.frame(0, 0, 60, 80))  # clamped
    a = s["action.arm"]  # relative: zeros beyond the end (frames 1..5 real, 6..16 zero)
    np.testing.assert_array_equal(a[:5], np.stack([synth.action_row(0, i, 7)[:6] for i in range(1, 6)]))
    assert (a[5:] == 0).all()
    g = s["action.gripper"]  # absolute: last row repeated
    assert (g[5:] == synth.action_row(0, 5, 7)[6]).all()


def test_every_frame_decodes_to_its_own_image(v2_root):
    src = LeRobotV2Source(v2_root)
    cfg = CFG2.replace(video_keys=("video.front",))
    for pos, n in enumerate(src.episode_lengths):
        for f in range(n):
            got = src.get(pos, f, cfg)["video.front"][0]
            assert np.array_equal(got, synth.frame(int(src.episode_indices[pos]), f, 60, 80)), (pos, f)
    assert src.decoder.opens == 3  # one open per episode file, sequential reads reuse it


def test_v3_lerobot_written_dataset(v3_root):
    info = json.loads((v3_root / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0"
    src = LeRobotV3Source(v3_root)
    assert list(src.episode_lengths) == [20, 9, 14]
    cfg = DataConfig(
        name="v3",
        embodiment_tag="new_embodiment",
        video_keys=("video.front",),
        state_keys=("state.state",),
        action_keys=("action.action",),
        language_keys=("annotation.human.task_description",),
    )
    tasks = ["pick up the red cube", "open the drawer", "pick up the red cube"]
    for pos, n in enumerate(src.episode_lengths):
        for f in range(n):
            s = src.get(pos, f, cfg)
            np.testing.assert_array_equal(s["state.state"][0], synth.state_row(pos, f, 6))
            want = np.stack([synth.action_row(pos, min(i, n - 1), 6) for i in range(f, f + 16)])
            np.testing.assert_array_equal(s["action.action"], want)
            assert s["annotation.human.task_description"] == [tasks[pos]]
            # lossy h264 (lerobot's writer, crf 30, yuv420p): the decoded frame must be closest to
            # the frame written at this index among all frames of the episode, and close to it
            img = s["video.front"][0].astype(np.int16)
            errs = [np.abs(img - synth.frame(pos, j, 48, 64)).mean() for j in range(n)]
            assert int(np.argmin(errs)) == f, (pos, f, errs)
            assert errs[f] < 10.0, errs[f]
    # many episodes share one mp4: decoding reused one container
    assert src.decoder.opens == 1


def test_v3_stats_match_lerobot_writer_stats(v3_root):
    """Cross-check against lerobot's own stats.json (mean/std/min/max over all frames)."""
    src = LeRobotV3Source(v3_root)
    ours = compute_column_stats(src)
    theirs = json.loads((v3_root / "meta" / "stats.json").read_text())
    for col in ("observation.state", "action"):
        for k in ("mean", "std", "min", "max"):
            np.testing.assert_allclose(ours[col][k], np.asarray(theirs[col][k]), rtol=1e-5, atol=1e-6)
    # and against all rows of the data parquet, independently
    t = pq.read_table(v3_root / "data" / "chunk-000" / "file-000.parquet")
    a = np.asarray(t.column("action").to_pylist(), np.float32)
    np.testing.assert_allclose(ours["action"]["q01"], np.quantile(a, 0.01, axis=0), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ours["action"]["q99"], np.quantile(a, 0.99, axis=0), rtol=1e-6, atol=1e-6)
