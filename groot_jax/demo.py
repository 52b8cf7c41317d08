"""`make demo`: the user's path at CPU size, through the same commands a robot engineer runs.

1. write a small LeRobot v3.0 dataset (generated here, nothing downloaded): a point robot (red
   blob) reaching a green goal, one 64x64 camera `overhead`, state
   [4] = (position, goal), action [2] = the move command, 15 fps (names and widths that appear
   in no preset), a held-out dataset of other goals, and a tokenizer trained on the task text;
2. `groot-jax train --config finetune_tiny --dataset DATASET --tokenizer TOKENIZER` through the
   real Grain pipeline, with Orbax checkpoints and the processor files in the run dir;
3. `groot-jax eval open-loop --model RUN --dataset DATASET`: per-joint plots and the action error
   against the mean-action baseline;
4. `groot-jax convert export RUN EXPORT`: the Isaac-GR00T layout, with the dataset's statistics;
5. `groot-jax serve --model RUN` in a subprocess and one `get_action` from the numpy-only client.

    python -m groot_jax.demo runs/demo [--steps N]
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from groot_jax.data.prompt import train_tiny_tokenizer
from groot_jax.data.writers import write_lerobot_v3
from groot_jax.latent.synthetic_world import WorldConfig, render

TASK = "reach the green goal"
CAMERA, FPS, IMAGE_SIZE = "overhead", 15, 64


def demo_episode(seed: int, length: int, gain: float = 0.12) -> dict:
    """A point robot (red blob) reaching a green goal placed at random for the episode:
    a_t = clip(gain (goal - pos) / max_step + noise, -1, 1), so the whole action chunk is a
    function of the state (position and goal, both normalised to [-1, 1]) and of the frame; the
    mean action cannot predict it, a policy that reads either can."""
    cfg = WorldConfig(image_size=IMAGE_SIZE, max_step=3.0, blob_sigma=3.0, margin=8.0)
    rng = np.random.default_rng(seed)
    lo, hi = cfg.margin, cfg.image_size - 1 - cfg.margin
    pos = np.empty((length, 2), np.float32)
    goal = np.empty((length, 2), np.float32)
    act = np.zeros((length, 2), np.float32)
    pos[0] = rng.uniform(lo, hi, 2)
    for t in range(length):
        goal[t] = rng.uniform(lo, hi, 2) if t == 0 else goal[t - 1]
        a = np.clip(gain * (goal[t] - pos[t]) / cfg.max_step + rng.normal(0, 0.02, 2), -1, 1)
        nxt = np.clip(pos[t] + cfg.max_step * a, lo, hi)
        act[t] = (nxt - pos[t]) / cfg.max_step   # the recorded action is the realised one
        if t + 1 < length:
            pos[t + 1] = nxt
    frames = render(pos, np.full((cfg.image_size,) * 2, 0.5), cfg, rng).astype(np.float32) / 255
    yy, xx = np.mgrid[0:cfg.image_size, 0:cfg.image_size].astype(np.float32)
    dot = np.exp(-((xx - goal[:, :1, None]) ** 2 + (yy - goal[:, 1:, None]) ** 2) / (2 * 2.0 ** 2))
    frames[..., 1] = np.maximum(frames[..., 1], dot)   # the goal, drawn over blob and background
    norm = lambda v: (2 * (v - lo) / (hi - lo) - 1).astype(np.float32)  # noqa: E731
    return {"frames": {CAMERA: (np.clip(frames, 0, 1) * 255).round().astype(np.uint8)},
            "state": np.concatenate([norm(pos), norm(goal)], -1), "actions": act, "task": TASK}


def demo_episodes(n: int, length: int, seed: int = 0) -> list[dict]:
    return [demo_episode(seed * 100_003 + i, length) for i in range(n)]


def write_demo_data(root: Path, episodes: int, length: int,
                    heldout: int = 8) -> tuple[Path, Path, Path]:
    """The training dataset, a held-out one (other goals and starts: seed 1) and a tokenizer
    under `root`."""
    kw = dict(tasks=(TASK,), fps=FPS, robot_type="demo_point_robot", camera=CAMERA)
    dataset = write_lerobot_v3(demo_episodes(episodes, length), root / "dataset", **kw)
    held = write_lerobot_v3(demo_episodes(heldout, length, seed=1), root / "heldout", **kw)
    tokenizer = train_tiny_tokenizer(root / "tokenizer", [TASK] * 8)
    return dataset, held, Path(tokenizer)


def _cli(*argv: str) -> None:
    """One `groot-jax` command in this process (as the user would type it)."""
    from groot_jax.cli import main

    print("\n$ groot-jax " + " ".join(argv), flush=True)
    status = main(list(argv), handle_errors=True)
    if status != 0:
        raise SystemExit(f"`groot-jax {' '.join(argv)}` failed (exit {status})")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_one_action(run: Path, observation: dict, timeout_s: float = 300) -> dict:
    """Start `groot-jax serve --model RUN` in a subprocess, send one observation, stop it; the
    action dict the server replied."""
    from groot_jax.serve.client import PolicyClient

    port = _free_port()
    cmd = [sys.executable, "-m", "groot_jax.cli", "serve", "--model", str(run),
           "--port", str(port), "--batch-buckets", "1"]
    print("\n$ groot-jax " + " ".join(cmd[3:]), flush=True)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        t0 = time.monotonic()
        for line in proc.stdout:
            print("  " + line.rstrip(), flush=True)
            if line.startswith("serving"):
                break
            if time.monotonic() - t0 > timeout_s:
                raise TimeoutError("the server did not start in time")
        else:
            raise RuntimeError(f"groot-jax serve exited ({proc.wait()}) before serving")
        client = PolicyClient(f"tcp://127.0.0.1:{port}")
        try:
            return client.get_action(observation, seed=0)
        finally:
            client.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def demo_observation(episode: dict) -> dict:
    """The first frame of a demo episode as a robot would send it."""
    return {f"video.{CAMERA}": episode["frames"][CAMERA][:1],
            "state.state": episode["state"][:1].astype(np.float32),
            "annotation.human.task_description": TASK}


def run_demo(out_dir: str | os.PathLike, *, steps: int = 1500, episodes: int = 64,
             length: int = 32, batch_size: int = 16) -> dict:
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty: the demo writes a fresh dataset and run")
    t0 = time.perf_counter()
    dataset, heldout, tokenizer = write_demo_data(out, episodes, length)
    print(f"wrote a LeRobot v3.0 dataset: {dataset} ({episodes} episodes x {length} frames, "
          f"camera {CAMERA!r}, state [4], action [2], {FPS} fps), a held-out one {heldout} "
          f"and a tokenizer {tokenizer}")
    run, ev, export = out / "run", out / "eval", out / "export"
    _cli("train", "--config", "finetune_tiny", "--dataset", str(dataset),
         "--tokenizer", str(tokenizer), f"steps={steps}", f"batch_size={batch_size}",
         f"checkpoint.dir={run}", f"checkpoint.every={max(steps // 2, 1)}", "progress=False")
    losses = _losses(run)
    _cli("eval", "open-loop", "--model", str(run), "--dataset", str(heldout), "--out", str(ev))
    summary = json.loads((ev / "open_loop.json").read_text())
    _cli("convert", "export", str(run), str(export))
    action = serve_one_action(run, demo_observation(demo_episodes(1, length, seed=7)[0]))
    k = max(len(losses) // 10, 1)
    result = {"loss_first": float(np.mean(losses[:k])), "loss_last": float(np.mean(losses[-k:])),
              "open_loop": summary, "export": str(export),
              "served_action": {key: np.asarray(v).tolist() for key, v in action.items()},
              "seconds": time.perf_counter() - t0}
    (out / "demo_summary.json").write_text(json.dumps(result, indent=1))
    _report(result, run, ev, export)
    return result


def _losses(run: Path) -> list[float]:
    """Per-step losses of the run, from its TensorBoard-independent metrics file."""
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [json.loads(x)["loss"] for x in lines]


def _report(r: dict, run: Path, ev: Path, export: Path) -> None:
    ol = r["open_loop"]
    print("\n=== what to look at ===")
    print(f"loss (mean of first / last tenth of the steps): {r['loss_first']:.4f} -> "
          f"{r['loss_last']:.4f}   (TensorBoard: {run / 'tb'})")
    print(f"open-loop action MSE on {ol['episodes']} held-out episodes: model {ol['mse']:.4f} vs "
          f"mean-action baseline {ol['mean_action']['mse']:.4f}")
    print(f"plots: {ev / 'plots'}")
    print(f"export (Isaac-GR00T layout, statistics in experiment_cfg/metadata.json): {export}")
    print("served action: " + ", ".join(f"{k} {np.asarray(v).shape}" for k, v in
                                        r["served_action"].items()))
    print(f"demo took {r['seconds']:.0f}s")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m groot_jax.demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out_dir", nargs="?", default="runs/demo")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--episodes", type=int, default=64)
    args = p.parse_args(argv)
    run_demo(args.out_dir, steps=args.steps, episodes=args.episodes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
