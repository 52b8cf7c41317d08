"""Analytic FLOP count, MFU, and the metric sinks (progress bar or plain lines, TensorBoard, W&B);
process 0 only.

FLOPs per example are counted from the model config: 2 * tokens * (in * out) for every matmul
weight, plus 4 * T * S * width for attention (scores and weighted sum). A training step costs
forward + 2 x forward (activation and weight gradients) for the parts that are differentiated
(the action head; the backbone only when tune_llm / tune_visual), and forward only elsewhere.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Any, Callable

import jax

from groot_jax.config import GR00TConfig
from groot_jax.models import backbone

# Dense bf16 peak FLOP/s per chip (vendor figures), for MFU.
PEAK_FLOPS = {"TPU v5 lite": 197e12, "TPU v5e": 197e12, "TPU v6 lite": 918e12, "TPU v6e": 918e12,
              "TPU v5p": 459e12, "TPU v4": 275e12, "H100": 989e12, "H200": 989e12, "A100": 312e12}


def peak_flops(device: jax.Device | None = None) -> float | None:
    kind = (device or jax.devices()[0]).device_kind
    for name, flops in PEAK_FLOPS.items():
        if name.lower() in kind.lower():
            return flops
    return None


def forward_flops(cfg: GR00TConfig, seq_len: int, num_views: int = 1) -> dict[str, float]:
    """Forward FLOPs per example, per component (backbone vision / llm, action head)."""
    ah = cfg.action_head
    bb = backbone.forward_flops(cfg.backbone, seq_len, num_views)
    e, h = ah.input_embedding_dim, ah.action_horizon
    s = 1 + ah.num_future_tokens + h
    head = 2 * (ah.max_state_dim * ah.hidden_size + ah.hidden_size * e)                  # state enc.
    head += 2 * h * (ah.action_dim * e + 2 * e * e + e * e)                              # action enc.
    head += 2 * s * (ah.hidden_size * ah.hidden_size + ah.hidden_size * ah.action_dim)   # decoder
    if ah.use_vlln:
        w = ah.backbone_embedding_dim
        head += ah.vl_self_attention.num_layers * (2 * seq_len * (4 * w * w + 8 * w * w)
                                                   + 4 * seq_len**2 * w)
    dit = ah.dit
    n_cross = dit.num_layers // 2 if dit.interleave_self_attention else dit.num_layers
    n_self = dit.num_layers - n_cross
    kv_dim = dit.cross_attention_dim or e
    ff = 2 * s * 8 * e * e
    head += n_cross * (2 * s * 2 * e * e + 2 * seq_len * 2 * kv_dim * e + ff + 4 * s * seq_len * e)
    head += n_self * (2 * s * 4 * e * e + ff + 4 * s * s * e)
    head += 2 * s * e * dit.output_dim
    return {**bb, "action_head": float(head)}


def train_flops_per_example(cfg: GR00TConfig, seq_len: int, num_views: int, *, tune_visual: bool,
                            tune_llm: bool) -> float:
    f = forward_flops(cfg, seq_len, num_views)
    back_llm = tune_llm or tune_visual
    return (f["vision"] * (3 if tune_visual else 1) + f["llm"] * (3 if back_llm else 1)
            + 3 * f["action_head"])


class EventFile:
    """TensorBoard scalars written synchronously. tensorboardX's SummaryWriter hands events to a
    background queue that its flush() does not wait for, so a killed run kept nothing written
    since its last timed flush (often an empty file); here `flush()` means on disk."""

    def __init__(self, log_dir: str):
        from tensorboardX.event_file_writer import EventsWriter

        os.makedirs(log_dir, exist_ok=True)
        self.writer = EventsWriter(os.path.join(log_dir, "events"))

    def scalars(self, step: int, metrics: dict[str, float], prefix: str = "train/") -> None:
        from tensorboardX.proto.event_pb2 import Event
        from tensorboardX.proto.summary_pb2 import Summary

        values = [Summary.Value(tag=prefix + k, simple_value=float(v)) for k, v in metrics.items()]
        self.writer.write_event(Event(wall_time=time.time(), step=step,
                                      summary=Summary(value=values)))

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def _interactive() -> bool:
    return sys.stdout.isatty() and sys.stderr.isatty()


def format_metrics(step: int, total: int, metrics: dict[str, float]) -> str:
    parts = [f"step {step}/{total}"]
    for k, fmt in (("loss", ".4f"), ("grad_norm", ".3g"), ("lr", ".3g"),
                   ("samples_per_s", ".1f"), ("mfu", ".2%")):
        if k in metrics:
            parts.append(f"{k} {metrics[k]:{fmt}}")
    return "  ".join(parts)


class Logger:
    """Process 0 only. Every step's scalars go to TensorBoard (`log_dir`) and W&B; a progress bar
    when `progress` and both stdout and stderr are terminals, else a plain line through `print_fn`
    every `log_every` steps (and at the last step), so that logs redirected to a file show the
    loss too."""

    def __init__(self, log_dir: str | None, *, total_steps: int, progress: bool = True,
                 wandb_project: str | None = None, config: dict | None = None,
                 initial_step: int = 0, log_every: int = 10,
                 print_fn: Callable[[str], None] = print):
        self.active = jax.process_index() == 0
        self.total, self.log_every, self.print_fn = total_steps, log_every, print_fn
        self.tb = self.bar = self.wandb = None
        if not self.active:
            return
        if log_dir:
            self.tb = EventFile(log_dir)
        if progress and _interactive():
            from tqdm.auto import tqdm
            self.bar = tqdm(total=total_steps, initial=initial_step, dynamic_ncols=True)
        if wandb_project:
            import wandb  # optional dependency
            self.wandb = wandb.init(project=wandb_project, config=config)

    def advance(self, n: int = 1) -> None:
        if self.active and self.bar is not None:
            self.bar.update(n)

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        if not self.active or not metrics:
            return
        if self.bar is not None:
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in metrics.items()
                                  if k in ("loss", "lr", "samples_per_s", "mfu")})
        elif step % self.log_every == 0 or step == self.total:
            self.print_fn(format_metrics(step, self.total, metrics))
        if self.tb is not None:
            self.tb.scalars(step, metrics)
            if step % self.log_every == 0:
                self.tb.flush()
        if self.wandb is not None:
            self.wandb.log(dict(metrics), step=step)

    def flush(self) -> None:
        """Called before every checkpoint: the events of the saved steps are then on disk."""
        if self.tb is not None:
            self.tb.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()


class Throughput:
    def __init__(self):
        self.t0, self.n = time.perf_counter(), 0

    def add(self, examples: int) -> None:
        self.n += examples

    def rate(self) -> float:
        dt = time.perf_counter() - self.t0
        r = self.n / dt if dt > 0 else 0.0
        self.t0, self.n = time.perf_counter(), 0
        return r
