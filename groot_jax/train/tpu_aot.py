"""Compile for a TPU on a machine without one (ahead-of-time, through libtpu's topology API).

`devices("v5e:1x1")` returns the devices of a described (not attached) TPU slice; a mesh over them
lowers and compiles a jitted function with the real TPU compiler, so `--dry-run --tpu v5e:1x1`
reports the TPU's own memory analysis (and the TPU compiler refuses a program that does not fit
in HBM: `TpuOutOfMemory` carries its message). Nothing runs: there is no chip.

libtpu is found at $TPU_LIBRARY_PATH, else as the `libtpu` package, else in this repository's
`.tpu-aot/` (`make tpu-aot`; kept out of .venv because an importable libtpu makes every JAX start
on a TPU-less machine try, and fail loudly, to open a TPU).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

LIBTPU_PIN = "libtpu==0.0.42.*"            # what jax[tpu]==0.10.2 pins
REPO_LIBTPU = Path(__file__).resolve().parents[2] / ".tpu-aot" / "libtpu" / "libtpu.so"
# HBM per chip, GiB (public TPU specs), for the "fits" line of the report.
HBM_GIB = {"v4": 32, "v5e": 16, "v5p": 95, "v6e": 32}
_TOPOLOGY = re.compile(r"^(v4|v5e|v5p|v6e):(\d+)x(\d+)(?:x(\d+))?$")


class TpuOutOfMemory(RuntimeError):
    """The TPU compiler refused the program: it needs more HBM than the chip has."""


def library_path() -> str:
    env = os.environ.get("TPU_LIBRARY_PATH")
    if env:
        if not Path(env).is_file():
            raise FileNotFoundError(f"TPU_LIBRARY_PATH={env} is not a file")
        return env
    try:
        import libtpu  # noqa: PLC0415 - optional

        return libtpu.get_library_path()
    except ImportError:
        pass
    if REPO_LIBTPU.is_file():
        return str(REPO_LIBTPU)
    raise FileNotFoundError(
        f"no libtpu for TPU ahead-of-time compilation: set TPU_LIBRARY_PATH, or run `make tpu-aot` "
        f"(pip install --target .tpu-aot '{LIBTPU_PIN}'); looked in {REPO_LIBTPU}")


def parse(topology: str) -> tuple[str, tuple[int, int, int]]:
    """"v5e:2x4" -> ("v5e", (2, 4, 1))."""
    m = _TOPOLOGY.match(topology)
    if not m:
        raise ValueError(f"TPU topology {topology!r} is not of the form GEN:AxB[xC] with GEN in "
                         f"{sorted(HBM_GIB)}, e.g. v5e:1x1 (Colab v5e-1) or v5e:2x4")
    gen, a, b, c = m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4) or 1)
    return gen, (a, b, c)


def devices(topology: str) -> list:
    """The devices of a TPU slice described by `topology` (e.g. "v5e:1x1"), for AOT compiles."""
    gen, dims = parse(topology)
    os.environ.setdefault("TPU_LIBRARY_PATH", library_path())
    # libtpu otherwise asks the GCE metadata server who the TPU workers are.
    os.environ.setdefault("TPU_SKIP_MDS_QUERY", "1")
    os.environ.setdefault("TPU_WORKER_HOSTNAMES", "localhost")
    n = dims[0] * dims[1] * dims[2]
    cores = n * 2 if gen in ("v4", "v5p") else n        # their accelerator names count cores
    os.environ.setdefault("TPU_ACCELERATOR_TYPE", f"{ {'v5e': 'v5litepod'}.get(gen, gen)}-{cores}")
    from jax.experimental import topologies

    # One host holds up to 8 chips (v5e-8, v6e-8) or 4 (v4, v5p); a slice that small is one host.
    per_host = 4 if gen in ("v4", "v5p") else 8
    kwargs = {"chips_per_host_bounds": dims} if n <= per_host else {}
    shown = dims if gen in ("v4", "v5p") else dims[:2]     # v5e / v6e slices are 2-D
    name = f"{gen}:" + "x".join(str(d) for d in shown)
    topo = topologies.get_topology_desc(platform="tpu", topology_name=name, **kwargs)
    return list(topo.devices)


def compile_or_oom(lowered):
    """`lowered.compile()`, with the TPU compiler's out-of-HBM refusal as `TpuOutOfMemory`."""
    import jax

    try:
        return lowered.compile()
    except jax.errors.JaxRuntimeError as e:
        if "RESOURCE_EXHAUSTED" in str(e) and "HBM" in str(e):
            raise TpuOutOfMemory(str(e).split("\n")[0]) from None
        raise
