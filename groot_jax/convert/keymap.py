"""One declarative table: PyTorch GR00T state-dict key <-> our parameter path (+ transform).

Torch keys are those of the released checkpoint (spec 7, `n15_checkpoint_keys.tsv`). Our paths
index the nested dict of `nnx.State` (see `groot_jax.models`). Layers that we stack for
`lax.scan` take one torch key per layer: `Entry.layer` is the index on the stacked axis.

Transforms: `linear` = torch Linear weight [out, in] <-> our kernel [in, out]; `conv` = torch
Conv2d [out, in, kh, kw] <-> ours [kh, kw, in, out]; `conv3d` = torch Conv3d [out, in, kt, kh,
kw] <-> ours [kt, kh, kw, in, out]; `copy` = same layout.
"""
from __future__ import annotations

import dataclasses
from typing import Iterator

import numpy as np

from groot_jax.config import (
    ActionHeadConfig,
    DiTConfig,
    EagleConfig,
    GR00TConfig,
    LlmConfig,
    Qwen3VLConfig,
    Qwen3VLVisionConfig,
    SiglipConfig,
)

Path = tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Entry:
    torch_key: str
    path: Path
    layer: int | None = None
    kind: str = "copy"  # 'copy' | 'linear' | 'conv' | 'conv3d'


def to_ours(kind: str, array: np.ndarray) -> np.ndarray:
    if kind == "linear":
        return array.T
    if kind == "conv":
        return array.transpose(2, 3, 1, 0)
    if kind == "conv3d":
        return array.transpose(2, 3, 4, 1, 0)
    return array


def to_torch(kind: str, array: np.ndarray) -> np.ndarray:
    if kind == "linear":
        return array.T
    if kind == "conv":
        return array.transpose(3, 2, 0, 1)
    if kind == "conv3d":
        return array.transpose(4, 3, 0, 1, 2)
    return array


def torch_shape(kind: str, our_shape: tuple[int, ...]) -> tuple[int, ...]:
    if kind == "linear":
        return tuple(reversed(our_shape))
    if kind == "conv":
        return tuple(our_shape[i] for i in (3, 2, 0, 1))
    if kind == "conv3d":
        return tuple(our_shape[i] for i in (4, 3, 0, 1, 2))
    return tuple(our_shape)


def _dense(tk: str, path: Path, layer=None, bias: bool = True) -> Iterator[Entry]:
    yield Entry(f"{tk}.weight", (*path, "kernel"), layer, "linear")
    if bias:
        yield Entry(f"{tk}.bias", (*path, "bias"), layer)


def _norm(tk: str, path: Path, layer=None, bias: bool = True) -> Iterator[Entry]:
    yield Entry(f"{tk}.weight", (*path, "scale"), layer)
    if bias:
        yield Entry(f"{tk}.bias", (*path, "bias"), layer)


def siglip_entries(cfg: SiglipConfig, tk: str, path: Path) -> Iterator[Entry]:
    """`tk` = torch prefix of HF `SiglipVisionTransformer` (e.g. 'vision_model.')."""
    yield Entry(f"{tk}embeddings.patch_embedding.weight", (*path, "patch_kernel"), None, "conv")
    yield Entry(f"{tk}embeddings.patch_embedding.bias", (*path, "patch_bias"))
    yield Entry(f"{tk}embeddings.position_embedding.weight", (*path, "position_embedding"))
    lp = (*path, "layers")
    for i in range(cfg.num_layers):
        t = f"{tk}encoder.layers.{i}."
        yield from _norm(f"{t}layer_norm1", (*lp, "layer_norm1"), i)
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            yield from _dense(f"{t}self_attn.{name}", (*lp, name), i)
        yield from _norm(f"{t}layer_norm2", (*lp, "layer_norm2"), i)
        yield from _dense(f"{t}mlp.fc1", (*lp, "fc1"), i)
        yield from _dense(f"{t}mlp.fc2", (*lp, "fc2"), i)
    yield from _norm(f"{tk}post_layernorm", (*path, "post_layernorm"))
    if cfg.has_pooling_head:
        hp = (*path, "head")
        yield Entry(f"{tk}head.probe", (*hp, "probe"))
        yield Entry(f"{tk}head.attention.in_proj_weight", (*hp, "in_proj", "kernel"), None, "linear")
        yield Entry(f"{tk}head.attention.in_proj_bias", (*hp, "in_proj", "bias"))
        yield from _dense(f"{tk}head.attention.out_proj", (*hp, "out_proj"))
        yield from _norm(f"{tk}head.layernorm", (*hp, "layernorm"))
        yield from _dense(f"{tk}head.mlp.fc1", (*hp, "fc1"))
        yield from _dense(f"{tk}head.mlp.fc2", (*hp, "fc2"))


def llm_entries(cfg: LlmConfig, tk: str, path: Path) -> Iterator[Entry]:
    """`tk` = torch prefix of HF `Qwen3Model` / `LlamaModel` (e.g. 'language_model.model.')."""
    yield Entry(f"{tk}embed_tokens.weight", (*path, "embed_tokens"))
    lp = (*path, "layers")
    for i in range(cfg.num_layers):
        t = f"{tk}layers.{i}."
        yield from _norm(f"{t}input_layernorm", (*lp, "input_layernorm"), i, bias=False)
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            yield from _dense(f"{t}self_attn.{name}", (*lp, name), i, bias=False)
        if cfg.qk_norm:
            yield from _norm(f"{t}self_attn.q_norm", (*lp, "q_norm"), i, bias=False)
            yield from _norm(f"{t}self_attn.k_norm", (*lp, "k_norm"), i, bias=False)
        yield from _norm(f"{t}post_attention_layernorm", (*lp, "post_attention_layernorm"), i,
                         bias=False)
        for name in ("gate_proj", "up_proj", "down_proj"):
            yield from _dense(f"{t}mlp.{name}", (*lp, name), i, bias=False)
    yield from _norm(f"{tk}norm", (*path, "norm"), bias=False)


def eagle_entries(cfg: EagleConfig, tk: str, path: Path) -> Iterator[Entry]:
    """`tk` = 'backbone.eagle_model.' (N1.5) or 'backbone.model.' (N1)."""
    yield from siglip_entries(cfg.vision, f"{tk}vision_model.vision_model.", (*path, "vision"))
    mp = (*path, "mlp1")
    if cfg.use_pixel_shuffle:  # N1: Sequential(LayerNorm, Linear, GELU, Linear)
        yield from _norm(f"{tk}mlp1.0", (*mp, "norm"))
        yield from _dense(f"{tk}mlp1.1", (*mp, "fc1"))
        yield from _dense(f"{tk}mlp1.3", (*mp, "fc2"))
    else:  # N1.5: Sequential(Linear)
        yield from _dense(f"{tk}mlp1.0", mp)
    yield from llm_entries(cfg.llm, f"{tk}language_model.model.", (*path, "llm"))


def qwen3_vl_vision_entries(cfg: Qwen3VLVisionConfig, tk: str, path: Path) -> Iterator[Entry]:
    """`tk` = torch prefix of HF `Qwen3VLVisionModel` (e.g. 'visual.'); fused qkv as in HF."""
    yield Entry(f"{tk}patch_embed.proj.weight", (*path, "patch_kernel"), None, "conv3d")
    yield Entry(f"{tk}patch_embed.proj.bias", (*path, "patch_bias"))
    yield Entry(f"{tk}pos_embed.weight", (*path, "pos_embed"))
    bp = (*path, "blocks")
    for i in range(cfg.num_layers):
        t = f"{tk}blocks.{i}."
        yield from _norm(f"{t}norm1", (*bp, "norm1"), i)
        yield from _norm(f"{t}norm2", (*bp, "norm2"), i)
        yield from _dense(f"{t}attn.qkv", (*bp, "qkv"), i)
        yield from _dense(f"{t}attn.proj", (*bp, "proj"), i)
        yield from _dense(f"{t}mlp.linear_fc1", (*bp, "linear_fc1"), i)
        yield from _dense(f"{t}mlp.linear_fc2", (*bp, "linear_fc2"), i)
    mergers = [("merger", (*path, "merger"))] + [
        (f"deepstack_merger_list.{j}", (*path, "deepstack_merger_list", j))
        for j in range(len(cfg.deepstack_visual_indexes))]
    for key, mp in mergers:
        yield from _norm(f"{tk}{key}.norm", (*mp, "norm"))
        yield from _dense(f"{tk}{key}.linear_fc1", (*mp, "linear_fc1"))
        yield from _dense(f"{tk}{key}.linear_fc2", (*mp, "linear_fc2"))


def qwen3_vl_entries(cfg: Qwen3VLConfig, tk: str, path: Path) -> Iterator[Entry]:
    """`tk` = torch prefix of HF `Qwen3VLModel` ('backbone.model.model.' in GR00T N1.7): the
    vision tower (`visual.`) and the text decoder's kept layers (`language_model.`)."""
    yield from qwen3_vl_vision_entries(cfg.vision, f"{tk}visual.", (*path, "vision"))
    yield from llm_entries(cfg.text, f"{tk}language_model.", (*path, "text"))


def _dit_block(cfg: DiTConfig, tk: str, path: Path, layer: int) -> Iterator[Entry]:
    yield from _dense(f"{tk}norm1.linear", (*path, "norm1_linear"), layer)
    for name in ("to_q", "to_k", "to_v"):
        yield from _dense(f"{tk}attn1.{name}", (*path, "attn", name), layer)
    yield from _dense(f"{tk}attn1.to_out.0", (*path, "attn", "to_out"), layer)
    yield from _dense(f"{tk}ff.net.0.proj", (*path, "ff", "proj_in"), layer)
    yield from _dense(f"{tk}ff.net.2", (*path, "ff", "proj_out"), layer)


def action_head_entries(cfg: ActionHeadConfig, tk: str, path: Path) -> Iterator[Entry]:
    """The flow-matching head of N1 / N1.5 and, with `ActionHeadConfig.n1_7()` (no future
    tokens; the AlternateVLDiT keeps the DiT's key layout, odd blocks self-attention), GR00T
    N1.7: with tk='action_head.' exactly the 537 `action_head.*` tensors of the N1.7 checkpoint
    (../shared/spec/n17_checkpoint_keys.txt; tests/unit/test_n17_action_head.py)."""
    dit, dp = cfg.dit, (*path, "model")
    te = f"{tk}model.timestep_encoder.timestep_embedder."
    yield from _dense(f"{te}linear_1", (*dp, "timestep_encoder", "linear_1"))
    yield from _dense(f"{te}linear_2", (*dp, "timestep_encoder", "linear_2"))
    for b in range(dit.num_layers):
        t = f"{tk}model.transformer_blocks.{b}."
        if dit.interleave_self_attention:
            group = "self_blocks" if b % 2 else "cross_blocks"
            yield from _dit_block(dit, t, (*dp, group), b // 2)
        else:
            yield from _dit_block(dit, t, (*dp, "cross_blocks"), b)
    yield from _dense(f"{tk}model.proj_out_1", (*dp, "proj_out_1"))
    yield from _dense(f"{tk}model.proj_out_2", (*dp, "proj_out_2"))
    if cfg.use_vlln:
        vp = (*path, "vl_self_attention", "blocks")
        for b in range(cfg.vl_self_attention.num_layers):
            t = f"{tk}vl_self_attention.transformer_blocks.{b}."
            yield from _norm(f"{t}norm1", (*vp, "norm1"), b)
            for name in ("to_q", "to_k", "to_v"):
                yield from _dense(f"{t}attn1.{name}", (*vp, "attn", name), b)
            yield from _dense(f"{t}attn1.to_out.0", (*vp, "attn", "to_out"), b)
            yield from _norm(f"{t}norm3", (*vp, "norm3"), b)
            yield from _dense(f"{t}ff.net.0.proj", (*vp, "ff", "proj_in"), b)
            yield from _dense(f"{t}ff.net.2", (*vp, "ff", "proj_out"), b)
        yield from _norm(f"{tk}vlln", (*path, "vlln"))
    for mlp in ("state_encoder", "action_decoder"):
        for layer in ("layer1", "layer2"):
            for leaf in ("W", "b"):
                yield Entry(f"{tk}{mlp}.{layer}.{leaf}", (*path, mlp, layer, leaf))
    for layer in ("W1", "W2", "W3"):
        for leaf in ("W", "b"):
            yield Entry(f"{tk}action_encoder.{layer}.{leaf}", (*path, "action_encoder", layer, leaf))
    if cfg.num_future_tokens:
        yield Entry(f"{tk}future_tokens.weight", (*path, "future_tokens"))
    if cfg.add_pos_embed:
        yield Entry(f"{tk}position_embedding.weight", (*path, "position_embedding"))


BACKBONE_PREFIX = {"gr00t_n1_5": "backbone.eagle_model.", "gr00t_n1": "backbone.model.",
                   "gr00t_n1_7": "backbone.model.model."}


def backbone_prefix(cfg: GR00TConfig) -> str:
    return BACKBONE_PREFIX[cfg.model_type]


def backbone_entries(cfg: GR00TConfig) -> list[Entry]:
    bb = cfg.backbone
    if isinstance(bb, Qwen3VLConfig):
        return list(qwen3_vl_entries(bb, backbone_prefix(cfg), ("backbone",)))
    entries = list(eagle_entries(bb, backbone_prefix(cfg), ("backbone",)))
    if bb.project_to_dim:
        entries += list(_dense("backbone.linear", ("backbone", "projection")))
    return entries


def gr00t_entries(cfg: GR00TConfig) -> list[Entry]:
    """Every tensor of a GR00T checkpoint for `cfg`, in checkpoint order."""
    entries = backbone_entries(cfg)
    entries += list(action_head_entries(cfg.action_head, "action_head.", ("action_head",)))
    return entries


def ignorable_keys(cfg: GR00TConfig) -> set[str]:
    """Checkpoint keys accepted and dropped on import: the tied LM head (spec 7.2; N1.7 spec
    1.5: `backbone.model.lm_head.weight`, outside the `backbone.model.model.` root)."""
    if cfg.model_type == "gr00t_n1_7":
        return {"backbone.model.lm_head.weight"}
    return {f"{backbone_prefix(cfg)}language_model.lm_head.weight"}
