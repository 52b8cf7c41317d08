"""Closed-loop evaluation in Meta-World (MuJoCo, renders on CPU through Mesa EGL).

Observations follow the original's key style: `video.corner` uint8 [1, H, W, 3] (the corner2
camera, turned upright), `state.hand` [1, 3] (end-effector xyz), `state.gripper` [1, 1], and
`annotation.human.task_description` (the task in words). Actions are the 4-d Meta-World action
(dx, dy, dz, gripper), `action.ee_delta` [3] + `action.gripper` [1], clipped to [-1, 1].
Episodes run in lockstep ("vectorised"): every `replan_every` steps all unfinished episodes are
batched into one policy call, and each executes the first steps of its chunk.

Recipe and results: experiments/closed_loop/README.md.
"""
from __future__ import annotations

import dataclasses
import math
import os
from typing import Callable

import numpy as np

TASK_TEXT = {"reach-v3": "reach the red goal", "push-v3": "push the puck to the goal",
             "button-press-topdown-v3": "press the button from the top",
             "drawer-open-v3": "open the drawer", "pick-place-v3": "pick up the puck and place it"}


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a success rate (well behaved at 0 and n)."""
    if n <= 0:
        raise ValueError("no episodes")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


class MetaWorldTask:
    """One Meta-World task variation, rendered at `image_size` with the slow effects off."""

    def __init__(self, name: str, variation: int, *, seed: int = 0, image_size: int = 224):
        os.environ.setdefault("MUJOCO_GL", "egl")
        import metaworld

        benchmark = metaworld.MT1(name, seed=seed)
        self.name, self.text = name, TASK_TEXT.get(name, name.replace("-v3", "").replace("-", " "))
        self.env = benchmark.train_classes[name](render_mode="rgb_array", camera_name="corner2",
                                                 width=image_size, height=image_size)
        self.env.set_task(benchmark.train_tasks[variation % len(benchmark.train_tasks)])
        model = self.env.unwrapped.model  # ~5x faster CPU rendering (../shared/notes/simulation.md)
        model.vis.quality.offsamples = 0
        model.light_castshadow[:] = 0
        model.mat_reflectance[:] = 0
        self.obs = None

    def reset(self) -> dict:
        self.obs, _ = self.env.reset()
        return self.observation()

    def observation(self) -> dict:
        frame = self.env.render()[::-1, ::-1]  # corner cameras render rotated by 180 degrees
        return {"video.corner": np.ascontiguousarray(frame)[None],
                "state.hand": self.obs[None, 0:3].astype(np.float32),
                "state.gripper": self.obs[None, 3:4].astype(np.float32),
                "annotation.human.task_description": self.text}

    def step(self, action: np.ndarray) -> tuple[dict, bool]:
        self.obs, _, _, _, info = self.env.step(np.clip(action, -1, 1).astype(np.float64))
        return self.observation(), bool(info["success"])

    def expert_action(self) -> np.ndarray:
        from metaworld.policies import ENV_POLICY_MAP

        if not hasattr(self, "_expert"):
            self._expert = ENV_POLICY_MAP[self.name]()
        return np.clip(self._expert.get_action(self.obs), -1, 1).astype(np.float32)

    def close(self) -> None:
        self.env.close()


@dataclasses.dataclass
class ClosedLoopResult:
    task: str
    episodes: int
    successes: int
    steps_to_success: list[int]

    @property
    def rate(self) -> float:
        return self.successes / self.episodes

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.successes, self.episodes)


def _batch(observations: list[dict]) -> dict:
    keys = observations[0].keys()
    return {k: ([o[k] for o in observations] if isinstance(observations[0][k], str)
                else np.stack([o[k] for o in observations])) for k in keys}


def rollout(get_action: Callable[[dict], dict], task: str, variations: list[int], *,
            max_steps: int = 150, replan_every: int = 8, seed: int = 0,
            image_size: int = 224) -> ClosedLoopResult:
    """Run one episode per variation in lockstep. `get_action(batched_obs)` returns
    {"action.ee_delta": [B, H, 3], "action.gripper": [B, H, 1]} (a Policy does)."""
    envs = [MetaWorldTask(task, v, seed=seed, image_size=image_size) for v in variations]
    try:
        obs = [e.reset() for e in envs]
        done = [False] * len(envs)
        steps_to_success: list[int] = []
        t = 0
        while t < max_steps and not all(done):
            active = [i for i, d in enumerate(done) if not d]
            chunk = get_action(_batch([obs[i] for i in active]))
            actions = np.concatenate([chunk["action.ee_delta"], chunk["action.gripper"]], -1)
            for j, i in enumerate(active):
                for k in range(min(replan_every, actions.shape[1], max_steps - t)):
                    obs[i], success = envs[i].step(actions[j, k])
                    if success:
                        done[i] = True
                        steps_to_success.append(t + k + 1)
                        break
            t += replan_every
        return ClosedLoopResult(task, len(envs), sum(done), steps_to_success)
    finally:
        for e in envs:
            e.close()
