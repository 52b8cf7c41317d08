"""`TrainState` pytree and its sharded initialisation.

state.params  trainable weights (param_dtype, fp32 by default), with AdamW state in opt_state
state.frozen  frozen weights (frozen_dtype, bf16 by default), never differentiated, no opt state
state.step    int32 scalar

Everything is created inside one `jax.jit` with `out_shardings`, so a large model is born
sharded and never materialises whole on one device.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx, struct
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from groot_jax import sharding
from groot_jax.models import groot
from groot_jax.train import optimizer
from groot_jax.train.config import TrainConfig


@struct.dataclass
class TrainState:
    step: jax.Array
    params: Any
    frozen: Any
    opt_state: Any


@dataclasses.dataclass
class Setup:
    """What the loop needs besides the state: model functions, optimizer, shardings."""

    fns: groot.GR00TFunctions
    tx: optax.GradientTransformation
    schedule: optax.Schedule
    mesh: Mesh
    abstract_state: TrainState          # ShapeDtypeStructs with concrete NamedShardings
    shardings: TrainState               # NamedSharding per leaf
    n_trainable: int
    n_frozen: int


def _build(cfg: TrainConfig, params: dict, tx: optax.GradientTransformation) -> TrainState:
    train, frozen = optimizer.split_params(params, cfg)
    if cfg.lora_rank > 0:
        flat = optimizer.flatten(params)
        train = {optimizer.LORA: optimizer.init_lora(flat, cfg.lora_rank,
                                                     jax.random.key(cfg.seed + 1),
                                                     jnp.dtype(cfg.param_dtype))}
    return TrainState(step=jnp.zeros([], jnp.int32), params=train, frozen=frozen,
                      opt_state=tx.init(train))


def _specs_for(tree: dict, names: dict, mesh: Mesh, cfg: TrainConfig) -> dict:
    """Specs of a (possibly partial) params tree, looked up by path in the full names tree."""
    flat_names = optimizer.flatten(names) if names else {}
    flat = optimizer.flatten(tree)
    rules = sharding.RULES[cfg.mesh.layout]
    out = {}
    for k, a in flat.items():
        n = flat_names.get(k)   # LoRA adapters have no names: replicated (they are small)
        out[k] = sharding.logical_to_spec(n, a.shape, mesh, rules,
                                          itemsize=jnp.dtype(a.dtype).itemsize,
                                          min_shard_bytes=cfg.mesh.min_shard_bytes)
    return optimizer.unflatten(out)


def state_shardings(abstract: TrainState, names: dict, mesh: Mesh, tx, cfg: TrainConfig
                    ) -> TrainState:
    pspec = _specs_for(abstract.params, names, mesh, cfg)
    fspec = _specs_for(abstract.frozen, names, mesh, cfg)
    psh = sharding.named(mesh, pspec)
    osh = optax.tree_map_params(tx, lambda _, s: s, abstract.opt_state, psh,
                                transform_non_params=lambda _: NamedSharding(mesh, P()),
                                is_leaf=lambda x: isinstance(x, NamedSharding))
    return TrainState(step=NamedSharding(mesh, P()), params=psh,
                      frozen=sharding.named(mesh, fspec), opt_state=osh)


def default_params_fn(model_cfg, seed: int, category_init: str = "original") -> Callable[[], dict]:
    """Random initialisation, traceable (runs inside the sharded init jit).

    category_init="fan_in" rescales the per-embodiment (category-specific) weights of the action
    head from the original's N(0, 0.02) to N(0, 1/fan_in). Why: for training from scratch at
    small width, 0.02 makes the state encoder's two stacked layers pass ~1e-4 of the state signal
    (gradient of the loss w.r.t. the state ~1e-7 at init), and a few-hundred-step run learns only
    the unconditional action distribution. Fine-tuning from a checkpoint is unaffected."""
    if category_init not in ("original", "fan_in"):
        raise ValueError(f"category_init must be original|fan_in, got {category_init!r}")

    def fn():
        p = nnx.to_pure_dict(nnx.split(groot.GR00T(model_cfg, rngs=nnx.Rngs(seed)), nnx.Param)[1])
        if category_init == "fan_in":
            flat = optimizer.flatten(p)
            for k, w in flat.items():
                if k.startswith("action_head/") and k.endswith("/W") and w.ndim == 3:
                    flat[k] = w * ((1.0 / w.shape[1] ** 0.5) / 0.02)
            p = optimizer.unflatten(flat)
        return p
    return fn


def setup(cfg: TrainConfig, mesh: Mesh) -> Setup:
    """Model functions, optimizer and the sharded abstract state (no memory allocated)."""
    model_cfg = cfg.model_config()
    fns, abstract_params = groot.abstract(model_cfg)
    names = sharding.logical_names(abstract_params)
    pure = nnx.to_pure_dict(abstract_params)
    tx, sched = optimizer.make_optimizer(cfg)
    abstract = jax.eval_shape(lambda p: _build(cfg, p, tx), pure)
    shard = state_shardings(abstract, names, mesh, tx, cfg)
    abstract = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                            abstract, shard)
    count = lambda t: sum(x.size for x in jax.tree.leaves(t))
    return Setup(fns=fns, tx=tx, schedule=sched, mesh=mesh, abstract_state=abstract,
                 shardings=shard, n_trainable=count(abstract.params),
                 n_frozen=count(abstract.frozen))


def init_state(cfg: TrainConfig, s: Setup, params_fn: Callable[[], dict] | None = None
               ) -> TrainState:
    """Sharded initial state. `params_fn()` returns the full nested params dict (e.g. a
    pretrained checkpoint); by default a random initialisation traced inside the jit."""
    if params_fn is None:
        fn = default_params_fn(cfg.model_config(), cfg.seed, cfg.category_init)
        return jax.jit(lambda: _build(cfg, fn(), s.tx), out_shardings=s.shardings)()
    params = params_fn()
    return jax.jit(lambda p: _build(cfg, p, s.tx), out_shardings=s.shardings)(params)
