"""Closed-loop evaluation in Meta-World: lockstep episodes, success rates with Wilson intervals,
and the observation-blind baselines a policy must beat.

Episodes run in lockstep ("vectorised"): every `replan_every` steps all unfinished episodes of a
task are batched into one policy call, and each executes the first steps of its chunk.
`get_action(batched_obs)` returns {"action.ee_delta": [B, H, 3], "action.gripper": [B, H, 1]}
(a `Policy` trained on `groot-jax record metaworld` data does). Environments and observation
keys: `groot_jax.sim.metaworld`. Recipe and results: experiments/closed_loop/README.md.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Callable

import numpy as np

from groot_jax.sim.metaworld import ACTION_KEYS, CAMERA, STATE_SLICES, MetaWorldTask


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a success rate (well behaved at 0 and n)."""
    if n <= 0:
        raise ValueError("no episodes")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclasses.dataclass
class ClosedLoopResult:
    task: str
    episodes: int
    successes: int
    steps_to_success: list[int]
    frames: list[np.ndarray] = dataclasses.field(default_factory=list, repr=False)

    @property
    def rate(self) -> float:
        return self.successes / self.episodes

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.successes, self.episodes)

    def summary(self) -> dict:
        lo, hi = self.interval
        return {"episodes": self.episodes, "successes": self.successes, "rate": self.rate,
                "wilson95": [lo, hi], "steps_to_success": self.steps_to_success}


def _batch(observations: list[dict]) -> dict:
    keys = observations[0].keys()
    return {k: ([o[k] for o in observations] if isinstance(observations[0][k], str)
                else np.stack([o[k] for o in observations])) for k in keys}


def rollout(get_action: Callable[[dict], dict], task: str, variations: list[int], *,
            max_steps: int = 150, replan_every: int = 8, seed: int = 0,
            image_size: int = 224, record: int = 0, render: bool = True) -> ClosedLoopResult:
    """Run one episode per variation of `MT1(task, seed)` in lockstep; `record`: keep the
    frames [T, H, W, 3] of the first that many episodes (for videos); `render=False`: black
    frames, for policies that do not look (the observation-blind baselines)."""
    if replan_every < 1:
        raise ValueError(f"replan_every must be >= 1, got {replan_every}")
    envs = [MetaWorldTask(task, v, seed=seed, image_size=image_size, render=render)
            for v in variations]
    try:
        obs = [e.reset() for e in envs]
        frames = [[o[f"video.{CAMERA}"][0]] for o in obs[:record]]
        done = [False] * len(envs)
        steps_to_success: list[int] = []
        t = 0
        while t < max_steps and not all(done):
            active = [i for i, d in enumerate(done) if not d]
            chunk = get_action(_batch([obs[i] for i in active]))
            actions = np.concatenate([np.asarray(chunk[k], np.float32) for k in ACTION_KEYS], -1)
            if actions.shape[0] != len(active) or actions.shape[-1] != 4:
                raise ValueError(f"get_action returned actions {actions.shape} for {len(active)} "
                                 f"observations; expected [{len(active)}, H, 4] from "
                                 f"{ACTION_KEYS}")
            for j, i in enumerate(active):
                for k in range(min(replan_every, actions.shape[1], max_steps - t)):
                    obs[i], success = envs[i].step(actions[j, k])
                    if i < record:
                        frames[i].append(obs[i][f"video.{CAMERA}"][0])
                    if success:
                        done[i] = True
                        steps_to_success.append(t + k + 1)
                        break
            t += replan_every
        return ClosedLoopResult(task, len(envs), sum(done), steps_to_success,
                                [np.stack(f) for f in frames])
    finally:
        for e in envs:
            e.close()


def constant_policy(action: np.ndarray, horizon: int = 16) -> Callable[[dict], dict]:
    """Ignores the observation and repeats one 4-d action (zero, or the demonstrations' mean)."""
    action = np.asarray(action, np.float32)

    def get_action(obs):
        chunk = np.broadcast_to(action, (len(obs["state.hand"]), horizon, action.shape[-1]))
        return {"action.ee_delta": chunk[..., :3], "action.gripper": chunk[..., 3:]}
    return get_action


def random_policy(lo: np.ndarray, hi: np.ndarray, seed: int = 0,
                  horizon: int = 16) -> Callable[[dict], dict]:
    """Uniform random actions within the demonstrations' per-dimension range."""
    rng = np.random.default_rng(seed)
    lo, hi = np.asarray(lo, np.float32), np.asarray(hi, np.float32)

    def get_action(obs):
        chunk = rng.uniform(lo, hi, (len(obs["state.hand"]), horizon, lo.shape[-1]))
        chunk = chunk.astype(np.float32)
        return {"action.ee_delta": chunk[..., :3], "action.gripper": chunk[..., 3:]}
    return get_action


def observation_blind_policies(action_stats: dict, horizon: int = 16,
                               seed: int = 0) -> dict[str, Callable[[dict], dict]]:
    """Zero, mean-demonstration and uniform-random actions, from the training data's action
    statistics ({"ee_delta": {"mean", "min", "max"}, "gripper": {...}}, as stored with a model)."""
    def cat(stat):
        try:
            return np.concatenate([np.asarray(action_stats[k.split(".", 1)[1]][stat], np.float32)
                                   .reshape(-1) for k in ACTION_KEYS])
        except KeyError as e:
            raise KeyError(f"action statistics lack {e} (have {sorted(action_stats)}); the "
                           f"baselines need mean/min/max of {ACTION_KEYS}") from e
    mean, lo, hi = cat("mean"), cat("min"), cat("max")
    return {"zero action": constant_policy(np.zeros_like(mean), horizon),
            "mean demo action": constant_policy(mean, horizon),
            "random action": random_policy(lo, hi, seed, horizon)}


def simulator_policy(policy) -> Callable[[dict], dict]:
    """`policy.get_action` fed from the simulator: checks that the policy reads keys the
    simulator gives and writes its action keys, and passes it only the keys its data config
    names (the simulator gives every state key of STATE_SLICES; a policy trained on a
    `--state proprio` recording reads two of them and refuses the others)."""
    dc = policy.data_config
    have = {f"video.{CAMERA}", *(f"state.{k}" for k in STATE_SLICES),
            "annotation.human.task_description"}
    reads = (*dc.video_keys, *dc.state_keys, *dc.language_keys)
    missing = [k for k in reads if k not in have]
    if missing or tuple(dc.action_keys) != ACTION_KEYS:
        raise ValueError(f"the model's data config ({dc.name}) reads {missing or 'the same keys'} "
                         f"and writes {tuple(dc.action_keys)}; Meta-World gives {sorted(have)} and "
                         f"needs {ACTION_KEYS} (train on `groot-jax record metaworld` data)")

    def get_action(obs: dict) -> dict:
        return policy.get_action({k: obs[k] for k in reads})
    return get_action


def bar_chart(results: dict[str, dict[str, dict]], path: Path) -> None:
    """Success per task for each policy, with the 95% Wilson intervals as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    policies = list(results)
    tasks = list(next(iter(results.values())))
    width = 0.8 / len(policies)
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(tasks) * max(1, len(policies) / 2)), 4))
    for j, name in enumerate(policies):
        rates = np.array([results[name][t]["rate"] for t in tasks])
        lo = np.array([results[name][t]["wilson95"][0] for t in tasks])
        hi = np.array([results[name][t]["wilson95"][1] for t in tasks])
        x = np.arange(len(tasks)) + (j - (len(policies) - 1) / 2) * width
        ax.bar(x, 100 * rates, width, label=name,
               yerr=100 * np.stack([rates - lo, hi - rates]), capsize=2)
    ax.set_xticks(np.arange(len(tasks)), tasks, rotation=30, ha="right")
    ax.set_ylabel("success (%)")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(results: dict[str, dict[str, dict]], out: Path, meta: dict) -> Path:
    """closed_loop.json (per policy and task: successes, rate, Wilson interval; per policy the
    mean over tasks) and closed_loop.png."""
    out.mkdir(parents=True, exist_ok=True)
    means = {name: float(np.mean([r["rate"] for r in per_task.values()]))
             for name, per_task in results.items()}
    (out / "closed_loop.json").write_text(json.dumps(
        {**meta, "mean_success": means, "results": results}, indent=1))
    bar_chart(results, out / "closed_loop.png")
    return out / "closed_loop.json"
