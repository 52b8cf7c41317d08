"""Open-loop evaluation over held-out episodes of a LeRobot dataset."""
import json

import numpy as np
import pytest

from groot_jax.convert import checkpoint as ck
from groot_jax.data.lerobot_v2 import LeRobotV2Source
from groot_jax.data.stats import dataset_metadata, source_stats
from groot_jax.eval.open_loop import open_loop
from groot_jax.eval.policy import Policy, save_tokenizer_beside
from groot_jax.models import groot
from tests.data.fixtures import write_tokenizer, write_v2_dataset
from tests.eval.test_policy import DATA
from tests.tiny_model import tiny_config_for


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("open_loop")
    dataset = write_v2_dataset(root / "dataset", lengths=(21, 12), cameras=("front",))
    source = LeRobotV2Source(dataset)
    metadata = {"new_embodiment": dataset_metadata(source, source_stats(source), "new_embodiment")}
    tok_dir = write_tokenizer(root / "tokenizer")
    cfg = tiny_config_for(tok_dir)
    fns, params = groot.init(cfg, seed=2)
    model = ck.save_model(root / "model", cfg, params, json.loads(json.dumps(metadata)))
    save_tokenizer_beside(model, tok_dir)
    return root, source, Policy(model, DATA)


def test_open_loop_metrics_and_plots(setup):
    root, source, policy = setup
    result = open_loop(policy, source, [0, 1], every=8, batch_size=3, plot_dir=root / "plots")
    assert result["episodes"] == 2
    for pos, n in ((0, 21), (1, 12)):
        for key, dim in (("action.arm", 6), ("action.gripper", 1)):
            pred, true = result["predictions"][pos][key], result["truth"][pos][key]
            assert pred.shape == true.shape == (n, dim) and np.isfinite(pred).all()
    # Recorded truth is the dataset's own action column, sliced by modality.json.
    ep = source.episode(1)
    np.testing.assert_array_equal(result["truth"][1]["action.arm"], ep.columns["action"][:, :6])
    err = np.concatenate([result["predictions"][p]["action.gripper"] -
                          result["truth"][p]["action.gripper"] for p in (0, 1)])
    assert result["per_key"]["action.gripper"]["mse"] == pytest.approx(float(np.mean(err**2)))
    assert result["per_key"]["action.gripper"]["mae"] == pytest.approx(float(np.mean(abs(err))))
    assert len(result["plots"]) == 4
    for path in result["plots"]:
        assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_open_loop_rejects_bad_stride(setup):
    _, source, policy = setup
    with pytest.raises(ValueError, match="every=17"):
        open_loop(policy, source, [0], every=17)
