"""Inference latency of GR00T N1.5 (`n1_5_3b`, random weights): groot-jax vs lerobot 0.5.1.

    flock /tmp/groot_heavy.lock .venv/bin/python experiments/benchmarks/inference.py \
        [--rounds 5] [--repeats 3] [--steps 4] [--threads 2] [--strict] [--json F]

Batch 1, one 224x224 image (256 image tokens) plus a 40-token prompt, 4 denoising steps, fp32,
on this machine's CPU. Each side runs in its own process (one 2.4B-parameter model in memory at
a time; the reference runs in .venv-ref), interleaved for `--rounds` rounds and pinned to the
same CPUs and thread count by harness.py, which also prints the CPU, the load average and the
CPU time other processes took: ours jit-compiled, the reference in eval mode under
torch.no_grad. Each process reports the median of `--repeats` timed calls after one warm-up,
split into backbone (Eagle VLM) and action head (VL processing + state encoding + Euler loop);
the report gives every round's ratio ours / reference and the median of those ratios.

groot-jax runs on the inference layout (`GR00TFunctions.inference_params`: every stack of layers
-- SigLIP, LLM, VL self-attention, DiT -- as one module per layer with [out, in] kernels, applied
unrolled; made once after loading, as a server would; its one-off cost is printed as `inference
layout`). The stacked originals are released, so one copy of the model is in memory.
`--with-stacked` adds a side `stacked`: groot-jax on the stacked, scanned training layout.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "experiments" / "benchmarks"))
import harness  # noqa: E402

IMG = 151669
PARTS = ("backbone_s", "head_s", "full_s")


def make_inputs(seed=0, text=40):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 151000, (1, 256 + text))
    ids[0, 10:266] = IMG
    return dict(input_ids=ids, attention_mask=np.ones(ids.shape, np.int64),
                pixel_values=rng.uniform(-1, 1, (1, 3, 224, 224)).astype(np.float32),
                state=rng.normal(size=(1, 1, 64)).astype(np.float32),
                embodiment_id=np.array([31]), noise=rng.normal(size=(1, 16, 32)).astype(np.float32))


timed = harness.timed


def run_ours(repeats: int, steps: int, layout: str = "inference") -> dict:
    """groot-jax's parts on `layout`: "inference" (`GR00TFunctions.inference_params`, made once
    after loading, stacked originals released) or "stacked" (the training layout, scanned)."""
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
    t0 = time.perf_counter()
    if layout == "inference":
        params = jax.block_until_ready(fns.inference_params(params, release=True))
    layout_s = time.perf_counter() - t0
    backbone = jax.jit(lambda p: fns.module(p).backbone_features(inputs))
    features = backbone(params)
    head = jax.jit(lambda p, f: fns.module(p).action_head.sample(
        f, inputs["state"], inputs["embodiment_id"], io["noise"], num_steps=steps))
    full = jax.jit(lambda p: fns.sample_actions(p, inputs, None, num_steps=steps,
                                                noise=io["noise"]))
    return {"build_s": build, "layout_s": layout_s,
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

        return {"build_s": build,
                "backbone_s": timed(backbone, repeats), "head_s": timed(head, repeats),
                "full_s": timed(full, repeats)}


def main():
    parser = argparse.ArgumentParser()
    harness.add_arguments(parser, rounds=5, repeats=3)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--with-stacked", action="store_true",
                        help="also time groot-jax on the stacked (training) layout, side "
                             "'stacked': the figures before the inference layout")
    args = parser.parse_args()
    if args.side:
        harness.child_main(args, {"ours": lambda r: run_ours(r, args.steps),
                                  "stacked": lambda r: run_ours(r, args.steps, "stacked"),
                                  "reference": lambda r: run_reference(r, args.steps)})
        return
    extra = ["--repeats", str(args.repeats), "--steps", str(args.steps)]
    sides, others = harness.sides_with_stacked(__file__, extra, args.with_stacked)
    rounds = harness.interleave(None, extra, args, sides=sides)
    harness.report(rounds, PARTS, args, unit="ms", others=others,
                   title=f"n1_5_3b, batch 1, one 224x224 image + 40 text tokens, {args.steps} "
                         "Euler steps, fp32 CPU")
    ours = [rd["ours"] for rd in rounds]
    ref = [rd["reference"] for rd in rounds]
    print(f"model build s (median): groot-jax {np.median([o['build_s'] for o in ours]):.1f} "
          f"(+ inference layout {np.median([o['layout_s'] for o in ours]):.1f}), lerobot "
          f"{np.median([r['build_s'] for r in ref]):.1f}")


if __name__ == "__main__":
    main()
