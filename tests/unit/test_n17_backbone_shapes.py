"""GR00T N1.7's backbone on its own: `Qwen3VLBackbone` at the released size (Cosmos-Reason2-2B,
16 text layers kept) built shape-only against the `backbone.model.*` tensors of the released
checkpoint (../shared/spec/n17_checkpoint_keys.txt) and N1.7 spec 1.6's counts, plus the tiny
forward contract: features = the last kept layer's output before the final norm, and the masks.
(tests/unit/test_n17_layout.py checks the same keys through the whole GR00T config.)"""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from groot_jax.config import Qwen3VLConfig
from groot_jax.convert.keymap import qwen3_vl_entries
from groot_jax.models.backbone import BackboneOutput
from groot_jax.models.qwen3_vl import Qwen3VLBackbone
from groot_jax.models.qwen3_vl_text import mrope_position_ids
from groot_jax.models.qwen3_vl_vision import frames_to_patches
from tests.unit.test_checkpoint_layout import torch_shapes
from tests.unit.test_n17_layout import released_n17_keys

TK = "backbone.model.model."
LM_HEAD = "backbone.model.lm_head.weight"


def test_released_backbone_keys_shapes_and_counts():
    base = Qwen3VLConfig.cosmos_reason2_2b()
    cfg = dataclasses.replace(base, text=dataclasses.replace(base.text, num_layers=16))
    model = nnx.eval_shape(lambda: Qwen3VLBackbone(cfg, rngs=nnx.Rngs(0)))
    pure = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    shapes = torch_shapes(qwen3_vl_entries(cfg, TK, ()), pure)

    released = {k: v for k, v in released_n17_keys().items() if k.startswith("backbone.model.")}
    assert LM_HEAD in released                      # tied to embed_tokens: accepted, dropped
    assert released[LM_HEAD] == released[f"{TK}language_model.embed_tokens.weight"]
    del released[LM_HEAD]
    assert len(shapes) == len(released) == 493      # no key twice, none missing or extra
    assert set(shapes) == set(released)
    bad = {k: (s, released[k]) for k, s in shapes.items() if s != released[k]}
    assert not bad

    sizes = {k: int(np.prod(s)) for k, s in shapes.items()}
    vision = sum(v for k, v in sizes.items() if k.startswith(f"{TK}visual."))
    llm = sum(v for k, v in sizes.items() if k.startswith(f"{TK}language_model."))
    assert vision == 406_957_056
    assert llm == 1_116_542_976
    assert sizes[f"{TK}language_model.norm.weight"] == 2048  # kept, never applied
    # Every parameter of the module is mapped exactly once.
    assert sum(x.size for x in jax.tree.leaves(pure)) == vision + llm


def _tiny_inputs(cfg: Qwen3VLConfig, views: int = 1):
    """A left-padded batch of two prompts, `views` frames each, and the frames in [-1, 1]."""
    rng = np.random.default_rng(0)
    image = [cfg.vision_start_token_id] + [cfg.image_token_id] * cfg.tokens_per_image + [
        cfg.vision_end_token_id]
    rows = [list(rng.integers(0, 200, k)) + image * views + list(rng.integers(0, 200, 3))
            for k in (6, 2)]
    length = max(map(len, rows))
    ids = np.zeros((2, length), np.int32)
    mask = np.zeros((2, length), bool)
    for b, row in enumerate(rows):
        ids[b, length - len(row):], mask[b, length - len(row):] = row, True
    s = cfg.image_size
    frames = rng.uniform(-1, 1, (2, views, s, s, 3)).astype(np.float32)
    return jnp.asarray(ids), jnp.asarray(mask), jnp.asarray(frames)


def test_tiny_backbone_features_are_the_last_layer_before_the_final_norm():
    cfg = Qwen3VLConfig.tiny()
    model = Qwen3VLBackbone(cfg, rngs=nnx.Rngs(0))
    ids, mask, frames = _tiny_inputs(cfg, views=2)
    out = jax.jit(lambda m, i, k, f: m(i, k, f))(model, ids, mask, frames)
    assert isinstance(out, BackboneOutput)
    assert out.features.shape == (*ids.shape, cfg.text.hidden_size)
    np.testing.assert_array_equal(out.attention_mask, np.asarray(mask))
    np.testing.assert_array_equal(out.image_mask, np.asarray(ids) == cfg.image_token_id)
    assert int(out.image_mask.sum()) == 2 * 2 * cfg.tokens_per_image
    leaves, treedef = jax.tree.flatten(out)        # a pytree: jit outputs, tree_map work
    assert len(leaves) == 3 and jax.tree.unflatten(treedef, leaves) == out

    # The same through the parts: vision tower -> text model's recorded states; the feature is
    # the last recorded state (layer num_layers' output), not final_norm of it.
    n, s = 4, cfg.image_size
    rows = frames_to_patches(cfg.vision, frames.reshape(n, s, s, 3))
    grid = (cfg.grid_thw,) * n
    embeds, deepstack = model.vision(rows, grid)
    positions, _ = mrope_position_ids(cfg, np.asarray(ids), np.asarray(grid), np.asarray(mask))
    feature, states = model.text(ids, attention_mask=mask, position_ids=jnp.asarray(positions),
                                 visual_mask=out.image_mask, visual_embeds=embeds,
                                 deepstack_embeds=deepstack, return_hidden_states=True)
    assert states.shape[0] == cfg.text.num_layers + 1
    valid = np.asarray(mask)[..., None]
    np.testing.assert_allclose(np.where(valid, out.features, 0), np.where(valid, states[-1], 0),
                               atol=1e-5)
    normed = model.text.final_norm(out.features)
    assert float(jnp.abs(jnp.where(valid, normed - out.features, 0)).max()) > 1e-2

    # HF-style inputs (rows + grid) give the same; lerobot's 4-row position ids too.
    by_rows = model.from_patches(ids, mask, rows, grid)
    four = np.concatenate([positions[:1], positions], axis=0)
    by_four = model.from_patches(ids, mask, rows, np.asarray(grid), position_ids=jnp.asarray(four))
    for other in (by_rows, by_four):
        np.testing.assert_allclose(np.where(valid, other.features, 0),
                                   np.where(valid, out.features, 0), atol=1e-5)
        np.testing.assert_array_equal(other.image_mask, out.image_mask)

    # The inference layout (unrolled, [out, in] kernels): same numbers.
    unrolled = nnx.clone(model)
    unrolled.to_inference_layout()
    again = unrolled(ids, mask, frames)
    np.testing.assert_allclose(np.where(valid, again.features, 0),
                               np.where(valid, out.features, 0), atol=1e-5)


def test_tiny_backbone_from_patches_takes_images_of_different_grids():
    """Two images of different grids (4x6 and 8x4 patches): positions computed on the host; a
    change to the second image moves only the second prompt's features."""
    cfg = Qwen3VLConfig.tiny()
    model = Qwen3VLBackbone(cfg, rngs=nnx.Rngs(1))
    grids = ((1, 4, 6), (1, 8, 4))
    m2 = cfg.vision.spatial_merge_size**2
    rng = np.random.default_rng(2)
    rows_ids = [list(rng.integers(0, 200, k)) + [cfg.vision_start_token_id]
                + [cfg.image_token_id] * (t * h * w // m2) + [cfg.vision_end_token_id]
                for k, (t, h, w) in zip((7, 3), grids, strict=True)]
    length = max(map(len, rows_ids))
    ids = np.zeros((2, length), np.int32)
    mask = np.zeros((2, length), bool)
    for b, row in enumerate(rows_ids):
        ids[b, length - len(row):], mask[b, length - len(row):] = row, True
    pixels = rng.uniform(-1, 1, (sum(t * h * w for t, h, w in grids), cfg.vision.patch_dim))
    pixels = pixels.astype(np.float32)
    out = model.from_patches(jnp.asarray(ids), jnp.asarray(mask), jnp.asarray(pixels), grids)
    assert out.features.shape == (2, length, cfg.text.hidden_size)
    assert np.isfinite(np.asarray(out.features)).all()

    changed = pixels.copy()
    changed[24:] += 0.5                          # the second image's rows (after 1*4*6)
    out2 = model.from_patches(jnp.asarray(ids), jnp.asarray(mask), jnp.asarray(changed), grids)
    diff = np.abs(np.asarray(out2.features) - np.asarray(out.features)) * mask[..., None]
    assert diff[0].max() == 0.0 and diff[1].max() > 1e-3
