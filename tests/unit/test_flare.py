"""FLARE in the action head: off is bit-identical to N1.5, on trains the alignment."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from groot_jax.config import DiTConfig, FlareConfig, GR00TConfig
from groot_jax.convert import checkpoint as ck
from groot_jax.models import groot
from tests.unit.test_model import fake_batch


def _cfgs():
    off = GR00TConfig.tiny()
    head = off.action_head
    dit = DiTConfig(num_layers=4, num_heads=2, head_dim=16, output_dim=32, cross_attention_dim=64)
    off = dataclasses.replace(off, action_head=dataclasses.replace(head, dit=dit))
    on = dataclasses.replace(off, action_head=dataclasses.replace(
        off.action_head, flare=FlareConfig(enabled=True, layer=1, weight=0.5)))
    return off, on


@pytest.fixture(scope="module")
def models():
    off, on = _cfgs()
    fns_on, params_on = groot.init(on, seed=0)
    fns_off, abstract_off = groot.abstract(off)
    pure = nnx.to_pure_dict(params_on)
    pure["action_head"].pop("flare_projector")
    params_off = jax.tree.map(lambda x: x, abstract_off)
    nnx.replace_by_pure_dict(params_off, pure)
    batch = fake_batch(off, batch=2)
    rng = np.random.default_rng(3)
    batch["future_embeddings"] = rng.normal(size=(2, 32, 64)).astype(np.float32)
    return (fns_off, params_off), (fns_on, params_on), batch


def test_flare_off_is_bit_identical(models):
    (fns_off, p_off), (fns_on, p_on), batch = models
    key = jax.random.key(0)
    loss_off = jax.jit(fns_off.loss)(p_off, batch, key)
    loss_on, terms = jax.jit(lambda p, b, k: fns_on.loss(p, b, k, return_terms=True))(
        p_on, batch, key)
    assert float(terms["flow_matching"]) == float(loss_off)
    assert float(loss_on) != float(loss_off) and float(terms["flare_alignment"]) > 0
    a_off = jax.jit(fns_off.sample_actions)(p_off, batch, key)
    a_on = jax.jit(fns_on.sample_actions)(p_on, batch, key)
    np.testing.assert_array_equal(np.asarray(a_off), np.asarray(a_on))


def test_which_parameters_the_alignment_term_trains(models):
    _, (fns, params), batch = models

    def align(p):
        return fns.loss(p, batch, jax.random.key(1), train=False, return_terms=True)[1][
            "flare_alignment"]

    grads = nnx.to_pure_dict(jax.jit(jax.grad(align))(params))
    head = grads["action_head"]
    norm = lambda tree: float(sum(jnp.sum(jnp.abs(x)) for x in jax.tree.leaves(tree)))  # noqa: E731
    for name in ("flare_projector", "future_tokens", "state_encoder", "action_encoder",
                 "vl_self_attention", "vlln"):
        assert norm(head[name]) > 0, name
    for name in ("action_decoder",):
        assert norm(head[name]) == 0, name
    dit = head["model"]
    assert norm(dit["proj_out_1"]) == 0 and norm(dit["proj_out_2"]) == 0
    assert norm(dit["timestep_encoder"]) > 0
    # layer=1: DiT blocks 0 (cross 0) and 1 (self 0) feed the aligned states; 2 and 3 do not.
    per_layer = lambda tree: [float(sum(jnp.sum(jnp.abs(x[i])) for x in jax.tree.leaves(tree)))
                              for i in range(2)]  # noqa: E731
    assert per_layer(dit["cross_blocks"])[0] > 0 and per_layer(dit["cross_blocks"])[1] == 0
    assert per_layer(dit["self_blocks"])[0] > 0 and per_layer(dit["self_blocks"])[1] == 0
    assert norm(grads["backbone"]) > 0  # through the VL tokens the DiT cross-attends to


def test_alignment_loss_falls_and_actionless_batches_train(models):
    _, (fns, params), batch = models
    # Action-less video; one future embedding shared by the batch (learnable without having
    # to tell samples apart, so a few steps must show the fall).
    shared = np.broadcast_to(batch["future_embeddings"][:1], batch["future_embeddings"].shape)
    batch = dict(batch, action_mask=np.zeros_like(batch["action_mask"]),
                 future_embeddings=np.ascontiguousarray(shared))
    tx = optax.adam(1e-2)
    opt = tx.init(params)

    @jax.jit
    def step(p, o, k):
        (loss, terms), g = jax.value_and_grad(
            lambda q: fns.loss(q, batch, k, return_terms=True), has_aux=True)(p)
        u, o = tx.update(g, o, p)
        return optax.apply_updates(p, u), o, loss, terms

    history = []
    for i in range(30):
        params, opt, loss, terms = step(params, opt, jax.random.key(i))
        assert float(terms["flow_matching"]) == 0.0 and np.isfinite(float(loss))
        history.append(float(terms["flare_alignment"]))
    assert max(history[-5:]) < 0.75 * history[0], [round(h, 3) for h in history]


def test_default_target_is_pooled_vlm_features(models):
    _, (fns, params), batch = models
    batch = {k: v for k, v in batch.items() if k != "future_embeddings"}
    batch["future_pixel_values"] = np.asarray(batch["pixel_values"])[:, :, ::-1]
    loss, terms = jax.jit(lambda p: fns.loss(p, batch, jax.random.key(0), return_terms=True))(
        params)
    assert np.isfinite(float(terms["flare_alignment"]))


def test_export_drops_the_projector_and_says_so(models, tmp_path):
    _, (fns, params), _ = models
    cfg = fns.module(params).cfg
    with pytest.warns(UserWarning, match="FLARE projector .* not exported"):
        out = ck.export_gr00t(tmp_path / "ckpt", cfg, params, {})
    loaded, _, _, _ = ck.load_pretrained(out)
    assert not loaded.action_head.flare.enabled
