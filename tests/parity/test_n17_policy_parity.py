"""The whole GR00T N1.7 policy against lerobot 0.6.1's `GR00TN17` (tiny random config, fp32,
CPU): from uint8 frames and a left-padded batch of real-layout Qwen3-VL chat prompts to the
backbone features (the last kept layer's output before the final norm), the VL-processed
features, the masks, the sampled action chunk and the training velocity / loss.

Weights (every one perturbed off its init), inputs, noise and outputs come from
tests/reference/n17/policy_worker.py (run in the N1.7 reference environment); we load the torch
state dict through `from_torch_state_dict` and replay with pixel_values = (frames / 255 - 0.5) /
0.5, patchified on device (lerobot gets transformers' Qwen2-VL image processor's patch rows).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from groot_jax.config import GR00TConfig
from groot_jax.convert.state_dict import from_torch_state_dict
from groot_jax.models import groot
from groot_jax.models.qwen3_vl_text import mrope_position_ids_for_grid
from groot_jax.models.qwen3_vl_vision import frames_to_patches
from tests.parity.reference_env import run_n17_reference
from tests.parity.torch_helpers import max_abs

pytestmark = pytest.mark.parity
TOL = 1e-4
CFG = GR00TConfig.tiny_n1_7()


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    state_dict, io = run_n17_reference("policy_worker.py",
                                       tmp_path_factory.mktemp("ref_n17_policy"), "--seed", "3")
    fns, _ = groot.abstract(CFG)
    params = from_torch_state_dict(CFG, state_dict)
    pixels = (io["frames"].astype(np.float32) / 255.0 - 0.5) / 0.5
    inputs = dict(input_ids=jnp.asarray(io["input_ids"].astype(np.int32)),
                  attention_mask=jnp.asarray(io["attention_mask"].astype(bool)),
                  pixel_values=jnp.asarray(pixels)[:, None],           # [B, V=1, H, W, 3]
                  state=jnp.asarray(io["state"]),
                  embodiment_id=jnp.asarray(io["embodiment_id"].astype(np.int32)))
    return fns, params, inputs, io


def _valid(x, mask):
    return np.asarray(x)[np.asarray(mask, bool)]


def test_reference_case_is_the_intended_one(case):
    _, _, inputs, io = case
    assert not io["attention_mask"].all() and io["attention_mask"][:, -1].all()  # left padding
    assert io["image_mask"].sum(axis=1).tolist() == [CFG.backbone.tokens_per_image] * 2
    assert len(set(io["embodiment_id"].tolist())) == 2
    # Our on-device patchify = the processor's rows; our M-RoPE ids = lerobot's t/h/w rows.
    rows = frames_to_patches(CFG.backbone.vision, inputs["pixel_values"][:, 0])
    assert max_abs(rows, io["pixel_values"]) <= 1e-6
    grid = (1, 64 // CFG.backbone.vision.patch_size, 64 // CFG.backbone.vision.patch_size)
    positions = mrope_position_ids_for_grid(CFG.backbone, inputs["input_ids"],
                                            inputs["attention_mask"], grid)
    np.testing.assert_array_equal(positions, io["position_ids"][1:])


def test_n17_policy_matches_lerobot(case):
    fns, params, inputs, io = case
    mask = io["attention_mask"].astype(bool)

    def forward(p):
        model = fns.module(p)
        out = model.backbone_output(inputs)
        return out, model.action_head.process_backbone_output(out.features)

    out, vl = jax.jit(forward)(params)
    np.testing.assert_array_equal(out.attention_mask, io["attention_mask_out"])
    np.testing.assert_array_equal(out.image_mask, io["image_mask"])
    err_feat = max_abs(_valid(out.features, mask), _valid(io["features"], mask))
    err_pad = max_abs(_valid(out.features, ~mask), _valid(io["features"], ~mask))
    err_vl = max_abs(_valid(vl, mask), _valid(io["vl_processed"], mask))

    sample = jax.jit(lambda p, x: fns.sample_actions(p, x, None, noise=io["init_noise"]))
    actions = sample(params, inputs)
    err_act = max_abs(actions, io["action_pred"])
    # The chunk does see the frames: swapping the two rows' frames moves it far beyond TOL.
    swapped = dict(inputs, pixel_values=inputs["pixel_values"][::-1])
    assert max_abs(sample(params, swapped), actions) > 10 * TOL

    def loss(p):
        model = fns.module(p)
        out = model.backbone_output(inputs)
        return model.action_head.flow_matching_loss(
            out.features, inputs["state"], io["action"], io["action_mask"],
            inputs["embodiment_id"], noise=io["noise"], t=io["t"], return_velocity=True,
            **model.vl_masks(out))

    value, velocity = jax.jit(loss)(params)
    err_vel = max_abs(velocity, io["velocity"])
    err_loss = abs(float(value) - float(io["loss"]))
    print(f"\nN1.7 policy vs lerobot: features {err_feat:.2e} (padded positions {err_pad:.2e}), "
          f"vl_processed {err_vl:.2e}, action chunk {err_act:.2e}, velocity {err_vel:.2e}, "
          f"loss {err_loss:.2e}")
    assert err_feat <= TOL
    assert err_pad <= TOL  # padded rows reach the unmasked VL self-attention
    assert err_vl <= TOL
    assert err_act <= TOL
    assert err_vel <= TOL
    assert err_loss <= TOL * max(1.0, abs(float(io["loss"])))
