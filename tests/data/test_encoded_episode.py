"""The pipeline's per-episode encoded tables give the samples that the per-sample path gives.

LoadAndTransform gathers a sample's state and action rows from tables encoded once per episode
(StateActionCodec.encode_episode); SampleTransform on the raw sample (`source.get`) rotates,
normalizes, concatenates and pads each window itself. Both must agree at every frame, episode
edges included, for absolute and relative keys, rotations, sin/cos and every normalization mode.
"""

import numpy as np
import pytest

from groot_jax.data.lerobot_v2 import LeRobotV2Source
from groot_jax.data.pipeline import LoadAndTransform
from groot_jax.data.processor import SampleTransform
from groot_jax.data.stats import compute_column_stats, key_stats
from tests.data.fixtures import V2_DATA_CONFIG, write_v2_dataset

MODALITY = {
    # state 8 dims: arm [0:3] absolute, rot [3:7] absolute quaternion, gripper [7:8] relative
    "state": {
        "arm": {"start": 0, "end": 3},
        "rot": {"start": 3, "end": 7, "rotation_type": "quaternion"},
        "gripper": {"start": 7, "end": 8, "absolute": False},
    },
    # action 7 dims: arm [0:3] relative, wrist [3:6] absolute axis-angle, gripper [6:7]
    "action": {
        "arm": {"start": 0, "end": 3, "absolute": False},
        "wrist": {"start": 3, "end": 6, "rotation_type": "axis_angle"},
        "gripper": {"start": 6, "end": 7},
    },
    "video": {"front": {"original_key": "observation.images.front"}},
    "annotation": {"human.task_description": {}},
}

CFG = V2_DATA_CONFIG.replace(
    name="enc",
    video_keys=("video.front",),
    state_keys=("state.arm", "state.rot", "state.gripper"),
    action_keys=("action.arm", "action.wrist", "action.gripper"),
    observation_indices=(-1, 0),
    action_indices=tuple(range(-2, 14)),
    state_normalization={"state.arm": "sin_cos", "state.rot": "min_max", "state.gripper": "mean_std"},
    action_normalization={"action.arm": "q99", "action.wrist": "min_max", "action.gripper": "binary"},
    state_target_rotations={"state.rot": "rotation_6d"},
    action_target_rotations={"action.wrist": "rotation_6d"},
)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    root = write_v2_dataset(
        tmp_path_factory.mktemp("enc") / "ds", lengths=(7, 19), cameras=("front",),
        modality_override=MODALITY,
    )
    return LeRobotV2Source(root)


@pytest.mark.parametrize("train", [False, True])
def test_encoded_tables_equal_per_sample_transform(source, train):
    stats = key_stats(source, compute_column_stats(source))
    transform = SampleTransform(CFG, source.modality, stats, tokenizer=None)
    load = LoadAndTransform([source], [transform], train=train)
    checked = 0
    for step in range(len(source)):
        pos, frame = source.locate(step)
        seed = 1000 + step
        got = load(0, step, np.random.default_rng(seed) if train else None)
        want = transform(source.get(pos, frame, CFG), np.random.default_rng(seed) if train else None)
        assert got.keys() - {"sample_id"} == want.keys()
        for k in want:
            np.testing.assert_array_equal(got[k], want[k], err_msg=f"{k} at step {step}")
        checked += 1
    assert checked == 26
    # the tables were really used: they are kept with the cached episodes
    assert all(transform.codec in ep.derived for ep in source._cache.values())


def test_episode_cache_keeps_within_its_byte_budget(tmp_path):
    root = write_v2_dataset(tmp_path / "ds", lengths=(7, 19, 5), cameras=("front",),
                            modality_override=MODALITY)
    one = LeRobotV2Source(root, cache_bytes=1)  # below one episode: keeps exactly one
    for pos in range(3):
        one.episode(pos)
    assert list(one._cache) == [2] and one._cached_bytes == one._cache[2].nbytes
    every = LeRobotV2Source(root)
    for pos in (0, 1, 2, 0):
        every.episode(pos)
    assert len(every._cache) == 3 and every._cached_bytes == sum(
        e.nbytes for e in every._cache.values())


def test_relative_and_absolute_edges_differ(source):
    """The edge rows follow pad_edges: a relative key reads zeros beyond the episode (encoded),
    an absolute key repeats the edge row; a check that the comparison above can fail."""
    stats = key_stats(source, compute_column_stats(source))
    transform = SampleTransform(CFG, source.modality, stats, tokenizer=None)
    ep = source.episode(0)
    enc = transform.codec.encode_episode(source, ep, with_actions=True)
    # tables carry the padding rows the indices need: 1 before for the state (-1, 0); 2 before
    # and 13 after for the actions (-2 .. 13)
    assert enc.state.shape == (1 + ep.length, 64) and enc.action.shape == (2 + ep.length + 13, 32)
    first, last = enc.action_window(0), enc.action_window(ep.length - 1)  # [16, 32]
    arm = slice(0, 3)  # relative action.arm: zeros, q99-normalized, beyond both edges
    zeros = transform.codec.encode_key("action.arm", np.zeros((1, 3), np.float32))[0]
    np.testing.assert_array_equal(first[:2, arm], [zeros, zeros])
    np.testing.assert_array_equal(last[3:, arm], np.broadcast_to(zeros, (13, 3)))
    wrist = slice(3, 9)  # absolute action.wrist: the first / last row repeated
    np.testing.assert_array_equal(first[:2, wrist], first[[2, 2], wrist])
    np.testing.assert_array_equal(last[3:, wrist], np.broadcast_to(last[2, wrist], (13, 6)))
    assert not np.array_equal(first[0, arm], first[2, arm])
