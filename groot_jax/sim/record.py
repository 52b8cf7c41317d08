"""Scripted-expert demonstrations of Meta-World tasks, written as a LeRobot v3.0 dataset.

    groot-jax record metaworld --tasks reach-v3,drawer-close-v3 --episodes 50 --out DIR

Per task, N successful expert episodes on the variations of `MT1(task, seed)` (default seed 0,
then any further seeds given; evaluate on a seed not used).
Each episode: the `corner` camera video, observation.state = [hand xyz, gripper] (`state_layout`
"proprio"; "mt10" appends the object poses and the goal: groot_jax.sim.metaworld.STATE_LAYOUTS),
action = [ee delta xyz, gripper] (named in meta/modality.json: state.hand, state.gripper, ...,
action.ee_delta, action.gripper), its task sentence; meta/stats.json; readable by lerobot's own
`LeRobotDataset`. Episodes where the expert did not succeed are left out (and counted) unless
`keep_failed`.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

from groot_jax.data.writers import write_lerobot_v3
from groot_jax.sim.metaworld import CAMERA, VARIATIONS_PER_SEED, expert_episode, modality, task_text

FPS = 80   # Meta-World's control rate (frame_skip 5 at 2.5 ms)


def record_metaworld(tasks: list[str], episodes: int, out: str | Path, *,
                     seeds: tuple[int, ...] = (0,), image_size: int = 64, max_steps: int = 150,
                     steps_after_success: int = 0, keep_failed: bool = False,
                     tokenizer_out: str | Path | None = None, state_layout: str = "proprio",
                     log: Callable[[str], None] | None = print) -> dict:
    """Record and write the dataset; returns the recording summary (also meta/recording.json).
    Per task, `episodes` successful demonstrations (all episodes with `keep_failed`), taken from
    variations 0..49 of `seeds[0]`, then of `seeds[1]`, ... until there are enough: the expert
    fails on a few placements, so a task may need a second seed. The (seed, variation) of every
    written episode is in the summary; evaluate on a seed not in `seeds`.
    `tokenizer_out`: also write a tiny tokenizer trained on the task sentences there (for a
    model trained from scratch; a GR00T checkpoint brings its own)."""
    seeds = tuple(dict.fromkeys(int(s) for s in seeds))
    available = VARIATIONS_PER_SEED * len(seeds)
    if not seeds or not 1 <= episodes <= available:
        raise ValueError(f"--episodes {episodes}: {len(seeds)} seed(s) {list(seeds)} have "
                         f"{available} variations per task (1-{available}; give more --seed)")
    layout = modality(state_layout)   # refuses an unknown layout before any recording
    if image_size % 2:
        raise ValueError(f"--image {image_size}: yuv420p video needs an even frame size")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"--out {out} is not empty: record writes a new dataset")
    kept, summary = [], {"seeds": list(seeds), "image_size": image_size, "max_steps": max_steps,
                         "state_layout": state_layout, "tasks": {}}
    for task in tasks:
        t0, tried, ok, lengths, used = time.perf_counter(), 0, 0, [], []
        for seed, v in ((s, v) for s in seeds for v in range(VARIATIONS_PER_SEED)):
            if len(lengths) == episodes:
                break
            ep = expert_episode(task, v, seed=seed, image_size=image_size, max_steps=max_steps,
                                steps_after_success=steps_after_success, state_layout=state_layout)
            tried += 1
            ok += ep["success"]
            if ep["success"] or keep_failed:
                kept.append(ep)
                lengths.append(len(ep["actions"]))
                used.append([seed, v])
        summary["tasks"][task] = {"variations_tried": tried, "expert_successes": ok,
                                  "episodes_written": len(lengths), "frames": int(sum(lengths)),
                                  "seed_variation": used, "text": task_text(task)}
        if log:
            log(f"{task}: expert succeeded on {ok}/{tried} variations, {len(lengths)} episodes "
                f"({sum(lengths)} frames) kept, {time.perf_counter() - t0:.0f}s")
        if len(lengths) < episodes:
            raise RuntimeError(
                f"{task}: the expert succeeded on only {ok} of the {tried} variations of seed(s) "
                f"{list(seeds)} within {max_steps} steps, fewer than --episodes {episodes}: give "
                f"another --seed, a larger --max-steps, or --keep-failed; nothing was written")
    if not kept:
        raise RuntimeError("the expert succeeded on no variation: nothing to write "
                           "(--keep-failed writes failed episodes too)")
    for ep in kept:
        ep.pop("success")
    texts = list(dict.fromkeys(ep["task"] for ep in kept))
    root = write_lerobot_v3(kept, out, tasks=texts, fps=FPS, robot_type="metaworld_sawyer",
                            camera=CAMERA, modality=layout)
    (root / "meta" / "recording.json").write_text(json.dumps(summary, indent=1))
    if tokenizer_out is not None:
        from groot_jax.data.prompt import train_tiny_tokenizer

        summary["tokenizer"] = str(train_tiny_tokenizer(tokenizer_out, texts))
        if log:
            log(f"wrote a tokenizer trained on the {len(texts)} task sentence(s) to "
                f"{tokenizer_out}")
    if log:
        log(f"wrote {len(kept)} episodes of {len(tasks)} task(s) to {root} (LeRobot v3.0)")
    return summary
