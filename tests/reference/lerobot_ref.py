"""Import lerobot 0.5.1's GR00T N1.5 (the PyTorch reference) on Python 3.11, offline.

Runs only inside the reference environment built by `install.sh` (.venv-ref). Nothing
installed is modified:
- `lerobot.policies` and `lerobot.policies.groot` import 3.12-only core modules in their
  `__init__`; we register them as bare packages so the model modules themselves import.
- The vendored Eagle model asks for flash attention; requests are redirected to SDPA (same math).
- `EagleBackbone` reads its Eagle config from `$HF_LEROBOT_HOME/<repo>/config.json`; we write it.
"""
import copy
import importlib.util
import json
import os
import sys
import types
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _register_bare_package(name: str) -> None:
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    pkg = types.ModuleType(name)
    pkg.__path__ = list(spec.submodule_search_locations)
    pkg.__spec__ = spec
    sys.modules[name] = pkg


_register_bare_package("lerobot.policies")
_register_bare_package("lerobot.policies.groot")

from lerobot.policies.groot.action_head.flow_matching_action_head import (  # noqa: E402
    FlowmatchingActionHead,
    FlowmatchingActionHeadConfig,
)
from lerobot.policies.groot.groot_n1 import GR00TN15, GR00TN15Config  # noqa: E402


def _sdpa_instead_of_flash_attention() -> None:
    from transformers import modeling_utils

    cls = modeling_utils.PreTrainedModel
    original = cls._check_and_adjust_attn_implementation
    if getattr(original, "groot_jax_redirect", False):
        return

    def check(self, implementation, *args, **kwargs):
        if implementation is not None and "flash_attention" in implementation:
            implementation = "sdpa"
        return original(self, implementation, *args, **kwargs)

    check.groot_jax_redirect = True
    cls._check_and_adjust_attn_implementation = check


# GR00T-N1.5-3B config.json values (action_head_cfg / backbone_cfg) and its Eagle 2.5 config.
HEAD = dict(action_dim=32, action_horizon=16, add_pos_embed=True, backbone_embedding_dim=2048,
            hidden_size=1024, input_embedding_dim=1536, max_action_dim=32, max_state_dim=64,
            model_dtype="float32", noise_beta_alpha=1.5, noise_beta_beta=1.0, noise_s=0.999,
            num_inference_timesteps=4, num_target_vision_tokens=32, num_timestep_buckets=1000,
            tune_diffusion_model=True, tune_projector=True, use_vlln=True,
            diffusion_model_cfg=dict(attention_head_dim=48, cross_attention_dim=2048, dropout=0.2,
                                     final_dropout=True, interleave_self_attention=True,
                                     norm_type="ada_norm", num_attention_heads=32, num_layers=16,
                                     output_dim=1024, positional_embeddings=None),
            vl_self_attention_cfg=dict(attention_head_dim=64, dropout=0.2, final_dropout=True,
                                       num_attention_heads=32, num_layers=4,
                                       positional_embeddings=None))
BACKBONE = dict(load_bf16=False, project_to_dim=None, reproject_vision=False, select_layer=12,
                tune_llm=False, tune_visual=True, use_flash_attention=True)
EAGLE = {
    "architectures": ["Eagle2_5_VLForConditionalGeneration"],
    "auto_map": {"AutoConfig": "configuration_eagle2_5_vl.Eagle25VLConfig",
                 "AutoModel": "modeling_eagle2_5_vl.Eagle25VLForConditionalGeneration"},
    "model_type": "eagle_2_5_vl", "template": "qwen3-chat", "_attn_implementation": "sdpa",
    "downsample_ratio": 0.5, "use_pixel_shuffle": False, "mlp_connector_layers": 1,
    "dynamic_image_size": True, "force_image_size": 224, "min_dynamic_tiles": 1,
    "max_dynamic_tiles": 12, "use_thumbnail": True, "pad2square": False, "mlp_checkpoint": False,
    # -1 = SigLIP last_hidden_state (post-layernorm), as in the official config (spec 14.12).
    "image_token_index": 151669, "select_layer": -1, "loss_version": "efficient_v2_cp_head",
    "use_backbone_lora": 0, "use_llm_lora": 0,
    "vision_config": {"model_type": "siglip_vision_model", "hidden_size": 1152,
                      "intermediate_size": 4304, "num_hidden_layers": 27,
                      "num_attention_heads": 16, "num_channels": 3, "image_size": 224,
                      "patch_size": 14, "hidden_act": "gelu_pytorch_tanh",
                      "layer_norm_eps": 1e-6, "attention_dropout": 0.0},
    "text_config": {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3",
                    "hidden_size": 2048, "intermediate_size": 6144, "num_hidden_layers": 28,
                    "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128,
                    "hidden_act": "silu", "max_position_embeddings": 40960,
                    "rms_norm_eps": 1e-6, "rope_theta": 1000000, "rope_scaling": None,
                    "attention_bias": False, "attention_dropout": 0.0,
                    "tie_word_embeddings": True, "vocab_size": 151680, "use_cache": False,
                    "bos_token_id": 151643, "eos_token_id": 151645, "sliding_window": None,
                    "use_sliding_window": False, "max_window_layers": 28,
                    "initializer_range": 0.02},
}


def configs(size: str):
    """(eagle, backbone_cfg, action_head_cfg) for 'real' (N1.5-3B) or 'tiny' (= our
    `GR00TConfig.tiny()`)."""
    eagle, head, backbone = copy.deepcopy(EAGLE), copy.deepcopy(HEAD), dict(BACKBONE)
    if size == "tiny":
        eagle["text_config"].update(hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                                    num_attention_heads=4, num_key_value_heads=2, head_dim=16)
        eagle["vision_config"].update(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=2)
        backbone["select_layer"] = 2
        head.update(backbone_embedding_dim=64, input_embedding_dim=32, hidden_size=32)
        head["diffusion_model_cfg"].update(num_layers=2, num_attention_heads=2,
                                           attention_head_dim=16, output_dim=32,
                                           cross_attention_dim=64)
        head["vl_self_attention_cfg"].update(num_layers=1, num_attention_heads=2,
                                             attention_head_dim=32)
    elif size != "real":
        raise ValueError(f"unknown reference size {size!r}")
    return eagle, backbone, head


def build_action_head(size: str) -> FlowmatchingActionHead:
    return FlowmatchingActionHead(FlowmatchingActionHeadConfig(**configs(size)[2])).eval()


def build_gr00t(size: str) -> GR00TN15:
    from lerobot.policies.groot import groot_n1

    _sdpa_instead_of_flash_attention()
    eagle, backbone, head = configs(size)
    repo = f"local/groot-jax-eagle-{size}"
    home = Path(groot_n1.HF_LEROBOT_HOME)
    (home / repo).mkdir(parents=True, exist_ok=True)
    (home / repo / "config.json").write_text(json.dumps(eagle, indent=2))
    cfg = GR00TN15Config(action_dim=32, action_horizon=16, hidden_size=2048, model_dtype="float32",
                         compute_dtype="float32", attn_implementation=None,
                         backbone_cfg=dict(backbone, tokenizer_assets_repo=repo),
                         action_head_cfg=head)
    return GR00TN15(cfg, local_model_path=str(home / repo)).eval()
