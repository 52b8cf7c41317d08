"""Our SigLIP, Qwen3 and Llama against transformers' PyTorch modules (fp32, identical weights).

The reference is transformers' own `SiglipVisionModel`, `Qwen3Model` and `LlamaModel` with the
eager attention path, randomly initialised and then perturbed so no norm stays at ones/zeros.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers
from flax import nnx

from groot_jax.config import LlmConfig, SiglipConfig
from groot_jax.convert.keymap import llm_entries, siglip_entries
from groot_jax.convert.state_dict import load_into
from groot_jax.models.llm import DecoderLM
from groot_jax.models.siglip import SiglipVisionTower
from tests.parity.torch_helpers import max_abs, numpy_state_dict, randomize_

pytestmark = pytest.mark.parity
TOL = 1e-5


def _load(module_cls, cfg, entries, torch_model):
    model = nnx.eval_shape(lambda: module_cls(cfg, rngs=nnx.Rngs(0)))
    graphdef, abstract = nnx.split(model, nnx.Param)
    params = load_into(entries, numpy_state_dict(torch_model), abstract)
    return nnx.merge(graphdef, params)


def test_siglip_matches_transformers():
    cfg = SiglipConfig(hidden_size=48, intermediate_size=96, num_layers=3, num_heads=3)
    torch.manual_seed(0)
    hf_cfg = transformers.SiglipVisionConfig(
        hidden_size=48, intermediate_size=96, num_hidden_layers=3, num_attention_heads=3,
        image_size=224, patch_size=14, hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6,
        attn_implementation="eager")
    ref = randomize_(transformers.SiglipVisionModel(hf_cfg).eval(), seed=1)
    # transformers 5.24's SiglipVisionModel holds the tower directly (older versions, and the
    # GR00T checkpoint, nest it under `vision_model.`): take whichever prefix the keys carry.
    prefix = "vision_model." if hasattr(ref, "vision_model") else ""
    ours = _load(SiglipVisionTower, cfg, siglip_entries(cfg, prefix, ()), ref)

    pixels = np.random.default_rng(0).uniform(-1, 1, (2, 3, 224, 224)).astype(np.float32)
    with torch.no_grad():
        out = ref(pixel_values=torch.from_numpy(pixels), output_hidden_states=True)
    last, states = jax.jit(lambda m, x: m(x, return_hidden_states=True))(
        ours, jnp.asarray(pixels.transpose(0, 2, 3, 1)))
    assert max_abs(last, out.last_hidden_state) <= TOL
    assert len(out.hidden_states) == states.shape[0] == cfg.num_layers + 1
    for i, h in enumerate(out.hidden_states):
        assert max_abs(states[i], h) <= TOL, f"hidden state {i}"


def _decoder_case(variant: str):
    common = dict(vocab_size=512, hidden_size=64, intermediate_size=160, num_attention_heads=4,
                  max_position_embeddings=512, attn_implementation="eager")
    if variant == "qwen3":
        cfg = LlmConfig(variant="qwen3", vocab_size=512, hidden_size=64, intermediate_size=160,
                        num_layers=3, num_heads=4, num_kv_heads=2, head_dim=24,
                        rope_theta=1_000_000.0, rms_norm_eps=1e-6)
        hf_cfg = transformers.Qwen3Config(**common, num_hidden_layers=3, num_key_value_heads=2,
                                          head_dim=24, rope_theta=1_000_000.0, rms_norm_eps=1e-6,
                                          tie_word_embeddings=True)
        return cfg, transformers.Qwen3Model(hf_cfg)
    cfg = LlmConfig(variant="llama", vocab_size=512, hidden_size=64, intermediate_size=160,
                    num_layers=3, num_heads=4, num_kv_heads=4, head_dim=16, rope_theta=130000.0,
                    rms_norm_eps=1e-5)
    hf_cfg = transformers.LlamaConfig(**common, num_hidden_layers=3, num_key_value_heads=4,
                                      rope_theta=130000.0, rms_norm_eps=1e-5)
    return cfg, transformers.LlamaModel(hf_cfg)


@pytest.mark.parametrize("variant", ["qwen3", "llama"])
def test_decoder_matches_transformers(variant):
    """GR00T truncates the LLM to `select_layer` layers and reads `hidden_states[select_layer]`,
    which HF defines as final-norm(last layer): compare that, every earlier hidden state, and a
    left-padded row (positions are not shifted for padding, spec 3.3)."""
    torch.manual_seed(0)
    cfg, ref = _decoder_case(variant)
    ref = randomize_(ref.eval(), seed=2)
    ours = _load(DecoderLM, cfg, llm_entries(cfg, "", ()), ref)

    rng = np.random.default_rng(1)
    ids = rng.integers(0, cfg.vocab_size, (2, 23))
    mask = np.ones((2, 23), bool)
    mask[1, :5] = False  # left padding on the second row
    with torch.no_grad():
        out = ref(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                  output_hidden_states=True)

    @jax.jit
    def run(m, ids, mask):
        return m(m.embed(ids), mask, return_hidden_states=True)

    feature, states = run(ours, jnp.asarray(ids), jnp.asarray(mask))
    select_layer = cfg.num_layers
    ref_feature = out.hidden_states[select_layer]
    assert max_abs(ref_feature, out.last_hidden_state) == 0.0  # HF: last entry is the normed one
    valid = mask[..., None]
    assert max_abs(np.where(valid, feature, 0), np.where(valid, ref_feature, 0)) <= TOL
    assert states.shape[0] == len(out.hidden_states)
    for i, h in enumerate(out.hidden_states):
        assert max_abs(np.where(valid, states[i], 0), np.where(valid, h, 0)) <= TOL, f"state {i}"
