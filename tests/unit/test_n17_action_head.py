"""The action head in its GR00T N1.7 configuration (`ActionHeadConfig.n1_7`): the DiT's
text/image alternation, the key masks, the flow-time formula, state dropout and the released
checkpoint layout. Numerical parity with lerobot 0.6.1 is tests/parity/test_n17_head_parity.py."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from groot_jax.config import ActionHeadConfig, DiTConfig
from groot_jax.convert.keymap import action_head_entries
from groot_jax.models.action_head import FlowMatchingActionHead
from groot_jax.models.dit import DiT
from tests.unit.test_checkpoint_layout import torch_shapes
from tests.unit.test_n17_layout import released_n17_keys


def test_n1_7_alternation_pattern():
    """32 blocks: text-cross, self, image-cross, self, ... = 8 text, 8 image, 16 self."""
    dit = ActionHeadConfig.n1_7().dit
    kinds = ["self" if b % 2 else ("text" if dit.cross_block_attends_text(b // 2) else "image")
             for b in range(dit.num_layers)]
    assert kinds[:4] == ["text", "self", "image", "self"]
    assert (kinds.count("text"), kinds.count("image"), kinds.count("self")) == (8, 8, 16)
    assert all(k == ("text" if b % 4 == 0 else "image" if b % 4 == 2 else "self")
               for b, k in enumerate(kinds))


def test_cross_masks_and_padding_invariance():
    cfg = ActionHeadConfig.tiny_n1_7().dit
    dit = DiT(cfg, rngs=nnx.Rngs(0))
    attn = np.array([[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]], bool)
    img = np.array([[0, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 0]], bool)
    masks = np.asarray(dit.cross_masks(attn, img))
    assert masks.shape == (2, 2, 1, 6)  # [n_cross, B, 1, S]
    np.testing.assert_array_equal(masks[0, :, 0], ~img & attn)  # block 0: text
    np.testing.assert_array_equal(masks[1, :, 0], img & attn)   # block 2: image

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, cfg.inner_dim)).astype(np.float32)
    vl = rng.normal(size=(2, 6, cfg.cross_attention_dim)).astype(np.float32)
    run = jax.jit(lambda v: dit(x, jnp.array([10, 700]), vl=v, attention_mask=attn,
                                image_mask=img))
    out = run(vl)
    padded = vl.copy()
    padded[1, :2] += 100.0  # row 1's left padding is never attended
    np.testing.assert_array_equal(np.asarray(run(padded)), np.asarray(out))
    moved = vl.copy()
    moved[0, 1] += 1.0      # an image token is
    assert not np.allclose(np.asarray(run(moved)), np.asarray(out))


def test_masks_need_the_alternating_dit():
    dit = DiT(DiTConfig(num_layers=2, num_heads=2, head_dim=8, output_dim=8,
                        cross_attention_dim=8), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="attend_text_every_n_blocks"):
        dit.cross_masks(np.ones((1, 3), bool), np.zeros((1, 3), bool))
    alt = DiT(ActionHeadConfig.tiny_n1_7().dit, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="needs attention_mask and image_mask"):
        alt.cross_masks(None, None)
    with pytest.raises(ValueError, match="interleave_self_attention"):
        DiTConfig(interleave_self_attention=False, attend_text_every_n_blocks=2)


def test_time_sampling_formulas():
    key = jax.random.key(0)
    n15 = ActionHeadConfig.tiny_n1_7(time_sampling="n1_5")
    n17 = ActionHeadConfig.tiny_n1_7()
    u = np.asarray(jax.random.beta(key, 1.5, 1.0, (4096,)))
    t15, t17 = (np.asarray(FlowMatchingActionHead(c, rngs=nnx.Rngs(0)).sample_time(key, 4096))
                for c in (n15, n17))
    np.testing.assert_allclose(t15, (0.999 - u) / 0.999, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(t17, (1 - u) * 0.999, rtol=1e-6, atol=1e-7)
    assert t17.min() >= 0.0 and t17.max() <= 0.999
    assert ActionHeadConfig().time_sampling == "n1_5"  # N1.5 unchanged


def test_state_dropout_zeroes_the_state_token_in_training_only():
    cfg = ActionHeadConfig.tiny_n1_7(state_dropout_prob=0.999)
    head = FlowMatchingActionHead(cfg, rngs=nnx.Rngs(0))
    rng = np.random.default_rng(0)
    b, length = 2, 5
    f32 = np.float32
    args = dict(features=rng.normal(size=(b, length, 64)).astype(f32),
                actions=rng.normal(size=(b, 4, 7)).astype(f32),
                action_mask=np.ones((b, 4, 7), f32), ids=jnp.array([3, 10]),
                noise=rng.normal(size=(b, 4, 7)).astype(f32), t=np.array([0.3, 0.7], f32),
                attention_mask=np.ones((b, length), bool),
                image_mask=np.array([[0, 1, 1, 0, 0]] * b, bool))
    s1, s2 = (rng.normal(size=(b, 1, 8)).astype(f32) for _ in range(2))

    def loss(state, rng_key=None):
        return float(head.flow_matching_loss(state=state, rng=rng_key, **args))

    key = jax.random.key(1)
    assert loss(s1, key) == loss(s2, key)  # the state never reaches the DiT
    assert loss(s1) != loss(s2)            # evaluation: no state dropout


def test_n1_7_layout_matches_released_keys():
    released = {k: v for k, v in released_n17_keys().items() if k.startswith("action_head.")}
    cfg = ActionHeadConfig.n1_7()
    model = nnx.eval_shape(lambda: FlowMatchingActionHead(cfg, rngs=nnx.Rngs(0)))
    pure = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    shapes = torch_shapes(action_head_entries(cfg, "action_head.", ()), pure)
    assert shapes == released
    assert len(shapes) == 537
    assert sum(int(np.prod(s)) for s in shapes.values()) == 1_620_515_968  # spec N1.7 1.6
    assert sum(x.size for x in jax.tree.leaves(pure)) == 1_620_515_968
