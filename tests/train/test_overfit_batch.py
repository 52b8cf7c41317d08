"""Sanity check of the whole training path: the fine-tune preset must overfit one fixed batch.

A flow-matching policy that cannot memorise 8 examples cannot learn a task; one that memorises
them while ignoring the observation is caught by the control (the same model sampled with the
observations of the batch permuted must be wrong). Two cases: the action chunk is a function of
the state only (images random), and of the image only (state zero), so both input paths (state
encoder, vision tower -> LLM -> VL self-attention -> DiT cross-attention) are shown to carry the
signal. Uses `loop.train` with the `finetune_tiny` model (what `make demo` and a CPU user train).
"""
from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest

from configs import finetune_tiny
from groot_jax.train import loop
from groot_jax.train.data_spec import DataSpec
from groot_jax.train.step import make_sample_fn
from groot_jax.train.synthetic import SyntheticTask, _stack

BATCH = 8


class Repeat:
    """The same batch forever (what `loop.train` reads as its data iterator)."""

    def __init__(self, batch: dict):
        self.batch = batch

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        return self.batch


def fixed_batch(cfg, mode: str) -> dict:
    task = SyntheticTask.for_model(cfg.model_config())
    b = _stack([task.example(i) for i in range(BATCH)])
    if mode == "image":
        # The chunk is a function of the picture alone: each example keeps its own random image,
        # gets another example's actions, and the state is zeroed.
        b["action"] = b["action"][::-1].copy()
        b["state"] = np.zeros_like(b["state"])
    return b


def masked_mse(pred, batch) -> float:
    m = batch["action_mask"]
    return float((np.square(np.asarray(pred) - batch["action"]) * m).sum() / m.sum())


@pytest.mark.parametrize("mode", ["state", "image"])
def test_finetune_preset_overfits_one_batch(mode):
    cfg = finetune_tiny.get_config()
    cfg = dataclasses.replace(cfg, data=DataSpec(source="synthetic"), model_from_tokenizer=False,
                              steps=500, batch_size=BATCH, log_every=50, progress=False,
                              optim=dataclasses.replace(cfg.optim, lr=2e-3))
    batch = fixed_batch(cfg, mode)
    r = loop.train(cfg, data_iter=Repeat(batch), log=lambda m: None)
    losses = [r.losses[k] for k in sorted(r.losses)]
    sample = jax.jit(make_sample_fn(r.setup.fns, cfg))
    pred = sample(r.state, {k: v for k, v in batch.items() if k not in ("action", "action_mask")},
                  jax.random.key(1))
    m = batch["action_mask"]
    # Padded dims are masked out of every error; they count 1 here only to avoid 0 / 0.
    mean_action = (batch["action"] * m).sum(0, keepdims=True) / np.maximum(m.sum(0, keepdims=True), 1)
    baseline = masked_mse(np.broadcast_to(mean_action, batch["action"].shape), batch)
    err = masked_mse(pred, batch)
    # Control: each example's chunk sampled from another example's observation.
    perm = np.roll(np.arange(BATCH), 1)
    shuffled = {k: (v[perm] if k in ("state", "pixel_values") else v) for k, v in batch.items()
                if k not in ("action", "action_mask")}
    err_shuffled = masked_mse(sample(r.state, shuffled, jax.random.key(1)), batch)
    print(f"{mode}: loss {losses[0]:.3f} -> {np.mean(losses[-20:]):.4f}; sampled chunk MSE "
          f"{err:.4f}, mean-action {baseline:.4f}, observations permuted {err_shuffled:.4f}")
    assert np.mean(losses[-20:]) < 0.1 * np.mean(losses[:5])
    assert err < 0.1 * baseline, (err, baseline)
    assert err_shuffled > baseline, (err_shuffled, baseline)
