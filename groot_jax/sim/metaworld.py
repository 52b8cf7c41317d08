"""Meta-World tasks (MuJoCo, rendered on CPU through Mesa EGL) as the project's robot.

Observations follow the original's key style: `video.corner` uint8 [1, H, W, 3] (the corner2
camera, turned upright), `state.hand` [1, 3] (end-effector xyz), `state.gripper` [1, 1],
`state.objects` [1, 14] (two object poses, xyz + quaternion, zero where a task has one),
`state.goal` [1, 3] and `annotation.human.task_description` (the task in words). Actions are the
4-d Meta-World action (dx, dy, dz, gripper), `action.ee_delta` [3] + `action.gripper` [1], clipped
to [-1, 1].

Which state a dataset records (`STATE_LAYOUTS`, `record metaworld --state`):
  proprio  hand + gripper (4-d): object and goal positions must be found in the image.
  mt10     hand + gripper + objects + goal (21-d): the current frame of the observation the MT10
           benchmark defines (metaworld.MT1/MT10 make the goal observable; its 39-d vector
           also repeats the previous frame's 18 dims, left out here).
A policy reads the keys its data config names, so one simulator serves both.

Variations: `MT1(task, seed=s).train_tasks` holds 50 fixed object / goal placements per seed
(../shared/notes/simulation.md: `reset(seed=k)` alone does not vary them). Demonstrations use one
seed, held-out evaluation another.
"""
from __future__ import annotations

import os

import numpy as np

CAMERA = "corner"
# Meta-World's MT10 tasks.
MT10 = ("reach-v3", "push-v3", "pick-place-v3", "door-open-v3", "drawer-open-v3",
        "drawer-close-v3", "button-press-topdown-v3", "peg-insert-side-v3", "window-open-v3",
        "window-close-v3")
TASK_TEXT = {"reach-v3": "reach the red goal", "push-v3": "push the puck to the goal",
             "pick-place-v3": "pick up the puck and place it at the goal",
             "door-open-v3": "open the door", "drawer-open-v3": "open the drawer",
             "drawer-close-v3": "close the drawer",
             "button-press-topdown-v3": "press the button from the top",
             "peg-insert-side-v3": "insert the peg into the hole from the side",
             "window-open-v3": "slide the window open", "window-close-v3": "slide the window closed"}
# Slices of Meta-World's 39-d observation vector, per state key.
STATE_SLICES = {"hand": (0, 3), "gripper": (3, 4), "objects": (4, 18), "goal": (36, 39)}
STATE_LAYOUTS = {"proprio": ("hand", "gripper"), "mt10": ("hand", "gripper", "objects", "goal")}


def modality(state_layout: str = "proprio") -> dict:
    """The LeRobot dataset layout (meta/modality.json) of a recording: observation.state = the
    layout's keys concatenated in order, action = [ee delta xyz, gripper]."""
    if state_layout not in STATE_LAYOUTS:
        raise ValueError(f"state layout {state_layout!r}: known {sorted(STATE_LAYOUTS)}")
    state, at = {}, 0
    for key in STATE_LAYOUTS[state_layout]:
        lo, hi = STATE_SLICES[key]
        state[key] = {"start": at, "end": at + hi - lo}
        at += hi - lo
    return {"state": state,
            "action": {"ee_delta": {"start": 0, "end": 3}, "gripper": {"start": 3, "end": 4}},
            "video": {CAMERA: {"original_key": f"observation.images.{CAMERA}"}},
            "annotation": {"human.task_description": {"original_key": "task_index"}}}


def state_vector(obs: dict, state_layout: str) -> np.ndarray:
    """observation.state [..., D] of a layout, from `MetaWorldTask` observations [..., 1, d]."""
    return np.concatenate([np.asarray(obs[f"state.{k}"])[..., 0, :]
                           for k in STATE_LAYOUTS[state_layout]], -1).astype(np.float32)


ACTION_KEYS = ("action.ee_delta", "action.gripper")
VARIATIONS_PER_SEED = 50


def task_text(name: str) -> str:
    return TASK_TEXT.get(name, name.removesuffix("-v3").replace("-", " "))


def parse_tasks(spec: str) -> list[str]:
    """'mt10' or a comma-separated list of Meta-World task names; unknown names are refused
    with the list of known ones."""
    import metaworld

    if spec.strip().lower() == "mt10":
        return list(MT10)
    names = [t.strip() for t in spec.split(",") if t.strip()]
    known = sorted(metaworld.ALL_V3_ENVIRONMENTS)
    bad = [t for t in names if t not in known]
    if bad or not names:
        raise ValueError(f"--tasks {spec!r}: unknown Meta-World task(s) {bad}; known: 'mt10' or "
                         f"any of {known}")
    return names


class MetaWorldTask:
    """One Meta-World task variation, rendered at `image_size` with the slow effects off.
    `render=False` gives black frames (for observation-blind policies: software rendering is
    most of a step's time)."""

    def __init__(self, name: str, variation: int, *, seed: int = 0, image_size: int = 224,
                 render: bool = True):
        os.environ.setdefault("MUJOCO_GL", "egl")
        import metaworld

        if not 0 <= variation < VARIATIONS_PER_SEED:
            raise ValueError(f"variation {variation}: a seed has {VARIATIONS_PER_SEED} "
                             f"(0-{VARIATIONS_PER_SEED - 1}); use another seed for more")
        benchmark = metaworld.MT1(name, seed=seed)
        self.name, self.text = name, task_text(name)
        self.env = benchmark.train_classes[name](render_mode="rgb_array", camera_name="corner2",
                                                 width=image_size, height=image_size)
        self.env.set_task(benchmark.train_tasks[variation])
        model = self.env.unwrapped.model  # ~5x faster CPU rendering (../shared/notes/simulation.md)
        model.vis.quality.offsamples = 0
        model.light_castshadow[:] = 0
        model.mat_reflectance[:] = 0
        self.obs, self._render, self.image_size = None, render, image_size

    def reset(self) -> dict:
        self.obs, _ = self.env.reset()
        return self.observation()

    def observation(self) -> dict:
        if not self._render:
            frame = np.zeros((self.image_size, self.image_size, 3), np.uint8)
        else:  # corner cameras render rotated by 180 degrees
            frame = self.env.render()[::-1, ::-1]
        return {f"video.{CAMERA}": np.ascontiguousarray(frame)[None],
                **{f"state.{k}": self.obs[None, lo:hi].astype(np.float32)
                   for k, (lo, hi) in STATE_SLICES.items()},
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


def expert_episode(name: str, variation: int, *, seed: int = 0, image_size: int = 64,
                   max_steps: int = 150, steps_after_success: int = 0,
                   state_layout: str = "proprio") -> dict:
    """The scripted expert on one variation: `frames` {camera: uint8 [T, H, W, 3]}, `state` [T, D]
    (the keys of `STATE_LAYOUTS[state_layout]`),
    `actions` [T, 4] (what was executed after each frame), `task` (the sentence), `success`;
    the episode stops `steps_after_success` steps after the first success or at `max_steps`."""
    env = MetaWorldTask(name, variation, seed=seed, image_size=image_size)
    try:
        obs = env.reset()
        frames, state, actions = [], [], []
        success, left = False, None
        for _ in range(max_steps):
            a = env.expert_action()
            frames.append(obs[f"video.{CAMERA}"][0])
            state.append(state_vector(obs, state_layout))
            actions.append(a)
            obs, ok = env.step(a)
            success = success or ok
            if success:
                left = steps_after_success if left is None else left - 1
                if left <= 0:
                    break
        return {"frames": {CAMERA: np.stack(frames)}, "state": np.stack(state).astype(np.float32),
                "actions": np.stack(actions).astype(np.float32), "task": env.text,
                "success": success}
    finally:
        env.close()
