"""`--dry-run`: compile the sharded train step for the configured mesh and batch and report
per-device memory from XLA's memory analysis, without allocating the state or running it.

With `tpu="v5e:1x1"` (CLI `--tpu`) the step is compiled by the TPU compiler for that slice
(`tpu_aot`, no chip needed): the figures are the TPU's, and a step that does not fit in HBM
raises `tpu_aot.TpuOutOfMemory`. Without it, the figures are the local backend's (CPU here,
whose bf16 matmuls add fp32 copies of weights that a TPU program does not have)."""
from __future__ import annotations

import jax
import numpy as np

from groot_jax import sharding
from groot_jax.train import loop, tpu_aot
from groot_jax.train import state as state_lib
from groot_jax.train.config import TrainConfig

GiB = 2**30


def synthetic_shapes(cfg: TrainConfig) -> dict:
    """{key: (shape, dtype)} of a global batch of the synthetic task (cfg.num_views views,
    cfg.prompt_len text tokens)."""
    m = cfg.model_config()
    b, v = cfg.batch_size, cfg.num_views
    seq = cfg.prompt_len + v * m.backbone.tokens_per_image
    size = m.backbone.image_size
    ah = m.action_head
    return dict(input_ids=((b, seq), np.int32), attention_mask=((b, seq), np.bool_),
                pixel_values=((b, v, size, size, 3), np.float32),
                state=((b, 1, ah.max_state_dim), np.float32), embodiment_id=((b,), np.int32),
                action=((b, ah.action_horizon, ah.action_dim), np.float32),
                action_mask=((b, ah.action_horizon, ah.action_dim), np.float32))


def batch_shapes(batch: dict, global_batch: int) -> dict:
    """{key: (shape, dtype)} of one real (per-process) batch, its rows scaled to the global
    batch: what the dry run compiles for when the run reads datasets."""
    return {k: ((global_batch,) + tuple(np.shape(v)[1:]), np.asarray(v).dtype)
            for k, v in batch.items()}


def abstract_batch(cfg: TrainConfig, mesh, shapes: dict | None = None) -> dict:
    sh = sharding.batch_sharding(mesh)
    spec = shapes if shapes is not None else synthetic_shapes(cfg)
    return {k: jax.ShapeDtypeStruct(s, d, sharding=sh) for k, (s, d) in spec.items()}


def format_shapes(shapes: dict) -> str:
    return ", ".join(f"{k} {list(s)} {np.dtype(d).name}" for k, (s, d) in shapes.items())


def report(cfg: TrainConfig, mesh=None, tpu: str | None = None, shapes: dict | None = None
           ) -> dict:
    """Bytes per device: arguments (state + batch), outputs, temporaries, and their peak sum.
    `tpu`: a TPU slice ("v5e:1x1") to compile for instead of the local devices. `shapes`: the
    batch's {key: (shape, dtype)} (batch_shapes of a real batch); default the synthetic task's."""
    if mesh is None:
        mesh = loop.build_mesh(cfg, devices=tpu_aot.devices(tpu) if tpu else None)
    s = state_lib.setup(cfg, mesh)
    step = loop.jit_train_step(cfg, s)
    rng = jax.ShapeDtypeStruct((), jax.random.key(0).dtype, sharding=sharding.replicated(mesh))
    lowered = step.lower(s.abstract_state, abstract_batch(cfg, mesh, shapes), rng)
    compiled = tpu_aot.compile_or_oom(lowered) if tpu else lowered.compile()
    ma = compiled.memory_analysis()
    state_bytes = _per_device_bytes(s.abstract_state)
    device = mesh.devices.flat[0]
    out = dict(target=f"{device.device_kind} ({tpu})" if tpu else device.device_kind,
               devices=int(np.prod(list(mesh.shape.values()))), mesh=dict(mesh.shape),
               batch_size=cfg.batch_size, trainable=s.n_trainable, frozen=s.n_frozen,
               batch=format_shapes(shapes if shapes is not None else synthetic_shapes(cfg)),
               batch_source="data pipeline" if shapes is not None else "synthetic task",
               state_bytes=state_bytes,
               argument_bytes=int(ma.argument_size_in_bytes),
               output_bytes=int(ma.output_size_in_bytes),
               alias_bytes=int(ma.alias_size_in_bytes),
               temp_bytes=int(ma.temp_size_in_bytes),
               generated_code_bytes=int(ma.generated_code_size_in_bytes))
    # Donated state aliases its outputs, so peak = arguments + outputs - aliased + temporaries.
    out["peak_bytes"] = (out["argument_bytes"] + out["output_bytes"] - out["alias_bytes"]
                         + out["temp_bytes"])
    if tpu:
        out["hbm_bytes"] = tpu_aot.HBM_GIB[tpu_aot.parse(tpu)[0]] * GiB
    return out


def _per_device_bytes(abstract) -> int:
    total = 0
    for a in jax.tree.leaves(abstract):
        shard = a.sharding.shard_shape(a.shape)
        total += int(np.prod(shard)) * np.dtype(a.dtype).itemsize
    return total


def format_report(r: dict) -> str:
    g = lambda k: f"{r[k] / GiB:7.2f} GiB"
    return "\n".join([
        f"compiled for {r['target']}: mesh {r['mesh']} ({r['devices']} devices), "
        f"global batch {r['batch_size']}",
        f"parameters: trainable {r['trainable']:,}, frozen {r['frozen']:,}",
        f"batch ({r['batch_source']}): {r['batch']}",
        f"per device: train state {g('state_bytes')}",
        f"            arguments   {g('argument_bytes')}  (state + batch)",
        f"            outputs     {g('output_bytes')}  (aliased with donated inputs: "
        f"{r['alias_bytes'] / GiB:.2f} GiB)",
        f"            temporaries {g('temp_bytes')}  (activations, gradients, workspace)",
        f"            peak        {g('peak_bytes')}",
    ] + ([_tpu_line(r)] if "hbm_bytes" in r else []))


def _tpu_line(r: dict) -> str:
    # The TPU compiler refuses (TpuOutOfMemory) a step it cannot place in HBM; the peak above is
    # the simple sum, which can exceed what the compiler places (it accepted 16.42 GiB by this sum
    # at batch 32 on a v5e), so a step above HBM by the sum is reported as having no headroom.
    hbm = r["hbm_bytes"]
    if r["peak_bytes"] <= hbm:
        return (f"fits: the TPU compiler accepted the step; peak {r['peak_bytes'] / GiB:.2f} of "
                f"{hbm / GiB:.0f} GiB HBM per chip")
    return (f"the TPU compiler accepted the step, but the peak sum exceeds {hbm / GiB:.0f} GiB HBM "
            f"per chip: no headroom, use a smaller batch")
