"""Model configuration: frozen dataclasses and named presets.

Every size comes from here, so `GR00TConfig.tiny()` is tiny all the way down. Numbers for the
released models follow ../shared/spec/groot_n15.md (section numbers cited inline).
"""
from __future__ import annotations

import dataclasses
import difflib
from typing import Literal


def _positive(owner: str, **fields: int) -> None:
    for name, value in fields.items():
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"{owner}.{name} must be a positive int, got {value!r}")


# Rematerialisation of a scanned layer stack in the backward pass: "none", "full" (recompute
# everything) or "dots" (keep matmul outputs); groot_jax.models.layers.REMAT_POLICIES maps the
# names to jax.checkpoint policies. A trace-time choice: parameters and numerics are unchanged.
# Each tower that scans its layers has the field; GR00TConfig.with_remat sets them all.
REMAT = ("none", "full", "dots")
Remat = Literal["none", "full", "dots"]


def _check_remat(owner: str, value: str) -> None:
    if value not in REMAT:
        raise ValueError(f"{owner}.remat must be none|full|dots, got {value!r}")


@dataclasses.dataclass(frozen=True)
class SiglipConfig:
    """SigLIP vision tower (HF `SiglipVisionModel`), spec 2.2 / 3.6."""

    hidden_size: int = 1152
    intermediate_size: int = 4304
    num_layers: int = 27
    num_heads: int = 16
    image_size: int = 224
    patch_size: int = 14
    num_channels: int = 3
    layer_norm_eps: float = 1e-6
    # N1.5 keeps the (unused) attention-pooling head in its checkpoint; N1 replaced it by Identity.
    has_pooling_head: bool = True
    remat: Remat = "none"

    def __post_init__(self):
        _check_remat("SiglipConfig", self.remat)
        _positive("SiglipConfig", hidden_size=self.hidden_size, num_layers=self.num_layers,
                  num_heads=self.num_heads, image_size=self.image_size, patch_size=self.patch_size)
        if self.hidden_size % self.num_heads:
            raise ValueError(f"SiglipConfig.hidden_size={self.hidden_size} is not divisible by "
                             f"num_heads={self.num_heads}")
        if self.image_size % self.patch_size:
            raise ValueError(f"SiglipConfig.image_size={self.image_size} is not a multiple of "
                             f"patch_size={self.patch_size}")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def grid_size(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid_size**2


@dataclasses.dataclass(frozen=True)
class LlmConfig:
    """Decoder LLM truncated to its first `num_layers` layers (GR00T's `select_layer`).

    `variant="qwen3"` adds per-head q/k RMSNorm before RoPE (N1.5); `"llama"` is SmolLM2 (N1).
    """

    variant: Literal["qwen3", "llama"] = "qwen3"
    vocab_size: int = 151680
    hidden_size: int = 2048
    intermediate_size: int = 6144
    num_layers: int = 12
    num_heads: int = 16
    num_kv_heads: int = 8
    head_dim: int = 128
    rope_theta: float = 1_000_000.0
    rms_norm_eps: float = 1e-6
    remat: Remat = "none"

    def __post_init__(self):
        _check_remat("LlmConfig", self.remat)
        if self.variant not in ("qwen3", "llama"):
            raise ValueError(f"LlmConfig.variant must be 'qwen3' or 'llama', got {self.variant!r}")
        _positive("LlmConfig", vocab_size=self.vocab_size, hidden_size=self.hidden_size,
                  num_layers=self.num_layers, num_heads=self.num_heads,
                  num_kv_heads=self.num_kv_heads, head_dim=self.head_dim)
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"LlmConfig.num_heads={self.num_heads} is not a multiple of "
                             f"num_kv_heads={self.num_kv_heads}")

    @property
    def qk_norm(self) -> bool:
        return self.variant == "qwen3"


@dataclasses.dataclass(frozen=True)
class EagleConfig:
    """Eagle VLM backbone: vision tower -> connector (`mlp1`) -> LLM (spec 3, 11)."""

    vision: SiglipConfig = SiglipConfig()
    llm: LlmConfig = LlmConfig()
    image_token_index: int = 151669
    # N1: pixel shuffle (ratio 0.5) and LayerNorm-MLP connector; N1.5: neither, Linear connector.
    use_pixel_shuffle: bool = False
    downsample_ratio: float = 0.5
    # N1 projects backbone features to the action head width (`backbone.linear`); N1.5 does not.
    project_to_dim: int | None = None

    def __post_init__(self):
        if not 0 <= self.image_token_index < self.llm.vocab_size:
            raise ValueError(f"EagleConfig.image_token_index={self.image_token_index} is outside "
                             f"the vocabulary (size {self.llm.vocab_size})")
        if self.use_pixel_shuffle:
            scale = round(1 / self.downsample_ratio)
            if abs(scale * self.downsample_ratio - 1) > 1e-9 or self.vision.grid_size % scale:
                raise ValueError(f"EagleConfig.downsample_ratio={self.downsample_ratio} must be 1/k "
                                 f"with k dividing the {self.vision.grid_size}-patch grid")

    @property
    def shuffle_factor(self) -> int:
        return round(1 / self.downsample_ratio) if self.use_pixel_shuffle else 1

    @property
    def tokens_per_image(self) -> int:
        return self.vision.num_patches // self.shuffle_factor**2

    @property
    def connector_in_dim(self) -> int:
        return self.vision.hidden_size * self.shuffle_factor**2

    @property
    def feature_dim(self) -> int:
        return self.project_to_dim or self.llm.hidden_size

    # ---- the backbone protocol (see `BackboneConfig`) -------------------------------------
    prompt_format = "eagle"

    @property
    def image_size(self) -> int:
        return self.vision.image_size

    @property
    def image_token_id(self) -> int:
        return self.image_token_index

    @property
    def vocab_size(self) -> int:
        return self.llm.vocab_size

    def with_vocab(self, vocab_size: int, image_token_id: int, **special_ids: int) -> EagleConfig:
        """This backbone with a tokenizer's vocabulary and image-placeholder id (Eagle has no
        other special ids in its config: `special_ids` must be empty)."""
        if special_ids:
            raise ValueError(f"EagleConfig has no special-token fields {sorted(special_ids)}")
        return dataclasses.replace(self, llm=dataclasses.replace(self.llm, vocab_size=vocab_size),
                                   image_token_index=image_token_id)

    def with_remat(self, remat: Remat) -> EagleConfig:
        return dataclasses.replace(self, vision=dataclasses.replace(self.vision, remat=remat),
                                   llm=dataclasses.replace(self.llm, remat=remat))


@dataclasses.dataclass(frozen=True)
class Qwen3VLVisionConfig:
    """Qwen3-VL vision tower (HF `Qwen3VLVisionModel`), N1.7 spec 1.1. Defaults: Cosmos-Reason2-2B.

    `num_layers` is HF `depth`, `num_channels` HF `in_channels`. A merged token covers
    `spatial_merge_size`^2 patches; `deepstack_visual_indexes` are 0-based block indexes whose
    outputs pass their own merger and are added to the LLM after its first layers."""

    hidden_size: int = 1024
    intermediate_size: int = 4096
    num_layers: int = 24
    num_heads: int = 16
    patch_size: int = 16
    temporal_patch_size: int = 2
    spatial_merge_size: int = 2
    num_channels: int = 3
    out_hidden_size: int = 2048
    num_position_embeddings: int = 2304
    deepstack_visual_indexes: tuple[int, ...] = (5, 11, 17)
    rope_theta: float = 10_000.0
    layer_norm_eps: float = 1e-6
    remat: Remat = "none"

    def __post_init__(self):
        _check_remat("Qwen3VLVisionConfig", self.remat)
        _positive("Qwen3VLVisionConfig", hidden_size=self.hidden_size, num_layers=self.num_layers,
                  num_heads=self.num_heads, patch_size=self.patch_size,
                  temporal_patch_size=self.temporal_patch_size,
                  spatial_merge_size=self.spatial_merge_size, out_hidden_size=self.out_hidden_size)
        if self.hidden_size % self.num_heads or self.head_dim % 4:
            raise ValueError(f"Qwen3VLVisionConfig.hidden_size={self.hidden_size} must split into "
                             f"num_heads={self.num_heads} heads of a multiple of 4 (2-D RoPE)")
        side = round(self.num_position_embeddings**0.5)
        if side * side != self.num_position_embeddings:
            raise ValueError(f"Qwen3VLVisionConfig.num_position_embeddings="
                             f"{self.num_position_embeddings} is not a square grid")
        idx = tuple(self.deepstack_visual_indexes)
        if list(idx) != sorted(set(idx)) or any(not 0 <= i < self.num_layers for i in idx):
            raise ValueError(f"Qwen3VLVisionConfig.deepstack_visual_indexes={idx} must be "
                             f"increasing block indexes in [0, {self.num_layers})")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def patch_dim(self) -> int:
        """Row width of `pixel_values`: C * T * P * P (the processor's flattening order)."""
        return self.num_channels * self.temporal_patch_size * self.patch_size**2

    @property
    def position_grid_side(self) -> int:
        return round(self.num_position_embeddings**0.5)


@dataclasses.dataclass(frozen=True)
class Qwen3VLTextConfig(LlmConfig):
    """Qwen3-VL text decoder (HF `Qwen3VLTextModel`), N1.7 spec 1.1: a Qwen3 decoder (the
    `LlmConfig` fields, `num_layers` = layers kept, i.e. GR00T's `select_layer`) with
    interleaved M-RoPE. `mrope_section` = how many of the head_dim/2 frequencies follow the
    temporal, height and width position rows; the Qwen3-VL layout interleaves them
    (frequency j: row h if j % 3 == 1 and j < 3 * h_section, row w if j % 3 == 2 and
    j < 3 * w_section, else row t). Defaults: Cosmos-Reason2-2B, all 28 layers."""

    vocab_size: int = 151936
    num_layers: int = 28
    rope_theta: float = 5_000_000.0
    mrope_section: tuple[int, int, int] = (24, 20, 20)

    def __post_init__(self):
        super().__post_init__()
        if self.variant != "qwen3":
            raise ValueError(f"Qwen3VLTextConfig.variant must be 'qwen3', got {self.variant!r}")
        if len(self.mrope_section) != 3 or sum(self.mrope_section) != self.head_dim // 2:
            raise ValueError(f"Qwen3VLTextConfig.mrope_section={self.mrope_section} must be 3 "
                             f"numbers summing to head_dim/2 = {self.head_dim // 2}")


@dataclasses.dataclass(frozen=True)
class Qwen3VLConfig:
    """Qwen3-VL backbone (HF `Qwen3VLModel`): vision tower + text decoder + special tokens."""

    vision: Qwen3VLVisionConfig = Qwen3VLVisionConfig()
    text: Qwen3VLTextConfig = Qwen3VLTextConfig()
    image_token_id: int = 151655
    video_token_id: int = 151656
    vision_start_token_id: int = 151652
    vision_end_token_id: int = 151653
    # GR00T feeds square frames of this size (its processor's default resize target, N1.7 spec
    # 4): the grid is static, (1, image_size / patch, image_size / patch). HF's model itself
    # takes any grid.
    image_size: int = 256

    def __post_init__(self):
        px = self.vision.patch_size * self.vision.spatial_merge_size
        if self.image_size <= 0 or self.image_size % px:
            raise ValueError(f"Qwen3VLConfig.image_size={self.image_size} must be a positive "
                             f"multiple of patch_size * spatial_merge_size = {px}")
        if self.vision.out_hidden_size != self.text.hidden_size:
            raise ValueError(f"Qwen3VLConfig: vision.out_hidden_size={self.vision.out_hidden_size} "
                             f"must equal text.hidden_size={self.text.hidden_size}")
        for name in ("image_token_id", "video_token_id", "vision_start_token_id",
                     "vision_end_token_id"):
            if not 0 <= getattr(self, name) < self.text.vocab_size:
                raise ValueError(f"Qwen3VLConfig.{name}={getattr(self, name)} is outside the "
                                 f"vocabulary (size {self.text.vocab_size})")

    # ---- the backbone protocol (see `BackboneConfig`) -------------------------------------
    prompt_format = "qwen3_vl"

    @property
    def grid_thw(self) -> tuple[int, int, int]:
        """The patch grid of one frame (a still image fills the temporal patch by repetition)."""
        side = self.image_size // self.vision.patch_size
        return (1, side, side)

    @property
    def tokens_per_image(self) -> int:
        t, h, w = self.grid_thw
        return t * h * w // self.vision.spatial_merge_size**2

    @property
    def feature_dim(self) -> int:
        return self.text.hidden_size

    @property
    def vocab_size(self) -> int:
        return self.text.vocab_size

    def with_vocab(self, vocab_size: int, image_token_id: int, **special_ids: int) -> Qwen3VLConfig:
        """This backbone with a tokenizer's vocabulary, image-pad id and other special ids
        (`video_token_id`, `vision_start_token_id`, `vision_end_token_id`)."""
        return dataclasses.replace(self, text=dataclasses.replace(self.text, vocab_size=vocab_size),
                                   image_token_id=image_token_id, **special_ids)

    def with_remat(self, remat: Remat) -> Qwen3VLConfig:
        return dataclasses.replace(self, vision=dataclasses.replace(self.vision, remat=remat),
                                   text=dataclasses.replace(self.text, remat=remat))

    @classmethod
    def cosmos_reason2_2b(cls, **overrides) -> Qwen3VLConfig:
        """nvidia/Cosmos-Reason2-2B (Qwen3-VL-2B layout), N1.7 spec 1.1; all 28 text layers
        (GR00T N1.7 keeps 16: `text=dataclasses.replace(cfg.text, num_layers=16)`)."""
        return dataclasses.replace(cls(), **overrides)

    @classmethod
    def tiny(cls, **overrides) -> Qwen3VLConfig:
        """Narrow Qwen3-VL for CPU tests: 4 vision blocks (DeepStack at 1 and 2), 3 text
        layers, head_dim 32 so the M-RoPE interleave has the real shape (15 of 16 frequencies
        on h/w rows, the last on t)."""
        vision = Qwen3VLVisionConfig(hidden_size=32, intermediate_size=64, num_layers=4,
                                     num_heads=2, patch_size=4, out_hidden_size=64,
                                     num_position_embeddings=36, deepstack_visual_indexes=(1, 2))
        text = Qwen3VLTextConfig(vocab_size=256, hidden_size=64, intermediate_size=128,
                                 num_layers=3, num_heads=4, num_kv_heads=2, head_dim=32,
                                 mrope_section=(6, 5, 5))
        return dataclasses.replace(cls(vision=vision, text=text, image_token_id=250,
                                       video_token_id=251, vision_start_token_id=252,
                                       vision_end_token_id=253, image_size=32), **overrides)


@dataclasses.dataclass(frozen=True)
class DiTConfig:
    """Cross-attention DiT of the action head (spec 4.5)."""

    num_layers: int = 16
    num_heads: int = 32
    head_dim: int = 48
    output_dim: int = 1024
    # Width of the VL tokens the even blocks attend to; None means the DiT width (N1).
    cross_attention_dim: int | None = 2048
    interleave_self_attention: bool = True
    dropout: float = 0.2
    norm_eps: float = 1e-5
    final_norm_eps: float = 1e-6
    timestep_channels: int = 256
    remat: Remat = "none"
    # N1.6/N1.7 `AlternateVLDiT` (spec N1.7 1.2): the cross blocks take boolean key masks; block
    # idx with idx % (2n) == 0 attends the valid non-image (text) tokens, the other cross blocks
    # the valid image tokens. None = N1/N1.5 DiT: every cross block attends every VL token.
    attend_text_every_n_blocks: int | None = None

    def __post_init__(self):
        _check_remat("DiTConfig", self.remat)
        _positive("DiTConfig", num_layers=self.num_layers, num_heads=self.num_heads,
                  head_dim=self.head_dim, output_dim=self.output_dim)
        if self.interleave_self_attention and self.num_layers % 2:
            raise ValueError(f"DiTConfig.num_layers={self.num_layers} must be even when cross "
                             "and self attention blocks interleave")
        if self.attend_text_every_n_blocks is not None:
            _positive("DiTConfig", attend_text_every_n_blocks=self.attend_text_every_n_blocks)
            if not self.interleave_self_attention:
                raise ValueError("DiTConfig.attend_text_every_n_blocks (AlternateVLDiT) needs "
                                 "interleave_self_attention=True")

    def cross_block_attends_text(self, cross_index: int) -> bool:
        """With the text/image alternation: whether the `cross_index`-th cross block (DiT block
        2 * cross_index) attends the text tokens (else the image tokens)."""
        n = self.attend_text_every_n_blocks
        return (2 * cross_index) % (2 * n) == 0

    @property
    def inner_dim(self) -> int:
        return self.num_heads * self.head_dim


@dataclasses.dataclass(frozen=True)
class VLSelfAttentionConfig:
    """The 4-block transformer over VL tokens after `vlln` (spec 4.4)."""

    num_layers: int = 4
    num_heads: int = 32
    head_dim: int = 64
    dropout: float = 0.2
    norm_eps: float = 1e-5
    remat: Remat = "none"

    def __post_init__(self):
        _check_remat("VLSelfAttentionConfig", self.remat)


@dataclasses.dataclass(frozen=True)
class FlareConfig:
    """FLARE (Zheng et al., arXiv 2505.15659): the future tokens' hidden states after DiT block
    `layer` pass an MLP projector and are aligned by cosine similarity with embeddings of the
    future observation; loss = flow matching + `weight` * (1 - cos).

    The paper aligns at an intermediate DiT layer with a weight lambda; its exact values could
    not be read in this session, so these defaults (middle block, 0.2) are ours, not the paper's.
    The projector is not part of the GR00T checkpoint layout (export drops it)."""

    enabled: bool = False
    layer: int | None = None      # 0-based DiT block; None = the middle block
    weight: float = 0.2
    projector_hidden: int | None = None   # None = DiT width
    target_dim: int | None = None         # None = backbone_embedding_dim (VLM features)


@dataclasses.dataclass(frozen=True)
class ActionHeadConfig:
    """Flow-matching action head (spec 4, 5, 6)."""

    action_dim: int = 32          # max_action_dim: actions are zero-padded to this
    action_horizon: int = 16
    max_state_dim: int = 64
    hidden_size: int = 1024
    input_embedding_dim: int = 1536
    backbone_embedding_dim: int = 2048
    max_num_embodiments: int = 32
    num_future_tokens: int = 32   # num_target_vision_tokens; 0 for N1
    max_seq_len: int = 1024
    add_pos_embed: bool = True
    use_vlln: bool = True         # vlln + vl_self_attention; False for N1
    dit: DiTConfig = DiTConfig()
    vl_self_attention: VLSelfAttentionConfig = VLSelfAttentionConfig()
    flare: FlareConfig = FlareConfig()
    noise_beta_alpha: float = 1.5
    noise_beta_beta: float = 1.0
    noise_s: float = 0.999
    num_timestep_buckets: int = 1000
    num_inference_timesteps: int = 4
    # Training flow time from u ~ Beta(alpha, beta): "n1_5" t = (s - u) / s (lerobot 0.5.1);
    # "n1_7" t = (1 - u) * s (N1.6 / N1.7, lerobot 0.6.1 GR00TN17ActionHead.sample_time).
    time_sampling: Literal["n1_5", "n1_7"] = "n1_5"
    # Loss denominator: masked sum / (mask.sum() + loss_eps); N1.7 adds 1e-6, N1.5 adds nothing.
    loss_eps: float = 0.0
    # Training only: probability of zeroing a sample's whole state token (N1.7; 0 for N1.5).
    state_dropout_prob: float = 0.0

    def __post_init__(self):
        if self.time_sampling not in ("n1_5", "n1_7"):
            raise ValueError(f"ActionHeadConfig.time_sampling must be n1_5|n1_7, got "
                             f"{self.time_sampling!r}")
        if not 0.0 <= self.state_dropout_prob < 1.0:
            raise ValueError(f"ActionHeadConfig.state_dropout_prob={self.state_dropout_prob} "
                             "must be in [0, 1)")
        _positive("ActionHeadConfig", action_dim=self.action_dim,
                  action_horizon=self.action_horizon, max_state_dim=self.max_state_dim,
                  hidden_size=self.hidden_size, input_embedding_dim=self.input_embedding_dim,
                  max_num_embodiments=self.max_num_embodiments)
        if self.dit.inner_dim != self.input_embedding_dim:
            raise ValueError(f"DiT width {self.dit.inner_dim} (num_heads*head_dim) must equal "
                             f"ActionHeadConfig.input_embedding_dim={self.input_embedding_dim}")
        if self.dit.output_dim != self.hidden_size:
            raise ValueError(f"DiTConfig.output_dim={self.dit.output_dim} must equal "
                             f"ActionHeadConfig.hidden_size={self.hidden_size}")
        vl = self.vl_self_attention
        if self.use_vlln and vl.num_heads * vl.head_dim != self.backbone_embedding_dim:
            raise ValueError(f"VL self-attention width {vl.num_heads * vl.head_dim} must equal "
                             f"backbone_embedding_dim={self.backbone_embedding_dim}")
        kv_dim = self.dit.cross_attention_dim or self.dit.inner_dim
        if kv_dim != self.backbone_embedding_dim:
            raise ValueError(f"DiT cross_attention_dim={kv_dim} must equal "
                             f"backbone_embedding_dim={self.backbone_embedding_dim}")
        if self.flare.enabled:
            if not self.num_future_tokens:
                raise ValueError("FLARE needs future tokens (num_future_tokens > 0)")
            if not 0 <= self.flare_layer < self.dit.num_layers:
                raise ValueError(f"FlareConfig.layer={self.flare.layer} is outside the "
                                 f"{self.dit.num_layers} DiT blocks")
        needed = self.action_horizon
        if self.add_pos_embed and needed > self.max_seq_len:
            raise ValueError(f"action_horizon={needed} exceeds max_seq_len={self.max_seq_len}")


    @property
    def flare_layer(self) -> int:
        return self.dit.num_layers // 2 if self.flare.layer is None else self.flare.layer

    @classmethod
    def n1_7(cls, **overrides) -> ActionHeadConfig:
        """GR00T N1.7's head as released (spec N1.7 1.2, 1.3; lerobot 0.6.1 GR00T_N1_7_DEFAULTS):
        no future tokens, AlternateVLDiT (32 blocks, text/image every 2), 4-block VL
        self-attention, t = (1 - u) * 0.999, state dropout 0.2 (lerobot's default)."""
        head = cls(
            action_dim=132, action_horizon=40, max_state_dim=132, hidden_size=1024,
            input_embedding_dim=1536, backbone_embedding_dim=2048, max_num_embodiments=32,
            num_future_tokens=0, max_seq_len=1024, add_pos_embed=True, use_vlln=True,
            dit=DiTConfig(num_layers=32, num_heads=32, head_dim=48, output_dim=1024,
                          cross_attention_dim=2048, dropout=0.2, attend_text_every_n_blocks=2),
            vl_self_attention=VLSelfAttentionConfig(num_layers=4, num_heads=32, head_dim=64,
                                                    dropout=0.2),
            time_sampling="n1_7", loss_eps=1e-6, state_dropout_prob=0.2)
        return dataclasses.replace(head, **overrides)

    @classmethod
    def tiny_n1_7(cls, **overrides) -> ActionHeadConfig:
        """The tiny lerobot 0.6.1 N1.7 head of ../shared/reference/n17/tiny_model.py (no
        dropout, no state dropout)."""
        head = cls.n1_7(
            action_dim=7, action_horizon=4, max_state_dim=8, hidden_size=32,
            input_embedding_dim=48, backbone_embedding_dim=64, max_seq_len=64,
            dit=DiTConfig(num_layers=4, num_heads=2, head_dim=24, output_dim=32,
                          cross_attention_dim=64, dropout=0.0, attend_text_every_n_blocks=2),
            vl_self_attention=VLSelfAttentionConfig(num_layers=1, num_heads=2, head_dim=32,
                                                    dropout=0.0),
            state_dropout_prob=0.0)
        return dataclasses.replace(head, **overrides)


# A backbone config is one of these. What the rest of the code may ask of it (the backbone
# protocol): `image_size` (square frames fed), `tokens_per_image`, `image_token_id`,
# `feature_dim`, `vocab_size`, `prompt_format` ("eagle" | "qwen3_vl": groot_jax.data.prompt),
# `with_vocab(vocab_size, image_token_id)` and `with_remat(remat)`. The module side is
# groot_jax.models.backbone (build, forward to BackboneOutput, trainable groups, FLOPs) and the
# checkpoint side groot_jax.convert.keymap.
BackboneConfig = EagleConfig | Qwen3VLConfig

# Which backbone each GR00T generation has.
BACKBONE_OF_MODEL_TYPE = {"gr00t_n1": EagleConfig, "gr00t_n1_5": EagleConfig,
                          "gr00t_n1_7": Qwen3VLConfig}
ModelType = Literal["gr00t_n1_5", "gr00t_n1", "gr00t_n1_7"]


@dataclasses.dataclass(frozen=True)
class GR00TConfig:
    """The whole policy: a VLM backbone (Eagle for N1 / N1.5, Qwen3-VL for N1.7) + the
    flow-matching action head (N1.5's with future tokens; N1.7's with AlternateVLDiT)."""

    name: str = "n1_5_3b"
    model_type: ModelType = "gr00t_n1_5"
    backbone: BackboneConfig = EagleConfig()
    action_head: ActionHeadConfig = ActionHeadConfig()

    def __post_init__(self):
        want = BACKBONE_OF_MODEL_TYPE.get(self.model_type)
        if want is None:
            raise ValueError(f"GR00TConfig.model_type={self.model_type!r}; known: "
                             f"{sorted(BACKBONE_OF_MODEL_TYPE)}")
        if not isinstance(self.backbone, want):
            raise ValueError(f"GR00TConfig: model_type {self.model_type!r} has a "
                             f"{want.__name__} backbone, got {type(self.backbone).__name__}")
        if self.backbone.feature_dim != self.action_head.backbone_embedding_dim:
            raise ValueError(f"backbone feature width {self.backbone.feature_dim} must equal "
                             f"action_head.backbone_embedding_dim="
                             f"{self.action_head.backbone_embedding_dim}")

    def with_remat(self, remat: Remat) -> GR00TConfig:
        """This config with every scanned layer stack (SigLIP, LLM, VL self-attention, DiT) under
        the rematerialisation policy `remat` (see REMAT)."""
        ah = self.action_head
        return dataclasses.replace(
            self, backbone=self.backbone.with_remat(remat),
            action_head=dataclasses.replace(
                ah, dit=dataclasses.replace(ah.dit, remat=remat),
                vl_self_attention=dataclasses.replace(ah.vl_self_attention, remat=remat)))

    # ---- presets -------------------------------------------------------------------------
    @classmethod
    def n1_5_3b(cls, **overrides) -> GR00TConfig:
        """GR00T-N1.5-3B as released (spec 2.1, 2.2)."""
        return dataclasses.replace(cls(), **overrides)

    @classmethod
    def n1_2b(cls, **overrides) -> GR00TConfig:
        """GR00T-N1-2B (spec 11): SmolLM2 (Llama) cut at layer 12, pixel shuffle, LN-MLP mlp1,
        backbone projected to 1536, no vlln/VL self-attention, no future tokens, DiT K/V 1536-d."""
        backbone = EagleConfig(
            vision=SiglipConfig(has_pooling_head=False),
            llm=LlmConfig(variant="llama", vocab_size=49164, hidden_size=2048,
                          intermediate_size=8192, num_layers=12, num_heads=32, num_kv_heads=32,
                          head_dim=64, rope_theta=130000.0, rms_norm_eps=1e-5),
            image_token_index=49163, use_pixel_shuffle=True, project_to_dim=1536)
        head = ActionHeadConfig(backbone_embedding_dim=1536, num_future_tokens=0, use_vlln=False,
                                dit=DiTConfig(cross_attention_dim=None))
        return dataclasses.replace(cls(name="n1_2b", model_type="gr00t_n1", backbone=backbone,
                                       action_head=head), **overrides)

    @classmethod
    def tiny(cls, **overrides) -> GR00TConfig:
        """A narrow N1.5-shaped model that compiles in seconds on CPU. Real token layout:
        224x224 images give 256 image tokens; the vocabulary keeps <IMG_CONTEXT> = 151669."""
        backbone = EagleConfig(
            vision=SiglipConfig(hidden_size=32, intermediate_size=64, num_layers=2, num_heads=2),
            llm=LlmConfig(hidden_size=64, intermediate_size=128, num_layers=2, num_heads=4,
                          num_kv_heads=2, head_dim=16))
        head = ActionHeadConfig(
            hidden_size=32, input_embedding_dim=32, backbone_embedding_dim=64,
            dit=DiTConfig(num_layers=2, num_heads=2, head_dim=16, output_dim=32,
                          cross_attention_dim=64),
            vl_self_attention=VLSelfAttentionConfig(num_layers=1, num_heads=2, head_dim=32))
        return dataclasses.replace(cls(name="tiny", backbone=backbone, action_head=head),
                                   **overrides)

    @classmethod
    def small(cls, **overrides) -> GR00TConfig:
        """N1.5's structure at a size that trains from scratch on a 2-core CPU in tens of
        minutes (experiments/closed_loop): 64x64 images in 8x8 patches (64 tokens per image),
        SigLIP 4 x 128, Qwen3 4 x 128, VL self-attention 2 layers, DiT 4 blocks (cross / self
        alternating) of 4 heads x 32, 16-step chunks. No dropout: the original's 0.2 is tuned
        for width 1536 and a pretrained start. The vocabulary and <IMG_CONTEXT> id are the
        tokenizer's (a training run sets them: `model_from_tokenizer`)."""
        backbone = EagleConfig(
            vision=SiglipConfig(hidden_size=128, intermediate_size=256, num_layers=4,
                                num_heads=4, image_size=64, patch_size=8),
            llm=LlmConfig(hidden_size=128, intermediate_size=256, num_layers=4, num_heads=4,
                          num_kv_heads=2, head_dim=32))
        head = ActionHeadConfig(
            hidden_size=128, input_embedding_dim=128, backbone_embedding_dim=128,
            dit=DiTConfig(num_layers=4, num_heads=4, head_dim=32, output_dim=128,
                          cross_attention_dim=128, dropout=0.0),
            vl_self_attention=VLSelfAttentionConfig(num_layers=2, num_heads=4, head_dim=32,
                                                    dropout=0.0))
        return dataclasses.replace(cls(name="small", backbone=backbone, action_head=head),
                                   **overrides)

    @classmethod
    def tiny_n1(cls, **overrides) -> GR00TConfig:
        """N1-shaped tiny model (Llama, pixel shuffle, LN-MLP connector, projection)."""
        backbone = EagleConfig(
            vision=SiglipConfig(hidden_size=32, intermediate_size=64, num_layers=2, num_heads=2,
                                has_pooling_head=False),
            llm=LlmConfig(variant="llama", vocab_size=1024, hidden_size=64, intermediate_size=128,
                          num_layers=2, num_heads=4, num_kv_heads=4, head_dim=16,
                          rope_theta=130000.0, rms_norm_eps=1e-5),
            image_token_index=1000, use_pixel_shuffle=True, project_to_dim=32)
        head = ActionHeadConfig(
            hidden_size=32, input_embedding_dim=32, backbone_embedding_dim=32,
            num_future_tokens=0, use_vlln=False,
            dit=DiTConfig(num_layers=2, num_heads=2, head_dim=16, output_dim=32,
                          cross_attention_dim=None))
        return dataclasses.replace(cls(name="tiny_n1", model_type="gr00t_n1", backbone=backbone,
                                       action_head=head), **overrides)


    @classmethod
    def n1_7_3b(cls, **overrides) -> GR00TConfig:
        """GR00T-N1.7-3B as released (N1.7 spec 1): Cosmos-Reason2-2B (Qwen3-VL) cut at 16
        text layers, DeepStack at vision blocks 5/11/17, 256x256 frames (64 tokens each), and
        N1.7's head (AlternateVLDiT of 32 blocks, 132-wide slots, 40-step horizon)."""
        qwen = Qwen3VLConfig.cosmos_reason2_2b()
        backbone = dataclasses.replace(qwen, text=dataclasses.replace(qwen.text, num_layers=16))
        return dataclasses.replace(cls(name="n1_7_3b", model_type="gr00t_n1_7",
                                       backbone=backbone, action_head=ActionHeadConfig.n1_7()),
                                   **overrides)

    @classmethod
    def tiny_n1_7(cls, **overrides) -> GR00TConfig:
        """N1.7 at the tiny random size of ../shared/reference/n17/tiny_model.py (lerobot 0.6.1):
        Qwen3-VL vision 4 x 64 (16-px patches, DeepStack after blocks 0-2), text 64 wide with
        3 of 4 layers kept (select_layer 3), the real special-token ids and vocabulary, 64x64
        frames (4 tokens each), the tiny N1.7 head."""
        vision = Qwen3VLVisionConfig(hidden_size=64, intermediate_size=128, num_layers=4,
                                     num_heads=4, out_hidden_size=64,
                                     deepstack_visual_indexes=(0, 1, 2))
        text = Qwen3VLTextConfig(hidden_size=64, intermediate_size=128, num_layers=3,
                                 num_heads=4, num_kv_heads=2, head_dim=16, mrope_section=(4, 2, 2))
        backbone = Qwen3VLConfig(vision=vision, text=text, image_size=64)
        return dataclasses.replace(cls(name="tiny_n1_7", model_type="gr00t_n1_7",
                                       backbone=backbone,
                                       action_head=ActionHeadConfig.tiny_n1_7()), **overrides)


PRESETS = {"n1_5_3b": GR00TConfig.n1_5_3b, "n1_2b": GR00TConfig.n1_2b,
           "tiny": GR00TConfig.tiny, "tiny_n1": GR00TConfig.tiny_n1, "small": GR00TConfig.small,
           "n1_7_3b": GR00TConfig.n1_7_3b, "tiny_n1_7": GR00TConfig.tiny_n1_7}


def preset(name: str, /, **overrides) -> GR00TConfig:
    """A named preset; an unknown name suggests the nearest one. `name` is positional-only so
    that an override may set the config's own `name` (an --init checkpoint's whole config)."""
    if name not in PRESETS:
        near = difflib.get_close_matches(name, PRESETS, n=1)
        hint = f" Did you mean {near[0]!r}?" if near else ""
        raise KeyError(f"unknown model preset {name!r}; known: {sorted(PRESETS)}.{hint}")
    return PRESETS[name](**overrides)


# ---- serialisation (saved beside every checkpoint) ------------------------------------------
_NESTED = {
    GR00TConfig: {"backbone": EagleConfig, "action_head": ActionHeadConfig},
    EagleConfig: {"vision": SiglipConfig, "llm": LlmConfig},
    Qwen3VLConfig: {"vision": Qwen3VLVisionConfig, "text": Qwen3VLTextConfig},
    ActionHeadConfig: {"dit": DiTConfig, "vl_self_attention": VLSelfAttentionConfig,
                       "flare": FlareConfig},
}


def config_to_dict(cfg: GR00TConfig) -> dict:
    return dataclasses.asdict(cfg)


def config_from_dict(data: dict, cls=GR00TConfig):
    """Inverse of `config_to_dict`; unknown fields are an error naming the field."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {unknown}; known: {sorted(known)}")
    kwargs = {}
    tuples = {f.name for f in dataclasses.fields(cls) if isinstance(f.default, tuple)}
    for name, value in data.items():
        sub = _NESTED.get(cls, {}).get(name)
        if cls is GR00TConfig and name == "backbone":
            sub = BACKBONE_OF_MODEL_TYPE.get(data.get("model_type", "gr00t_n1_5"), EagleConfig)
        if sub is not None:
            value = config_from_dict(value, sub)
        elif name in tuples and isinstance(value, list):   # JSON has no tuples
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)
