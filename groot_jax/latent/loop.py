"""A small functional optax loop over in-memory arrays (no data layer, no trainer).

`fit` samples minibatches from a dict of numpy arrays, runs a jitted step
(nnx.split/merge(copy=True) + optax adamw), and optionally a pure `post_update(model, aux, key)`
inside the same jit (the VQ-VAE uses it for the usage EMA and dead-code restart).

Why a second loop beside groot_jax/train/loop.py: that one trains GR00T only (a TrainState of
trainable / frozen GR00T parameters with a LoRA option, a device mesh and shardings, a Grain
iterator, periodic Orbax checkpoints, resume, preemption handling, metrics); the latent-action
VQ-VAE and the IDM are other nnx modules with non-Param state updated inside the step
(`post_update`), trained for seconds on arrays that fit in memory, on one device, and never resumed.
"""
from __future__ import annotations

import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx


def batched_apply(fn: Callable, arrays: dict[str, np.ndarray], batch_size: int = 256) -> dict:
    """Apply a jitted fn(batch) -> dict of arrays over the leading axis in chunks of one fixed
    size (the last chunk is padded, so fn compiles once); numpy out."""
    n = len(next(iter(arrays.values())))
    outs = []
    for i in range(0, n, batch_size):
        chunk = {k: v[i:i + batch_size] for k, v in arrays.items()}
        m = len(next(iter(chunk.values())))
        if m < batch_size:
            chunk = {k: np.concatenate([v, np.repeat(v[-1:], batch_size - m, 0)])
                     for k, v in chunk.items()}
        outs.append({k: v[:m] for k, v in jax.device_get(fn(chunk)).items()})
    return {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}


def fit(model: nnx.Module, loss_fn: Callable, data: dict[str, np.ndarray], *, steps: int,
        batch_size: int, lr: float, seed: int = 0, post_update: Callable | None = None,
        log_every: int = 0) -> list[dict]:
    """Train `model` in place. loss_fn(model, batch) -> (loss, aux dict); returns per-step
    history [{"step", "loss", **scalar aux}]."""
    tx = optax.adamw(optax.warmup_cosine_decay_schedule(0.0, lr, min(50, steps // 10 + 1), steps,
                                                        lr * 0.1), weight_decay=1e-4)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    opt_state = tx.init(params)

    @jax.jit
    def step(params, rest, opt_state, batch, key):
        def lf(p):
            m = nnx.merge(graphdef, p, rest, copy=True)
            loss, aux = loss_fn(m, batch)
            return loss, aux

        (loss, aux), g = jax.value_and_grad(lf, has_aux=True)(params)
        upd, opt_state = tx.update(g, opt_state, params)
        params = optax.apply_updates(params, upd)
        if post_update is not None:
            m = nnx.merge(graphdef, params, rest, copy=True)
            post_update(m, aux, key)
            _, params, rest = nnx.split(m, nnx.Param, ...)
        scalars = {k: v for k, v in aux.items() if jnp.ndim(v) == 0}
        return params, rest, opt_state, loss, scalars

    n = len(next(iter(data.values())))
    rng = np.random.default_rng(seed)
    key = jax.random.key(seed)
    history, t0 = [], time.time()
    for i in range(steps):
        idx = rng.integers(0, n, batch_size)
        batch = {k: v[idx] for k, v in data.items()}
        params, rest, opt_state, loss, scalars = step(params, rest, opt_state, batch,
                                                      jax.random.fold_in(key, i))
        if log_every and (i % log_every == 0 or i == steps - 1):
            rec = {"step": i, "loss": float(loss), **{k: float(v) for k, v in scalars.items()}}
            history.append(rec)
            print(f"step {i:5d}  " + "  ".join(f"{k}={v:.4f}" for k, v in rec.items() if k != "step")
                  + f"  ({time.time() - t0:.1f}s)", flush=True)
        else:
            history.append({"step": i, "loss": loss, **scalars})
    nnx.update(model, params, rest)
    return [{k: float(v) for k, v in h.items()} for h in history]
