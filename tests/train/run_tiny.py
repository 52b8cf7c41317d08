"""Helper process for the training tests: trains the tiny preset on the synthetic task.

python -m tests.train.run_tiny CKPT_DIR --steps 10 --every 2 [--nan-at N] [--metrics FILE]
Prints one JSON line per finished run: {"status", "start", "losses"}.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import grain
import jax

ROOT = Path(__file__).resolve().parents[2]
jax.config.update("jax_compilation_cache_dir",
                  os.environ.get("JAX_TEST_CACHE", str(ROOT / ".jax_cache")))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

from absl import flags  # noqa: E402

flags.FLAGS.mark_as_parsed()

from groot_jax.train import config as tc  # noqa: E402
from groot_jax.train import loop  # noqa: E402


class NanAt(grain.DatasetIterator):
    """Wraps a Grain iterator; puts a NaN into the actions of the `at`-th batch (1-based)."""

    def __init__(self, it, at: int):
        super().__init__(it)
        self.it, self.at, self.n = it, at, 0

    def __next__(self):
        b = next(self.it)
        self.n += 1
        if self.n == self.at:
            b = dict(b)
            b["action"] = b["action"].copy()
            b["action"][0, 0, 0] = float("nan")
        return b

    def get_state(self):
        return self.it.get_state()

    def set_state(self, s):
        self.it.set_state(s)


def tiny_config(ckpt_dir: str | None, steps: int, every: int, **kw) -> tc.TrainConfig:
    return tc.TrainConfig(model="tiny", steps=steps, batch_size=4, log_every=2, progress=False,
                          checkpoint=tc.CheckpointConfig(dir=ckpt_dir, every=every, keep=3),
                          mesh=tc.MeshConfig(min_shard_bytes=0), **kw)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("ckpt_dir")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--every", type=int, default=2)
    p.add_argument("--nan-at", type=int, default=0)
    p.add_argument("--metrics", default=None)
    a = p.parse_args()
    cfg = tiny_config(a.ckpt_dir, a.steps, a.every)
    it = loop.default_data(cfg)
    if a.nan_at:
        it = NanAt(it, a.nan_at)
    try:
        r = loop.train(cfg, data_iter=it, metrics_file=a.metrics,
                       log=lambda m: print(m, file=sys.stderr, flush=True))
    except loop.NonFiniteLossError as e:
        print(json.dumps({"status": "nonfinite", "error": str(e)}), flush=True)
        return 3
    print(json.dumps({"status": r.status, "start": r.start_step,
                      "losses": {str(k): v for k, v in r.losses.items()}}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
