"""The inference layout (`GR00TFunctions.inference_params`, issue 17): per-layer [out, in] weights
and unrolled layers and Euler steps give the same backbone features and actions as the stacked,
scanned training layout (fp32, to within summation order)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from groot_jax.config import GR00TConfig
from groot_jax.models import groot
from groot_jax.models.layers import is_unrolled


def close(got, want, rel=1e-6):
    """|got - want| <= rel * max|want| everywhere (fp32 dots may sum in another order)."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=rel * float(np.abs(want).max()))


def model_inputs(cfg, batch=2, text=12, seed=0):
    """Random prompts with one image's <IMG_CONTEXT> block each (left-padded row 1), pixels,
    state and noise for `cfg`."""
    rng = np.random.default_rng(seed)
    bb, ah = cfg.backbone, cfg.action_head
    n_img = bb.tokens_per_image
    ids = rng.integers(0, 400, (batch, n_img + text)).astype(np.int32)
    ids[:, 3:3 + n_img] = bb.image_token_index
    mask = np.ones(ids.shape, bool)
    mask[1, :2] = False
    size = bb.vision.image_size
    return dict(input_ids=ids, attention_mask=mask,
                pixel_values=rng.uniform(-1, 1, (batch, 1, size, size, 3)).astype(np.float32),
                state=rng.normal(size=(batch, 1, ah.max_state_dim)).astype(np.float32),
                embodiment_id=np.array([0, 3][:batch], np.int32)), \
        rng.normal(size=(batch, ah.action_horizon, ah.action_dim)).astype(np.float32)


@pytest.fixture(scope="module")
def tiny():
    cfg = GR00TConfig.tiny()
    fns, params = groot.init(cfg, 0)
    return cfg, fns, params


def test_layout_is_per_layer_and_transposed(tiny):
    cfg, fns, params = tiny
    fast = fns.inference_params(params)
    model = fns.module(fast)
    layers = model.backbone.llm.layers
    assert is_unrolled(layers) and len(layers) == cfg.backbone.llm.num_layers
    llm = cfg.backbone.llm
    assert layers[0].gate_proj.kernel.shape == (llm.intermediate_size, llm.hidden_size)  # [out, in]
    assert len(model.backbone.vision.layers) == cfg.backbone.vision.num_layers
    dit = model.action_head.model
    assert len(dit.cross_blocks) + len(dit.self_blocks) == cfg.action_head.dit.num_layers
    assert model.backbone.mlp1.transposed
    # Not released: the given stacked parameters are untouched.
    assert not is_unrolled(fns.module(params).backbone.llm.layers)
    assert fns.inference_params(fast) is fast


def test_backbone_features_match(tiny):
    cfg, fns, params = tiny
    inputs, _ = model_inputs(cfg)
    run = jax.jit(lambda p: fns.module(p).backbone_features(inputs))
    close(run(fns.inference_params(params)), run(params))


def test_hidden_states_match(tiny):
    """Per-layer outputs (parity bisection) come out the same from both layouts."""
    cfg, fns, params = tiny
    inputs, _ = model_inputs(cfg)
    pixels = inputs["pixel_values"][:, 0]

    def hidden(p):
        bb = fns.module(p).backbone
        return (bb.vision(pixels, return_hidden_states=True)[1],
                bb.llm(bb.llm.embed(inputs["input_ids"]), inputs["attention_mask"],
                       return_hidden_states=True)[1])

    fast, ref = jax.jit(hidden)(fns.inference_params(params)), jax.jit(hidden)(params)
    for got, want in zip(fast, ref, strict=True):
        close(got, want)


@pytest.mark.parametrize("steps", [1, 4])
def test_sampled_actions_match(tiny, steps):
    cfg, fns, params = tiny
    inputs, noise = model_inputs(cfg)
    run = jax.jit(lambda p: fns.sample_actions(p, inputs, None, num_steps=steps, noise=noise))
    close(run(fns.inference_params(params)), run(params))


def test_head_alone_matches(tiny):
    """`FlowMatchingActionHead.to_inference_layout` on its own (as head_profile.py uses it)."""
    cfg, fns, params = tiny
    ah = cfg.action_head
    rng = np.random.default_rng(1)
    feats = jnp.asarray(rng.normal(size=(2, 20, ah.backbone_embedding_dim)), jnp.float32)
    state = jnp.asarray(rng.normal(size=(2, 1, ah.max_state_dim)), jnp.float32)
    noise = jnp.asarray(rng.normal(size=(2, ah.action_horizon, ah.action_dim)), jnp.float32)
    ids = jnp.array([0, 3])
    head = fns.module(params).action_head
    graphdef, state_ref = nnx.split(head)
    fast = nnx.merge(graphdef, state_ref, copy=True)
    fast.to_inference_layout()
    sample = lambda h: h.sample(feats, state, ids, noise, num_steps=4)  # noqa: E731
    close(nnx.jit(sample)(fast), nnx.jit(sample)(head))


def test_release_keeps_one_copy(tiny):
    """`release=True` empties the stacked originals and still samples the same actions."""
    cfg, fns, params = tiny
    inputs, noise = model_inputs(cfg)
    run = jax.jit(lambda p: fns.sample_actions(p, inputs, None, num_steps=2, noise=noise))
    want = run(params)
    own = jax.tree.map(jnp.array, params)  # a private copy to consume
    fast = fns.inference_params(own, release=True)
    stacked = nnx.to_pure_dict(own)["backbone"]["llm"]["layers"]
    assert all(leaf.size == 0 for leaf in jax.tree.leaves(stacked))
    close(run(fast), want)


def test_n1_layout_matches():
    """N1 (pixel shuffle + LN-MLP connector, Llama without qk-norm, projection, no VL
    self-attention): backbone features and actions match as well."""
    cfg = GR00TConfig.tiny_n1()
    fns, params = groot.init(cfg, 0)
    inputs, noise = model_inputs(cfg)
    fast = fns.inference_params(params)
    feats = jax.jit(lambda p: fns.module(p).backbone_features(inputs))
    close(feats(fast), feats(params))
    run = jax.jit(lambda p: fns.sample_actions(p, inputs, None, num_steps=4, noise=noise))
    close(run(fast), run(params))
