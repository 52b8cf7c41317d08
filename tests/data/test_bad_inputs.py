"""Bad input gives a clear error (naming file, key, expected shape/dtype) or a documented, tested
behaviour, never a silent wrong sample."""

import json

import numpy as np
import pytest

from groot_jax.data.codec import StateActionCodec
from groot_jax.data.errors import DataError
from groot_jax.data.lerobot_v2 import LeRobotV2Source
from groot_jax.data.modality import DataConfig
from tests.data import synth
from tests.data.fixtures import write_v2_dataset

CFG = DataConfig(
    name="t",
    embodiment_tag="new_embodiment",
    video_keys=("video.front",),
    state_keys=("state.arm", "state.gripper"),
    action_keys=("action.arm", "action.gripper"),
    language_keys=("annotation.human.task_description",),
)


def _ds(tmp_path, **kw):
    kw.setdefault("lengths", (20,))
    kw.setdefault("cameras", ("front",))
    return write_v2_dataset(tmp_path / "ds", **kw)


def test_missing_modality_key(tmp_path):
    src = LeRobotV2Source(_ds(tmp_path))
    with pytest.raises(DataError, match=r"modality\.json: key 'state\.waist' is not defined"):
        src.check_config(CFG.replace(state_keys=("state.arm", "state.waist")))
    with pytest.raises(DataError, match="modality.json: key 'video.head'"):
        src.get(0, 0, CFG.replace(video_keys=("video.head",)))
    (tmp_path / "ds" / "meta" / "modality.json").write_text(json.dumps({"state": {}, "action": {}}))
    with pytest.raises(DataError, match="missing top-level section 'video'"):
        LeRobotV2Source(tmp_path / "ds")
    (tmp_path / "ds" / "meta" / "modality.json").write_text(
        json.dumps({"state": {"arm": {"start": 0}}, "action": {}, "video": {}})
    )
    with pytest.raises(DataError, match=r"state\.arm lacks required field 'end'"):
        LeRobotV2Source(tmp_path / "ds")


def test_column_with_wrong_width(tmp_path):
    modality = {
        "state": {"arm": {"start": 0, "end": 6}, "gripper": {"start": 6, "end": 9}},
        "action": {"arm": {"start": 0, "end": 6}, "gripper": {"start": 6, "end": 7}},
        "video": {"front": {}},
        "annotation": {"human.task_description": {}},
    }
    src = LeRobotV2Source(_ds(tmp_path, modality_override=modality))
    with pytest.raises(
        DataError,
        match=r"episode_000000\.parquet: column 'observation\.state' has width 8 "
        r"but state\.gripper needs \[6:9\]",
    ):
        src.get(0, 0, CFG)


def test_ragged_column(tmp_path):
    def mutate(e, cols):
        rows = [list(r) for r in cols["action"]]
        rows[3] = rows[3][:5]
        cols["action"] = np.array(rows, dtype=object)

    root = _ds(tmp_path, mutate_episode=mutate)
    # write the ragged column as a list column
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = root / "data" / "chunk-000" / "episode_000000.parquet"
    t = pq.read_table(p)
    rows = t.column("action").to_pylist()
    t = t.set_column(t.column_names.index("action"), "action", pa.array(rows, pa.list_(pa.float32())))
    pq.write_table(t, p)
    with pytest.raises(DataError, match=r"column 'action' is ragged \(row widths \[5, 7\]\)"):
        LeRobotV2Source(root).get(0, 0, CFG)


def test_nan_in_action(tmp_path):
    def mutate(e, cols):
        cols["action"] = cols["action"].copy()
        cols["action"][11, 2] = np.nan

    src = LeRobotV2Source(_ds(tmp_path, mutate_episode=mutate))
    with pytest.raises(
        DataError,
        match=r"episode_000000\.parquet: column 'action' has a non-finite value nan "
        r"at row 11, dim 2",
    ):
        src.get(0, 0, CFG)


def test_truncated_mp4(tmp_path):
    root = _ds(tmp_path)
    vp = root / "videos" / "chunk-000" / "observation.images.front" / "episode_000000.mp4"
    vp.write_bytes(vp.read_bytes()[: vp.stat().st_size * 2 // 3])
    with pytest.raises(DataError, match="episode_000000.mp4"):
        LeRobotV2Source(root).get(0, 10, CFG)


def test_video_shorter_than_episode(tmp_path):
    """A video holding fewer frames than the parquet rows: the missing frame raises, never repeats."""
    root = _ds(tmp_path)
    from groot_jax.data.video import write_video

    vp = root / "videos" / "chunk-000" / "observation.images.front" / "episode_000000.mp4"
    write_video(str(vp), np.stack([synth.frame(0, i, 60, 80) for i in range(15)]), fps=10)
    src = LeRobotV2Source(root)
    assert np.array_equal(src.get(0, 14, CFG)["video.front"][0], synth.frame(0, 14, 60, 80))
    with pytest.raises(DataError, match=r"no frame at t=1\.5"):
        src.get(0, 15, CFG)


def test_episode_shorter_than_action_horizon(tmp_path):
    """Documented behaviour (the original's retrieve_data_and_pad): absolute keys repeat the last
    row, relative keys pad with zeros (see test_sources for the relative case)."""
    src = LeRobotV2Source(_ds(tmp_path, lengths=(3,)))
    s = src.get(0, 0, CFG)
    want = np.stack([synth.action_row(0, min(i, 2), 7) for i in range(16)])
    np.testing.assert_array_equal(s["action.arm"], want[:, :6])
    # an episode whose metadata length disagrees with its rows is an error
    meta = tmp_path / "ds" / "meta" / "episodes.jsonl"
    meta.write_text(meta.read_text().replace('"length": 3', '"length": 4'))
    with pytest.raises(DataError, match="has 3 rows but the episode metadata says 4"):
        LeRobotV2Source(tmp_path / "ds").get(0, 0, CFG)


def test_integer_state_columns(tmp_path):
    """Integer columns become float32 exactly; values float32 cannot hold raise (no truncation)."""
    src = LeRobotV2Source(_ds(tmp_path, state_dtype="int32"))
    s = src.get(0, 4, CFG)
    assert s["state.arm"].dtype == np.float32
    want = np.round(synth.state_row(0, 4, 8) * 100).astype(np.int32)
    np.testing.assert_array_equal(s["state.arm"][0], want[:6].astype(np.float32))

    def big(e, cols):
        cols["observation.state"] = cols["observation.state"].astype(np.int64)
        cols["observation.state"][5, 0] = 2**24 + 1

    src = LeRobotV2Source(
        write_v2_dataset(
            tmp_path / "big", lengths=(10,), cameras=("front",), state_dtype="int64", mutate_episode=big
        )
    )
    with pytest.raises(
        DataError, match="integer column 'observation.state' has values beyond 2\\*\\*24"
    ):
        src.get(0, 0, CFG)


def test_too_many_dims():
    modality = LeRobotV2Source.__new__(LeRobotV2Source)  # only the modality is needed
    from groot_jax.data.modality import LeRobotModality

    modality = LeRobotModality.from_json(
        {"state": {"big": {"start": 0, "end": 70}}, "action": {}, "video": {}}
    )
    cfg = CFG.replace(state_keys=("state.big",), action_keys=())
    with pytest.raises(DataError, match="state has 70 dims > max_state_dim 64"):
        StateActionCodec(cfg, modality, {})
