"""Train the inverse dynamics model on action-labelled pairs, and evaluate its pseudo-actions."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from groot_jax.latent.loop import batched_apply, fit
from groot_jax.models.idm import IDMConfig, InverseDynamicsModel


def _inputs(cfg: IDMConfig, pairs: dict) -> dict:
    keys = ["x0", "x1"] + (["state"] if cfg.state_dim else [])
    return {k: pairs[k] for k in keys}


def idm_loss(model: InverseDynamicsModel, batch: dict):
    pred = model(batch["x0"], batch["x1"], batch.get("state"))
    loss = jnp.mean((pred - batch["chunk"]) ** 2)
    return loss, {"mse": loss}


def train_idm(cfg: IDMConfig, pairs: dict, *, steps: int = 400, batch_size: int = 64,
              lr: float = 2e-3, seed: int = 0, log_every: int = 0):
    """pairs: x0, x1 float[N, S, S, 3], chunk float[N, H, A] (and state) -> (model, history)."""
    model = InverseDynamicsModel(cfg, rngs=nnx.Rngs(seed))
    data = {**_inputs(cfg, pairs), "chunk": pairs["chunk"]}
    history = fit(model, idm_loss, data, steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                  log_every=log_every)
    return model, history


@functools.partial(jax.jit, static_argnums=0)
def _apply(graphdef, state, batch):
    return {"chunk": nnx.merge(graphdef, state)(batch["x0"], batch["x1"], batch.get("state"))}


def predict_chunks(model: InverseDynamicsModel, pairs: dict, batch_size: int = 256) -> np.ndarray:
    """-> pseudo-action chunks float[N, H, A]."""
    graphdef, state = nnx.split(model)
    return batched_apply(lambda b: _apply(graphdef, state, b), _inputs(model.cfg, pairs),
                         batch_size)["chunk"]


def relative_error(pred: np.ndarray, true: np.ndarray, action_range: np.ndarray) -> dict:
    """Mean absolute / RMS error per action dimension divided by that dimension's range
    (max - min), averaged over dimensions."""
    err = (pred - true).reshape(-1, true.shape[-1])
    return {"mae_over_range": float(np.mean(np.abs(err).mean(0) / action_range)),
            "rmse_over_range": float(np.mean(np.sqrt((err ** 2).mean(0)) / action_range))}
