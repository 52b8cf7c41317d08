"""Device mesh, logical axis rules and the resolution of logical names to `PartitionSpec`s.

Parameters carry logical axis names in their `out_sharding` metadata (set in
`groot_jax.models.layers.param`): 'layers', 'embed', 'mlp', 'heads', 'kv_heads', 'vocab',
'embodiment', None. A rules table maps each name to mesh axes; one table per layout:

  dp       every parameter replicated; the batch split over all devices
  fsdp     parameters split on one dimension over 'fsdp' (ZeRO-3 style); batch over data x fsdp
  fsdp_tp  as fsdp, plus the MLP / head / vocab dimensions split over 'tensor'

Resolution is per array and safe by construction: a mesh axis is used at most once per array, a
dimension that the mesh axis size does not divide stays unsplit, and arrays smaller than
`min_shard_bytes` stay replicated (openpi / big_vision keep small arrays whole).
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

MESH_AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")

# logical name -> candidate mesh axes, in order of preference.
RULES: dict[str, dict[str, tuple[str, ...]]] = {
    "dp": {},
    "fsdp": {
        "embed": ("fsdp",), "mlp": ("fsdp",), "heads": ("fsdp",), "kv_heads": ("fsdp",),
        "vocab": ("fsdp",), "embodiment": ("fsdp",),
    },
    "fsdp_tp": {
        "embed": ("fsdp",), "embodiment": ("fsdp",),
        "mlp": ("tensor", "fsdp"), "heads": ("tensor", "fsdp"), "kv_heads": ("tensor", "fsdp"),
        "vocab": ("tensor", "fsdp"),
    },
}


def make_mesh(data: int = -1, fsdp: int = 1, tensor: int = 1,
              devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A (data, fsdp, tensor) mesh with Auto (GSPMD) axes; `data=-1` takes the remaining devices."""
    devices = list(devices) if devices is not None else jax.devices()
    n = len(devices)
    if data == -1:
        if n % (fsdp * tensor):
            raise ValueError(f"{n} devices are not divisible by fsdp*tensor = {fsdp}*{tensor}")
        data = n // (fsdp * tensor)
    if data * fsdp * tensor != n:
        raise ValueError(f"mesh data*fsdp*tensor = {data}*{fsdp}*{tensor} != {n} devices")
    return jax.make_mesh((data, fsdp, tensor), MESH_AXES, axis_types=(AxisType.Auto,) * 3,
                         devices=devices)


def logical_to_spec(names: Sequence[str | None] | None, shape: Sequence[int], mesh: Mesh,
                    rules: Mapping[str, tuple[str, ...]], *, itemsize: int = 4,
                    min_shard_bytes: int = 0) -> P:
    """Resolve one array's logical names to a PartitionSpec on `mesh`."""
    if names is None or math.prod(shape) * itemsize < min_shard_bytes:
        return P()
    used: set[str] = set()
    spec: list[str | None] = []
    for name, dim in zip(names, shape, strict=True):
        chosen = None
        for axis in rules.get(name, ()) if name is not None else ():
            size = mesh.shape[axis]
            if axis not in used and size > 1 and dim % size == 0:
                chosen = axis
                break
        if chosen is not None:
            used.add(chosen)
        spec.append(chosen)
    while spec and spec[-1] is None:
        spec.pop()
    return P(*spec)


def logical_names(abstract_params: Any) -> dict:
    """Nested dict (same structure as `nnx.to_pure_dict(params)`) of each Param's logical names."""
    from flax import nnx  # local: keep this module importable without flax at module load

    out: dict = {}
    for path, var in nnx.to_flat_state(abstract_params):
        node = out
        for key in path[:-1]:
            node = node.setdefault(str(key), {})
        node[str(path[-1])] = var.get_metadata().get("out_sharding")
    return out


def named(mesh: Mesh, specs: Any) -> Any:
    return jax.tree.map(lambda s: NamedSharding(mesh, s), specs, is_leaf=lambda x: isinstance(x, P))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split over data x fsdp; every other axis whole."""
    return NamedSharding(mesh, P(BATCH_AXES))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def global_batch(local: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Assemble per-process batch slices into global arrays sharded over the batch axes.

    Each process passes its own slice (rows `process_index * local_b ...`); on a single process
    this is a plain sharded `device_put`.
    """
    sharding = batch_sharding(mesh)
    if jax.process_count() == 1:
        return {k: jax.device_put(np.asarray(v), sharding) for k, v in local.items()}
    return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
            for k, v in local.items()}
