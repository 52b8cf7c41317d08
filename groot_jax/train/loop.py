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
from groot_jax.train.checkpoints import Checkpoints, check_writable_dir
from groot_jax.train.config import TrainConfig

# Exit status of `groot-jax train` after a SIGTERM (preemption) was saved: EX_TEMPFAIL of
# sysexits.h ("try again later"), so that schedulers and scripts do not take it for a finished
# run (0) and restart it instead.
EXIT_PREEMPTED = 75


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


RUN_CONFIG = "run_config.json"
# Model presets the synthetic task may train (tests, dry runs, the CPU demo); a real model
# trains only on datasets.
SYNTHETIC_MODELS = ("tiny", "tiny_n1")


def default_data(cfg: TrainConfig, log: Callable[[str], None] = print) -> grain.DatasetIterator:
    """The run's data: the Grain pipeline of cfg.data's datasets (its processor files written
    into checkpoint.dir first), or the synthetic task."""
    if cfg.data.source == "datasets":
        from groot_jax.train import input_pipeline

        return input_pipeline.prepare(cfg, log=log)
    if cfg.model not in SYNTHETIC_MODELS:
        # Never let a real model train on the synthetic task by default.
        raise ValueError(f"{cfg.name} (model {cfg.model}) needs --dataset DIR: the synthetic "
                         f"task is only for the {'/'.join(SYNTHETIC_MODELS)} presets")
    task = synthetic.SyntheticTask.for_model(cfg.model_config(), cfg.num_views, cfg.prompt_len)
    return iter(synthetic.dataset(task, cfg.batch_size, seed=cfg.seed))


def write_run_config(cfg: TrainConfig) -> str:
    """`<checkpoint.dir>/run_config.json`: the whole TrainConfig (data spec and model included),
    what a resume, eval, serve and export read back (TrainConfig.from_json)."""
    path = os.path.join(cfg.checkpoint.dir, RUN_CONFIG)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(cfg.to_json())
    os.replace(tmp, path)
    return path


def read_run_config(directory: str) -> TrainConfig | None:
    """The TrainConfig saved in a run directory, or None when it has none."""
    path = os.path.join(directory, RUN_CONFIG)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        text = f.read()
    try:
        return TrainConfig.from_json(text)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path}: not a run config this version can read ({e})") from e


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
    is_main = jax.process_index() == 0
    log_dir = cfg.log_dir or (os.path.join(cfg.checkpoint.dir, "tb") if cfg.checkpoint.dir else None)
    # Unusable directories fail here, in one line, before set-up and compile (not at the first
    # save, minutes in).
    ckpt = Checkpoints(cfg.checkpoint) if cfg.checkpoint.dir else None
    losses: dict[int, float] = {}
    status = "done"
    start = 0
    logger = mfile = None
    pending: tuple[int, Any] | None = None     # (step, metrics) not yet fetched: one-step lag
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

    def record(p):
        """Fetch step p's metrics and log them (every step; throughput every log_every)."""
        vals = drain(p)
        if p[0] % cfg.log_every == 0:
            rate = tput.rate()
            vals["samples_per_s"] = rate
            if peak:
                vals["mfu"] = rate * flops_per_ex / (peak * jax.device_count())
        logger.log(p[0], vals)

    def save(n, force=False):
        logger.flush()   # the events of every saved step are on disk before its checkpoint
        if is_main:
            log(f"saving checkpoint step {n}")
        ckpt.save(n, state, data_iter, _meta(cfg, n, losses), force=force)

    try:
        if log_dir and is_main:
            check_writable_dir(log_dir, "log_dir")
        mesh = mesh or build_mesh(cfg)
        s = state_lib.setup(cfg, mesh)
        if ckpt and is_main:
            write_run_config(cfg)
        data_iter = data_iter if data_iter is not None else default_data(cfg, log)
        # From here on a SIGTERM (preemption) means "save and exit", also during restore and
        # compile and during the final save.
        with _Preemption() as pre:
            restored = (ckpt.restore_latest(s.abstract_state, data_iter, report=log)
                        if ckpt else None)
            if restored is not None:
                state, _, start = restored
                log(f"resumed from {cfg.checkpoint.dir}/{start}")
            else:
                state = state_lib.init_state(cfg, s, params_fn)
            if is_main:
                log(f"mesh {dict(mesh.shape)}; trainable {s.n_trainable:,} params "
                    f"({cfg.param_dtype}), frozen {s.n_frozen:,} ({cfg.frozen_dtype})")
                if log_dir:
                    log(f"TensorBoard events: {log_dir}")
            step_fn = jit_train_step(cfg, s)
            rng = jax.random.key(cfg.seed)
            model_cfg = cfg.model_config()
            end = cfg.steps if stop_after is None else min(cfg.steps, start + stop_after)
            logger = metrics_lib.Logger(log_dir, total_steps=cfg.steps, progress=cfg.progress,
                                        wandb_project=cfg.wandb_project, initial_step=start,
                                        log_every=cfg.log_every, print_fn=log)
            peak = cfg.peak_flops_per_device or metrics_lib.peak_flops()
            mfile = open(metrics_file, "a") if (metrics_file and is_main) else None
            tput = metrics_lib.Throughput()
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
                first = n == start + 1 and is_main
                if first:   # otherwise the 25-30 s (CPU, tiny) to minutes of compile are silent
                    log("compiling the train step...")
                    t0 = time.perf_counter()
                state, m = step_fn(state, batch, rng)
                if first:
                    log(f"compiled in {time.perf_counter() - t0:.1f}s; training steps "
                        f"{start + 1}-{end}")
                tput.add(cfg.batch_size)
                logger.advance()
                if pending is not None:
                    record(pending)
                pending = (n, m)
                if ckpt and n % cfg.checkpoint.every == 0 and n != end:
                    record(pending)   # never save a state whose loss is not finite
                    pending = None
                    save(n)
            if pending is not None:
                record(pending)
                pending = None
            last = int(jax.device_get(state.step))
            if ckpt and last > 0 and last not in ckpt.steps():
                save(last, force=True)
    except NonFiniteLossError as e:
        status = "stopped"
        log(str(e))
        raise
    finally:
        if ckpt:
            ckpt.wait()
            ckpt.close()
        if logger:
            logger.close()
        if mfile:
            mfile.close()
    return TrainResult(state=state, losses=losses, status=status, start_step=start, setup=s)


def _meta(cfg: TrainConfig, step: int, losses: dict[int, float]) -> dict:
    return {"step": step, "loss": losses.get(step), "config": json.loads(cfg.to_json()),
            "time": time.time()}
