"""Run in a process with 8 CPU devices (XLA_FLAGS=--xla_force_host_platform_device_count=8).

Trains the tiny preset for 5 steps on one device and on a (data=2, fsdp=4) mesh with the same
batches and seeds, everything trainable, and prints the max relative differences as JSON."""
from __future__ import annotations

import json
import os
from pathlib import Path

import jax
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
jax.config.update("jax_compilation_cache_dir",
                  os.environ.get("JAX_TEST_CACHE", str(ROOT / ".jax_cache")))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)

from groot_jax import sharding  # noqa: E402
from groot_jax.train import config as tc  # noqa: E402
from groot_jax.train import loop, synthetic  # noqa: E402
from groot_jax.train import state as state_lib  # noqa: E402

STEPS = 5


def run(mesh, cfg, batches):
    s = state_lib.setup(cfg, mesh)
    st = state_lib.init_state(cfg, s)
    f = loop.jit_train_step(cfg, s)
    rng, losses = jax.random.key(cfg.seed), []
    for b in batches:
        st, m = f(st, sharding.global_batch(b, mesh), rng)
        losses.append(float(m["loss"]))
    specs = jax.tree.map(lambda a: str(a.sharding.spec), st.params)
    return losses, jax.device_get(st.params), jax.device_get(st.opt_state), specs


def main():
    assert jax.device_count() == 8, jax.devices()
    cfg = tc.TrainConfig(model="tiny", steps=20, batch_size=8, tune_llm=True, tune_visual=True,
                         compute_dtype="float32", frozen_dtype="float32",
                         mesh=tc.MeshConfig(data=2, fsdp=4, min_shard_bytes=0))
    task = synthetic.SyntheticTask.for_model(cfg.model_config())
    it = iter(synthetic.dataset(task, cfg.batch_size, seed=0))
    batches = [next(it) for _ in range(STEPS)]
    one = run(sharding.make_mesh(1, 1, 1, devices=jax.devices()[:1]), cfg, batches)
    eight = run(sharding.make_mesh(2, 4, 1), cfg, batches)
    rel = lambda a, b: float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))
    rel_tree = jax.tree.map(rel, eight[1], one[1])
    p_rel = jax.tree.leaves(rel_tree)
    worst = sorted(jax.tree_util.tree_flatten_with_path(rel_tree)[0], key=lambda kv: -kv[1])[:5]
    worst = [(jax.tree_util.keystr(k), v) for k, v in worst]
    d = jax.tree.leaves(jax.tree.map(lambda a, b: np.sum((a - b) ** 2.0), eight[1], one[1]))
    n = jax.tree.leaves(jax.tree.map(lambda b: np.sum(b**2.0), one[1]))
    glob = float(np.sqrt(sum(d) / sum(n)))
    loss_rel = [abs(a - b) / abs(b) for a, b in zip(eight[0], one[0], strict=True)]
    specs = [s for s in jax.tree.leaves(eight[3]) if s not in ("PartitionSpec()", "P()")]
    # Key-projection biases shift every logit of a query row by the same amount, which softmax
    # ignores: their true gradient is exactly 0, so Adam turns rounding noise (~1e-12) into
    # lr-sized steps of either sign. They are compared separately (absolute, scaled by lr).
    paths = [(jax.tree_util.keystr(k), v) for k, v in
             jax.tree_util.tree_flatten_with_path(rel_tree)[0]]
    p_rel = [v for k, v in paths if not k.endswith("['to_k']['bias']")
             and not k.endswith("['k_proj']['bias']")]
    flat8 = [(jax.tree_util.keystr(k), v)
             for k, v in jax.tree_util.tree_flatten_with_path(eight[1])[0]]
    is_kb = lambda k: k.endswith("['to_k']['bias']") or k.endswith("['k_proj']['bias']")
    kb = [float(np.max(np.abs(a - b)))
          for (k, a), b in zip(flat8, jax.tree.leaves(one[1]), strict=True) if is_kb(k)]
    print(json.dumps({"losses_1": one[0], "losses_8": eight[0], "loss_rel": max(loss_rel),
                      "param_rel": max(p_rel), "worst": worst, "global_rel": glob,
                      "n_leaves": len(p_rel), "k_bias_abs": max(kb), "n_k_bias": len(kb),
                      "n_sharded": len(specs), "fsdp_specs": sorted(set(specs))[:8],
                      "loss_changed": one[0][0] != one[0][-1]}))


if __name__ == "__main__":
    main()
