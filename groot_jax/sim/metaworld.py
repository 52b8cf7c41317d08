"""Meta-World tasks (MuJoCo, rendered on CPU through Mesa EGL) as the project's robot.

Observations follow the original's key style: `video.corner` uint8 [1, H, W, 3] (the corner2
camera, turned upright), `state.hand` [1, 3] (end-effector xyz), `state.gripper` [1, 1], and
`annotation.human.task_description` (the task in words). Actions are the 4-d Meta-World action
(dx, dy, dz, gripper), `action.ee_delta` [3] + `action.gripper` [1], clipped to [-1, 1]. Only hand
and gripper are given as state: the rest of Meta-World's 39-d observation (object and goal
positions) would give the answer away, so a policy must find the goal in the image.

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
# The LeRobot dataset layout of these observations: observation.state = [hand xyz, gripper],
# action = [ee delta xyz, gripper], named in meta/modality.json.
MODALITY = {"state": {"hand": {"start": 0, "end": 3}, "gripper": {"start": 3, "end": 4}},
            "action": {"ee_delta": {"start": 0, "end": 3}, "gripper": {"start": 3, "end": 4}},
            "video": {CAMERA: {"original_key": f"observation.images.{CAMERA}"}},
            "annotation": {"human.task_description": {"original_key": "task_index"}}}
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


def expert_episode(name: str, variation: int, *, seed: int = 0, image_size: int = 64,
                   max_steps: int = 150, steps_after_success: int = 0) -> dict:
    """The scripted expert on one variation: `frames` {camera: uint8 [T, H, W, 3]}, `state` [T, 4],
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
            state.append(np.concatenate([obs["state.hand"][0], obs["state.gripper"][0]]))
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
