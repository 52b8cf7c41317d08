"""The Isaac-GR00T / lerobot `config.json` of a checkpoint <-> our `GR00TConfig`.

N1 / N1.5: the released config.json holds `backbone_cfg` and `action_head_cfg` (spec 2.1) but not
the Eagle VLM sizes, which the original always takes from its vendored Eagle config (spec 2.2).
So an Isaac-GR00T directory is read as the preset of its model_type with the config.json values
applied; the tensor shapes are then checked against it.

N1.7 (lerobot 0.6.1 `GR00TN17Config`, model_type "Gr00tN1d7", N1.7 spec 1.5): one flat object of
head fields, `select_layer` and `model_name`, the Qwen3-VL backbone whose config gives the
backbone sizes. lerobot builds that backbone from `model_name` without weights: the hub name
"nvidia/Cosmos-Reason2-2B" selects its hard-coded copy of that config (offline), any other
name goes through `AutoConfig.from_pretrained(model_name)`. So an export writes
  model_name = "nvidia/Cosmos-Reason2-2B"   when our backbone is Cosmos-Reason2-2B (n1_7_3b)
  model_name = "<abs path>/qwen3_vl"         otherwise (tiny / other sizes), with that
                                             directory's config.json (a transformers
                                             Qwen3VLConfig, `qwen3_vl_hf_json`) in the export
The absolute path is what lets lerobot load the directory offline; a moved export is loaded
with `GR00TN17.from_pretrained(DIR, model_name="DIR/qwen3_vl")`. Reading back, `model_name` is
tried as given, then as `<checkpoint>/qwen3_vl` and `<checkpoint>/<basename>`.

Directories we export also carry our full config under the extra key `groot_jax`, which the
PyTorch side ignores (GR00TN17Config keeps unknown keys as attributes and writes them back).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from groot_jax.config import (
    ActionHeadConfig,
    GR00TConfig,
    Qwen3VLConfig,
    Qwen3VLTextConfig,
    Qwen3VLVisionConfig,
    config_from_dict,
    config_to_dict,
)

MODEL_TYPES = {"gr00t_n1_5": "n1_5_3b", "gr00t_n1": "n1_2b", "gr00t_n1_7": "n1_7_3b"}
EAGLE_PATH_N15 = "NVEagle/eagle_er-qwen3_1_7B-Siglip2_400M_stage1_5_128gpu_er_v7_1mlp_nops"
# lerobot 0.6.1 / Isaac-GR00T N1.7 names (G17 GR00TN17Config.model_type, GR00TN17 class).
N17_MODEL_TYPE, N17_ARCHITECTURE = "Gr00tN1d7", "GR00TN17"
N17_ALIASES = {"gr00tn1d7", "gr00t_n1d7", "gr00t_n1_7", "gr00tn17", "gr00t_n17"}
COSMOS_REASON2_2B = "nvidia/Cosmos-Reason2-2B"
QWEN3_VL_DIR = "qwen3_vl"  # the backbone config directory of an N1.7 export (not Cosmos)
LEROBOT_TRANSFORMERS = "5.5.4"  # what lerobot 0.6.1's groot extra resolves to


# config.json names (theirs) -> our ActionHeadConfig / VLSelfAttentionConfig fields, shared by
# the N1 / N1.5 and the N1.7 layouts.
HEAD_NAMES = {
    "max_action_dim": "action_dim", "action_horizon": "action_horizon",
    "add_pos_embed": "add_pos_embed", "backbone_embedding_dim": "backbone_embedding_dim",
    "hidden_size": "hidden_size", "input_embedding_dim": "input_embedding_dim",
    "max_state_dim": "max_state_dim", "max_num_embodiments": "max_num_embodiments",
    "max_seq_len": "max_seq_len", "noise_beta_alpha": "noise_beta_alpha",
    "noise_beta_beta": "noise_beta_beta", "noise_s": "noise_s",
    "num_inference_timesteps": "num_inference_timesteps",
    "num_timestep_buckets": "num_timestep_buckets"}
VL_SELF_ATTENTION_NAMES = {"attention_head_dim": "head_dim", "dropout": "dropout",
                           "num_attention_heads": "num_heads", "num_layers": "num_layers"}
DIT_NAMES = {"attention_head_dim": "head_dim", "dropout": "dropout",
             "interleave_self_attention": "interleave_self_attention",
             "num_attention_heads": "num_heads", "num_layers": "num_layers",
             "output_dim": "output_dim"}


class ConfigError(ValueError):
    """A checkpoint's config.json cannot describe a model we build."""


def checkpoint_model_type(data: dict) -> str | None:
    """Our model_type of a checkpoint's config.json: gr00t_n1_5 / gr00t_n1 as written, N1.7
    however lerobot / Isaac-GR00T mark it (model_type or architectures "Gr00tN1d7" /
    "GR00TN17", or the Cosmos-Reason2 backbone as model_name, as lerobot's
    `_infer_groot_model_version_from_config` does); None for anything else."""
    model_type = data.get("model_type")
    if model_type in MODEL_TYPES:
        return model_type
    for candidate in [model_type, *(data.get("architectures") or [])]:
        if isinstance(candidate, str) and candidate.lower().replace("-", "_") in N17_ALIASES:
            return "gr00t_n1_7"
    if data.get("model_name") == COSMOS_REASON2_2B:
        return "gr00t_n1_7"
    return None


def to_gr00t_json(cfg: GR00TConfig, torch_dtype: str = "float32", *,
                  model_name: str | None = None) -> dict:
    """config.json in the released layout: N1 / N1.5 (model_type, backbone_cfg,
    action_head_cfg) or N1.7 (lerobot's GR00TN17Config, `to_n17_json`; `model_name` is where
    its Qwen3-VL config is, default: the Cosmos-Reason2-2B hub name)."""
    if cfg.model_type == "gr00t_n1_7":
        return to_n17_json(cfg, torch_dtype, model_name=model_name or COSMOS_REASON2_2B)
    head, dit, vl = cfg.action_head, cfg.action_head.dit, cfg.action_head.vl_self_attention
    action_head_cfg = {
        "action_dim": head.action_dim, "action_horizon": head.action_horizon,
        "add_pos_embed": head.add_pos_embed, "backbone_embedding_dim": head.backbone_embedding_dim,
        "hidden_size": head.hidden_size, "input_embedding_dim": head.input_embedding_dim,
        "max_action_dim": head.action_dim, "max_state_dim": head.max_state_dim,
        "max_num_embodiments": head.max_num_embodiments, "max_seq_len": head.max_seq_len,
        "model_dtype": "float32", "noise_beta_alpha": head.noise_beta_alpha,
        "noise_beta_beta": head.noise_beta_beta, "noise_s": head.noise_s,
        "num_inference_timesteps": head.num_inference_timesteps,
        "num_target_vision_tokens": head.num_future_tokens,
        "num_timestep_buckets": head.num_timestep_buckets,
        "tune_diffusion_model": True, "tune_projector": True, "use_vlln": head.use_vlln,
        "diffusion_model_cfg": {
            "attention_head_dim": dit.head_dim, "cross_attention_dim": dit.cross_attention_dim,
            "dropout": dit.dropout, "final_dropout": True,
            "interleave_self_attention": dit.interleave_self_attention, "norm_type": "ada_norm",
            "num_attention_heads": dit.num_heads, "num_layers": dit.num_layers,
            "output_dim": dit.output_dim, "positional_embeddings": None},
        "vl_self_attention_cfg": {
            "attention_head_dim": vl.head_dim, "dropout": vl.dropout, "final_dropout": True,
            "num_attention_heads": vl.num_heads, "num_layers": vl.num_layers,
            "positional_embeddings": None},
    }
    backbone_cfg = {"eagle_path": EAGLE_PATH_N15, "load_bf16": False,
                    "project_to_dim": cfg.backbone.project_to_dim, "reproject_vision": False,
                    "select_layer": cfg.backbone.llm.num_layers, "tune_llm": False,
                    "tune_visual": True, "use_flash_attention": True}
    return {
        "architectures": ["GR00T_N1_5" if cfg.model_type == "gr00t_n1_5" else "GR00T_N1"],
        "model_type": cfg.model_type, "action_dim": head.action_dim,
        "action_horizon": head.action_horizon, "hidden_size": cfg.backbone.llm.hidden_size,
        "model_dtype": "float32", "compute_dtype": "float32", "torch_dtype": torch_dtype,
        "attn_implementation": None, "transformers_version": "4.51.3",
        "backbone_cfg": backbone_cfg, "action_head_cfg": action_head_cfg,
        "groot_jax": config_to_dict(cfg),
    }


def from_gr00t_json(data: dict, *, source: str = "config.json",
                    expect: GR00TConfig | None = None,
                    base_dir: str | Path | None = None) -> GR00TConfig:
    """Our config for a checkpoint's config.json; `expect` (a config the caller asked for) must
    agree with the checkpoint's model type. `base_dir` (the checkpoint directory) is where an
    N1.7 `model_name` that is not an absolute path is also looked for."""
    model_type = checkpoint_model_type(data)
    if model_type is None:
        raise ConfigError(f"{source}: model_type {data.get('model_type')!r} is not a GR00T "
                          f"checkpoint (expected one of {sorted(MODEL_TYPES)} or lerobot's "
                          f"{N17_MODEL_TYPE!r})")
    if expect is not None and expect.model_type != model_type:
        raise ConfigError(
            f"{source} is a {model_type} checkpoint but the requested config "
            f"{expect.name!r} is {expect.model_type}; use preset "
            f"{MODEL_TYPES[model_type]!r} (or a config of that model type)")
    if "groot_jax" in data:
        cfg = config_from_dict(data["groot_jax"])
        if cfg.model_type != model_type:
            raise ConfigError(f"{source}: groot_jax.model_type {cfg.model_type!r} contradicts "
                              f"model_type {model_type!r}")
        return cfg
    if expect is not None:
        return expect
    if model_type == "gr00t_n1_7":
        return from_n17_json(data, source=source, base_dir=base_dir)
    from groot_jax.config import preset

    cfg = preset(MODEL_TYPES[model_type])
    head_json, bb_json = data.get("action_head_cfg") or {}, data.get("backbone_cfg") or {}
    dit_json = head_json.get("diffusion_model_cfg") or {}
    vl_json = head_json.get("vl_self_attention_cfg") or {}
    dit = _replace(cfg.action_head.dit, dit_json, source, {
        **DIT_NAMES, "cross_attention_dim": "cross_attention_dim"})
    vl = _replace(cfg.action_head.vl_self_attention, vl_json, source, VL_SELF_ATTENTION_NAMES)
    head = _replace(cfg.action_head, head_json, source, {
        **HEAD_NAMES, "num_target_vision_tokens": "num_future_tokens", "use_vlln": "use_vlln"},
        dit=dit, vl_self_attention=vl)
    backbone = cfg.backbone
    if "select_layer" in bb_json:
        backbone = dataclasses.replace(
            backbone, llm=dataclasses.replace(backbone.llm, num_layers=bb_json["select_layer"]))
    if "project_to_dim" in bb_json:
        backbone = dataclasses.replace(backbone, project_to_dim=bb_json["project_to_dim"])
    try:
        return dataclasses.replace(cfg, backbone=backbone, action_head=head)
    except ValueError as e:
        raise ConfigError(f"{source}: {e}") from e


def _replace(obj, data: dict, source: str, names: dict[str, str], **extra):
    kwargs = {ours: data[theirs] for theirs, ours in names.items() if data.get(theirs) is not None}
    try:
        return dataclasses.replace(obj, **kwargs, **extra)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{source}: {e}") from e


# ---- N1.7: lerobot 0.6.1's GR00TN17Config and the Qwen3-VL backbone config --------------------
def is_cosmos_reason2_2b(backbone: Qwen3VLConfig) -> bool:
    """Whether lerobot's hard-coded Cosmos-Reason2-2B config (all 28 text layers, cut to
    select_layer) builds exactly `backbone` (its frame size and remat policy aside)."""
    if not isinstance(backbone, Qwen3VLConfig) or backbone.text.num_layers > 28:
        return False
    cosmos = Qwen3VLConfig.cosmos_reason2_2b(image_size=backbone.image_size)
    cosmos = dataclasses.replace(cosmos, text=dataclasses.replace(
        cosmos.text, num_layers=backbone.text.num_layers, remat=backbone.text.remat),
        vision=dataclasses.replace(cosmos.vision, remat=backbone.vision.remat))
    return cosmos == backbone


def qwen3_vl_hf_json(backbone: Qwen3VLConfig) -> dict:
    """transformers' `Qwen3VLConfig` (config.json of a model directory, as transformers 5.5
    writes it) for our backbone: the text decoder with only the kept layers."""
    v, t = backbone.vision, backbone.text
    if v.rope_theta != 10_000.0 or v.layer_norm_eps != 1e-6:
        raise ConfigError(f"Qwen3-VL vision rope_theta={v.rope_theta} / layer_norm_eps="
                          f"{v.layer_norm_eps}: transformers fixes them at 10000 / 1e-6, so "
                          "lerobot cannot build this backbone")
    return {
        "architectures": ["Qwen3VLForConditionalGeneration"], "model_type": "qwen3_vl",
        "image_token_id": backbone.image_token_id, "video_token_id": backbone.video_token_id,
        "vision_start_token_id": backbone.vision_start_token_id,
        "vision_end_token_id": backbone.vision_end_token_id, "tie_word_embeddings": True,
        "transformers_version": LEROBOT_TRANSFORMERS,
        "text_config": {
            "model_type": "qwen3_vl_text", "attention_bias": False, "attention_dropout": 0.0,
            "hidden_act": "silu", "hidden_size": t.hidden_size,
            "intermediate_size": t.intermediate_size, "num_hidden_layers": t.num_layers,
            "num_attention_heads": t.num_heads, "num_key_value_heads": t.num_kv_heads,
            "head_dim": t.head_dim, "vocab_size": t.vocab_size, "rms_norm_eps": t.rms_norm_eps,
            "max_position_embeddings": 262144, "initializer_range": 0.02, "use_cache": True,
            "tie_word_embeddings": True, "pad_token_id": None,
            "rope_parameters": {"rope_type": "default", "rope_theta": t.rope_theta,
                                "mrope_section": list(t.mrope_section),
                                "mrope_interleaved": True}},
        "vision_config": {
            "model_type": "qwen3_vl", "hidden_act": "gelu_pytorch_tanh", "depth": v.num_layers,
            "hidden_size": v.hidden_size, "intermediate_size": v.intermediate_size,
            "num_heads": v.num_heads, "in_channels": v.num_channels, "patch_size": v.patch_size,
            "temporal_patch_size": v.temporal_patch_size,
            "spatial_merge_size": v.spatial_merge_size, "out_hidden_size": v.out_hidden_size,
            "num_position_embeddings": v.num_position_embeddings,
            "deepstack_visual_indexes": list(v.deepstack_visual_indexes),
            "initializer_range": 0.02},
    }


def _need(obj: dict, key: str, source: str, where: str):
    if obj.get(key) is None:
        raise ConfigError(f"{source}: {where} lacks {key!r}")
    return obj[key]


def from_qwen3_vl_hf_json(data: dict, *, select_layer: int | None = None, image_size: int = 256,
                          source: str = "qwen3_vl config.json") -> Qwen3VLConfig:
    """Our backbone for a transformers Qwen3VLConfig (config.json), cut at `select_layer` text
    layers (None: all of them). Size fields must be present; geometry fields default as in
    transformers."""
    text, vision = data.get("text_config"), data.get("vision_config")
    if not isinstance(text, dict) or not isinstance(vision, dict):
        raise ConfigError(f"{source}: not a Qwen3-VL config (no text_config / vision_config)")
    if text.get("hidden_act", "silu") != "silu" or text.get("attention_bias", False):
        raise ConfigError(f"{source}: text hidden_act {text.get('hidden_act')!r} / attention_bias "
                          f"{text.get('attention_bias')!r}: only silu without bias is built here")
    if vision.get("hidden_act", "gelu_pytorch_tanh") != "gelu_pytorch_tanh":
        raise ConfigError(f"{source}: vision hidden_act {vision.get('hidden_act')!r} is not "
                          "gelu_pytorch_tanh")
    rope = text.get("rope_parameters") or text.get("rope_scaling") or {}
    rope_theta = rope.get("rope_theta", text.get("rope_theta", 5_000_000.0))
    if rope.get("rope_type", "default") != "default":
        raise ConfigError(f"{source}: text rope_type {rope.get('rope_type')!r} (only 'default')")
    layers = int(_need(text, "num_hidden_layers", source, "text_config"))
    keep = layers if select_layer is None else int(select_layer)
    if not 0 < keep <= layers:
        raise ConfigError(f"{source}: select_layer {select_layer} outside the {layers} text layers")
    heads = int(_need(text, "num_attention_heads", source, "text_config"))
    hidden = int(_need(text, "hidden_size", source, "text_config"))
    try:
        t = Qwen3VLTextConfig(
            vocab_size=int(_need(text, "vocab_size", source, "text_config")), hidden_size=hidden,
            intermediate_size=int(_need(text, "intermediate_size", source, "text_config")),
            num_layers=keep, num_heads=heads,
            num_kv_heads=int(text.get("num_key_value_heads") or heads),
            head_dim=int(text.get("head_dim") or hidden // heads),
            rope_theta=float(rope_theta), rms_norm_eps=float(text.get("rms_norm_eps", 1e-6)),
            mrope_section=tuple(rope.get("mrope_section", (24, 20, 20))))
        v = Qwen3VLVisionConfig(
            hidden_size=int(_need(vision, "hidden_size", source, "vision_config")),
            intermediate_size=int(_need(vision, "intermediate_size", source, "vision_config")),
            num_layers=int(_need(vision, "depth", source, "vision_config")),
            num_heads=int(_need(vision, "num_heads", source, "vision_config")),
            patch_size=int(vision.get("patch_size", 16)),
            temporal_patch_size=int(vision.get("temporal_patch_size", 2)),
            spatial_merge_size=int(vision.get("spatial_merge_size", 2)),
            num_channels=int(vision.get("in_channels", 3)),
            out_hidden_size=int(_need(vision, "out_hidden_size", source, "vision_config")),
            num_position_embeddings=int(vision.get("num_position_embeddings", 2304)),
            deepstack_visual_indexes=tuple(vision.get("deepstack_visual_indexes", (8, 16, 24))))
        return Qwen3VLConfig(
            vision=v, text=t, image_size=image_size,
            image_token_id=int(data.get("image_token_id", 151655)),
            video_token_id=int(data.get("video_token_id", 151656)),
            vision_start_token_id=int(data.get("vision_start_token_id", 151652)),
            vision_end_token_id=int(data.get("vision_end_token_id", 151653)))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{source}: {e}") from e


def _check_n17_representable(cfg: GR00TConfig) -> None:
    """lerobot's GR00TN17 fixes what our config leaves free; refuse what it cannot build."""
    head, dit, vl = cfg.action_head, cfg.action_head.dit, cfg.action_head.vl_self_attention
    problems = []
    if head.num_future_tokens:
        problems.append(f"num_future_tokens={head.num_future_tokens} (N1.7 has none)")
    if (dit.norm_eps, dit.final_norm_eps, dit.timestep_channels) != (1e-5, 1e-6, 256):
        problems.append(f"DiT norm_eps/final_norm_eps/timestep_channels = {dit.norm_eps}/"
                        f"{dit.final_norm_eps}/{dit.timestep_channels} (lerobot: 1e-5/1e-6/256)")
    if vl.norm_eps != 1e-5:
        problems.append(f"VL self-attention norm_eps={vl.norm_eps} (lerobot: 1e-5)")
    if not dit.interleave_self_attention and dit.attend_text_every_n_blocks is not None:
        problems.append("AlternateVLDiT without interleaved self-attention")
    if head.time_sampling != "n1_7":
        problems.append(f"time_sampling={head.time_sampling!r} (lerobot N1.7 trains with n1_7)")
    if problems:
        raise ConfigError(f"{cfg.name}: lerobot's GR00TN17 cannot represent " + "; ".join(problems))


def to_n17_json(cfg: GR00TConfig, torch_dtype: str = "float32", *,
                model_name: str = COSMOS_REASON2_2B) -> dict:
    """config.json as lerobot 0.6.1's `GR00TN17.save_pretrained` writes it (every
    GR00T_N1_7_DEFAULTS key, transformers' bookkeeping), with our values and our full config
    under `groot_jax`. Processor-only fields (image sizes, percentiles, ...) keep lerobot's
    defaults except the frame size: `processor_config.json` is what lerobot's processor reads."""
    _check_n17_representable(cfg)
    head, dit, vl = cfg.action_head, cfg.action_head.dit, cfg.action_head.vl_self_attention
    side = cfg.backbone.image_size
    alternate = dit.attend_text_every_n_blocks is not None
    return {
        "architectures": [N17_ARCHITECTURE], "model_type": N17_MODEL_TYPE,
        "model_name": model_name, "backbone_model_type": "qwen", "model_revision": None,
        "dtype": torch_dtype, "model_dtype": torch_dtype,
        "transformers_version": LEROBOT_TRANSFORMERS,
        "select_layer": cfg.backbone.text.num_layers,
        "backbone_embedding_dim": head.backbone_embedding_dim,
        "tune_top_llm_layers": 0, "tune_llm": False, "tune_visual": False,
        "reproject_vision": False, "use_flash_attention": False, "load_bf16": False,
        "backbone_trainable_params_fp32": True,
        "image_crop_size": [round(side * 230 / 256)] * 2, "image_target_size": [side, side],
        "shortest_image_edge": None, "crop_fraction": None, "random_rotation_angle": None,
        "color_jitter_params": None, "use_albumentations_transforms": True,
        "extra_augmentation_config": None, "formalize_language": True,
        "apply_sincos_state_encoding": False, "use_percentiles": True,
        "use_relative_action": False,
        "max_state_dim": head.max_state_dim, "max_action_dim": head.action_dim,
        "action_horizon": head.action_horizon, "hidden_size": head.hidden_size,
        "input_embedding_dim": head.input_embedding_dim, "state_history_length": 1,
        "add_pos_embed": head.add_pos_embed, "attn_dropout": 0.2, "use_vlln": head.use_vlln,
        "max_seq_len": head.max_seq_len, "use_alternate_vl_dit": alternate,
        "attend_text_every_n_blocks": dit.attend_text_every_n_blocks if alternate else 2,
        "diffusion_model_cfg": {
            "positional_embeddings": None, "num_layers": dit.num_layers,
            "num_attention_heads": dit.num_heads, "attention_head_dim": dit.head_dim,
            "norm_type": "ada_norm", "dropout": dit.dropout, "final_dropout": True,
            "output_dim": dit.output_dim,
            "interleave_self_attention": dit.interleave_self_attention},
        "vl_self_attention_cfg": {
            "positional_embeddings": None,
            "num_layers": vl.num_layers if head.use_vlln else 0,
            "num_attention_heads": vl.num_heads, "attention_head_dim": vl.head_dim,
            "dropout": vl.dropout, "final_dropout": True},
        "num_inference_timesteps": head.num_inference_timesteps,
        "noise_beta_alpha": head.noise_beta_alpha, "noise_beta_beta": head.noise_beta_beta,
        "noise_s": head.noise_s, "num_timestep_buckets": head.num_timestep_buckets,
        "tune_projector": True, "tune_diffusion_model": True, "tune_vlln": True,
        "state_dropout_prob": head.state_dropout_prob, "exclude_state": False,
        "use_mean_std": False, "max_num_embodiments": head.max_num_embodiments,
        "rtc_ramp_rate": 6.0,
        "groot_jax": config_to_dict(cfg),
    }


def _backbone_json(model_name: str, source: str, base_dir) -> tuple[dict, str]:
    """The Qwen3-VL config.json `model_name` names: as given, then under the checkpoint."""
    candidates = [Path(model_name).expanduser()]
    if base_dir is not None:
        candidates += [Path(base_dir) / model_name, Path(base_dir) / QWEN3_VL_DIR,
                       Path(base_dir) / Path(model_name).name]
    for c in candidates:
        path = c / "config.json" if c.is_dir() else c
        if path.name == "config.json" and path.is_file():
            try:
                return json.loads(path.read_text()), str(path)
            except json.JSONDecodeError as e:
                raise ConfigError(f"{path}: not valid JSON ({e})") from e
    raise ConfigError(
        f"{source}: model_name {model_name!r} is neither {COSMOS_REASON2_2B!r} nor a directory "
        f"with a Qwen3-VL config.json (looked in {[str(c) for c in candidates]}); the backbone "
        "sizes are unknown: pass --preset, or put that config beside the checkpoint as "
        f"{QWEN3_VL_DIR}/config.json")


def from_n17_json(data: dict, *, source: str = "config.json", base_dir=None) -> GR00TConfig:
    """Our config for a lerobot / Isaac-GR00T N1.7 config.json without our `groot_jax` key:
    lerobot's defaults (GR00T_N1_7_DEFAULTS = ActionHeadConfig.n1_7()) under its values, the
    backbone from `model_name` (Cosmos-Reason2-2B, or a Qwen3-VL config directory)."""
    if int(data.get("state_history_length", 1)) != 1:
        raise ConfigError(f"{source}: state_history_length {data['state_history_length']} "
                          "(only 1 is built here)")
    if data.get("apply_sincos_state_encoding") or data.get("exclude_state"):
        raise ConfigError(f"{source}: apply_sincos_state_encoding / exclude_state are not built "
                          "here")
    target = data.get("image_target_size") or [256, 256]
    if len(target) != 2 or target[0] != target[1]:
        raise ConfigError(f"{source}: image_target_size {target}: our model takes square frames")
    select_layer = data.get("select_layer", 16)
    model_name = str(data.get("model_name") or COSMOS_REASON2_2B)
    if model_name.rstrip("/") == COSMOS_REASON2_2B:
        qwen = Qwen3VLConfig.cosmos_reason2_2b(image_size=int(target[0]))
        if not 0 < select_layer <= qwen.text.num_layers:
            raise ConfigError(f"{source}: select_layer {select_layer} outside Cosmos-Reason2-2B's "
                              f"{qwen.text.num_layers} text layers")
        backbone = dataclasses.replace(qwen, text=dataclasses.replace(qwen.text,
                                                                      num_layers=select_layer))
        name = "n1_7_3b" if select_layer == 16 else "n1_7_from_checkpoint"
    else:
        hf, hf_source = _backbone_json(model_name, source, base_dir)
        backbone = from_qwen3_vl_hf_json(hf, select_layer=select_layer,
                                         image_size=int(target[0]), source=hf_source)
        name = "n1_7_from_checkpoint"
    base = ActionHeadConfig.n1_7()
    dit_json = data.get("diffusion_model_cfg") or {}
    vl_json = data.get("vl_self_attention_cfg") or {}
    alternate = data.get("use_alternate_vl_dit", True)
    emb = data.get("backbone_embedding_dim", base.backbone_embedding_dim)
    try:
        dit = _replace(base.dit, dit_json, source, DIT_NAMES, cross_attention_dim=emb,
            attend_text_every_n_blocks=data.get("attend_text_every_n_blocks", 2) if alternate
            else None)
        use_vlln = data.get("use_vlln", True)
        vl = _replace(base.vl_self_attention, vl_json, source, VL_SELF_ATTENTION_NAMES)
        head = _replace(base, data, source, {
            **HEAD_NAMES, "state_dropout_prob": "state_dropout_prob"},
            use_vlln=bool(use_vlln), dit=dit, vl_self_attention=vl)
        return GR00TConfig(name=name, model_type="gr00t_n1_7", backbone=backbone,
                           action_head=head)
    except ValueError as e:
        raise ConfigError(f"{source}: {e}") from e

