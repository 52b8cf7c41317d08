"""Import a real-size (random-weight) GR00T N1.5 checkpoint: wall time and peak RSS.

    .venv/bin/python experiments/benchmarks/checkpoint_import.py [--dtype bf16|fp32] [--dir D]

Writes an `n1_5_3b`-shaped Isaac-GR00T directory of random weights (sharded safetensors, 5 GB
shards) once, then measures, each in a fresh process:
  baseline  safetensors.numpy.load_file of every shard (one host copy of the weights)
  read      groot_jax read_gr00t: parse, check, transpose/stack, place as jax arrays
  import    groot_jax import_checkpoint: read + Orbax save (the `convert import` command)
Peak RSS is the process's VmHWM. The figures are printed side by side with ratios.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def peak_rss_gb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def write_random_checkpoint(directory: Path, dtype: str) -> None:
    import ml_dtypes
    from flax import nnx

    from groot_jax.config import GR00TConfig
    from groot_jax.convert.gr00t_config import to_gr00t_json
    from groot_jax.convert.keymap import gr00t_entries, torch_shape
    from groot_jax.convert.safetensors_io import write_checkpoint
    from groot_jax.convert.state_dict import _get
    from groot_jax.models.groot import abstract

    cfg = GR00TConfig.n1_5_3b()
    np_dtype = np.dtype(ml_dtypes.bfloat16 if dtype in ("bf16", "bfloat16") else np.float32)
    pure = nnx.to_pure_dict(abstract(cfg)[1])
    shapes = {}
    for e in gr00t_entries(cfg):
        ours = _get(pure, e.path).shape
        shapes[e.torch_key] = torch_shape(e.kind, ours[1:] if e.layer is not None else ours)
    rng = np.random.default_rng(0)
    sizes = [(k, int(np.prod(s)) * np_dtype.itemsize) for k, s in shapes.items()]
    write_checkpoint(directory, sizes,
                     lambda k: (0.02 * rng.standard_normal(shapes[k], np.float32)).astype(np_dtype))
    (directory / "config.json").write_text(json.dumps(to_gr00t_json(cfg, "bfloat16")))


def measure(mode: str, ckpt: Path, dtype: str, out: Path) -> dict:
    t0 = time.perf_counter()
    if mode == "baseline":
        import ml_dtypes  # noqa: F401  registers numpy's bfloat16, which safetensors needs
        from safetensors.numpy import load_file

        tensors = {}
        for f in sorted(ckpt.glob("*.safetensors")):
            tensors.update(load_file(str(f)))
        n = sum(v.size for v in tensors.values())
    elif mode == "read":
        import jax

        from groot_jax.convert.checkpoint import read_gr00t

        _, params, _ = read_gr00t(ckpt, dtype=dtype)
        n = sum(x.size for x in jax.tree.leaves(params))
        jax.block_until_ready(params)
    else:
        from groot_jax.convert.checkpoint import import_checkpoint

        import_checkpoint(ckpt, out, dtype=dtype)
        n = -1
    return {"mode": mode, "seconds": time.perf_counter() - t0, "peak_rss_gb": peak_rss_gb(),
            "params": n}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dtype", default="bf16")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/groot_jax_bench_ckpt"))
    parser.add_argument("--mode", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    ckpt = args.dir / f"gr00t_{args.dtype}"
    if args.mode:  # child process: one measurement
        print(json.dumps(measure(args.mode, ckpt, args.dtype, args.dir / f"ours_{args.dtype}")))
        return
    if not (ckpt / "config.json").exists():
        t0 = time.perf_counter()
        write_random_checkpoint(ckpt, args.dtype)
        print(f"wrote random n1_5_3b checkpoint ({args.dtype}) in {time.perf_counter() - t0:.0f}s")
    size = sum(f.stat().st_size for f in ckpt.glob("*.safetensors")) / 2**30
    print(f"checkpoint: {ckpt} ({size:.2f} GiB of safetensors)")
    results = {}
    for mode in ("baseline", "read", "import"):
        ours = args.dir / f"ours_{args.dtype}"
        subprocess.run(["rm", "-rf", str(ours)], check=True)
        proc = subprocess.run([sys.executable, __file__, "--dtype", args.dtype, "--dir",
                               str(args.dir), "--mode", mode], capture_output=True, text=True)
        if proc.returncode:
            raise SystemExit(f"{mode} failed:\n{proc.stderr[-4000:]}")
        results[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
    base = results["baseline"]
    print(f"{'':10s} {'wall s':>8s} {'peak RSS GiB':>13s} {'time ratio':>11s} {'RSS ratio':>10s}")
    for mode, r in results.items():
        print(f"{mode:10s} {r['seconds']:8.1f} {r['peak_rss_gb']:13.2f} "
              f"{r['seconds'] / base['seconds']:11.2f} {r['peak_rss_gb'] / base['peak_rss_gb']:10.2f}")


if __name__ == "__main__":
    main()
