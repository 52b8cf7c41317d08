"""Train the latent-action VQ-VAE on frame pairs, and evaluate it (linear probe, codebook usage)."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from groot_jax.latent.loop import batched_apply, fit
from groot_jax.models.latent_action import (
    LatentActionConfig,
    LatentActionModel,
    restart_dead_codes,
    update_usage,
)


def lam_loss(model: LatentActionModel, batch: dict):
    out = model(batch["x0"], batch["x1"])
    aux = {k: out[k] for k in ("recon_loss", "codebook_loss", "commit_loss")}
    aux["one_hot"], aux["z_e"] = out["one_hot"], out["z_e"]
    aux["used_codes"] = jnp.sum(out["one_hot"].reshape(-1, model.cfg.num_codes).max(0))
    return out["loss"], aux


def lam_post_update(model: LatentActionModel, aux: dict, key) -> None:
    """Usage EMA, then restart of dead codes from this batch's encoder outputs."""
    cfg = model.cfg
    usage = update_usage(model.vq.usage[...], aux["one_hot"], cfg.usage_decay)
    cb, usage = restart_dead_codes(model.vq.codebook[...], usage,
                                   aux["z_e"].reshape(-1, cfg.latent_dim), key, cfg.dead_fraction)
    model.vq.codebook[...] = cb
    model.vq.usage[...] = usage


def train_lam(cfg: LatentActionConfig, pairs: dict, *, steps: int = 800, batch_size: int = 64,
              lr: float = 3e-3, seed: int = 0, log_every: int = 0):
    """pairs: x0, x1 float[N, S, S, 3] -> (model, history)."""
    model = LatentActionModel(cfg, rngs=nnx.Rngs(seed))
    data = {"x0": pairs["x0"], "x1": pairs["x1"]}
    history = fit(model, lam_loss, data, steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                  post_update=lam_post_update, log_every=log_every)
    return model, history


@functools.partial(jax.jit, static_argnums=0)
def _apply(graphdef, state, batch):  # weights are an argument: a closure would bake them into the HLO
    out = nnx.merge(graphdef, state)(batch["x0"], batch["x1"])
    recon = jnp.mean((out["x1_hat"] - batch["x1"]) ** 2, axis=(1, 2, 3))
    return {"z_e": out["z_e"].reshape(len(recon), -1), "codes": out["codes"], "recon": recon}


def encode_pairs(model: LatentActionModel, x0: np.ndarray, x1: np.ndarray, batch_size: int = 256):
    """-> {"z_e": float[N, N_tok*D] (the latent action), "codes": int[N, N_tok], "recon": float[N]}."""
    graphdef, state = nnx.split(model)
    return batched_apply(lambda b: _apply(graphdef, state, b), {"x0": x0, "x1": x1}, batch_size)


def linear_probe_r2(z_train, y_train, z_test, y_test, ridge: float = 1e-3) -> float:
    """Ridge regression y ~ [z, 1] fit on train, R^2 on test averaged uniformly over outputs."""
    def design(z):
        return np.concatenate([z, np.ones((len(z), 1))], 1).astype(np.float64)

    a = design(z_train)
    w = np.linalg.solve(a.T @ a + ridge * np.eye(a.shape[1]), a.T @ y_train)
    pred = design(z_test) @ w
    ss_res = ((y_test - pred) ** 2).sum(0)
    ss_tot = ((y_test - y_test.mean(0)) ** 2).sum(0)
    return float(np.mean(1 - ss_res / ss_tot))


def codebook_stats(codes: np.ndarray, num_codes: int) -> dict:
    """codes int[...] -> fraction of codes used at least once, and perplexity / K."""
    counts = np.bincount(codes.reshape(-1), minlength=num_codes)
    p = counts / counts.sum()
    perplexity = float(np.exp(-(p[p > 0] * np.log(p[p > 0])).sum()))
    return {"used_fraction": float((counts > 0).mean()), "perplexity_fraction": perplexity / num_codes}
