"""Closed-loop evaluation in Meta-World: the loop, success detection, confidence intervals."""

import numpy as np
import pytest

from groot_jax.convert import checkpoint as ck
from groot_jax.data.modality import DataConfig
from groot_jax.eval.closed_loop import rollout, simulator_policy, wilson_interval
from groot_jax.eval.policy import Policy, save_tokenizer_beside
from groot_jax.models import groot
from groot_jax.sim.metaworld import MetaWorldTask
from tests.data.fixtures import write_tokenizer
from tests.tiny_model import tiny_config_for

SIM_DATA = DataConfig(
    name="metaworld", embodiment_tag="new_embodiment", video_keys=("video.corner",),
    state_keys=("state.hand", "state.gripper"), action_keys=("action.ee_delta", "action.gripper"),
    language_keys=("annotation.human.task_description",),
    state_normalization={"state.hand": "min_max", "state.gripper": "min_max"},
    action_normalization={"action.ee_delta": "min_max", "action.gripper": "min_max"})


def _entry(dims, lo, hi):
    return {"min": [lo] * dims, "max": [hi] * dims, "mean": [0.0] * dims, "std": [1.0] * dims,
            "q01": [lo] * dims, "q99": [hi] * dims}


def _shape(d):
    return {"absolute": True, "rotation_type": None, "shape": [d], "continuous": True}


METADATA = {"new_embodiment": {
    "statistics": {"state": {"hand": _entry(3, -0.5, 1.0), "gripper": _entry(1, 0.0, 1.0)},
                   "action": {"ee_delta": _entry(3, -1.0, 1.0), "gripper": _entry(1, -1.0, 1.0)}},
    "modalities": {"video": {"corner": {"resolution": [224, 224], "channels": 3, "fps": 80}},
                   "state": {"hand": _shape(3), "gripper": _shape(1)},
                   "action": {"ee_delta": _shape(3), "gripper": _shape(1)}},
    "embodiment_tag": "new_embodiment"}}


def test_wilson_interval_matches_the_formula():
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = wilson_interval(7, 10)
    assert (lo, hi) == pytest.approx((0.3968, 0.8922), abs=1e-4)
    with pytest.raises(ValueError):
        wilson_interval(0, 0)


def test_scripted_expert_succeeds_and_is_detected():
    task = MetaWorldTask("reach-v3", variation=3, image_size=64)
    try:
        obs = task.reset()
        assert obs["video.corner"].shape == (1, 64, 64, 3) and obs["state.hand"].shape == (1, 3)
        success = False
        for _ in range(150):
            obs, success = task.step(task.expert_action())
            if success:
                break
        assert success
    finally:
        task.close()


def test_short_closed_loop_with_a_groot_policy(tmp_path):
    tok_dir = write_tokenizer(tmp_path / "tokenizer")
    cfg = tiny_config_for(tok_dir)
    _, params = groot.init(cfg, seed=1)
    model = ck.save_model(tmp_path / "model", cfg, params, METADATA)
    save_tokenizer_beside(model, tok_dir)
    policy = simulator_policy(Policy(model, SIM_DATA))
    calls = []

    def get_action(obs):
        calls.append(len(obs["state.hand"]))
        out = policy(obs)
        assert np.all(np.abs(out["action.ee_delta"]) < 1e3)
        return out

    result = rollout(get_action, "reach-v3", [0, 1], max_steps=16, replan_every=8, image_size=64)
    assert result.episodes == 2 and 0 <= result.successes <= 2
    assert calls[0] == 2  # both episodes batched into one policy call
    lo, hi = result.interval
    assert 0.0 <= lo <= result.rate <= hi <= 1.0
