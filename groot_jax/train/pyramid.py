"""Pretraining on GR00T's data pyramid: real robot, simulation, human video (latent actions and/or
FLARE only) and neural trajectories (IDM pseudo-actions), each level with a sampling weight.

A run config (`configs/pyramid_tiny.py`) defines `get_config() -> TrainConfig` and
`get_pyramid(cfg) -> Pyramid`. `data_iterator(cfg, pyramid)` builds the Grain mixture
(groot_jax/data/pipeline.py) and `run(...)` hands it to `groot_jax.train.loop.train`:

    groot-jax latent-actions pyramid-demo runs/pyramid_tiny_data   # synthetic pyramid + sidecars
    groot-jax pyramid train --config configs/pyramid_tiny.py

How each level trains (the model's loss, groot_jax/models/action_head.py):
- robot / simulation: recorded actions, flow matching (+ FLARE when enabled);
- human video with a latent-action sidecar: the VQ-VAE's latent actions are the flow-matching
  target in the dedicated `latent_action` embodiment slot;
- neural trajectories with an IDM sidecar: pseudo-actions in the robot's embodiment slot;
- action-less video without a sidecar: action_mask is all zero, so its flow-matching term is
  masked out per sample and only FLARE's alignment (future frames, `future_offset`) trains on it.
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from types import ModuleType

import numpy as np

from groot_jax.data.errors import DataError
from groot_jax.data.mixture import SourceSpec
from groot_jax.data.sidecar import read_manifest, sidecar_kind
from groot_jax.train.config import TrainConfig, apply_overrides

LATENT_TAG = "latent_action"
MODEL_KEYS = ("input_ids", "attention_mask", "pixel_values", "state", "embodiment_id", "action",
              "action_mask")
FLARE_KEYS = ("future_pixel_values", "future_mask")
# With Pyramid.device_augment the batches carry cropped uint8 frames and jitter draws instead of
# pixel_values; the train step finishes them on the accelerator (groot_jax.data.device_augment).
DEVICE_AUGMENT_KEYS = ("pixel_u8", "augment")
# With Pyramid.device_yuv as well, they carry crops of the decoded yuv420p planes instead of RGB.
DEVICE_YUV_KEYS = ("pixel_y", "pixel_u", "pixel_v", "yuv_meta", "augment")


@dataclasses.dataclass(frozen=True)
class PyramidLevel:
    """One level: its datasets (weights within the level) and the level's share of the batch."""

    name: str
    sources: tuple[SourceSpec, ...]
    weight: float

    def __post_init__(self):
        if self.weight < 0 or not self.sources:
            raise ValueError(f"pyramid level {self.name!r}: needs sources and a weight >= 0")


@dataclasses.dataclass(frozen=True)
class Pyramid:
    levels: tuple[PyramidLevel, ...]
    tokenizer: str                       # tokenizer directory (Hugging Face layout)
    future_offset: int | None = None     # FLARE: future frame = t + future_offset
    num_workers: int = 0
    max_seq_len: int | None = None
    # Resize, colour jitter and normalization in the train step on the accelerator instead of on
    # the host (the data pipeline's fast path; not with FLARE future frames).
    device_augment: bool = False
    # With device_augment: ship yuv420p crops and convert them to RGB on the accelerator as well
    # (bit-exact to the host's swscale; every video of the pyramid must be yuv420p).
    device_yuv: bool = False

    def specs(self) -> list[SourceSpec]:
        """Flat SourceSpecs whose weights are level weight x share within the level, named
        `level/dataset:data config` unless named already."""
        total = sum(lv.weight for lv in self.levels)
        if total <= 0:
            raise ValueError("pyramid: all level weights are zero")
        out = []
        for lv in self.levels:
            inner = sum(s.weight for s in lv.sources)
            for s in lv.sources:
                out.append(dataclasses.replace(
                    s, weight=lv.weight / total * s.weight / inner,
                    name=s.name or f"{lv.name}/{Path(s.path).name}:{s.config.name}"))
        return [s for s in out if s.weight > 0]


def validate(pyramid: Pyramid, model_cfg) -> None:
    """Fail before training on a pyramid that would silently train the wrong thing."""
    flare = model_cfg.action_head.flare.enabled
    if flare and not pyramid.future_offset:
        raise ValueError("the model has FLARE enabled: set Pyramid.future_offset (frames ahead)")
    for spec in pyramid.specs():
        tag = spec.config.embodiment_tag
        if spec.action_sidecar is not None:
            kind = sidecar_kind(read_manifest(spec.action_sidecar), spec.action_sidecar)
            if kind == "latent_actions" and tag != LATENT_TAG:
                raise ValueError(f"{spec.name}: latent actions train the dedicated {LATENT_TAG!r} "
                                 f"embodiment slot, not {tag!r}")
            if kind == "idm_actions" and tag == LATENT_TAG:
                raise ValueError(f"{spec.name}: IDM pseudo-actions belong to a robot embodiment, "
                                 f"not the {LATENT_TAG!r} slot")
        elif spec.kind == "actionless" and not flare:
            raise ValueError(f"{spec.name}: action-less video without a label sidecar trains "
                             f"nothing unless FLARE is enabled in the model")


def model_batch(sample: dict, flare: bool) -> dict:
    """The keys the model's loss reads (see groot_jax/models/groot.py)."""
    keys = MODEL_KEYS + (FLARE_KEYS if flare else ())
    if "pixel_y" in sample:
        keys = tuple(k for k in keys if k != "pixel_values") + DEVICE_YUV_KEYS
    elif "pixel_u8" in sample:
        keys = tuple(k for k in keys if k != "pixel_values") + DEVICE_AUGMENT_KEYS
    missing = [k for k in keys if k not in sample]
    if missing:
        raise DataError(f"batch lacks {missing} (has {sorted(sample)})")
    return {k: sample[k] for k in keys}


def build_pipeline(cfg: TrainConfig, pyramid: Pyramid, *, train: bool = True, batch_size=None,
                   stats: dict | None = None):
    """The Grain mixture pipeline (groot_jax.data.pipeline.Pipeline) of the pyramid."""
    import jax

    from groot_jax.data.pipeline import PipelineConfig
    from groot_jax.data.pipeline import build_pipeline as build
    from groot_jax.data.prompt import PromptTokenizer, check_model_config

    model_cfg = cfg.model_config()
    validate(pyramid, model_cfg)
    tok = PromptTokenizer(pyramid.tokenizer, tokens_per_image=model_cfg.backbone.tokens_per_image)
    specs = pyramid.specs()
    for s in specs:
        check_model_config(tok, model_cfg, s.config)
    if batch_size is None:
        if cfg.batch_size % jax.process_count():
            raise ValueError(f"batch_size={cfg.batch_size} is not divisible by "
                             f"{jax.process_count()} processes")
        batch_size = cfg.batch_size // jax.process_count()
    flare = model_cfg.action_head.flare.enabled
    pcfg = PipelineConfig(batch_size=batch_size, seed=cfg.seed, train=train,
                          num_workers=pyramid.num_workers, max_seq_len=pyramid.max_seq_len,
                          future_offset=pyramid.future_offset if flare else None,
                          device_augment=pyramid.device_augment, device_yuv=pyramid.device_yuv,
                          drop_remainder=train)
    return build(specs, pcfg, tok, stats=stats)


def data_iterator(cfg: TrainConfig, pyramid: Pyramid):
    """A checkpointable Grain iterator of this process's rows of each batch, model keys only."""
    flare = cfg.model_config().action_head.flare.enabled
    pipe = build_pipeline(cfg, pyramid)
    return iter(pipe.dataset.map(lambda b: model_batch(b, flare)))


def pyramid_of(module: ModuleType, cfg: TrainConfig) -> Pyramid:
    """The run-config module's get_pyramid(cfg) (a pyramid run config defines it beside
    get_config)."""
    if not hasattr(module, "get_pyramid"):
        raise AttributeError(f"{module.__file__}: defines no get_pyramid() (a pyramid run config "
                             f"needs get_config() and get_pyramid(cfg))")
    return module.get_pyramid(cfg)


def load_run(path: str | Path, overrides: list[str] | None = None) -> tuple[TrainConfig, Pyramid]:
    """A run config file defining get_config() and get_pyramid(cfg)."""
    from groot_jax.train.cli import load_module

    module = load_module(path)
    cfg = apply_overrides(module.get_config(), overrides or [])
    return cfg, pyramid_of(module, cfg)


def run(path: str | Path, overrides: list[str] | None = None, **train_kw):
    from groot_jax.train import loop

    loop.maybe_initialize_distributed()
    cfg, pyramid = load_run(path, overrides)
    return loop.train(cfg, data_iter=data_iterator(cfg, pyramid), **train_kw)


# ---------------------------------------------------------------- tiny model and demo data

def tiny_model_overrides(vocab_size: int, image_token_index: int, *, image_size: int = 32,
                         patch_size: int = 8, action_horizon: int = 8, flare: bool = True,
                         flare_weight: float = 0.2) -> tuple:
    """`TrainConfig.model_overrides` for the tiny preset on the synthetic worlds: small images
    (16 tokens), a tokenizer-sized vocabulary, a short action horizon, FLARE on or off."""
    from groot_jax.config import FlareConfig, GR00TConfig

    base = GR00TConfig.tiny()
    bb = dataclasses.replace(
        base.backbone, image_token_index=image_token_index,
        vision=dataclasses.replace(base.backbone.vision, image_size=image_size,
                                   patch_size=patch_size),
        llm=dataclasses.replace(base.backbone.llm, vocab_size=vocab_size))
    ah = dataclasses.replace(base.action_head, action_horizon=action_horizon,
                             flare=FlareConfig(enabled=flare, weight=flare_weight))
    return (("backbone", bb), ("action_head", ah))


def demo_data_configs(action_horizon: int = 8, image_size: int = 32) -> dict:
    """DataConfigs of the demo pyramid's datasets (groot_jax.latent.demo_pyramid writes them with
    groot_jax.data.writers' default keys)."""
    from groot_jax.data.modality import DataConfig

    common = dict(language_keys=("annotation.human.task_description",), state_keys=(),
                  action_indices=tuple(range(action_horizon)), image_size=image_size,
                  color_jitter=None)
    robot = DataConfig(name="robot", embodiment_tag="new_embodiment", video_keys=("video.front",),
                       action_keys=("action.move",),
                       action_normalization={"action.move": "min_max"}, **common)
    video = dict(common, video_keys=("video.ego_view",))
    return {
        "robot": robot,
        "latent": DataConfig(name="latent", embodiment_tag=LATENT_TAG,
                             action_keys=("action.latent",),
                             action_normalization={"action.latent": "min_max"}, **video),
        "idm": DataConfig(name="idm", embodiment_tag="new_embodiment",
                          action_keys=("action.move",),
                          action_normalization={"action.move": "min_max"}, **video),
        "video": DataConfig(name="video", embodiment_tag="new_embodiment", action_keys=(), **video),
    }


def tokenizer_ids(tokenizer_dir: str | Path) -> tuple[int, int]:
    """(vocabulary size, <IMG_CONTEXT> id) of a tokenizer directory, for the model config."""
    from groot_jax.data.prompt import PromptTokenizer

    tok = PromptTokenizer(str(tokenizer_dir))
    return len(tok.tokenizer), int(tok.image_token_id)


# ---------------------------------------------------------------- CLI

def _train_cmd(args) -> int:
    result = run(args.config, args.set)
    losses = result.losses
    if losses:
        steps = sorted(losses)
        print(f"{result.status}: loss {np.mean([losses[s] for s in steps[:10]]):.4f} (first 10 "
              f"steps) -> {np.mean([losses[s] for s in steps[-10:]]):.4f} (last 10), "
              f"step {steps[-1]}")
    if result.status == "preempted":
        from groot_jax.train.loop import EXIT_PREEMPTED

        print(f"preempted at step {int(np.asarray(result.state.step))}, resume with the "
              f"same command", file=sys.stderr)
        return EXIT_PREEMPTED
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("pyramid", help="pretrain on the data pyramid (robot, sim, human "
                              "video, neural trajectories)",
                              description="The synthetic demo pyramid: `groot-jax latent-actions "
                              "pyramid-demo ROOT`.")
    sub = p.add_subparsers(dest="pyramid_command", required=True)
    t = sub.add_parser("train", help="train with a pyramid run config (get_config + get_pyramid)")
    t.add_argument("--config", required=True, help="path to a run config, e.g. "
                   "configs/pyramid_tiny.py")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a TrainConfig field")
    t.set_defaults(func=_train_cmd)
