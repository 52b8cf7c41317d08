"""The training loop: mesh, sharded jit, resume, checkpoints, preemption, logging.

`train(cfg, data_iter=..., params_fn=...)` takes any Grain `DatasetIterator` yielding this
process's rows of each global batch (its state is saved with every checkpoint) and an optional
`params_fn()` returning initial (e.g. pretrained) params as a nested dict.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import time
from typing import Any, Callable

import grain
import jax
import numpy as np
from jax.sharding import Mesh

from groot_jax import sharding
from groot_jax.train import metrics as metrics_lib
from groot_jax.train import state as state_lib
from groot_jax.train import step as step_lib
from groot_jax.train import synthetic
from groot_jax.train.checkpoints import Checkpoints
from groot_jax.train.config import TrainConfig


class NonFiniteLossError(RuntimeError):
    pass


@dataclasses.dataclass
class TrainResult:
    state: state_lib.TrainState
    losses: dict[int, float]       # step (1-based, = optimizer steps done) -> loss of that step
    status: str                    # "done" | "preempted" | "stopped"
    start_step: int
    setup: state_lib.Setup


def maybe_initialize_distributed() -> None:
    """`jax.distributed.initialize()` when launched multi-process (env vars set by the launcher
    or a TPU pod); a no-op for a single process."""
    if os.environ.get("JAX_COORDINATOR_ADDRESS") or os.environ.get("TPU_WORKER_HOSTNAMES"):
        jax.distributed.initialize()


def build_mesh(cfg: TrainConfig, devices=None) -> Mesh:
    """The configured mesh over `devices` (default: all local/global devices)."""
    return sharding.make_mesh(cfg.mesh.data, cfg.mesh.fsdp, cfg.mesh.tensor, devices=devices)


def default_data(cfg: TrainConfig) -> grain.DatasetIterator:
    if cfg.data != "synthetic":
        # Never fall back to the synthetic task silently when the config asked for real data.
        raise ValueError(f"TrainConfig.data={cfg.data!r}: the loop builds only the 'synthetic' "
                         f"task itself; pass data_iter= (the CLI does for a config file that "
                         f"defines get_pyramid(cfg))")
    task = synthetic.SyntheticTask.for_model(cfg.model_config(), cfg.num_views, cfg.prompt_len)
    return iter(synthetic.dataset(task, cfg.batch_size, seed=cfg.seed))


def jit_train_step(cfg: TrainConfig, s: state_lib.Setup) -> Callable:
    fn = step_lib.make_train_step(s.fns, cfg, s.tx, s.schedule)
    rep = sharding.replicated(s.mesh)
    return jax.jit(fn, in_shardings=(s.shardings, sharding.batch_sharding(s.mesh), rep),
                   out_shardings=(s.shardings, rep), donate_argnums=(0,))


class _Preemption:
    """SIGTERM sets a flag; the loop saves and exits at the next step boundary."""

    def __init__(self):
        self.flag = False
        self.previous = None

    def __enter__(self):
        try:
            self.previous = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:   # not the main thread
            self.previous = None
        return self

    def _handle(self, signum, frame):
        self.flag = True

    def requested(self) -> bool:
        if jax.process_count() > 1:   # every process must agree to stop at the same step
            from jax.experimental import multihost_utils
            return bool(multihost_utils.process_allgather(np.int32(self.flag)).max())
        return self.flag

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)


def train(cfg: TrainConfig, *, data_iter: grain.DatasetIterator | None = None,
          params_fn: Callable[[], dict] | None = None, mesh: Mesh | None = None,
          stop_after: int | None = None, metrics_file: str | None = None,
          log: Callable[[str], None] = print) -> TrainResult:
    """Train to `cfg.steps` (or `stop_after` more steps), resuming from the newest good checkpoint."""
    mesh = mesh or build_mesh(cfg)
    s = state_lib.setup(cfg, mesh)
    data_iter = data_iter if data_iter is not None else default_data(cfg)
    ckpt = Checkpoints(cfg.checkpoint) if cfg.checkpoint.dir else None
    is_main = jax.process_index() == 0
    restored = ckpt.restore_latest(s.abstract_state, data_iter) if ckpt else None
    if restored is not None:
        state, _, start = restored
        log(f"resumed from {cfg.checkpoint.dir}/{start}")
    else:
        state, start = state_lib.init_state(cfg, s, params_fn), 0
    if is_main:
        log(f"mesh {dict(mesh.shape)}; trainable {s.n_trainable:,} params "
            f"({cfg.param_dtype}), frozen {s.n_frozen:,} ({cfg.frozen_dtype})")
    step_fn = jit_train_step(cfg, s)
    rng = jax.random.key(cfg.seed)
    model_cfg = cfg.model_config()
    end = cfg.steps if stop_after is None else min(cfg.steps, start + stop_after)
    log_dir = cfg.log_dir or (os.path.join(cfg.checkpoint.dir, "tb") if cfg.checkpoint.dir else None)
    logger = metrics_lib.Logger(log_dir, total_steps=cfg.steps, progress=cfg.progress,
                                wandb_project=cfg.wandb_project, initial_step=start)
    peak = cfg.peak_flops_per_device or metrics_lib.peak_flops()
    mfile = open(metrics_file, "a") if (metrics_file and is_main) else None
    losses: dict[int, float] = {}
    status = "done"
    pending: tuple[int, Any] | None = None     # (step, metrics) not yet fetched: one-step lag
    tput = metrics_lib.Throughput()
    flops_per_ex = None

    def drain(p):
        n, m = p
        vals = {k: float(v) for k, v in jax.device_get(m).items()}
        if not math.isfinite(vals["loss"]):
            raise NonFiniteLossError(
                f"non-finite loss {vals['loss']} at step {n}; stopping. The last good checkpoint "
                f"in {cfg.checkpoint.dir} is step {max(ckpt.steps()) if ckpt and ckpt.steps() else None}"
                f" and is kept; lower optim.lr or check the data.")
        losses[n] = vals["loss"]
        if mfile:
            mfile.write(json.dumps({"step": n, **vals}) + "\n")
            mfile.flush()
        return vals

    try:
        with _Preemption() as pre:
            for n in range(start + 1, end + 1):
                if pre.requested():
                    status = "preempted"
                    log(f"SIGTERM: saving step {n - 1} and exiting")
                    break
                local = next(data_iter)
                if flops_per_ex is None:
                    # [B, views, ...]; device-augmented batches carry uint8 frames (or their
                    # yuv420p luma) instead.
                    frames = next(local[k] for k in ("pixel_values", "pixel_u8", "pixel_y")
                                  if k in local)
                    flops_per_ex = metrics_lib.train_flops_per_example(
                        model_cfg, local["input_ids"].shape[1], frames.shape[1],
                        tune_visual=cfg.tune_visual, tune_llm=cfg.tune_llm)
                batch = sharding.global_batch(local, mesh)
                state, m = step_fn(state, batch, rng)
                tput.add(cfg.batch_size)
                if pending is not None:
                    vals = drain(pending)
                    if pending[0] % cfg.log_every == 0:
                        rate = tput.rate()
                        vals["samples_per_s"] = rate
                        if peak:
                            vals["mfu"] = rate * flops_per_ex / (peak * jax.device_count())
                        logger.log(pending[0], vals)
                logger.log(n, {}, advance=1)
                pending = (n, m)
                if ckpt and n % cfg.checkpoint.every == 0 and n != end:
                    drain(pending)   # never save a state whose loss is not finite
                    pending = None
                    ckpt.save(n, state, data_iter, _meta(cfg, n, losses))
            if pending is not None:
                drain(pending)
                pending = None
        last = int(jax.device_get(state.step))
        if ckpt and last > 0 and last not in ckpt.steps():
            ckpt.save(last, state, data_iter, _meta(cfg, last, losses), force=True)
    except NonFiniteLossError as e:
        status = "stopped"
        log(str(e))
        if ckpt:
            ckpt.wait()
        raise
    finally:
        if ckpt:
            ckpt.wait()
            ckpt.close()
        logger.close()
        if mfile:
            mfile.close()
    return TrainResult(state=state, losses=losses, status=status, start_step=start, setup=s)


def _meta(cfg: TrainConfig, step: int, losses: dict[int, float]) -> dict:
    return {"step": step, "loss": losses.get(step), "config": json.loads(cfg.to_json()),
            "time": time.time()}
