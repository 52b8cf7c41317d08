"""Where the N1.5 action head's time goes: sub-parts timed separately, groot-jax vs lerobot 0.5.1.

    flock /tmp/groot_heavy.lock .venv/bin/python experiments/benchmarks/head_profile.py \
        [--rounds 3] [--repeats 3] [--threads 2] [--strict]

The action head alone (`n1_5_3b` sizes, random fp32 weights, ~1.07 B parameters: ~4.3 GB a
side), batch 1, 296 VL tokens of width 2048, 4 Euler steps. Parts (each jit-compiled on its own
for groot-jax; torch under no_grad):
  vl        vlln + the 4-layer VL self-attention (once per call on both sides)
  state     the per-embodiment state encoder (once per call)
  cross_kv  K/V of the VL tokens for the 8 cross blocks (ours: once per call; the original
            recomputes them inside every DiT call, so its `step` includes them)
  step      one denoising step: action encoder + DiT + action decoder (ours given cached K/V)
  sample    the whole sampler (`sample` / `get_action`)
groot-jax runs on the inference layout (`FlowMatchingActionHead.to_inference_layout`: one module
per block, [out, in] kernels, unrolled); the same parts on the stacked, scanned training layout
(and the DiT / action encoder / decoder of one step) are in the JSON as `*_scan`.
Runs interleaved (harness.py): fresh process per side per round, both sides pinned to the same
CPUs and thread count, load average printed.
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

VL_LEN, STEPS = 296, 4
PARTS = ("vl", "state", "cross_kv", "step", "sample")


def head_inputs(seed=0):
    rng = np.random.default_rng(seed)
    return dict(features=rng.normal(size=(1, VL_LEN, 2048)).astype(np.float32),
                state=rng.normal(size=(1, 1, 64)).astype(np.float32),
                ids=np.array([31], np.int32),
                noise=rng.normal(size=(1, 16, 32)).astype(np.float32))


def head_parts(graphdef, params, io, repeats: int) -> dict:
    """Seconds per part (PARTS, plus the DiT, action encoder and decoder of one step) of the
    head `nnx.merge(graphdef, params)`, each part jit-compiled on its own."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    head = lambda p: nnx.merge(graphdef, p, copy=True)  # noqa: E731
    feats, state, ids, noise = (jnp.asarray(io[k]) for k in ("features", "state", "ids", "noise"))
    bucket = jnp.full((1,), 250, jnp.int32)
    vl_fn = jax.jit(lambda p, f: head(p).process_backbone_output(f))
    state_fn = jax.jit(lambda p, s: head(p).state_encoder(s, ids))
    kv_fn = jax.jit(lambda p, v: head(p).model.cross_kv(v))
    step_fn = jax.jit(lambda p, sf, x, kv: head(p).velocity(sf, x, bucket, ids, cross_kv=kv))
    sample_fn = jax.jit(lambda p, f, n: head(p).sample(f, state, ids, n, num_steps=STEPS))
    width = head(params).cfg.input_embedding_dim
    tokens = jnp.zeros((1, 49, width), jnp.float32)
    dit_fn = jax.jit(lambda p, t, kv: head(p).model(t, bucket, cross_kv=kv))
    enc_fn = jax.jit(lambda p, x: head(p).action_encoder(x, bucket, ids))
    dec_fn = jax.jit(lambda p, t: head(p).action_decoder(t[..., :head(p).cfg.hidden_size], ids))
    vl = vl_fn(params, feats)
    sf = state_fn(params, state)
    kv = kv_fn(params, vl)
    block = jax.block_until_ready
    out = {"vl": harness.timed(lambda: block(vl_fn(params, feats)), repeats),
           "state": harness.timed(lambda: block(state_fn(params, state)), repeats),
           "cross_kv": harness.timed(lambda: block(kv_fn(params, vl)), repeats),
           "step": harness.timed(lambda: block(step_fn(params, sf, noise, kv)), repeats),
           "dit": harness.timed(lambda: block(dit_fn(params, tokens, kv)), repeats),
           "action_encoder": harness.timed(lambda: block(enc_fn(params, noise)), repeats),
           "action_decoder": harness.timed(lambda: block(dec_fn(params, tokens)), repeats),
           "sample": harness.timed(lambda: block(sample_fn(params, feats, noise)), repeats)}
    out["actions"] = sample_fn(params, feats, noise)
    return out


def run_ours(repeats: int) -> dict:
    import jax.numpy as jnp
    from flax import nnx

    from groot_jax.config import GR00TConfig
    from groot_jax.models.action_head import FlowMatchingActionHead

    cfg = GR00TConfig.n1_5_3b().action_head
    graphdef, params = harness.random_module(lambda r: FlowMatchingActionHead(cfg, rngs=r))
    io = head_inputs()
    scan = head_parts(graphdef, params, io, repeats)
    # The inference layout, made once after loading (as `GR00TFunctions.inference_params`
    # does for the whole model); `release` keeps one copy of the weights in memory.
    t0 = time.perf_counter()
    module = nnx.merge(graphdef, params, copy=False)
    module.to_inference_layout(release=True)
    fast_graphdef, fast_params = nnx.split(module, nnx.Param)
    layout_s = time.perf_counter() - t0
    out = head_parts(fast_graphdef, fast_params, io, repeats)
    out["fast_vs_scan_max_abs"] = float(jnp.abs(out.pop("actions") - scan.pop("actions")).max())
    out["layout_s"] = layout_s
    # Ratios against the reference use the inference layout (what the benchmarks and a
    # server run); the stacked, scanned layout's figures stay in the JSON as *_scan.
    out.update({k + "_scan": v for k, v in scan.items()})
    return out


def run_reference(repeats: int) -> dict:
    import torch

    sys.path.insert(0, str(ROOT / "tests" / "reference"))
    import lerobot_ref
    from transformers.feature_extraction_utils import BatchFeature

    torch.manual_seed(0)
    head = lerobot_ref.build_action_head("real")
    head.num_inference_timesteps = STEPS
    io = {k: torch.from_numpy(v) for k, v in head_inputs().items()}
    ids = io["ids"].long()
    with torch.no_grad():
        vl = head.vl_self_attention(head.vlln(io["features"]))
        sf = head.state_encoder(io["state"], ids)

        def vl_part():
            head.vl_self_attention(head.vlln(io["features"]))

        def kv_part():
            for i, blk in enumerate(head.model.transformer_blocks):
                if i % 2 == 0:   # cross blocks: K/V from the VL tokens
                    blk.attn1.to_k(vl), blk.attn1.to_v(vl)

        def step_part():
            t = torch.full((1,), 250)
            af = head.action_encoder(io["noise"], t, ids)
            af = af + head.position_embedding(torch.arange(af.shape[1])).unsqueeze(0)
            ft = head.future_tokens.weight.unsqueeze(0)
            out = head.model(hidden_states=torch.cat((sf, ft, af), 1), encoder_hidden_states=vl,
                             timestep=t)
            head.action_decoder(out, ids)

        def sample_part():
            head.get_action(BatchFeature(data={"backbone_features": io["features"].clone()}),
                            BatchFeature(data={"state": io["state"], "embodiment_id": ids}))

        return {"vl": harness.timed(vl_part, repeats),
                "state": harness.timed(lambda: head.state_encoder(io["state"], ids), repeats),
                "cross_kv": harness.timed(kv_part, repeats),
                "step": harness.timed(step_part, repeats),
                "sample": harness.timed(sample_part, repeats)}


def main():
    parser = argparse.ArgumentParser()
    harness.add_arguments(parser, rounds=3, repeats=3)
    args = parser.parse_args()
    if args.side:
        harness.child_main(args, {"ours": run_ours, "reference": run_reference})
        return
    rounds = harness.interleave(__file__, ["--repeats", str(args.repeats)], args)
    harness.report(rounds, PARTS, args, unit="ms",
                   title=f"n1_5_3b action head alone, batch 1, {VL_LEN} VL tokens, "
                         f"{STEPS} Euler steps, fp32")


if __name__ == "__main__":
    main()
