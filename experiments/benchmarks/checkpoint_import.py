"""Import a real-size (random-weight) GR00T N1.5 checkpoint: wall time and peak RSS.

    flock /tmp/groot_heavy.lock .venv/bin/python experiments/benchmarks/checkpoint_import.py \
        [--dtype bf16|fp32] [--dir D] [--rounds 3] [--threads 2] [--strict] [--json F]

Writes an `n1_5_3b`-shaped Isaac-GR00T directory of random weights (sharded safetensors, 5 GB
shards) once, then measures, each in a fresh process:
  baseline  safetensors.numpy.load_file of every shard (one host copy of the weights)
  read      groot_jax read_gr00t: parse, check, transpose/stack, place as jax arrays
  import    groot_jax import_checkpoint: read + Orbax save (the `convert import` command)
Peak RSS is the process's VmHWM. The three modes run interleaved (baseline read import,
baseline read import, ...) for `--rounds` rounds through harness.py (same CPUs and threads, load
checks); every round's ratios to the baseline and their medians are printed.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

MODES = ("baseline", "read", "import")


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
    harness.add_arguments(parser, rounds=3, repeats=1)
    args = parser.parse_args()
    ckpt = args.dir / f"gr00t_{args.dtype}"
    ours = args.dir / f"ours_{args.dtype}"
    if args.side:  # child process: one measurement
        harness.child_main(args, {m: (lambda _r, m=m: measure(m, ckpt, args.dtype, ours))
                                  for m in MODES})
        return
    if not (ckpt / "config.json").exists():
        t0 = time.perf_counter()
        write_random_checkpoint(ckpt, args.dtype)
        print(f"wrote random n1_5_3b checkpoint ({args.dtype}) in {time.perf_counter() - t0:.0f}s")
    size = sum(f.stat().st_size for f in ckpt.glob("*.safetensors")) / 2**30
    print(f"checkpoint: {ckpt} ({size:.2f} GiB of safetensors)")
    common = ["--dtype", args.dtype, "--dir", str(args.dir)]
    sides = [harness.Side(m, [__file__, *common, "--side", m]) for m in MODES]
    rounds = harness.interleave(None, [], args, sides=sides,
                                before_each=lambda _s: subprocess.run(["rm", "-rf", str(ours)],
                                                                      check=True))
    harness.report(rounds, ("seconds", "peak_rss_gb"), args, unit="s", base="baseline",
                   others=("read", "import"),
                   title=f"n1_5_3b checkpoint import ({args.dtype}, {size:.2f} GiB); "
                         "peak_rss_gb rows are GiB, not seconds")


if __name__ == "__main__":
    main()
