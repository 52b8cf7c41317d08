"""One training step of GR00T N1.5 (`n1_5_3b`, random weights) on CPU: groot-jax vs lerobot 0.5.1.

    flock /tmp/groot_heavy.lock .venv/bin/python experiments/benchmarks/train_step.py [--repeats 2]

The same step on both sides: batch 1, one 224x224 image (256 image tokens) plus a 40-token prompt,
a 16x32 action chunk; flow-matching loss forward, backward, global-norm clipping at 1.0, AdamW
(lr 1e-4, betas 0.95/0.999, eps 1e-8, weight decay 1e-5) over the same trainable set, chosen with
the original's own flags: tune_visual=False, tune_llm=False, tune_projector=False,
tune_diffusion_model=False, which leaves the always-trained VL layer norm, VL self-attention (4
layers at width 2048) and future tokens: 0.2 B parameters (the script checks that both sides
count the same number). The backward pass still runs through the whole DiT (its activations'
gradients reach the VL self-attention through cross-attention); what is skipped is the weight
gradients and optimizer state of the frozen parts. Why this set: on this machine (24 GB shared
with other jobs) the groot-jax side with the projector also trained (0.52 B) was killed by the
kernel's OOM killer at 17 GB RSS (fp32 weights + gradients + two AdamW moments, plus the frozen
fp32 weights).

Precision: fp32 everywhere on both sides (compute, trainable and frozen weights; groot-jax's
default bf16 frozen storage is overridden here: on CPU, XLA hoists the bf16->fp32 casts of whole
stacked layer weights out of the layer scan, which costs more memory than fp32 storage).
Each side runs in its own process (the reference in .venv-ref), interleaved for `--rounds`
rounds, pinned to the same CPUs and thread count, with the load checks of harness.py; each
process reports the median of `--repeats` timed steps after one warm-up step (which includes
XLA compilation for groot-jax); the report gives every round's ratio and their median, and each
process's peak resident memory.

    flock /tmp/groot_heavy.lock .venv/bin/python experiments/benchmarks/train_step.py \
        [--rounds 3] [--repeats 2] [--threads 2] [--strict] [--json F]
"""
from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "experiments" / "benchmarks"))
import harness  # noqa: E402  (the shared interleaved runner)
from inference import make_inputs  # noqa: E402  (the same batch)

TRAINABLE = dict(tune_visual=False, tune_llm=False, tune_projector=False,
                 tune_diffusion_model=False)


def make_batch(seed=0):
    io = make_inputs(seed)
    rng = np.random.default_rng(seed + 1)
    action = rng.uniform(-1, 1, (1, 16, 32)).astype(np.float32)
    mask = np.zeros((1, 16, 32), np.float32)
    mask[..., :7] = 1.0           # a 7-d robot: the other 25 dims are padding
    return io, action, mask


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20   # kB -> GiB on Linux


def timed_steps(step, repeats):
    t0 = time.perf_counter()
    step()
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return first, statistics.median(times), times


def run_ours(repeats: int) -> dict:
    import jax
    import jax.numpy as jnp

    from groot_jax import sharding
    from groot_jax.train import config as tc
    from groot_jax.train import loop
    from groot_jax.train import state as state_lib

    cfg = tc.TrainConfig(model="n1_5_3b", batch_size=1, steps=1000, compute_dtype="float32",
                         param_dtype="float32", frozen_dtype="float32", remat="none",
                         mesh=tc.MeshConfig(data=1, fsdp=1), **TRAINABLE)
    mesh = sharding.make_mesh(1, 1, 1, devices=jax.devices()[:1])
    t0 = time.perf_counter()
    s = state_lib.setup(cfg, mesh)
    state = random_state(s)
    build = time.perf_counter() - t0
    io, action, mask = make_batch()
    batch = dict(input_ids=io["input_ids"].astype(np.int32),
                 attention_mask=io["attention_mask"].astype(bool),
                 pixel_values=io["pixel_values"].transpose(0, 2, 3, 1)[:, None],
                 state=io["state"], embodiment_id=io["embodiment_id"].astype(np.int32),
                 action=action, action_mask=mask)
    batch = sharding.global_batch(batch, mesh)
    step = loop.jit_train_step(cfg, s)
    rng = jax.random.key(0)
    holder = {"state": state}
    losses = []

    def one():
        holder["state"], m = step(holder["state"], batch, rng)
        losses.append(float(m["loss"]))   # blocks until the step is done

    first, med, times = timed_steps(one, repeats)
    del jnp
    return {"build_s": build, "first_step_s": first, "step_s": med, "times": times,
            "losses": losses, "trainable": s.n_trainable, "frozen": s.n_frozen,
            "peak_rss_gb": peak_rss_gb()}


def random_state(s):
    """A state with random weights made leaf by leaf in its final dtype, so the full model is never
    materialised in fp32 (values do not affect the timing; zero weights would make gradients
    degenerate, so they are small random numbers). Adam moments start at zero, as in training."""
    import jax
    import jax.numpy as jnp

    a = s.abstract_state
    counter = iter(range(10**6))

    def rand(x):
        k = jax.random.key(next(counter))
        f = jax.jit(lambda: (0.02 * jax.random.normal(k, x.shape, jnp.float32)).astype(x.dtype),
                    out_shardings=x.sharding)
        return f()

    zeros = lambda x: jax.device_put(jnp.zeros(x.shape, x.dtype), x.sharding)  # noqa: E731
    return a.replace(step=zeros(a.step), params=jax.tree.map(rand, a.params),
                     frozen=jax.tree.map(rand, a.frozen), opt_state=jax.tree.map(zeros, a.opt_state))


def run_reference(repeats: int) -> dict:
    import torch

    sys.path.insert(0, str(ROOT / "tests" / "reference"))
    import lerobot_ref

    # The same trainable set as ours, through the original's own flags.
    lerobot_ref.BACKBONE.update(tune_visual=TRAINABLE["tune_visual"], tune_llm=TRAINABLE["tune_llm"])
    lerobot_ref.HEAD.update(tune_projector=TRAINABLE["tune_projector"],
                            tune_diffusion_model=TRAINABLE["tune_diffusion_model"])
    torch.manual_seed(0)
    t0 = time.perf_counter()
    model = lerobot_ref.build_gr00t("real")
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, betas=(0.95, 0.999), eps=1e-8, weight_decay=1e-5)
    build = time.perf_counter() - t0
    io, action, mask = make_batch()
    inputs = {"eagle_input_ids": io["input_ids"], "eagle_attention_mask": io["attention_mask"],
              "eagle_pixel_values": io["pixel_values"], "eagle_image_sizes": np.array([[224, 224]]),
              "state": io["state"], "embodiment_id": io["embodiment_id"],
              "action": action, "action_mask": mask}
    inputs = {k: torch.from_numpy(np.asarray(v)) for k, v in inputs.items()}
    losses = []

    def one():
        loss = model(inputs)["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss))

    first, med, times = timed_steps(one, repeats)
    return {"build_s": build, "first_step_s": first, "step_s": med, "times": times,
            "losses": losses, "trainable": sum(p.numel() for p in params),
            "frozen": sum(p.numel() for p in model.parameters() if not p.requires_grad),
            "peak_rss_gb": peak_rss_gb()}


def main():
    parser = argparse.ArgumentParser()
    harness.add_arguments(parser, rounds=3, repeats=2)
    args = parser.parse_args()
    if args.side:
        harness.child_main(args, {"ours": run_ours, "reference": run_reference})
        return
    # Sequential within a round: one 2.4 B-parameter model with its optimizer state at a time.
    rounds = harness.interleave(__file__, ["--repeats", str(args.repeats)], args)
    ours, ref = rounds[0]["ours"], rounds[0]["reference"]
    if ours["trainable"] != ref["trainable"]:
        raise SystemExit(f"trainable sets differ: groot-jax {ours['trainable']:,} vs lerobot "
                         f"{ref['trainable']:,} parameters")
    harness.report(rounds, ("step_s", "first_step_s"), args, unit="s",
                   title=f"n1_5_3b train step (fwd + bwd + clip + AdamW), batch 1, one 224x224 "
                         f"image, 40-token prompt, fp32 compute; trainable {ours['trainable']:,} "
                         "params (VL self-attention, VL norm, future tokens; VLM, projector and "
                         "DiT frozen); first_step_s includes XLA compilation for groot-jax")
    med = lambda side, key: statistics.median(rd[side][key] for rd in rounds)  # noqa: E731
    print(f"model build s (median): groot-jax {med('ours', 'build_s'):.1f}, lerobot "
          f"{med('reference', 'build_s'):.1f}; peak RSS GiB: groot-jax "
          f"{med('ours', 'peak_rss_gb'):.1f}, lerobot {med('reference', 'peak_rss_gb'):.1f}")


if __name__ == "__main__":
    main()
