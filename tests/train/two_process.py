"""One process of the jax.distributed test (or the single-process reference with --single).

python -m tests.train.two_process PROCESS_ID PORT     (two of these: ids 0 and 1, 1 CPU device each)
python -m tests.train.two_process --single            (one process, 2 CPU devices)
Prints JSON {"losses": [...], "param_sq": float} on process 0 / the single process."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import optax

ROOT = Path(__file__).resolve().parents[2]
STEPS = 3


def main() -> None:
    # No persistent compile cache here (unlike the other training tests). Observed with it: one
    # of the two processes loaded its step from the cache while the other compiled, and the first
    # collective timed out (gloo waits 30 s); the 2-device single run then also hit XLA CPU's
    # 40 s collective rendezvous timeout once.
    if sys.argv[1] == "--single":
        jax.config.update("jax_num_cpu_devices", 2)
    else:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(coordinator_address=f"localhost:{sys.argv[2]}",
                                   num_processes=2, process_id=int(sys.argv[1]))
    from groot_jax import sharding
    from groot_jax.train import config as tc
    from groot_jax.train import loop, synthetic
    from groot_jax.train import state as state_lib

    assert jax.device_count() == 2, jax.devices()
    cfg = tc.TrainConfig(model="tiny", steps=20, batch_size=4, compute_dtype="float32",
                         mesh=tc.MeshConfig(data=1, fsdp=2, min_shard_bytes=0))
    mesh = loop.build_mesh(cfg)
    s = state_lib.setup(cfg, mesh)
    st = state_lib.init_state(cfg, s)
    f = loop.jit_train_step(cfg, s)
    task = synthetic.SyntheticTask.for_model(cfg.model_config())
    it = iter(synthetic.dataset(task, cfg.batch_size, seed=0))   # this process's rows only
    losses = []
    for _ in range(STEPS):
        st, m = f(st, sharding.global_batch(next(it), mesh), jax.random.key(0))
        losses.append(float(m["loss"]))
    sq = jax.jit(lambda p: optax.tree.norm(p) ** 2, out_shardings=sharding.replicated(mesh))
    out = {"losses": losses, "param_sq": float(sq(st.params)), "processes": jax.process_count(),
           "local_rows": int(next(it)["action"].shape[0]), "x": float(jnp.zeros(()))}
    if jax.process_index() == 0:
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
