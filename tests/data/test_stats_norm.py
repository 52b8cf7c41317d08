"""Streaming statistics, mixture merge, metadata.json, normalizers and rotations."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from groot_jax.data import rotation as rot
from groot_jax.data.errors import DataError
from groot_jax.data.lerobot_v2 import LeRobotV2Source
from groot_jax.data.normalize import Normalizer
from groot_jax.data.stats import (
    compute_column_stats,
    dataset_metadata,
    key_stats,
    load_metadata,
    merge_stats,
    save_metadata,
    stream_stats,
)


def test_streaming_stats_equal_numpy_over_all_rows():
    rng = np.random.default_rng(1)
    chunks = [
        rng.standard_t(3, size=(int(rng.integers(1, 40)), 4)) * [1, 100, 0, 1e-3] for _ in range(25)
    ]
    chunks[4][0, 3] = 5.0  # outlier
    s = stream_stats(lambda: iter(chunks))
    a = np.concatenate(chunks)
    np.testing.assert_allclose(s["mean"], a.mean(0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(s["std"], a.std(0), rtol=1e-10, atol=1e-12)
    for q, k in ((0.01, "q01"), (0.99, "q99")):
        np.testing.assert_array_equal(s[k], np.quantile(a, q, axis=0))
    np.testing.assert_array_equal(s["min"], a.min(0))
    np.testing.assert_array_equal(s["max"], a.max(0))


def test_dataset_stats_and_metadata_roundtrip(v2_root, tmp_path):
    src = LeRobotV2Source(v2_root)
    cols = compute_column_stats(src)
    rows = np.concatenate([src._load_episode(i).columns["observation.state"] for i in range(3)])
    np.testing.assert_allclose(cols["observation.state"]["q99"], np.quantile(rows, 0.99, 0), rtol=1e-6)
    ks = key_stats(src, cols)
    np.testing.assert_array_equal(ks["state"]["gripper"]["max"], rows[:, 6:8].max(0))
    save_metadata(
        tmp_path / "experiment_cfg" / "metadata.json",
        {"new_embodiment": dataset_metadata(src, ks, "new_embodiment")},
    )
    md = load_metadata(tmp_path / "experiment_cfg" / "metadata.json")["new_embodiment"]
    np.testing.assert_array_equal(md["statistics"]["action"]["arm"]["q01"], ks["action"]["arm"]["q01"])
    assert md["modalities"]["video"]["front"]["resolution"] == [80, 60]
    assert md["modalities"]["state"]["arm"]["shape"] == [6]


def test_merge_with_count_weights_equals_pooled_data():
    """With weights proportional to the row counts, the original's merge formula gives exactly the
    pooled mean and std; min/max are global; q01/q99 the weighted average."""
    rng = np.random.default_rng(2)
    parts = [rng.normal(loc=i, scale=1 + i, size=(n, 3)) for i, n in enumerate((50, 120, 30))]
    per = [
        {
            "k": {
                "mean": p.mean(0),
                "std": p.std(0),
                "min": p.min(0),
                "max": p.max(0),
                "q01": np.quantile(p, 0.01, 0),
                "q99": np.quantile(p, 0.99, 0),
            }
        }
        for p in parts
    ]
    m = merge_stats(per, [len(p) for p in parts])["k"]
    pooled = np.concatenate(parts)
    np.testing.assert_allclose(m["mean"], pooled.mean(0), rtol=1e-12)
    np.testing.assert_allclose(m["std"], pooled.std(0), rtol=1e-10)
    np.testing.assert_array_equal(m["min"], pooled.min(0))
    np.testing.assert_array_equal(m["max"], pooled.max(0))
    w = np.array([50, 120, 30]) / 200
    np.testing.assert_allclose(
        m["q99"], sum(wi * d["k"]["q99"] for wi, d in zip(w, per, strict=False)), rtol=1e-12
    )
    with pytest.raises(DataError):
        merge_stats(per, [1, 1])


def test_normalizers_forward_inverse_and_zero_ranges():
    x = np.array([[0.0, 1.0, 2.0, 5.0], [4.0, 1.0, 2.0, -1.0]], np.float32)
    st = {
        "min": np.array([0, 1, 2, -1], np.float32),
        "max": np.array([4, 1, 2, 5], np.float32),
        "q01": np.array([1, 1, 0, -1], np.float32),
        "q99": np.array([3, 1, 4, 5], np.float32),
        "mean": np.array([2, 1, 2, 0], np.float32),
        "std": np.array([2, 0, 0, 2], np.float32),
    }
    with np.errstate(all="raise"):  # a division by a zero range would raise here
        mm = Normalizer("min_max", st)(x)
        np.testing.assert_array_equal(mm[:, 1:3], 0)  # min == max -> 0
        np.testing.assert_allclose(mm[:, 0], [-1, 1])
        np.testing.assert_allclose(Normalizer("min_max", st).inverse(mm)[:, [0, 3]], x[:, [0, 3]])
        q = Normalizer("q99", st)(x)
        np.testing.assert_allclose(q[:, 0], [-1, 1])  # clipped
        assert q[0, 1] == 1.0 and q[1, 1] == 1.0  # q01 == q99: passthrough (1.0) then clip
        ms = Normalizer("mean_std", st)(x)
        np.testing.assert_array_equal(ms[:, 1:3], x[:, 1:3])  # std == 0: passthrough
        np.testing.assert_allclose(Normalizer("mean_std", st).inverse(ms)[:, [0, 3]], x[:, [0, 3]])
        np.testing.assert_array_equal(Normalizer("binary", {})(np.array([0.4, 0.6, 1.0])), [0, 1, 1])
    with pytest.raises(DataError, match="needs statistic"):
        Normalizer("q99", {"min": st["min"]}, key="action.arm")


@pytest.mark.parametrize(
    "rep", ["axis_angle", "quaternion", "rotation_6d", "matrix", "euler_angles_rpy", "euler_angles_ypr"]
)
def test_rotation_conversions_against_scipy(rep):
    rng = np.random.default_rng(3)
    r = Rotation.random(20, random_state=4)
    mats = r.as_matrix()
    x = rot.from_matrix(mats, rep)
    np.testing.assert_allclose(rot.to_matrix(x, rep), mats, atol=1e-9)
    if rep == "axis_angle":
        np.testing.assert_allclose(x, r.as_rotvec(), atol=1e-9)
    if rep == "quaternion":  # ours is (w, x, y, z) with w >= 0; scipy is (x, y, z, w)
        q = r.as_quat()
        q = np.where(q[:, 3:] < 0, -q, q)
        np.testing.assert_allclose(x, np.concatenate([q[:, 3:], q[:, :3]], 1), atol=1e-9)
    if rep.startswith("euler"):  # pytorch3d convention = intrinsic rotations
        conv = rep.split("_")[-1].translate(str.maketrans("rpy", "XYZ"))
        np.testing.assert_allclose(
            rot.to_matrix(x, rep), Rotation.from_euler(conv, x).as_matrix(), atol=1e-9
        )
    if rep == "rotation_6d":
        np.testing.assert_allclose(x, mats[:, :2, :].reshape(-1, 6))
    y = rot.convert(rng.normal(size=(5, 3)) * 0.5, "axis_angle", rep)
    back = rot.convert(y, rep, "axis_angle")
    assert back.dtype == np.float32 and back.shape == (5, 3)
