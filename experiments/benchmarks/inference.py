"""Inference latency of GR00T N1.5 (`n1_5_3b`, random weights): groot-jax vs lerobot 0.5.1.

    .venv/bin/python experiments/benchmarks/inference.py [--repeats 5] [--steps 4]

Batch 1, one 224x224 image (256 image tokens) plus a 40-token prompt, 4 denoising steps, fp32,
on this machine's CPU. Each side runs in its own process (one 2.4B-parameter model in memory at
a time; the reference runs in .venv-ref): ours jit-compiled, the reference in eval mode under
torch.no_grad. Reports the median of `--repeats` timed calls after one warm-up, split into
backbone (Eagle VLM) and action head (VL processing + state encoding + Euler loop), and the
ratio ours / reference.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
IMG = 151669


def make_inputs(seed=0, text=40):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 151000, (1, 256 + text))
    ids[0, 10:266] = IMG
    return dict(input_ids=ids, attention_mask=np.ones(ids.shape, np.int64),
                pixel_values=rng.uniform(-1, 1, (1, 3, 224, 224)).astype(np.float32),
                state=rng.normal(size=(1, 1, 64)).astype(np.float32),
                embodiment_id=np.array([31]), noise=rng.normal(size=(1, 16, 32)).astype(np.float32))


def timed(fn, repeats):
    fn()  # warm-up (compilation for jax)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run_ours(repeats: int, steps: int) -> dict:
    import jax

    from groot_jax.config import GR00TConfig
    from groot_jax.models import groot

    cfg = GR00TConfig.n1_5_3b()
    t0 = time.perf_counter()
    fns, params = groot.init_host(cfg, seed=0)  # one host copy; values do not affect timing
    build = time.perf_counter() - t0
    io = make_inputs()
    inputs = dict(input_ids=io["input_ids"].astype(np.int32),
                  attention_mask=io["attention_mask"].astype(bool),
                  pixel_values=io["pixel_values"].transpose(0, 2, 3, 1)[:, None],
                  state=io["state"], embodiment_id=io["embodiment_id"].astype(np.int32))
    backbone = jax.jit(lambda p: fns.module(p).backbone_features(inputs))
    features = backbone(params)
    head = jax.jit(lambda p, f: fns.module(p).action_head.sample(
        f, inputs["state"], inputs["embodiment_id"], io["noise"], num_steps=steps))
    full = jax.jit(lambda p: fns.sample_actions(p, inputs, None, num_steps=steps, noise=io["noise"]))
    return {"build_s": build,
            "backbone_s": timed(lambda: backbone(params).block_until_ready(), repeats),
            "head_s": timed(lambda: head(params, features).block_until_ready(), repeats),
            "full_s": timed(lambda: full(params).block_until_ready(), repeats)}


def run_reference(repeats: int, steps: int) -> dict:
    import torch

    sys.path.insert(0, str(ROOT / "tests" / "reference"))
    import lerobot_ref

    t0 = time.perf_counter()
    model = lerobot_ref.build_gr00t("real")
    model.action_head.num_inference_timesteps = steps
    build = time.perf_counter() - t0
    io = make_inputs()
    inputs = {"eagle_input_ids": io["input_ids"], "eagle_attention_mask": io["attention_mask"],
              "eagle_pixel_values": io["pixel_values"], "eagle_image_sizes": np.array([[224, 224]]),
              "state": io["state"], "embodiment_id": io["embodiment_id"]}
    inputs = {k: torch.from_numpy(np.asarray(v)) for k, v in inputs.items()}
    backbone_in, action_in = model.prepare_input(inputs)
    with torch.no_grad():
        features = model.backbone(backbone_in)

        def backbone():
            model.backbone(backbone_in)

        def head():
            out = type(features)(data={k: v.clone() for k, v in features.items()})
            model.action_head.get_action(out, action_in)

        def full():
            model.get_action(inputs)

        return {"build_s": build, "threads": torch.get_num_threads(),
                "backbone_s": timed(backbone, repeats), "head_s": timed(head, repeats),
                "full_s": timed(full, repeats)}


def run_both_sides(script: str, args: list[str]) -> tuple[dict, dict]:
    """Run `script --side ours|reference ARGS` in our env, then in .venv-ref, one after the
    other (one real-size model in memory at a time); each prints its result as a JSON last line."""
    results = {}
    for side, python in (("ours", sys.executable),
                         ("reference", str(ROOT / ".venv-ref" / "bin" / "python"))):
        env = {**os.environ, "HF_LEROBOT_HOME": "/tmp/groot_jax_bench_lerobot"}
        proc = subprocess.run([python, script, "--side", side, *args], capture_output=True,
                              text=True, env=env)
        if proc.returncode:
            raise SystemExit(f"{side} failed:\n{proc.stderr[-4000:]}")
        results[side] = json.loads(proc.stdout.strip().splitlines()[-1])
    return results["ours"], results["reference"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--side", choices=["ours", "reference"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        fn = run_ours if args.side == "ours" else run_reference
        print(json.dumps(fn(args.repeats, args.steps)))
        return
    ours, ref = run_both_sides(__file__, ["--repeats", str(args.repeats),
                                          "--steps", str(args.steps)])
    print(f"n1_5_3b, batch 1, one 224x224 image, {args.steps} Euler steps, fp32 CPU, "
          f"median of {args.repeats} (torch threads {ref['threads']})")
    print(f"{'part':12s} {'groot-jax ms':>13s} {'lerobot ms':>11s} {'ratio':>7s}")
    for part in ("backbone_s", "head_s", "full_s"):
        print(f"{part[:-2]:12s} {1000 * ours[part]:13.1f} {1000 * ref[part]:11.1f} "
              f"{ours[part] / ref[part]:7.2f}")
    print(f"model build: groot-jax {ours['build_s']:.1f}s, lerobot {ref['build_s']:.1f}s")


if __name__ == "__main__":
    main()
