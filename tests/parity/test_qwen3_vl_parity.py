"""Our Qwen3-VL vision tower and text decoder against transformers' `Qwen3VLModel` (fp32).

The reference is transformers' own `Qwen3VLModel` (eager attention) at `Qwen3VLConfig.tiny()`
sizes, randomly initialised and then perturbed so no norm stays at ones/zeros. A left-padded
batch of two prompts, one image each of different grids (4x6 and 8x4 patches, so the learned
6x6 position table is both down- and up-sampled and the vision blocks take the masked path),
goes through both end to end: vision outputs, DeepStack features, M-RoPE position ids and every
text hidden state are compared, at valid (non-padded) positions for the text.
"""
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers
from flax import nnx

from groot_jax.config import Qwen3VLConfig
from groot_jax.convert.keymap import llm_entries, qwen3_vl_vision_entries
from groot_jax.convert.state_dict import load_into
from groot_jax.models.qwen3_vl_text import Qwen3VLTextModel, image_token_mask, mrope_position_ids
from groot_jax.models.qwen3_vl_vision import Qwen3VLVisionTower
from tests.parity.torch_helpers import max_abs, numpy_state_dict, randomize_

pytestmark = pytest.mark.parity
TOL = 1e-5
CFG = Qwen3VLConfig.tiny()
GRIDS = ((1, 4, 6), (1, 8, 4))  # (t, h, w) in patches; merged tokens 6 and 8


def _hf_config(cfg: Qwen3VLConfig) -> transformers.Qwen3VLConfig:
    v, t = cfg.vision, cfg.text
    vision = dict(depth=v.num_layers, hidden_size=v.hidden_size, hidden_act="gelu_pytorch_tanh",
                  intermediate_size=v.intermediate_size, num_heads=v.num_heads,
                  in_channels=v.num_channels, patch_size=v.patch_size,
                  spatial_merge_size=v.spatial_merge_size,
                  temporal_patch_size=v.temporal_patch_size, out_hidden_size=v.out_hidden_size,
                  num_position_embeddings=v.num_position_embeddings,
                  deepstack_visual_indexes=list(v.deepstack_visual_indexes),
                  rope_parameters=dict(rope_type="axial", rope_theta=v.rope_theta))
    text = dict(vocab_size=t.vocab_size, hidden_size=t.hidden_size,
                intermediate_size=t.intermediate_size, num_hidden_layers=t.num_layers,
                num_attention_heads=t.num_heads, num_key_value_heads=t.num_kv_heads,
                head_dim=t.head_dim, rms_norm_eps=t.rms_norm_eps, max_position_embeddings=512,
                rope_parameters=dict(rope_type="default", rope_theta=t.rope_theta,
                                     mrope_section=list(t.mrope_section), mrope_interleaved=True))
    return transformers.Qwen3VLConfig(
        vision_config=vision, text_config=text, image_token_id=cfg.image_token_id,
        video_token_id=cfg.video_token_id, vision_start_token_id=cfg.vision_start_token_id,
        vision_end_token_id=cfg.vision_end_token_id, attn_implementation="eager")


def _load(model_fn, entries, state_dict, ignore=frozenset()):
    model = nnx.eval_shape(model_fn)
    graphdef, abstract = nnx.split(model, nnx.Param)
    return nnx.merge(graphdef, load_into(entries, state_dict, abstract, ignore=set(ignore)))


def _vision_state_dict(ref) -> dict[str, np.ndarray]:
    return {k: v for k, v in numpy_state_dict(ref).items() if k.startswith("visual.")}


@functools.lru_cache(maxsize=1)
def _reference():
    torch.manual_seed(0)
    ref = randomize_(transformers.Qwen3VLModel(_hf_config(CFG)).eval(), seed=3)
    assert ref.config.vision_config._attn_implementation == "eager"
    vision = _load(lambda: Qwen3VLVisionTower(CFG.vision, rngs=nnx.Rngs(0)),
                   qwen3_vl_vision_entries(CFG.vision, "visual.", ()), _vision_state_dict(ref))
    text_sd = {k: v for k, v in numpy_state_dict(ref).items() if k.startswith("language_model.")}
    text = _load(lambda: Qwen3VLTextModel(CFG.text, rngs=nnx.Rngs(0)),
                 llm_entries(CFG.text, "language_model.", ()), text_sd)
    return ref, vision, text, text_sd


def _pixels(grids, seed=0) -> np.ndarray:
    n = sum(t * h * w for t, h, w in grids)
    return np.random.default_rng(seed).uniform(-1, 1, (n, CFG.vision.patch_dim)).astype(np.float32)


def _prompts() -> tuple[np.ndarray, np.ndarray]:
    """Two prompts `text <vision_start> <image>*n <vision_end> text`, the second left-padded."""
    rng = np.random.default_rng(1)
    m2 = CFG.vision.spatial_merge_size**2

    def prompt(before, grid, after):
        image = [CFG.image_token_id] * (grid[0] * grid[1] * grid[2] // m2)
        return (list(rng.integers(0, 200, before)) + [CFG.vision_start_token_id] + image
                + [CFG.vision_end_token_id] + list(rng.integers(0, 200, after)))

    rows = [prompt(7, GRIDS[0], 4), prompt(3, GRIDS[1], 2)]
    length = max(map(len, rows))
    ids = np.zeros((2, length), np.int64)
    mask = np.zeros((2, length), bool)
    for b, row in enumerate(rows):
        ids[b, length - len(row):], mask[b, length - len(row):] = row, True
    assert not mask[1].all(), "the second prompt must be left-padded"
    return ids, mask


@functools.partial(jax.jit, static_argnames="grid")
def _run_vision(model, pixels, grid):
    return model(pixels, grid, return_hidden_states=True)


@jax.jit
def _run_text(model, ids, mask, positions, visual_mask, image, deepstack):
    return model(ids, attention_mask=mask, position_ids=positions, visual_mask=visual_mask,
                 visual_embeds=image, deepstack_embeds=deepstack, return_hidden_states=True)


def _hf_forward(ref, ids, mask, pixels):
    captured = {}
    last = ref.language_model.layers[-1]
    hook = last.register_forward_hook(lambda mod, args, out: captured.update(last=out))
    try:
        with torch.no_grad():
            out = ref(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask).long(),
                      pixel_values=torch.from_numpy(pixels),
                      image_grid_thw=torch.tensor(GRIDS),
                      mm_token_type_ids=torch.from_numpy((ids == CFG.image_token_id).astype(np.int64)),
                      output_hidden_states=True)
            positions, deltas = ref.get_rope_index(
                torch.from_numpy(ids), torch.from_numpy((ids == CFG.image_token_id).astype(np.int64)),
                image_grid_thw=torch.tensor(GRIDS), attention_mask=torch.from_numpy(mask).long())
    finally:
        hook.remove()
    return out, captured["last"], positions.numpy(), deltas.numpy()


def _valid_max_abs(ours, ref, mask) -> float:
    valid = mask[..., None]
    return max_abs(np.where(valid, ours, 0), np.where(valid, np.asarray(ref), 0))


def test_qwen3_vl_matches_transformers():
    ref, vision, text, text_sd = _reference()
    ids, mask = _prompts()
    pixels = _pixels(GRIDS)
    out, ref_last, ref_positions, ref_deltas = _hf_forward(ref, ids, mask, pixels)
    errors = {}

    # Vision tower: every block, merged tokens, DeepStack features.
    image, deepstack, vstates = _run_vision(vision, jnp.asarray(pixels), GRIDS)
    with torch.no_grad():
        ref_vision = ref.visual(torch.from_numpy(pixels), grid_thw=torch.tensor(GRIDS),
                                output_hidden_states=True)
    assert vstates.shape[0] == len(ref_vision.hidden_states) == CFG.vision.num_layers + 1
    for i, h in enumerate(ref_vision.hidden_states):
        errors[f"vision state {i}"] = max_abs(vstates[i], h)
    errors["image tokens"] = max_abs(image, torch.cat(out.image_outputs.pooler_output))
    assert len(deepstack) == len(out.image_outputs.deepstack_features) == 2
    for j, feats in enumerate(out.image_outputs.deepstack_features):
        errors[f"deepstack {j}"] = max_abs(deepstack[j], torch.cat(feats))

    # M-RoPE position ids: exact.
    positions, deltas = mrope_position_ids(CFG, ids, np.asarray(GRIDS), mask)
    np.testing.assert_array_equal(positions, ref_positions)
    np.testing.assert_array_equal(deltas, ref_deltas)

    # Text decoder fed with our vision outputs: every hidden state at valid positions.
    n = CFG.text.num_layers
    feature, states = _run_text(text, jnp.asarray(ids), jnp.asarray(mask), jnp.asarray(positions),
                                image_token_mask(CFG, ids), image, deepstack)
    assert states.shape[0] == len(out.hidden_states) == n + 1
    for i in range(n):  # HF's last entry is normed; compared below
        errors[f"text state {i}"] = _valid_max_abs(states[i], out.hidden_states[i], mask)
    errors["feature (pre-norm)"] = _valid_max_abs(feature, ref_last, mask)
    errors["last_hidden_state"] = _valid_max_abs(text.final_norm(feature), out.last_hidden_state,
                                                 mask)
    assert max_abs(states[n], feature) == 0.0

    # The cut at select_layer = 2: our 2-layer model's feature is HF hidden_states[2].
    cut_cfg = dataclasses.replace(CFG.text, num_layers=2)
    cut = _load(lambda: Qwen3VLTextModel(cut_cfg, rngs=nnx.Rngs(0)),
                llm_entries(cut_cfg, "language_model.", ()), text_sd,
                ignore={k for k in text_sd if k.startswith("language_model.layers.2.")})
    cut_feature, _ = _run_text(cut, jnp.asarray(ids), jnp.asarray(mask), jnp.asarray(positions),
                               image_token_mask(CFG, ids), image, deepstack)
    errors["select_layer=2 feature"] = _valid_max_abs(cut_feature, out.hidden_states[2], mask)

    print({k: f"{v:.2e}" for k, v in errors.items()})
    bad = {k: v for k, v in errors.items() if not v <= TOL}
    assert not bad, f"above {TOL}: {bad}"


def test_qwen3_vl_equal_frames_and_inference_layout():
    """Equal-size frames (a 2-frame image and a 1-frame image of the same grid) take the batched
    attention path; the inference layout (unrolled layers, [out, in] kernels) gives the same."""
    ref, vision, text, _ = _reference()
    grids = ((2, 4, 4), (1, 4, 4))
    pixels = _pixels(grids, seed=2)
    with torch.no_grad():
        ref_out = ref.visual(torch.from_numpy(pixels), grid_thw=torch.tensor(grids),
                             output_hidden_states=True)
    unrolled = nnx.clone(vision)
    unrolled.unroll()
    for model in (vision, unrolled):
        image, deepstack, states = _run_vision(model, jnp.asarray(pixels), grids)
        assert max_abs(image, ref_out.pooler_output) <= TOL
        for j, feat in enumerate(ref_out.deepstack_features):
            assert max_abs(deepstack[j], feat) <= TOL, f"deepstack {j}"
        for i, h in enumerate(ref_out.hidden_states):
            assert max_abs(states[i], h) <= TOL, f"vision state {i}"

    # Text in the inference layout against the stacked one (same inputs, DeepStack on).
    ids, mask = _prompts()
    positions, _ = mrope_position_ids(CFG, ids, np.asarray(GRIDS), mask)
    image, deepstack, _ = _run_vision(vision, jnp.asarray(_pixels(GRIDS)), GRIDS)
    args = (jnp.asarray(ids), jnp.asarray(mask), jnp.asarray(positions), image_token_mask(CFG, ids),
            image, deepstack)
    text_unrolled = nnx.clone(text)
    text_unrolled.unroll()
    _, stacked_states = _run_text(text, *args)
    _, unrolled_states = _run_text(text_unrolled, *args)
    assert _valid_max_abs(unrolled_states, stacked_states, mask[None]) <= TOL


def test_qwen3_vl_parity_can_fail():
    """Negative control: a 1e-3 change to DeepStack merger 1's norm breaks that feature and only
    the text state after decoder layer 1 (where it is added), not the earlier ones."""
    _, vision, text, _ = _reference()
    ids, mask = _prompts()
    pixels = jnp.asarray(_pixels(GRIDS))
    positions, _ = mrope_position_ids(CFG, ids, np.asarray(GRIDS), mask)
    args = (jnp.asarray(ids), jnp.asarray(mask), jnp.asarray(positions), image_token_mask(CFG, ids))
    image, deepstack, _ = _run_vision(vision, pixels, GRIDS)
    _, states = _run_text(text, *args, image, deepstack)

    broken = nnx.clone(vision)
    scale = broken.deepstack_merger_list[1].norm.scale
    scale.set_value(scale[...] + 1e-3)
    image_b, deepstack_b, _ = _run_vision(broken, pixels, GRIDS)
    _, states_b = _run_text(text, *args, image_b, deepstack_b)
    assert max_abs(image_b, image) == 0.0 and max_abs(deepstack_b[0], deepstack[0]) == 0.0
    assert max_abs(deepstack_b[1], deepstack[1]) > TOL
    for i in range(3):
        assert _valid_max_abs(states_b[i], states[i], mask) == 0.0, f"text state {i}"
    assert _valid_max_abs(states_b[3], states[3], mask) > TOL


def test_backbone_from_frames_matches_transformers_processor_and_model():
    """GR00T N1.7's backbone path from frames: uint8 frames through transformers' own Qwen2-VL
    image processor (mean = std = 0.5, no resize: the frames are already `image_size`) give the
    same patch rows as our on-device `frames_to_patches`, and `Qwen3VLBackbone` (weights mapped
    by `convert.keymap.qwen3_vl_entries`) gives HF's last-layer output before the final norm,
    with the image-token and validity masks, on a left-padded batch of two frames."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    from groot_jax.convert.keymap import qwen3_vl_entries
    from groot_jax.models.qwen3_vl import Qwen3VLBackbone
    from groot_jax.models.qwen3_vl_vision import frames_to_patches

    ref, _, _, _ = _reference()
    size, v = CFG.image_size, CFG.vision
    frames = np.random.default_rng(5).integers(0, 256, (2, size, size, 3), dtype=np.uint8)
    proc = Qwen2VLImageProcessorPil(do_resize=False, image_mean=[0.5] * 3, image_std=[0.5] * 3,
                                    patch_size=v.patch_size, merge_size=v.spatial_merge_size,
                                    temporal_patch_size=v.temporal_patch_size)
    hf_in = proc(images=list(frames), return_tensors="np")
    grid = (1, size // v.patch_size, size // v.patch_size)
    np.testing.assert_array_equal(hf_in["image_grid_thw"], [grid, grid])
    pixels = (frames.astype(np.float32) / 255.0 - 0.5) / 0.5
    rows = np.asarray(frames_to_patches(v, jnp.asarray(pixels)))
    assert max_abs(rows, hf_in["pixel_values"]) <= 1e-6

    rng = np.random.default_rng(6)
    n_img = CFG.tokens_per_image
    rows_ids = [list(rng.integers(0, 200, k)) + [CFG.vision_start_token_id]
                + [CFG.image_token_id] * n_img + [CFG.vision_end_token_id]
                + list(rng.integers(0, 200, 3)) for k in (5, 2)]
    length = max(map(len, rows_ids))
    ids = np.zeros((2, length), np.int64)
    mask = np.zeros((2, length), bool)
    for b, row in enumerate(rows_ids):
        ids[b, length - len(row):], mask[b, length - len(row):] = row, True

    captured = {}
    hook = ref.language_model.layers[-1].register_forward_hook(
        lambda mod, args, out: captured.update(last=out))
    try:
        with torch.no_grad():
            ref(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask).long(),
                pixel_values=torch.from_numpy(hf_in["pixel_values"]),
                image_grid_thw=torch.tensor([grid, grid]),
                mm_token_type_ids=torch.from_numpy((ids == CFG.image_token_id).astype(np.int64)))
    finally:
        hook.remove()

    sd = numpy_state_dict(ref)
    backbone = _load(lambda: Qwen3VLBackbone(CFG, rngs=nnx.Rngs(0)),
                     qwen3_vl_entries(CFG, "", ()), sd)
    out = jax.jit(lambda m, i, k, p: m(i, k, p))(backbone, jnp.asarray(ids), jnp.asarray(mask),
                                                 jnp.asarray(pixels)[:, None])
    np.testing.assert_array_equal(out.image_mask, ids == CFG.image_token_id)
    np.testing.assert_array_equal(out.attention_mask, mask)
    err = _valid_max_abs(out.features, captured["last"], mask)
    print(f"backbone features from frames: {err:.2e}")
    assert err <= TOL


def test_backbone_from_patches_matches_transformers_hidden_states():
    """`Qwen3VLBackbone.from_patches` on the mixed-grid, left-padded batch above (HF's own
    pixel rows and image_grid_thw, positions computed on the host) against HF `Qwen3VLModel`:
    the full backbone's features = the last layer's output before the final norm (hook), and a
    backbone cut at select_layer = 2 (weights of layer 2 dropped on load) = HF hidden_states[2]."""
    from groot_jax.convert.keymap import qwen3_vl_entries
    from groot_jax.models.qwen3_vl import Qwen3VLBackbone

    ref, _, _, _ = _reference()
    ids, mask = _prompts()
    pixels = _pixels(GRIDS)
    out, ref_last, ref_positions, _ = _hf_forward(ref, ids, mask, pixels)
    sd = numpy_state_dict(ref)
    errors = {}
    for n in (CFG.text.num_layers, 2):
        cfg = dataclasses.replace(CFG, text=dataclasses.replace(CFG.text, num_layers=n))
        dropped = {k for k in sd for i in range(n, CFG.text.num_layers)
                   if k.startswith(f"language_model.layers.{i}.")}
        backbone = _load(lambda cfg=cfg: Qwen3VLBackbone(cfg, rngs=nnx.Rngs(0)),
                         qwen3_vl_entries(cfg, "", ()), sd, ignore=dropped)
        got = backbone.from_patches(jnp.asarray(ids), jnp.asarray(mask), jnp.asarray(pixels),
                                    GRIDS)
        np.testing.assert_array_equal(got.image_mask, ids == CFG.image_token_id)
        np.testing.assert_array_equal(got.attention_mask, mask)
        want = ref_last if n == CFG.text.num_layers else out.hidden_states[n]
        errors[f"features, {n} layers"] = _valid_max_abs(got.features, want, mask)
        # lerobot's 4-row ids (a text row first) under jit give the same.
        four = np.concatenate([ref_positions[:1], ref_positions], axis=0)
        jitted = jax.jit(lambda m, i, k, p, q: m.from_patches(i, k, p, GRIDS, position_ids=q))(
            backbone, jnp.asarray(ids), jnp.asarray(mask), jnp.asarray(pixels), jnp.asarray(four))
        errors[f"features, {n} layers, jit 4-row"] = _valid_max_abs(jitted.features, want, mask)
    print({k: f"{v:.2e}" for k, v in errors.items()})
    bad = {k: v for k, v in errors.items() if not v <= TOL}
    assert not bad, f"above {TOL}: {bad}"
