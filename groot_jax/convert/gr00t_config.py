"""The Isaac-GR00T / lerobot `config.json` of a checkpoint <-> our `GR00TConfig`.

The released config.json holds `backbone_cfg` and `action_head_cfg` (spec 2.1) but not the Eagle
VLM sizes, which the original always takes from its vendored Eagle config (spec 2.2). So an
Isaac-GR00T directory is read as the preset of its model_type with the config.json values
applied; the tensor shapes are then checked against it. Directories we export also carry our
full config under the extra key `groot_jax`, which the PyTorch side ignores.
"""
from __future__ import annotations

import dataclasses

from groot_jax.config import GR00TConfig, config_from_dict, config_to_dict

MODEL_TYPES = {"gr00t_n1_5": "n1_5_3b", "gr00t_n1": "n1_2b"}
EAGLE_PATH_N15 = "NVEagle/eagle_er-qwen3_1_7B-Siglip2_400M_stage1_5_128gpu_er_v7_1mlp_nops"


class ConfigError(ValueError):
    """A checkpoint's config.json cannot describe a model we build."""


def to_gr00t_json(cfg: GR00TConfig, torch_dtype: str = "float32") -> dict:
    """config.json in the released layout (model_type, backbone_cfg, action_head_cfg)."""
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
                    expect: GR00TConfig | None = None) -> GR00TConfig:
    """Our config for a checkpoint's config.json; `expect` (a config the caller asked for) must
    agree with the checkpoint's model type."""
    model_type = data.get("model_type")
    if model_type not in MODEL_TYPES:
        raise ConfigError(f"{source}: model_type {model_type!r} is not a GR00T checkpoint "
                          f"(expected one of {sorted(MODEL_TYPES)})")
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
    from groot_jax.config import preset

    cfg = preset(MODEL_TYPES[model_type])
    head_json, bb_json = data.get("action_head_cfg") or {}, data.get("backbone_cfg") or {}
    dit_json = head_json.get("diffusion_model_cfg") or {}
    vl_json = head_json.get("vl_self_attention_cfg") or {}
    dit = _replace(cfg.action_head.dit, dit_json, source, {
        "attention_head_dim": "head_dim", "cross_attention_dim": "cross_attention_dim",
        "dropout": "dropout", "interleave_self_attention": "interleave_self_attention",
        "num_attention_heads": "num_heads", "num_layers": "num_layers", "output_dim": "output_dim"})
    vl = _replace(cfg.action_head.vl_self_attention, vl_json, source, {
        "attention_head_dim": "head_dim", "dropout": "dropout",
        "num_attention_heads": "num_heads", "num_layers": "num_layers"})
    head = _replace(cfg.action_head, head_json, source, {
        "max_action_dim": "action_dim", "action_horizon": "action_horizon",
        "add_pos_embed": "add_pos_embed", "backbone_embedding_dim": "backbone_embedding_dim",
        "hidden_size": "hidden_size", "input_embedding_dim": "input_embedding_dim",
        "max_state_dim": "max_state_dim", "max_num_embodiments": "max_num_embodiments",
        "max_seq_len": "max_seq_len", "noise_beta_alpha": "noise_beta_alpha",
        "noise_beta_beta": "noise_beta_beta", "noise_s": "noise_s",
        "num_inference_timesteps": "num_inference_timesteps",
        "num_target_vision_tokens": "num_future_tokens",
        "num_timestep_buckets": "num_timestep_buckets", "use_vlln": "use_vlln"},
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
