"""`Policy.get_action` on an exported-then-reimported checkpoint against lerobot 0.5.1."""
import dataclasses
import json

import numpy as np
import pytest

from groot_jax.config import GR00TConfig
from groot_jax.convert import checkpoint as ck
from groot_jax.data.modality import DataConfig
from groot_jax.eval.policy import Policy, save_tokenizer_beside
from groot_jax.models import groot
from tests.data.fixtures import write_tokenizer
from tests.parity.reference_env import run_reference

ARM = {"min": [-1.0, -2.0, 0.0, -0.5, -3.0, 1.0], "max": [1.0, 2.0, 4.0, 0.5, 3.0, 2.0]}
GRIP = {"min": [0.0], "max": [0.08]}
STATE_ARM = {"min": [-1.0] * 6, "max": [1.0] * 6}
STATE_GRIP = {"min": [0.0, 0.0], "max": [0.1, 0.1]}


def _stats(d):
    n = len(d["min"])
    return {**d, "mean": [0.0] * n, "std": [1.0] * n, "q01": d["min"], "q99": d["max"]}


METADATA = {"new_embodiment": {
    "statistics": {"state": {"arm": _stats(STATE_ARM), "gripper": _stats(STATE_GRIP)},
                   "action": {"arm": _stats(ARM), "gripper": _stats(GRIP)}},
    "modalities": {"video": {"front": {"resolution": [80, 60], "channels": 3, "fps": 10}},
                   "state": {"arm": {"absolute": True, "rotation_type": None, "shape": [6],
                                     "continuous": True},
                             "gripper": {"absolute": True, "rotation_type": None, "shape": [2],
                                         "continuous": True}},
                   "action": {"arm": {"absolute": True, "rotation_type": None, "shape": [6],
                                      "continuous": True},
                              "gripper": {"absolute": True, "rotation_type": None, "shape": [1],
                                          "continuous": True}}},
    "embodiment_tag": "new_embodiment"}}

DATA = DataConfig(name="test_arm", embodiment_tag="new_embodiment", video_keys=("video.front",),
                  state_keys=("state.arm", "state.gripper"),
                  action_keys=("action.arm", "action.gripper"),
                  language_keys=("annotation.human.task_description",),
                  state_normalization={"state.arm": "min_max", "state.gripper": "min_max"},
                  action_normalization={"action.arm": "min_max", "action.gripper": "min_max"})


@pytest.fixture(scope="module")
def policy_setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("policy")
    tok_dir = write_tokenizer(root / "tokenizer")
    image_id = json.loads((tok_dir / "tokenizer.json").read_text())["added_tokens"]
    image_id = next(t["id"] for t in image_id if t["content"] == "<IMG_CONTEXT>")
    base = GR00TConfig.tiny()
    cfg = dataclasses.replace(base, backbone=dataclasses.replace(
        base.backbone, image_token_index=image_id,
        llm=dataclasses.replace(base.backbone.llm, vocab_size=512)))
    fns, params = groot.init(cfg, seed=21)
    gr00t_dir = ck.export_gr00t(root / "ref" / "ckpt", cfg, params, METADATA)
    ours = ck.import_checkpoint(gr00t_dir, root / "ours")
    save_tokenizer_beside(ours, tok_dir)
    rng = np.random.default_rng(4)
    obs = {"video.front": rng.integers(0, 256, (2, 1, 60, 80, 3), dtype=np.uint8),
           "state.arm": rng.uniform(-1, 1, (2, 1, 6)).astype(np.float32),
           "state.gripper": rng.uniform(0, 0.1, (2, 1, 2)).astype(np.float32),
           "annotation.human.task_description": ["pick up the red cube", "open the drawer"]}
    return root, ours, obs, {"image_token_index": image_id, "vocab_size": 512}


@pytest.mark.parity
def test_policy_matches_lerobot_on_reimported_checkpoint(policy_setup):
    root, ours, obs, overrides = policy_setup
    policy = Policy(ours, DATA)
    inputs, batched = policy.prepare(obs)
    assert batched and inputs["pixel_values"].shape == (2, 1, 224, 224, 3)
    noise = np.random.default_rng(5).normal(size=(2, 16, 32)).astype(np.float32)
    action = policy.get_action(obs, noise=noise)

    ref_dir = root / "ref"
    np.savez(ref_dir / "inputs.npz", input_ids=inputs["input_ids"].astype(np.int64),
             attention_mask=inputs["attention_mask"].astype(np.int64),
             pixel_values=inputs["pixel_values"][:, 0].transpose(0, 3, 1, 2),
             state=inputs["state"], embodiment_id=inputs["embodiment_id"].astype(np.int64),
             init_noise=noise)
    (ref_dir / "eagle_overrides.json").write_text(json.dumps(overrides))
    run_reference("consume", ref_dir)
    normalised = np.load(ref_dir / "outputs.npz")["action_pred"]
    # Un-normalise the reference chunk independently: min_max inverse on the real dims.
    lo, hi = np.array(ARM["min"] + GRIP["min"]), np.array(ARM["max"] + GRIP["max"])
    expected = (normalised[..., :7] + 1) / 2 * (hi - lo) + lo
    assert action["action.arm"].shape == (2, 16, 6)
    assert action["action.gripper"].shape == (2, 16, 1)
    ours_chunk = np.concatenate([action["action.arm"], action["action.gripper"]], -1)
    assert np.max(np.abs(ours_chunk - expected)) <= 1e-4 * np.max(hi - lo)


def test_policy_single_observation_and_errors(policy_setup):
    _, ours, obs, _ = policy_setup
    policy = Policy(ours, DATA)
    single = {k: (v[0] if not isinstance(v, list) else v[0]) for k, v in obs.items()}
    out = policy.get_action(single)
    assert out["action.arm"].shape == (16, 6) and np.isfinite(out["action.arm"]).all()
    a, b = policy.get_action(single), policy.get_action(single)
    assert not np.array_equal(a["action.arm"], b["action.arm"])  # fresh noise per call
    s1, s2 = policy.get_action(single, seed=9), policy.get_action(single, seed=9)
    assert np.array_equal(s1["action.arm"], s2["action.arm"])  # a seed reproduces the chunk
    row0 = policy.get_action(obs, seed=9)["action.arm"][0]  # row i of a batch: seed + i
    np.testing.assert_allclose(row0, s1["action.arm"], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match=r"lacks \['state.gripper'\]"):
        policy.get_action({k: v for k, v in single.items() if k != "state.gripper"})
    with pytest.raises(ValueError, match=r"video.front: expected uint8 \[B, 1, H, W, 3\]"):
        policy.get_action(single, batch=True)  # a declared batch needs a batch axis
    with pytest.raises(ValueError, match="metadata has no embodiment 'gr1'"):
        Policy(ours, dataclasses.replace(DATA, embodiment_tag="gr1"))


def test_policy_behind_the_server(policy_setup):
    from groot_jax.serve.client import PolicyClient
    from groot_jax.serve.server import PolicyServer
    from tests.serve.conftest import free_port as _free_port

    _, ours, obs, _ = policy_setup
    server = PolicyServer(Policy(ours, DATA), f"tcp://127.0.0.1:{_free_port()}")
    thread = server.start()
    try:
        client = PolicyClient(server.address, timeout_ms=60_000)
        assert client.health()["action_keys"] == ["action.arm", "action.gripper"]
        out = client.get_action(obs, batch=True)  # the protocol's batches are declared
        assert out["action.arm"].shape == (2, 16, 6) and np.isfinite(out["action.arm"]).all()
        client.close()
    finally:
        server.stop()
        thread.join(5)
