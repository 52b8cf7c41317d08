"""groot-jax's flow-matching head in its N1.7 configuration against lerobot 0.6.1's
`GR00TN17ActionHead` (tiny config, fp32): no future tokens, the text/image alternating DiT with
the backbone's attention_mask / image_mask as key masks, t = (1 - u) * 0.999.

Weights, inputs, noise and flow times come from tests/reference/n17/head_worker.py (run in the
N1.7 reference environment); we load the torch state dict through the keymap and replay.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from groot_jax.config import ActionHeadConfig
from groot_jax.convert.keymap import action_head_entries
from groot_jax.convert.state_dict import load_into
from groot_jax.models.action_head import FlowMatchingActionHead
from tests.parity.reference_env import run_n17_reference
from tests.parity.torch_helpers import max_abs

pytestmark = pytest.mark.parity
TOL = 1e-4


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    return run_n17_reference("head_worker.py", tmp_path_factory.mktemp("ref_n17_head"),
                             "--seed", "7")


def _head(state_dict):
    cfg = ActionHeadConfig.tiny_n1_7()
    model = nnx.eval_shape(lambda: FlowMatchingActionHead(cfg, rngs=nnx.Rngs(0)))
    graphdef, abstract = nnx.split(model, nnx.Param)
    entries = list(action_head_entries(cfg, "", ()))
    assert {e.torch_key for e in entries} == set(state_dict)  # every tensor, nothing else
    return nnx.merge(graphdef, load_into(entries, state_dict, abstract))


def _masks(io, image_mask="image_mask"):
    return dict(attention_mask=io["attention_mask"], image_mask=io[image_mask])


def test_n17_head_matches_lerobot(case):
    state_dict, io = case
    head = _head(state_dict)
    ids = jnp.asarray(io["embodiment_id"].astype(np.int32))
    assert len(set(io["embodiment_id"].tolist())) == 2
    assert not io["attention_mask"].all()  # a padded row

    vl = jax.jit(lambda h: h.process_backbone_output(io["features"]))(head)
    assert max_abs(vl, io["vl_processed"]) <= TOL

    loss, velocity = jax.jit(lambda h: h.flow_matching_loss(
        io["features"], io["state"], io["action"], io["action_mask"], ids, noise=io["noise"],
        t=io["t"], return_velocity=True, **_masks(io)))(head)
    assert max_abs(velocity, io["velocity"]) <= TOL
    assert abs(float(loss) - float(io["loss"])) <= TOL * max(1.0, abs(float(io["loss"])))

    sample = jax.jit(lambda h, m: h.sample(io["features"], io["state"], ids, io["init_noise"],
                                           attention_mask=io["attention_mask"], image_mask=m))
    assert max_abs(sample(head, io["image_mask"]), io["action_pred"]) <= TOL
    # A sample without image tokens: its image blocks attend no key (both sides output 0).
    assert max_abs(sample(head, io["image_mask_text_only"]), io["action_pred_text_only"]) <= TOL


def test_n17_cached_kv_and_inference_layout_are_identical(case):
    """The once-per-call cross K/V (with the key masks applied to it) changes no bit; the
    unrolled inference layout gives the same chunk."""
    state_dict, io = case
    head = _head(state_dict)
    ids = jnp.asarray(io["embodiment_id"].astype(np.int32))
    run = jax.jit(lambda h, cache: h.sample(io["features"], io["state"], ids, io["init_noise"],
                                            cache_cross_kv=cache, **_masks(io)),
                  static_argnums=1)
    cached = np.asarray(run(head, True))
    np.testing.assert_array_equal(cached, np.asarray(run(head, False)))
    head.to_inference_layout()
    assert max_abs(run(head, True), io["action_pred"]) <= TOL
