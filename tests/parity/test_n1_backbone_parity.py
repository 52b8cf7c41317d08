"""The N1 (Eagle 2) backbone against transformers' InternVL, with a SigLIP vision tower.

Why this reference: GR00T N1's `Eagle2ChatModel` (Isaac-GR00T b51a5e8,
`eagle2_hg_model/modeling_eagle2_chat.py`) is InternVL's architecture. Its `extract_feature`
takes SigLIP's `last_hidden_state` (select_layer -1, no CLS token to drop), reshapes to the patch
grid, applies InternVL's `pixel_shuffle` (ps_version v2: view, permute, view, permute) with scale
0.5, then `mlp1 = LayerNorm -> Linear -> GELU -> Linear`; it writes the image embeddings over the
<IMG_CONTEXT> token embeddings and runs the Llama LLM. transformers' `InternVLModel` is an
independent PyTorch implementation of exactly that pipeline (`pixel_shuffle`,
`InternVLMultiModalProjector`, placeholder scatter, `LlamaModel`), so with
`vision_feature_select_strategy="full"`, `vision_feature_layer=-1` and its vision tower replaced
by transformers' `SiglipVisionModel` (as N1 uses), its `last_hidden_state` is N1's backbone
feature: final-norm(last kept Llama layer). The Eagle 2 code itself needs transformers <= 4.39
and cannot run here.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers
from flax import nnx

from groot_jax.config import EagleConfig, LlmConfig, SiglipConfig
from groot_jax.convert.keymap import eagle_entries
from groot_jax.convert.state_dict import load_into
from groot_jax.models.eagle import EagleBackbone
from tests.parity.torch_helpers import max_abs, numpy_state_dict, randomize_

pytestmark = pytest.mark.parity
TOL = 1e-5
IMG = 1000


def _reference():
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                  image_size=224, patch_size=14, layer_norm_eps=1e-6,
                  hidden_act="gelu_pytorch_tanh")
    text = dict(vocab_size=1024, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=4, rope_theta=130000.0,
                rms_norm_eps=1e-5)
    cfg = transformers.InternVLConfig(
        vision_config=vision, text_config=transformers.LlamaConfig(**text).to_dict(),
        image_token_id=IMG, downsample_ratio=0.5, projector_hidden_act="gelu",
        vision_feature_layer=-1, vision_feature_select_strategy="full")
    cfg._attn_implementation = "eager"
    torch.manual_seed(0)
    model = transformers.InternVLModel(cfg)
    model.vision_tower = transformers.SiglipVisionModel(
        transformers.SiglipVisionConfig(**vision, attn_implementation="eager"))
    model.language_model.config._attn_implementation = "eager"
    return randomize_(model.eval(), seed=4)


def _to_gr00t_n1_keys(state_dict):
    """InternVL names -> GR00T N1 checkpoint names (backbone.model.*)."""
    rename = [("vision_tower.vision_model.", "backbone.model.vision_model.vision_model."),
              ("vision_tower.", "backbone.model.vision_model.vision_model."),
              ("multi_modal_projector.layer_norm.", "backbone.model.mlp1.0."),
              ("multi_modal_projector.linear_1.", "backbone.model.mlp1.1."),
              ("multi_modal_projector.linear_2.", "backbone.model.mlp1.3."),
              ("language_model.", "backbone.model.language_model.model.")]
    out = {}
    for key, value in state_dict.items():
        for old, new in rename:
            if key.startswith(old):
                out[new + key[len(old):]] = value
                break
        else:
            raise KeyError(key)
    return out


def test_n1_backbone_matches_internvl_reference():
    cfg = EagleConfig(
        vision=SiglipConfig(hidden_size=32, intermediate_size=64, num_layers=2, num_heads=2,
                            has_pooling_head=False),
        llm=LlmConfig(variant="llama", vocab_size=1024, hidden_size=64, intermediate_size=128,
                      num_layers=2, num_heads=4, num_kv_heads=4, head_dim=16,
                      rope_theta=130000.0, rms_norm_eps=1e-5),
        image_token_index=IMG, use_pixel_shuffle=True)
    assert cfg.tokens_per_image == 64
    ref = _reference()
    state_dict = _to_gr00t_n1_keys(numpy_state_dict(ref))
    state_dict = {k: v for k, v in state_dict.items() if ".head." not in k}  # N1: head removed
    model = nnx.eval_shape(lambda: EagleBackbone(cfg, rngs=nnx.Rngs(0)))
    graphdef, abstract = nnx.split(model, nnx.Param)
    ours = nnx.merge(graphdef, load_into(eagle_entries(cfg, "backbone.model.", ()), state_dict,
                                         abstract))

    rng = np.random.default_rng(0)
    pixels = rng.uniform(-1, 1, (2, 3, 224, 224)).astype(np.float32)  # 2 samples x 1 view
    ids = rng.integers(0, 999, (2, 80))
    ids[:, 7:71] = IMG
    mask = np.ones(ids.shape, bool)
    with torch.no_grad():
        ref_images = ref.get_image_features(torch.from_numpy(pixels), vision_feature_layer=-1,
                                            vision_feature_select_strategy="full").pooler_output
        ref_out = ref(input_ids=torch.from_numpy(ids), pixel_values=torch.from_numpy(pixels),
                      attention_mask=torch.from_numpy(mask)).last_hidden_state
    nhwc = jnp.asarray(pixels.transpose(0, 2, 3, 1))
    images = jax.jit(lambda m, x: m.image_embeddings(x))(ours, nhwc)
    assert images.shape == (2, 64, 64)
    assert max_abs(images, ref_images) <= TOL
    features = jax.jit(lambda m, i, a, x: m(i, a, x))(ours, jnp.asarray(ids), jnp.asarray(mask),
                                                     nhwc[:, None])
    assert max_abs(features, ref_out) <= TOL
