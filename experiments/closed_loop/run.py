"""Closed-loop Meta-World experiment: scripted demos -> train the tiny GR00T from scratch ->
success rate on held-out task variations.

    MUJOCO_GL=egl .venv/bin/python experiments/closed_loop/run.py --task reach-v3 \
        --demos 40 --steps 1000 --episodes 20 --out runs/closed_loop

Demos come from Meta-World's scripted expert on variations of MT1(seed=0); evaluation uses
variations of MT1(seed=1), which the model never saw. Observations: the corner2 camera
(rendered at --image px, resized to 224 by the policy's eval transform), hand xyz and gripper;
actions: 3-d end-effector delta + gripper. Training uses the flow-matching loss of the tiny preset
(`groot_jax.models.groot`) with AdamW on precomputed (eval-transform) samples; evaluation uses
`groot_jax.eval.Policy` on the saved model, 4 Euler steps, replanning every 8 steps.
Results: experiments/closed_loop/README.md.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import jax
import numpy as np
import optax

from groot_jax.config import GR00TConfig
from groot_jax.convert.checkpoint import save_model
from groot_jax.data.modality import DataConfig
from groot_jax.data.processor import SampleTransform
from groot_jax.data.prompt import PromptTokenizer, left_pad, train_tiny_tokenizer
from groot_jax.eval.policy import Policy, modality_from_metadata, save_tokenizer_beside
from groot_jax.eval.sim import TASK_TEXT, MetaWorldTask, rollout
from groot_jax.models import groot

DATA = DataConfig(
    name="metaworld", embodiment_tag="new_embodiment", video_keys=("video.corner",),
    state_keys=("state.hand", "state.gripper"), action_keys=("action.ee_delta", "action.gripper"),
    language_keys=("annotation.human.task_description",),
    state_normalization={"state.hand": "min_max", "state.gripper": "min_max"},
    action_normalization={"action.ee_delta": "min_max", "action.gripper": "min_max"})


def collect_demos(task: str, n: int, image: int, max_steps: int = 150):
    demos = []
    for v in range(n):
        env = MetaWorldTask(task, v, seed=0, image_size=image)
        obs = env.reset()
        frames, hand, grip, actions = [], [], [], []
        for _ in range(max_steps):
            a = env.expert_action()
            frames.append(obs["video.corner"][0])
            hand.append(obs["state.hand"][0])
            grip.append(obs["state.gripper"][0])
            actions.append(a)
            obs, success = env.step(a)
            if success:
                break
        env.close()
        demos.append({k: np.stack(x) for k, x in
                      (("frames", frames), ("hand", hand), ("gripper", grip), ("action", actions))})
    return demos


def metadata_for(demos) -> dict:
    def entry(x):
        lo, hi = x.min(0), x.max(0)
        return {"min": lo.tolist(), "max": hi.tolist(), "mean": x.mean(0).tolist(),
                "std": x.std(0).tolist(), "q01": np.quantile(x, 0.01, 0).tolist(),
                "q99": np.quantile(x, 0.99, 0).tolist()}

    cat = {k: np.concatenate([d[k] for d in demos]) for k in ("hand", "gripper", "action")}
    shape = lambda d: {"absolute": True, "rotation_type": None, "shape": [d], "continuous": True}  # noqa: E731
    return {"new_embodiment": {
        "statistics": {"state": {"hand": entry(cat["hand"]), "gripper": entry(cat["gripper"])},
                       "action": {"ee_delta": entry(cat["action"][:, :3]),
                                  "gripper": entry(cat["action"][:, 3:])}},
        "modalities": {"video": {"corner": {"resolution": [0, 0], "channels": 3, "fps": 80}},
                       "state": {"hand": shape(3), "gripper": shape(1)},
                       "action": {"ee_delta": shape(3), "gripper": shape(1)}},
        "embodiment_tag": "new_embodiment"}}


def samples(demos, transform: SampleTransform, text: str, horizon: int = 16):
    out = []
    for d in demos:
        n = len(d["action"])
        for t in range(n):
            idx = np.minimum(np.arange(t, t + horizon), n - 1)
            act = d["action"][idx].copy()
            act[np.arange(t, t + horizon) >= n] = 0.0  # relative deltas pad with zeros
            raw = {"video.corner": d["frames"][t][None], "state.hand": d["hand"][t][None],
                   "state.gripper": d["gripper"][t][None], "action.ee_delta": act[:, :3],
                   "action.gripper": act[:, 3:], "annotation.human.task_description": text}
            item = transform(raw, None)
            item["pixel_u8"] = np.round((item.pop("pixel_values") * 0.5 + 0.5) * 255).astype(np.uint8)
            out.append(item)
    return out


def constant_policy(action: np.ndarray, horizon: int = 16):
    """A policy that ignores the observation and repeats one action (zero or the demo mean)."""
    def get_action(obs):
        b = len(obs["state.hand"])
        chunk = np.broadcast_to(action, (b, horizon, action.shape[-1]))
        return {"action.ee_delta": chunk[..., :3], "action.gripper": chunk[..., 3:]}
    return get_action


def random_policy(lo: np.ndarray, hi: np.ndarray, seed: int = 0, horizon: int = 16):
    """Uniform random actions within the demos' per-dimension range."""
    rng = np.random.default_rng(seed)

    def get_action(obs):
        b = len(obs["state.hand"])
        chunk = rng.uniform(lo, hi, (b, horizon, lo.shape[-1])).astype(np.float32)
        return {"action.ee_delta": chunk[..., :3], "action.gripper": chunk[..., 3:]}
    return get_action


def baselines(demos, args) -> dict:
    """Observation-blind policies on the same held-out variations: what success needs no model."""
    acts = np.concatenate([d["action"] for d in demos])
    policies = {"zero action": constant_policy(np.zeros(acts.shape[-1], np.float32)),
                "mean demo action": constant_policy(acts.mean(0).astype(np.float32)),
                "random action": random_policy(acts.min(0), acts.max(0))}
    out = {}
    for name, fn in policies.items():
        r = rollout(fn, args.task, list(range(args.episodes)), seed=1,
                    max_steps=args.max_steps, image_size=args.image)
        out[name] = {"successes": r.successes, "episodes": r.episodes, "rate": r.rate,
                     "wilson95": list(r.interval)}
        print(f"{name}: {r.successes}/{r.episodes}", flush=True)
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--task", default="reach-v3")
    p.add_argument("--demos", type=int, default=40)
    p.add_argument("--image", type=int, default=96)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--max-steps", type=int, default=150)
    p.add_argument("--out", type=Path, default=Path("runs/closed_loop"))
    p.add_argument("--baselines-only", action="store_true",
                   help="skip training; evaluate zero / mean / random-action policies")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    text = TASK_TEXT.get(args.task, args.task)
    t0 = time.perf_counter()
    demos = collect_demos(args.task, args.demos, args.image)
    print(f"{len(demos)} demos, {sum(len(d['action']) for d in demos)} steps in "
          f"{time.perf_counter() - t0:.0f}s")
    if args.baselines_only:
        result = {"task": args.task, "demos": args.demos, "baselines": baselines(demos, args)}
        (args.out / "baselines.json").write_text(json.dumps(result, indent=2))
        print(json.dumps(result, indent=2))
        return
    tok_dir = train_tiny_tokenizer(args.out / "tokenizer", [text])
    tokenizer = PromptTokenizer(str(tok_dir))
    metadata = metadata_for(demos)
    meta = metadata["new_embodiment"]
    stats = {g: {k: {s: np.asarray(v, np.float32) for s, v in d.items()} for k, d in keys.items()}
             for g, keys in meta["statistics"].items()}
    transform = SampleTransform(DATA, modality_from_metadata(meta, DATA), stats, tokenizer)
    data = samples(demos, transform, text)
    ids, mask = left_pad([d["input_ids"] for d in data], tokenizer.pad_token_id)
    arrays = {k: np.stack([d[k] for d in data]) for k in
              ("pixel_u8", "state", "action", "action_mask", "embodiment_id")}
    base = GR00TConfig.tiny()
    cfg = dataclasses.replace(base, backbone=dataclasses.replace(
        base.backbone, image_token_index=tokenizer.image_token_id,
        llm=dataclasses.replace(base.backbone.llm, vocab_size=len(tokenizer.tokenizer))))
    fns, params = groot.init(cfg, seed=0)
    sched = optax.warmup_cosine_decay_schedule(0.0, args.lr, max(args.steps // 20, 1), args.steps)
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(sched, b1=0.95, b2=0.999,
                                                                 weight_decay=1e-5))
    opt = tx.init(params)

    @jax.jit
    def step(params, opt, batch, key):
        loss, grads = jax.value_and_grad(fns.loss)(params, batch, key)
        updates, opt = tx.update(grads, opt, params)
        return optax.apply_updates(params, updates), opt, loss

    rng = np.random.default_rng(0)
    history, t0 = [], time.perf_counter()
    for i in range(args.steps):
        idx = rng.integers(0, len(data), args.batch)
        batch = {"input_ids": ids[idx], "attention_mask": mask[idx],
                 "pixel_values": (arrays["pixel_u8"][idx].astype(np.float32) / 255 - 0.5) / 0.5,
                 "state": arrays["state"][idx], "action": arrays["action"][idx],
                 "action_mask": arrays["action_mask"][idx],
                 "embodiment_id": arrays["embodiment_id"][idx]}
        params, opt, loss = step(params, opt, batch, jax.random.key(i))
        history.append(float(loss))
        if i % 100 == 0 or i == args.steps - 1:
            print(f"step {i}: loss {np.mean(history[-100:]):.4f} ({time.perf_counter() - t0:.0f}s)",
                  flush=True)
    model_dir = args.out / "model"
    save_model(model_dir, cfg, params, metadata)
    save_tokenizer_beside(model_dir, tok_dir)
    policy = Policy(model_dir, DATA)
    result = rollout(policy.get_action, args.task, list(range(args.episodes)), seed=1,
                     max_steps=args.max_steps, image_size=args.image)
    lo, hi = result.interval
    summary = {"task": args.task, "demos": args.demos, "train_steps": args.steps,
               "batch": args.batch, "first_loss": float(np.mean(history[:20])),
               "final_loss": float(np.mean(history[-50:])), "episodes": result.episodes,
               "successes": result.successes, "success_rate": result.rate,
               "wilson95": [lo, hi], "steps_to_success": result.steps_to_success,
               "baselines": baselines(demos, args)}
    (args.out / "result.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
