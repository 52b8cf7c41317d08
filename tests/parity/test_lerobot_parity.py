"""groot-jax against lerobot 0.5.1's GR00T N1.5 (`FlowmatchingActionHead`, `GR00TN15`).

Weights, inputs, initial noise and flow times come from the reference run; we load the torch
state dict through our converter and replay. fp32, tiny config (= reference 'tiny').
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from groot_jax.config import GR00TConfig
from groot_jax.convert.keymap import action_head_entries
from groot_jax.convert.state_dict import from_torch_state_dict, load_into
from groot_jax.models import groot
from groot_jax.models.action_head import FlowMatchingActionHead
from tests.parity.reference_env import run_reference
from tests.parity.torch_helpers import max_abs

pytestmark = pytest.mark.parity
TOL = 1e-4


@pytest.fixture(scope="module")
def head_case(tmp_path_factory):
    return run_reference("action_head", tmp_path_factory.mktemp("ref_action_head"), seed=3)


@pytest.fixture(scope="module")
def gr00t_case(tmp_path_factory):
    return run_reference("gr00t", tmp_path_factory.mktemp("ref_gr00t"), seed=5)


def _head(cfg, state_dict):
    model = nnx.eval_shape(lambda: FlowMatchingActionHead(cfg.action_head, rngs=nnx.Rngs(0)))
    graphdef, abstract = nnx.split(model, nnx.Param)
    params = load_into(action_head_entries(cfg.action_head, "", ()), state_dict, abstract)
    return nnx.merge(graphdef, params)


def test_action_head_matches_lerobot(head_case):
    state_dict, io = head_case
    head = _head(GR00TConfig.tiny(), state_dict)
    ids = jnp.asarray(io["embodiment_id"])
    assert len(set(io["embodiment_id"].tolist())) >= 2 and ids.shape[0] > 1

    vl = jax.jit(lambda h, f: h.process_backbone_output(f))(head, io["features"])
    assert max_abs(vl, io["vl_processed"]) <= TOL

    loss, velocity = jax.jit(lambda h: h.flow_matching_loss(
        io["features"], io["state"], io["action"], io["action_mask"], ids,
        noise=io["noise"], t=io["t"], return_velocity=True))(head)
    assert max_abs(velocity, io["velocity"]) <= TOL
    assert abs(float(loss) - float(io["loss"])) <= TOL * max(1.0, abs(float(io["loss"])))

    actions = jax.jit(lambda h: h.sample(io["features"], io["state"], ids, io["init_noise"]))(head)
    assert max_abs(actions, io["action_pred"]) <= TOL


def test_cached_cross_attention_kv_is_identical(head_case):
    """Projecting the VL tokens to K/V once per call (our optimisation) changes no bit."""
    state_dict, io = head_case
    head = _head(GR00TConfig.tiny(), state_dict)
    run = jax.jit(lambda h, cache: h.sample(io["features"], io["state"],
                                            jnp.asarray(io["embodiment_id"]), io["init_noise"],
                                            cache_cross_kv=cache), static_argnums=1)
    np.testing.assert_array_equal(np.asarray(run(head, True)), np.asarray(run(head, False)))


def test_gr00t_matches_lerobot(gr00t_case):
    state_dict, io = gr00t_case
    cfg = GR00TConfig.tiny()
    assert "backbone.eagle_model.language_model.lm_head.weight" in state_dict  # tied, ignored
    fns, params = groot.abstract(cfg)
    params = from_torch_state_dict(cfg, state_dict, params)
    inputs = dict(input_ids=io["input_ids"].astype(np.int32),
                  attention_mask=io["attention_mask"].astype(bool),
                  pixel_values=io["pixel_values"].transpose(0, 2, 3, 1)[:, None],
                  state=io["state"], embodiment_id=io["embodiment_id"].astype(np.int32),
                  action=io["action"], action_mask=io["action_mask"])
    assert int((io["input_ids"] == cfg.backbone.image_token_index).sum(1)[0]) == 256

    features = jax.jit(lambda p: fns.module(p).backbone_features(inputs))(params)
    assert max_abs(features, io["backbone_features"]) <= TOL

    actions = jax.jit(lambda p: fns.sample_actions(p, inputs, None, noise=io["init_noise"]))(params)
    assert max_abs(actions, io["action_pred"]) <= TOL

    def velocity(p):
        m = fns.module(p)
        return m.action_head.flow_matching_loss(
            m.backbone_features(inputs), inputs["state"], inputs["action"],
            inputs["action_mask"], inputs["embodiment_id"], noise=io["noise"], t=io["t"],
            return_velocity=True)

    loss, v = jax.jit(velocity)(params)
    assert max_abs(v, io["velocity"]) <= TOL
    assert abs(float(loss) - float(io["loss"])) <= TOL * max(1.0, abs(float(io["loss"])))
