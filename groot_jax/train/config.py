"""`TrainConfig`: everything about a training run that is not the model architecture.

Defaults follow Isaac-GR00T's `scripts/gr00t_finetune.py` (spec 5): AdamW lr 1e-4, betas
(0.95, 0.999), eps 1e-8, weight decay 1e-5, cosine schedule with 5% warmup, VLM frozen
(tune_visual=False, tune_llm=False), projector and DiT trained. Overrides use dotted paths:
`apply_overrides(cfg, ["optim.lr=3e-4", "mesh.fsdp=8"])`.
"""
from __future__ import annotations

import ast
import dataclasses
import difflib
import json
import types
import typing
from typing import Any, Literal

from groot_jax.config import GR00TConfig, preset
from groot_jax.train.data_spec import DatasetSpec, DataSpec  # noqa: F401 (DatasetSpec: re-export)


def _is_count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    lr: float = 1e-4
    b1: float = 0.95
    b2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 1e-5
    warmup_ratio: float = 0.05
    schedule: Literal["cosine", "constant"] = "cosine"
    clip_norm: float | None = 1.0          # global-norm gradient clipping; None = off
    moments_dtype: Literal["float32", "bfloat16"] = "float32"

    def __post_init__(self):
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"OptimConfig.warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.moments_dtype not in ("float32", "bfloat16"):
            raise ValueError(f"OptimConfig.moments_dtype must be float32|bfloat16, "
                             f"got {self.moments_dtype!r}")


@dataclasses.dataclass(frozen=True)
class MeshConfig:
    data: int = -1        # -1: all devices not used by fsdp x tensor
    fsdp: int = 1
    tensor: int = 1
    layout: Literal["dp", "fsdp", "fsdp_tp"] = "fsdp"
    min_shard_bytes: int = 4 * 2**20   # smaller arrays stay replicated


@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
    dir: str | None = None       # None: no checkpoints
    every: int = 500
    keep: int = 3
    async_save: bool = True

    def __post_init__(self):
        # Checked here, not at the first save: `every=0` used to fail with ZeroDivisionError
        # after the whole start-up, and keep=0 would delete every checkpoint.
        for f in ("every", "keep"):
            if not _is_count(getattr(self, f)):
                raise ValueError(f"checkpoint.{f} must be a whole number >= 1, "
                                 f"got {getattr(self, f)!r}")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    name: str = "default"
    model: str = "n1_5_3b"                 # preset name in groot_jax.config.PRESETS
    model_overrides: tuple[tuple[str, Any], ...] = ()
    # Fine-tune from this Isaac-GR00T / groot-jax model directory (groot_jax/train/init_from.py,
    # which also sets model_overrides to the checkpoint's whole config, so the run records it).
    init: str | None = None
    # Size the LLM vocabulary and <IMG_CONTEXT> id to data.tokenizer when the run starts (tiny
    # from-scratch runs on a small tokenizer; the sized values land in model_overrides, so
    # run_config.json records them). Ignored with `init`, whose checkpoint fixes the model.
    model_from_tokenizer: bool = False
    # What is trained (the original's flags; finetune-script defaults).
    tune_visual: bool = False
    tune_llm: bool = False
    tune_projector: bool = True
    tune_diffusion_model: bool = True
    lora_rank: int = 0                     # > 0: LoRA on the action head's dense kernels instead
    lora_alpha: float = 16.0
    # Random init of the action head's per-embodiment weights when no params_fn is given:
    # "original" (N(0, 0.02), as the torch model) or "fan_in" (for small from-scratch runs; see
    # groot_jax.train.state.default_params_fn).
    category_init: Literal["original", "fan_in"] = "original"
    # Precision.
    param_dtype: Literal["float32", "bfloat16"] = "float32"    # trainable master weights
    frozen_dtype: Literal["float32", "bfloat16"] = "bfloat16"  # frozen weights
    compute_dtype: Literal["float32", "bfloat16"] = "bfloat16"
    # Gradients of the trainable weights: "bfloat16" differentiates w.r.t. a bf16 copy of them,
    # halving the largest temporary of a fine-tune step (1.07 B fp32 grads = 4 GiB for n1_5_3b).
    # The clip norm, Adam update and master weights stay fp32; micro-batch sums accumulate fp32.
    grad_dtype: Literal["float32", "bfloat16"] = "float32"
    remat: Literal["none", "full", "dots"] = "none"           # policy on scanned layers
    # Schedule and batch.
    steps: int = 10_000
    batch_size: int = 32                   # global batch per optimizer step
    grad_accum: int = 1                    # micro-batches per step (batch_size % grad_accum == 0)
    seed: int = 0
    optim: OptimConfig = OptimConfig()
    mesh: MeshConfig = MeshConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    # Logging.
    log_every: int = 10
    log_dir: str | None = None             # TensorBoard event files; None: checkpoint dir / tb
    wandb_project: str | None = None
    progress: bool = True
    peak_flops_per_device: float | None = None   # for MFU; None: guess from the device kind
    # Data: the synthetic task (groot_jax/train/synthetic.py) or datasets on disk
    # (groot_jax/train/data_spec.py, read by groot_jax/train/input_pipeline.py).
    data: DataSpec = DataSpec()
    num_views: int = 1        # synthetic source only
    prompt_len: int = 24      # synthetic source only

    def __post_init__(self):
        for f in ("steps", "batch_size", "grad_accum", "log_every"):
            if not _is_count(getattr(self, f)):
                raise ValueError(f"TrainConfig.{f} must be a whole number >= 1, "
                                 f"got {getattr(self, f)!r}")
        if self.batch_size % self.grad_accum:
            raise ValueError(f"TrainConfig.batch_size={self.batch_size} is not a multiple of "
                             f"grad_accum={self.grad_accum}")
        for f in ("param_dtype", "frozen_dtype", "compute_dtype", "grad_dtype"):
            if getattr(self, f) not in ("float32", "bfloat16"):
                raise ValueError(f"TrainConfig.{f} must be float32|bfloat16, got {getattr(self, f)!r}")
        if self.category_init not in ("original", "fan_in"):
            raise ValueError(f"TrainConfig.category_init must be original|fan_in, "
                             f"got {self.category_init!r}")
        if self.remat not in ("none", "full", "dots"):
            raise ValueError(f"TrainConfig.remat must be none|full|dots, got {self.remat!r}")

    def model_config(self) -> GR00TConfig:
        return preset(self.model, **dict(self.model_overrides))

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1, default=str)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """Inverse of `dataclasses.asdict` (and of `to_json` after json.loads): nested dataclasses,
        tuples and the model overrides' config dataclasses rebuilt; an unknown field is an error
        naming it."""
        cfg = _build(cls, data, "TrainConfig")
        return dataclasses.replace(cfg, model_overrides=tuple(
            (name, _model_override(name, value)) for name, value in cfg.model_overrides))

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        return cls.from_dict(json.loads(text))


def _build(tp: Any, value: Any, where: str) -> Any:
    """`value` (JSON-like: dicts and lists) as an instance of the annotation `tp`."""
    if value is None:
        return None
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp) and isinstance(value, dict):
        hints = typing.get_type_hints(tp)
        names = {f.name for f in dataclasses.fields(tp) if f.init}
        unknown = sorted(set(value) - names)
        if unknown:
            raise ValueError(f"{where}: {tp.__name__} has no field(s) {unknown}")
        return tp(**{k: _build(hints[k], v, f"{where}.{k}") for k, v in value.items()})
    if origin in (typing.Union, types.UnionType):
        if isinstance(value, dict):
            # A union of configs (the backbone: Eagle | Qwen3-VL): the one whose fields hold
            # every key; else the first, whose error names the unknown keys.
            classes = [a for a in args if dataclasses.is_dataclass(a)]
            fitting = [a for a in classes
                       if set(value) <= {f.name for f in dataclasses.fields(a) if f.init}]
            if classes:
                return _build((fitting or classes)[0], value, where)
        for a in args:
            if a is not type(None) and (
                    typing.get_origin(a) is tuple and isinstance(value, (list, tuple))):
                return _build(a, value, where)
        return value
    if origin is tuple and isinstance(value, (list, tuple)):
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_build(args[0], v, where) for v in value)
        if args:
            return tuple(_build(a, v, where) for a, v in zip(args, value, strict=True))
        return tuple(value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _model_override(name: str, value: Any) -> Any:
    """A model override value back in its GR00TConfig field's type (a saved override of
    `backbone` is a dict in JSON)."""
    hints = typing.get_type_hints(GR00TConfig)
    return _build(hints[name], value, f"model_overrides.{name}") if name in hints else value


def _parse_value(text: str) -> Any:
    # Only "None"/"null" mean None: lowercase "none" is a legitimate value (remat=none).
    if text in ("None", "null"):
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _replace_path(obj: Any, path: list[str], text: str) -> Any:
    names = [f.name for f in dataclasses.fields(obj)]
    if path[0] not in names:
        near = difflib.get_close_matches(path[0], names, n=1)
        hint = f" Did you mean {near[0]!r}?" if near else ""
        raise KeyError(f"{type(obj).__name__} has no field {path[0]!r}.{hint}")
    if len(path) == 1:
        want = typing.get_type_hints(type(obj))[path[0]]
        item = typing.get_args(want)[0] if typing.get_origin(want) is tuple else None
        if item is not None and dataclasses.is_dataclass(item):
            # Tuples of specs come from flags (e.g. --dataset/--weight), not from a literal.
            raise ValueError(f"{type(obj).__name__}.{path[0]} is a tuple of {item.__name__} "
                             f"and is set by its command-line flags (--dataset DIR ...), not "
                             f"by KEY=VALUE")
        value = _parse_value(text)
        if not _fits(value, want) and _fits(text, want):
            value = text   # a str field given digits, e.g. checkpoint.dir=2024
        if not _fits(value, want):
            raise ValueError(f"{type(obj).__name__}.{path[0]} must be "
                             f"{_type_name(want)}, got {value!r}")
        if want is float and isinstance(value, int):
            value = float(value)
        return dataclasses.replace(obj, **{path[0]: value})
    return dataclasses.replace(obj, **{path[0]: _replace_path(getattr(obj, path[0]), path[1:], text)})


def _fits(value: Any, tp: Any) -> bool:
    """Whether an override value suits a field's annotation (ints count as floats; nested
    containers are checked at the top level only)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if origin is Literal:
        return value in args
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, origin or tp)


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return "one of " + "|".join(map(str, typing.get_args(tp)))
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    return "None" if tp is type(None) else getattr(tp, "__name__", str(tp))


def apply_overrides(cfg: TrainConfig, overrides: list[str] | tuple[str, ...]) -> TrainConfig:
    """Apply `key.path=value` strings (values parsed as Python literals, else strings). A value
    of the wrong type or one the config rejects raises ValueError naming the override; an
    unknown key raises KeyError."""
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not of the form key.path=value")
        key, text = item.split("=", 1)
        try:
            cfg = _replace_path(cfg, key.strip().split("."), text.strip())
        except ValueError as e:
            raise ValueError(f"override {item!r}: {e}") from e
    return cfg
