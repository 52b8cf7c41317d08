"""What is trained (the original's tune_* flags, LoRA), the optax chain and its schedule.

Parameters are nested dicts (`nnx.to_pure_dict`). The trainable subset gets fp32 master
weights and AdamW state; the frozen subset is stored in `frozen_dtype` (bf16 by default) and
has no optimizer state at all: it is a separate tree that is never differentiated.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from groot_jax.models import backbone
from groot_jax.train.config import TrainConfig

# Path prefixes of the original's action-head trainability groups (Isaac-GR00T gr00t_n1.py);
# the backbone's tune_visual / tune_llm groups come from the backbone (models.backbone).
HEAD_GROUPS = {
    "tune_projector": ("action_head/state_encoder", "action_head/action_encoder",
                       "action_head/action_decoder", "action_head/position_embedding"),
    "tune_diffusion_model": ("action_head/model",),
}


def groups(cfg: TrainConfig) -> dict[str, tuple[str, ...]]:
    """Every tune_* flag's parameter path prefixes for `cfg`'s model."""
    return {**backbone.trainable_groups(cfg.model_config().backbone), **HEAD_GROUPS}


# Dense kernels of the action head that receive LoRA adapters (attention and feed-forward).
LORA_TARGETS = ("attn/to_q/kernel", "attn/to_k/kernel", "attn/to_v/kernel", "attn/to_out/kernel",
                "ff/proj_in/kernel", "ff/proj_out/kernel")
LORA = "lora"   # top-level key of the adapter tree inside the trainable params


def is_trainable(path: str, cfg: TrainConfig,
                 prefixes: dict[str, tuple[str, ...]] | None = None) -> bool:
    """Whether the base parameter at `path` ('a/b/c') is trained under `cfg`'s flags.
    Everything outside the four groups (vlln, vl_self_attention, future_tokens) is trained, as
    in the original, which sets requires_grad everywhere and then freezes whole groups.
    `prefixes`: `groups(cfg)`, when the caller already has it."""
    if cfg.lora_rank > 0:
        return False
    for flag, group in (groups(cfg) if prefixes is None else prefixes).items():
        if any(path == p or path.startswith(p + "/") for p in group):
            return bool(getattr(cfg, flag))
    return True


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in tree.items():
        key = f"{prefix}/{k}" if prefix else str(k)
        if isinstance(v, dict):
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out


def unflatten(flat: dict[str, Any]) -> dict:
    out: dict = {}
    for key, v in flat.items():
        node = out
        parts = key.split("/")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = v
    return out


def split_params(params: dict, cfg: TrainConfig) -> tuple[dict, dict]:
    """(trainable, frozen) nested dicts, cast to param_dtype / frozen_dtype."""
    flat = flatten(params)
    pd, fd = jnp.dtype(cfg.param_dtype), jnp.dtype(cfg.frozen_dtype)
    prefixes = groups(cfg)   # once: it builds the model config
    trainable = {k for k in flat if is_trainable(k, cfg, prefixes)}
    train = {k: v.astype(pd) for k, v in flat.items() if k in trainable}
    frozen = {k: v.astype(fd) for k, v in flat.items() if k not in trainable}
    return unflatten(train), unflatten(frozen)


def lora_targets(flat_shapes: dict[str, Any]) -> list[str]:
    return sorted(k for k in flat_shapes if k.startswith("action_head/")
                  and any(k.endswith(t) for t in LORA_TARGETS))


def init_lora(flat_shapes: dict[str, Any], rank: int, rng: jax.Array, dtype) -> dict:
    """Adapters {path: {"a": [..., in, r], "b": [..., r, out]}}: `a` random, `b` zero (PEFT)."""
    out = {}
    for i, key in enumerate(lora_targets(flat_shapes)):
        shape = flat_shapes[key].shape
        lead, d_in, d_out = shape[:-2], shape[-2], shape[-1]
        a = jax.random.normal(jax.random.fold_in(rng, i), (*lead, d_in, rank), dtype) / d_in**0.5
        out[key.replace("/", ".")] = {"a": a, "b": jnp.zeros((*lead, rank, d_out), dtype)}
    return out


def merge_params(train: dict, frozen: dict, cfg: TrainConfig) -> dict:
    """Full nested params for the model; LoRA deltas are added to their frozen kernels."""
    flat = flatten(frozen)
    lora = train.get(LORA, {})
    flat.update(flatten({k: v for k, v in train.items() if k != LORA}))
    scale = cfg.lora_alpha / max(cfg.lora_rank, 1)
    for key, ab in lora.items():
        path = key.replace(".", "/")
        w = flat[path]
        delta = jnp.einsum("...ir,...ro->...io", ab["a"], ab["b"]) * scale
        flat[path] = (w.astype(delta.dtype) + delta)
    return unflatten(flat)


def schedule(cfg: TrainConfig) -> optax.Schedule:
    """Linear warmup over warmup_ratio * steps, then cosine decay to 0 (HF `cosine`)."""
    o = cfg.optim
    if o.schedule == "constant":
        return optax.constant_schedule(o.lr)
    warmup = int(round(o.warmup_ratio * cfg.steps))
    return optax.warmup_cosine_decay_schedule(0.0, o.lr, warmup, max(cfg.steps, warmup + 1),
                                              end_value=0.0)


def global_norm_f32(tree) -> jax.Array:
    """L2 norm of all leaves, squared sums taken in float32 (bf16 gradients included)."""
    return jnp.sqrt(sum(jnp.sum(jnp.square(x.astype(jnp.float32))) for x in jax.tree.leaves(tree)))


def clip_by_global_norm_f32(max_norm: float) -> optax.GradientTransformation:
    """optax.clip_by_global_norm, but the norm is computed in float32 whatever the gradients'
    dtype (a bf16 norm over a billion squares would be off by whole percents)."""

    def update(updates, state, params=None):
        del params
        norm = global_norm_f32(updates)
        scale = jnp.where(norm < max_norm, 1.0, max_norm / norm)   # norm >= max_norm > 0 here
        return jax.tree.map(lambda g: (g.astype(jnp.float32) * scale).astype(g.dtype),
                            updates), state

    return optax.GradientTransformation(lambda _: optax.EmptyState(), update)


def scale_by_adam_lowp(b1: float, b2: float, eps: float, dtype) -> optax.GradientTransformation:
    """Adam whose two moments are stored in `dtype` (bf16 halves optimizer memory); the update
    itself is computed in float32. Same state type as optax's, so sharding helpers apply."""

    def init(params):
        zeros = lambda p: jnp.zeros(p.shape, dtype)
        return optax.ScaleByAdamState(count=jnp.zeros([], jnp.int32),
                                      mu=jax.tree.map(zeros, params), nu=jax.tree.map(zeros, params))

    def update(grads, state, params=None):
        del params
        count = optax.safe_int32_increment(state.count)
        f32 = lambda x: x.astype(jnp.float32)
        mu = jax.tree.map(lambda m, g: b1 * f32(m) + (1 - b1) * f32(g), state.mu, grads)
        nu = jax.tree.map(lambda v, g: b2 * f32(v) + (1 - b2) * jnp.square(f32(g)), state.nu, grads)
        c = count.astype(jnp.float32)
        # The update stays float32 even for bf16 gradients (apply_updates casts to the master
        # weights' dtype).
        upd = jax.tree.map(lambda m, v: (m / (1 - b1**c)) / (jnp.sqrt(v / (1 - b2**c)) + eps),
                           mu, nu)
        cast = lambda t: jax.tree.map(lambda x: x.astype(dtype), t)
        return upd, optax.ScaleByAdamState(count=count, mu=cast(mu), nu=cast(nu))

    return optax.GradientTransformation(init, update)


def make_optimizer(cfg: TrainConfig) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """clip_by_global_norm -> Adam -> decoupled weight decay -> -lr(step): torch AdamW's update."""
    o = cfg.optim
    sched = schedule(cfg)
    parts = []
    if o.clip_norm is not None:
        parts.append(clip_by_global_norm_f32(o.clip_norm))
    if o.moments_dtype == "bfloat16":
        parts.append(scale_by_adam_lowp(o.b1, o.b2, o.eps, jnp.bfloat16))
    else:
        parts.append(optax.scale_by_adam(o.b1, o.b2, o.eps))
    parts += [optax.add_decayed_weights(o.weight_decay), optax.scale_by_learning_rate(sched)]
    return optax.chain(*parts), sched
