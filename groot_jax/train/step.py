"""Pure `train_step(state, batch, rng) -> (state, metrics)` and the sampling function: the jit
boundary.

Mixed precision: the image and state inputs are cast to `compute_dtype`, so the vision tower / LLM /
VL path runs in bf16 (Dense layers cast their kernels to the input dtype; norms and softmax
compute in fp32). The flow-matching path (noise, t, x_t, buckets) stays fp32 because t in bf16
would quantize the timestep buckets. Master weights stay in `param_dtype`.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from groot_jax.data import device_augment
from groot_jax.models import groot
from groot_jax.train import optimizer
from groot_jax.train.config import TrainConfig
from groot_jax.train.state import TrainState

COMPUTE_CAST_KEYS = ("pixel_values", "state")


def cast_inputs(batch: dict, cfg: TrainConfig) -> dict:
    # Batches from a PipelineConfig(device_augment=True) pipeline carry uint8 frames + jitter
    # draws: resize / jitter / normalise here, on the accelerator (others pass unchanged).
    batch = device_augment.apply(batch, cfg.model_config().backbone.image_size)
    dt = jnp.dtype(cfg.compute_dtype)
    return {k: (v.astype(dt) if k in COMPUTE_CAST_KEYS else v) for k, v in batch.items()}


def with_remat(fns, cfg: TrainConfig):
    """The model functions whose scanned layers follow `cfg.remat`. The policy is a field of the
    model config (GR00TConfig.with_remat), so for a policy other than "none" the model is built
    again, shapes only, from `cfg.model_config()` with it: the same parameters, recomputed
    activations in the backward pass. `fns` must be that model's (as `state.setup(cfg)` gives)."""
    if cfg.remat == "none":
        return fns
    return groot.abstract(cfg.model_config().with_remat(cfg.remat))[0]


def make_loss_fn(fns, cfg: TrainConfig) -> Callable:
    fns = with_remat(fns, cfg)

    def loss_fn(train_params, frozen, batch, rng, train: bool = True):
        params = optimizer.merge_params(train_params, frozen, cfg)
        return fns.loss(params, cast_inputs(batch, cfg), rng, train=train)
    return loss_fn


def _micro_batches(batch: dict, n: int) -> dict:
    """[B, ...] -> [n, B/n, ...] taking rows i::n for micro-batch i, so every device keeps its
    own rows (the batch axis is sharded contiguously) and no data moves."""
    def split(x):
        x = x.reshape(x.shape[0] // n, n, *x.shape[1:])
        return jnp.swapaxes(x, 0, 1)
    return jax.tree.map(split, batch)


def make_train_step(fns, cfg: TrainConfig, tx: optax.GradientTransformation,
                    schedule: optax.Schedule) -> Callable[[TrainState, dict, jax.Array], Any]:
    loss_fn = make_loss_fn(fns, cfg)
    grad_fn = jax.value_and_grad(loss_fn)

    grad_dtype = jnp.dtype(cfg.grad_dtype)

    def diff_params(params):
        # With grad_dtype=bfloat16 the loss is differentiated w.r.t. a bf16 copy of the trainable
        # weights, so the gradient buffers are bf16 (the forward computes in bf16 anyway).
        return jax.tree.map(lambda p: p.astype(grad_dtype) if p.dtype != grad_dtype else p, params)

    def train_step(state: TrainState, batch: dict, rng: jax.Array):
        rng = jax.random.fold_in(rng, state.step)
        if cfg.grad_accum == 1:
            loss, grads = grad_fn(diff_params(state.params), state.frozen, batch, rng)
        else:
            micro = _micro_batches(batch, cfg.grad_accum)
            zeros = jax.tree.map(lambda p: jnp.zeros(p.shape, jnp.float32), state.params)

            def body(carry, inp):
                g_acc, l_acc = carry
                mb, i = inp
                loss_i, g = grad_fn(diff_params(state.params), state.frozen, mb,
                                    jax.random.fold_in(rng, i))
                acc = jax.tree.map(lambda a, gi: a + gi.astype(jnp.float32), g_acc, g)
                return (acc, l_acc + loss_i), None

            (grads, loss), _ = jax.lax.scan(body, (zeros, jnp.zeros([], jnp.float32)),
                                            (micro, jnp.arange(cfg.grad_accum)))
            grads = jax.tree.map(lambda g, p: (g / cfg.grad_accum).astype(p.dtype), grads,
                                 state.params)
            loss = loss / cfg.grad_accum
        grad_norm = optimizer.global_norm_f32(grads)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        new = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
        metrics = {"loss": loss, "grad_norm": grad_norm, "lr": schedule(state.step),
                   "param_norm": optax.tree.norm(params)}
        return new, metrics

    return train_step


def make_sample_fn(fns, cfg: TrainConfig, num_steps: int = 4) -> Callable:
    """Actions [B, H, A] from a state (for open-loop evaluation)."""
    def sample(state: TrainState, inputs: dict, rng: jax.Array):
        params = optimizer.merge_params(state.params, state.frozen, cfg)
        return fns.sample_actions(params, cast_inputs(inputs, cfg), rng, num_steps=num_steps)
    return sample
