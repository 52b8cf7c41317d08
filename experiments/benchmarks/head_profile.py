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
# groot-jax only: the same parts on the sampler's inference layout (`inference_weights`).
FAST_PARTS = ("cross_kv_scan", "step_scan", "sample_scan", "dit_fast", "action_encoder",
              "action_decoder")


def head_inputs(seed=0):
    rng = np.random.default_rng(seed)
    return dict(features=rng.normal(size=(1, VL_LEN, 2048)).astype(np.float32),
                state=rng.normal(size=(1, 1, 64)).astype(np.float32),
                ids=np.array([31], np.int32),
                noise=rng.normal(size=(1, 16, 32)).astype(np.float32))


def random_head(cfg, seed=0):
    """The action head with N(0, 0.02) weights (ones/zeros for norm scales and biases)."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from groot_jax.models.action_head import FlowMatchingActionHead

    model = nnx.eval_shape(lambda: FlowMatchingActionHead(cfg, rngs=nnx.Rngs(0)))
    graphdef, abstract = nnx.split(model, nnx.Param)
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        name = str(getattr(path[-1], "key", path[-1]))
        if name == "scale":
            return jnp.ones(leaf.shape, leaf.dtype)
        if name in ("bias", "b"):
            return jnp.zeros(leaf.shape, leaf.dtype)
        return jnp.asarray((0.02 * rng.standard_normal(leaf.shape, np.float32)).astype(leaf.dtype))

    pure = jax.tree_util.tree_map_with_path(draw, nnx.to_pure_dict(abstract))
    params = jax.tree.map(lambda x: x, abstract)
    nnx.replace_by_pure_dict(params, pure)
    return graphdef, params


def run_ours(repeats: int) -> dict:
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from groot_jax.config import GR00TConfig

    cfg = GR00TConfig.n1_5_3b().action_head
    graphdef, params = random_head(cfg)
    io = head_inputs()
    head = lambda p: nnx.merge(graphdef, p, copy=True)  # noqa: E731
    feats, state, ids, noise = (jnp.asarray(io[k]) for k in ("features", "state", "ids", "noise"))
    vl_fn = jax.jit(lambda p, f: head(p).process_backbone_output(f))
    state_fn = jax.jit(lambda p, s: head(p).state_encoder(s, ids))
    kv_fn = jax.jit(lambda p, v: head(p).model.cross_kv(v))
    step_fn = jax.jit(lambda p, sf, x, kv: head(p).velocity(
        sf, x, jnp.full((1,), 250, jnp.int32), ids, cross_kv=kv))
    sample_fn = jax.jit(lambda p, f, n: head(p).sample(f, state, ids, n, num_steps=STEPS))
    vl = vl_fn(params, feats)
    sf = state_fn(params, state)
    kv = kv_fn(params, vl)
    block = jax.block_until_ready
    out = {"vl": harness.timed(lambda: block(vl_fn(params, feats)), repeats),
           "state": harness.timed(lambda: block(state_fn(params, state)), repeats),
           "cross_kv": harness.timed(lambda: block(kv_fn(params, vl)), repeats),
           "step": harness.timed(lambda: block(step_fn(params, sf, noise, kv)), repeats)}
    out["sample"] = harness.timed(lambda: block(sample_fn(params, feats, noise)), repeats)
    t0 = time.perf_counter()
    w = block(head(params).inference_weights())
    out["layout_s"] = time.perf_counter() - t0
    kvf_fn = jax.jit(lambda p, v, w: head(p).model.cross_kv_fast(v, w))
    stepf_fn = jax.jit(lambda p, sf, x, kv, w: head(p).velocity(
        sf, x, jnp.full((1,), 250, jnp.int32), ids, cross_kv=kv, dit_weights=w))
    samplef_fn = jax.jit(lambda p, f, n, w: head(p).sample(f, state, ids, n, num_steps=STEPS,
                                                             dit_weights=w))
    tokens = jnp.zeros((1, 49, cfg.input_embedding_dim), jnp.float32)
    ditf_fn = jax.jit(lambda p, t, kv, w: head(p).model.apply_fast(
        t, jnp.full((1,), 250, jnp.int32), kv, w))
    enc_fn = jax.jit(lambda p, x: head(p).action_encoder(x, jnp.full((1,), 250, jnp.int32), ids))
    dec_fn = jax.jit(lambda p, t: head(p).action_decoder(t[..., :cfg.hidden_size], ids))
    kvf = kvf_fn(params, vl, w)
    out.update(
        cross_kv_fast=harness.timed(lambda: block(kvf_fn(params, vl, w)), repeats),
        step_fast=harness.timed(lambda: block(stepf_fn(params, sf, noise, kvf, w)), repeats),
        dit_fast=harness.timed(lambda: block(ditf_fn(params, tokens, kvf, w)), repeats),
        action_encoder=harness.timed(lambda: block(enc_fn(params, noise)), repeats),
        action_decoder=harness.timed(lambda: block(dec_fn(params, tokens)), repeats),
        sample_fast=harness.timed(lambda: block(samplef_fn(params, feats, noise, w)), repeats))
    a, b = sample_fn(params, feats, noise), samplef_fn(params, feats, noise, w)
    out["fast_vs_scan_max_abs"] = float(jnp.abs(a - b).max())
    # Ratios against the reference below use the fast layout for the sampler (what the
    # benchmarks and the Policy run); the scan-layout figures stay in the JSON.
    for part in ("sample", "step", "cross_kv"):
        out[part + "_scan"], out[part] = out[part], out[part + "_fast"]
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
