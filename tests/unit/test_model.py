"""Behaviour of the model functions: purity under jit/grad, dropout, sampling, input checks."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from groot_jax.config import ActionHeadConfig, DiTConfig, GR00TConfig, preset
from groot_jax.models import groot


@pytest.fixture(scope="module")
def tiny():
    cfg = GR00TConfig.tiny()
    fns, params = groot.init(cfg, seed=0)
    return cfg, fns, params


def fake_batch(cfg, batch=2, text=12, seed=0):
    rng = np.random.default_rng(seed)
    n_img = cfg.backbone.tokens_per_image
    ids = rng.integers(0, 1000, (batch, text + n_img)).astype(np.int32)
    ids[:, 3:3 + n_img] = cfg.backbone.image_token_index
    mask = np.zeros((batch, 16, 32), np.float32)
    mask[:, :, :7] = 1
    return dict(input_ids=ids, attention_mask=np.ones(ids.shape, bool),
                pixel_values=rng.uniform(-1, 1, (batch, 1, 224, 224, 3)).astype(np.float32),
                state=rng.normal(size=(batch, 1, 64)).astype(np.float32),
                embodiment_id=np.array([31, 24][:batch], np.int32),
                action=rng.normal(size=(batch, 16, 32)).astype(np.float32) * mask,
                action_mask=mask)


def test_loss_is_pure_and_differentiable(tiny):
    cfg, fns, params = tiny
    batch = fake_batch(cfg)
    loss = jax.jit(fns.loss)
    l1, l2 = loss(params, batch, jax.random.key(1)), loss(params, batch, jax.random.key(1))
    assert float(l1) == float(l2) and np.isfinite(float(l1))
    assert float(loss(params, batch, jax.random.key(2))) != float(l1)  # noise/time/dropout
    grads = jax.jit(jax.grad(fns.loss))(params, batch, jax.random.key(1))
    norms = {"/".join(map(str, k)): float(jnp.linalg.norm(v)) for k, v in
             jax.tree_util.tree_leaves_with_path(grads)}
    assert all(np.isfinite(list(norms.values())))
    head = [v for k, v in norms.items() if "action_head" in k]
    assert sum(v > 0 for v in head) > len(head) // 2


def test_dropout_only_in_training(tiny):
    cfg, fns, params = tiny
    batch = fake_batch(cfg)
    key = jax.random.key(3)
    train = jax.jit(lambda p, b: fns.loss(p, b, key, train=True))(params, batch)
    evalm = jax.jit(lambda p, b: fns.loss(p, b, key, train=False))(params, batch)
    assert float(train) != float(evalm)


def test_sample_actions_shape_and_determinism(tiny):
    cfg, fns, params = tiny
    batch = fake_batch(cfg)
    sample = jax.jit(fns.sample_actions, static_argnames="num_steps")
    a = sample(params, batch, jax.random.key(0))
    assert a.shape == (2, 16, 32) and np.isfinite(np.asarray(a)).all()
    np.testing.assert_array_equal(a, sample(params, batch, jax.random.key(0)))
    assert not np.allclose(a, sample(params, batch, jax.random.key(0), num_steps=8))


def test_image_token_count_mismatch_is_explained(tiny):
    cfg, fns, params = tiny
    batch = fake_batch(cfg)
    batch["input_ids"][0, 3] = 5  # one <IMG_CONTEXT> fewer
    with pytest.raises(ValueError, match="511 <IMG_CONTEXT>"):
        fns.module(params).backbone_features(batch)


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="num_layers=3 must be even"):
        DiTConfig(num_layers=3)
    with pytest.raises(ValueError, match="input_embedding_dim"):
        ActionHeadConfig(input_embedding_dim=1024)
    with pytest.raises(KeyError, match="Did you mean 'tiny'"):
        preset("tinyy")
