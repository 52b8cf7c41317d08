"""The peer: lerobot 0.6.1's own ACT trained on the same LeRobot dataset for a wall-clock budget,
then run through the same lockstep Meta-World episodes as groot-jax (`groot_jax.eval.closed_loop`).

Runs in the Python 3.12 lerobot environment (torchvision cannot import beside the CPU torch wheel
of Python 3.11), built once outside the clone:

    bash experiments/closed_loop/install_peer.sh ~/.cache/groot-jax/lerobot061-peer
    PEER=~/.cache/groot-jax/lerobot061-peer/bin/python
    PYTHONPATH=. $PEER experiments/closed_loop/peer_lerobot.py train \
        --dataset DIR --out RUN --budget-min 25 --seed 0
    MUJOCO_GL=egl PYTHONPATH=. $PEER experiments/closed_loop/peer_lerobot.py eval \
        --model RUN --tasks mt10 --episodes 50 --seed 1 --out RUN/eval

Training is lerobot's pieces end to end: `LeRobotDataset` (video decoding, action chunks with
padding masks), `ACTPolicy` and its forward loss, `make_pre_post_processors` (the dataset's
normalisation), the policy's optimizer preset (AdamW, separate backbone rate); only the loop is
ours, because it stops on wall-clock time rather than a step count. Changed from ACT's defaults,
each for a stated reason: no ImageNet backbone weights (nothing is downloaded; groot-jax's
small model is from scratch too), learning rate 1e-4 for transformer and backbone (1e-5 is ACT's
rate for fine-tuning a pretrained backbone), chunk 16 executed 8 at a time (groot-jax's action
horizon and replanning). ACT has no language input: it must tell the ten tasks apart from the
image (each task's scene differs).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

REPO_ID = "local/metaworld"   # lerobot wants a repo id; with `root` nothing is fetched


def _config(args, meta):
    from lerobot.configs.types import FeatureType
    from lerobot.policies.act.configuration_act import ACTConfig
    from lerobot.utils.feature_utils import dataset_to_policy_features

    features = dataset_to_policy_features(meta.features)
    cfg = ACTConfig(device="cpu", chunk_size=args.chunk, n_action_steps=args.replan,
                    pretrained_backbone_weights=None, optimizer_lr=args.lr,
                    optimizer_lr_backbone=args.lr)
    cfg.output_features = {k: f for k, f in features.items() if f.type is FeatureType.ACTION}
    cfg.input_features = {k: f for k, f in features.items() if k not in cfg.output_features}
    return cfg


def train(args) -> None:
    from lerobot.datasets.dataset_metadata import LeRobotDatasetMetadata
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from lerobot.policies.act.modeling_act import ACTPolicy
    from lerobot.policies.factory import make_pre_post_processors

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    meta = LeRobotDatasetMetadata(REPO_ID, root=args.dataset)
    cfg = _config(args, meta)
    policy = ACTPolicy(cfg)
    pre, post = make_pre_post_processors(cfg, dataset_stats=meta.stats)
    dataset = LeRobotDataset(REPO_ID, root=args.dataset, delta_timestamps={
        "action": [i / meta.fps for i in cfg.action_delta_indices]})
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch, shuffle=True,
                                         num_workers=args.workers, drop_last=True,
                                         generator=torch.Generator().manual_seed(args.seed))
    preset = cfg.get_optimizer_preset()
    optimizer = preset.build(policy.get_optim_params())
    params = sum(p.numel() for p in policy.parameters())
    print(f"ACT {params / 1e6:.1f}M parameters, {len(dataset)} frames, "
          f"{meta.total_episodes} episodes; budget {args.budget_min} min", flush=True)
    policy.train()
    t0, step, losses, log = time.perf_counter(), 0, [], []
    deadline = t0 + 60 * args.budget_min
    while time.perf_counter() < deadline:
        for batch in loader:
            loss, _ = policy.forward(pre(batch))
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), preset.grad_clip_norm)
            optimizer.step()
            step += 1
            losses.append(float(loss))
            if step % 50 == 0:
                elapsed = time.perf_counter() - t0
                log.append({"step": step, "loss": float(np.mean(losses[-50:])), "s": elapsed})
                print(f"step {step} loss {log[-1]['loss']:.4f} {elapsed / step:.2f} s/step",
                      flush=True)
            if time.perf_counter() >= deadline:
                break
    out = Path(args.out)
    policy.save_pretrained(out)
    pre.save_pretrained(out)
    post.save_pretrained(out)
    recording = Path(args.dataset) / "meta" / "recording.json"
    layout = json.loads(recording.read_text()).get("state_layout", "proprio")
    (out / "train_log.json").write_text(json.dumps(
        {"state_layout": layout, "steps": step, "seconds": time.perf_counter() - t0,
         "budget_min": args.budget_min,
         "batch": args.batch, "lr": args.lr, "parameters": params, "seed": args.seed,
         "log": log}, indent=1))
    print(f"trained {step} steps in {time.perf_counter() - t0:.0f}s; saved to {out}")


def act_get_action(model_dir: str | Path, horizon: int):
    """A lockstep `get_action` (groot_jax.eval.closed_loop) over a saved lerobot ACT."""
    from lerobot.policies.act.modeling_act import ACTPolicy
    from lerobot.policies.factory import make_pre_post_processors

    from groot_jax.sim.metaworld import CAMERA, state_vector

    # the recording's observation.state layout (groot_jax.sim.metaworld.STATE_LAYOUTS)
    layout = json.loads((Path(model_dir) / "train_log.json").read_text())["state_layout"]
    policy = ACTPolicy.from_pretrained(str(model_dir)).eval()
    pre, post = make_pre_post_processors(policy.config, pretrained_path=str(model_dir))
    image_key = f"observation.images.{CAMERA}"

    @torch.no_grad()
    def get_action(obs: dict) -> dict:
        frames = torch.from_numpy(np.asarray(obs[f"video.{CAMERA}"])[:, 0])     # [B, H, W, 3]
        batch = {image_key: frames.permute(0, 3, 1, 2).float() / 255.0,
                 "observation.state": torch.from_numpy(state_vector(obs, layout))}
        chunk = policy.predict_action_chunk(pre(batch))[:, :horizon]          # [B, T, 4]
        chunk = post(chunk).numpy()
        return {"action.ee_delta": chunk[..., :3], "action.gripper": chunk[..., 3:]}
    return get_action


def evaluate(args) -> None:
    from groot_jax.eval.closed_loop import rollout, write_report
    from groot_jax.sim.metaworld import CAMERA, parse_tasks

    tasks = parse_tasks(args.tasks)
    get_action = act_get_action(args.model, args.chunk)
    results = {"lerobot ACT": {}}
    for task in tasks:
        t0 = time.perf_counter()
        r = rollout(get_action, task, list(range(args.episodes)), seed=args.seed,
                    max_steps=args.max_steps, replan_every=args.replan, image_size=args.image)
        results["lerobot ACT"][task] = r.summary()
        lo, hi = r.interval
        print(f"lerobot ACT {task:>24}: {r.successes}/{r.episodes} = {100 * r.rate:.0f}% "
              f"[{100 * lo:.1f}, {100 * hi:.1f}] ({time.perf_counter() - t0:.0f}s)", flush=True)
    meta = {"model": str(args.model), "env": "metaworld", "tasks": tasks, "seed": args.seed,
            "episodes_per_task": args.episodes, "replan_every": args.replan,
            "max_steps": args.max_steps, "image_size": args.image, "camera": CAMERA}
    path = write_report(results, Path(args.out), meta)
    print(f"mean success {100 * json.loads(path.read_text())['mean_success']['lerobot ACT']:.1f}%"
          f"; wrote {path}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--dataset", required=True)
    t.add_argument("--out", required=True)
    t.add_argument("--budget-min", type=float, required=True, help="wall-clock training budget")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--batch", type=int, default=32)
    t.add_argument("--lr", type=float, default=1e-4)
    t.add_argument("--workers", type=int, default=0)
    e = sub.add_parser("eval")
    e.add_argument("--model", required=True)
    e.add_argument("--tasks", default="mt10")
    e.add_argument("--episodes", type=int, default=50)
    e.add_argument("--seed", type=int, default=1)
    e.add_argument("--max-steps", type=int, default=150)
    e.add_argument("--image", type=int, default=64)
    e.add_argument("--out", required=True)
    for q in (t, e):
        q.add_argument("--chunk", type=int, default=16)
        q.add_argument("--replan", type=int, default=8)
    args = p.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    train(args) if args.cmd == "train" else evaluate(args)


if __name__ == "__main__":
    main()
