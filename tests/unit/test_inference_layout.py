"""The sampler's inference layout (`FlowMatchingActionHead.inference_weights`, issue 17): per-block
transposed weights, unrolled DiT and Euler steps give the same actions as the scanned path."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from groot_jax.config import GR00TConfig
from groot_jax.models import groot


@pytest.mark.parametrize("steps", [1, 4])
def test_fast_sampler_matches_scanned_sampler(steps):
    cfg = GR00TConfig.tiny()
    fns, params = groot.init(cfg, 0)
    head = fns.module(params).action_head
    ah = cfg.action_head
    rng = np.random.default_rng(0)
    feats = jnp.asarray(rng.normal(size=(2, 20, ah.backbone_embedding_dim)), jnp.float32)
    state = jnp.asarray(rng.normal(size=(2, 1, ah.max_state_dim)), jnp.float32)
    noise = jnp.asarray(rng.normal(size=(2, ah.action_horizon, ah.action_dim)), jnp.float32)
    ids = jnp.array([0, 3])
    weights = head.inference_weights()
    assert len(weights) == ah.dit.num_layers
    kernel = weights[0]["ff"]["proj_in"]["kernel"]
    assert kernel.shape == (4 * ah.dit.inner_dim, ah.dit.inner_dim)   # [out, in]
    ref = jax.jit(lambda: head.sample(feats, state, ids, noise, num_steps=steps))()
    fast = jax.jit(lambda w: head.sample(feats, state, ids, noise, num_steps=steps,
                                         dit_weights=w))(weights)
    np.testing.assert_allclose(np.asarray(fast), np.asarray(ref), rtol=1e-6, atol=1e-6)
