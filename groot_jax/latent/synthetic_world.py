"""A synthetic video world whose true action is known.

A red Gaussian blob moves on a small canvas over a grey per-episode random texture, with
per-frame pixel noise as a distractor. The action a_t in [-1, 1]^2 moves the blob by
`max_step * a_t` pixels; actions follow a smooth AR(1) process, and a component that would leave
the canvas is reflected *in the action*, so the recorded action equals the realised displacement.
"""
from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class WorldConfig:
    image_size: int = 32
    max_step: float = 2.0  # pixels per unit action
    blob_sigma: float = 2.0
    ar_coef: float = 0.8  # action smoothness (AR(1) coefficient)
    texture_scale: float = 0.25  # amplitude of the per-episode grey texture
    noise_std: float = 0.01  # per-frame pixel noise
    margin: float = 4.0  # blob centre stays this far from the borders


def _texture(rng: np.random.Generator, size: int, scale: float) -> np.ndarray:
    """Smooth grey texture float[S, S] in [0.5-scale, 0.5+scale]."""
    coarse = rng.uniform(-1, 1, (size // 4 + 1, size // 4 + 1))
    tex = np.kron(coarse, np.ones((4, 4)))[:size, :size]
    return 0.5 + scale * tex


def render(pos: np.ndarray, background: np.ndarray, cfg: WorldConfig,
           rng: np.random.Generator) -> np.ndarray:
    """pos: float[T, 2] (x, y) pixels; background: float[S, S] -> uint8[T, S, S, 3]."""
    s = cfg.image_size
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
    d2 = (xx[None] - pos[:, 0, None, None]) ** 2 + (yy[None] - pos[:, 1, None, None]) ** 2
    blob = np.exp(-d2 / (2 * cfg.blob_sigma ** 2))  # [T, S, S]
    grey = np.broadcast_to(background, blob.shape)
    img = np.stack([grey * (1 - blob) + blob, grey * (1 - blob), grey * (1 - blob)], -1)
    img = img + rng.normal(0, cfg.noise_std, img.shape)
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


def make_episode(seed: int, length: int, cfg: WorldConfig = WorldConfig()) -> dict:
    """One episode: frames uint8[T, S, S, 3], actions float32[T, 2] (a_t moves frame t -> t+1;
    the last one is unused), state float32[T, 2] (blob position normalised to [-1, 1])."""
    rng = np.random.default_rng(seed)
    lo, hi = cfg.margin, cfg.image_size - 1 - cfg.margin
    pos = np.empty((length, 2), np.float32)
    act = np.zeros((length, 2), np.float32)
    pos[0] = rng.uniform(lo, hi, 2)
    a = rng.uniform(-1, 1, 2)
    for t in range(length - 1):
        a = np.clip(cfg.ar_coef * a + np.sqrt(1 - cfg.ar_coef ** 2) * rng.normal(0, 0.7, 2), -1, 1)
        nxt = pos[t] + cfg.max_step * a
        out = (nxt < lo) | (nxt > hi)
        a = np.where(out, -a, a)
        act[t] = a
        pos[t + 1] = pos[t] + cfg.max_step * a
    frames = render(pos, _texture(rng, cfg.image_size, cfg.texture_scale), cfg, rng)
    state = (2 * (pos - lo) / (hi - lo) - 1).astype(np.float32)
    return {"frames": frames, "actions": act, "state": state}


def make_episodes(seeds, length: int, cfg: WorldConfig = WorldConfig()) -> list[dict]:
    return [make_episode(int(s), length, cfg) for s in seeds]


def make_goal_episode(seed: int, length: int, cfg: WorldConfig = WorldConfig(),
                      radius: float = 6.0, speed: float = 0.7, action_noise: float = 0.05) -> dict:
    """A goal-orbiting episode: the red blob circles a green goal dot drawn in the image at about
    `radius` pixels, counter-clockwise: with d = goal - pos, u = d / |d| and t = (-u_y, u_x),
    a_t = clip(speed * t + 0.5 * clip((|d| - radius) / radius, -1, 1) * u + noise, -1, 1).
    Unlike `make_episode`, the action is (up to the small noise) a function of the current frame
    and never settles to zero, so a policy that sees the frame can predict it and the mean action
    cannot: the world for policy experiments. Same keys as `make_episode`, plus goal [2]."""
    rng = np.random.default_rng(seed)
    lo, hi = cfg.margin, cfg.image_size - 1 - cfg.margin
    pos = np.empty((length, 2), np.float32)
    act = np.zeros((length, 2), np.float32)
    goal = rng.uniform(lo + radius, hi - radius, 2)
    angle = rng.uniform(0, 2 * np.pi)
    pos[0] = np.clip(goal + rng.uniform(0.5, 1.5) * radius * np.array([np.cos(angle), np.sin(angle)]),
                     lo, hi)

    def policy(p):
        d = goal - p
        r = max(float(np.linalg.norm(d)), 1e-3)
        u = d / r
        return speed * np.array([-u[1], u[0]]) + 0.5 * np.clip((r - radius) / radius, -1, 1) * u

    for t in range(length - 1):
        a = np.clip(policy(pos[t]) + rng.normal(0, action_noise, 2), -1, 1)
        nxt = np.clip(pos[t] + cfg.max_step * a, lo, hi)
        act[t] = (nxt - pos[t]) / cfg.max_step  # the recorded action is the realised one
        pos[t + 1] = nxt
    act[-1] = np.clip(policy(pos[-1]), -1, 1)
    background = _texture(rng, cfg.image_size, cfg.texture_scale)
    frames = render(pos, background, cfg, rng)
    s = cfg.image_size
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
    dot = np.exp(-((xx - goal[0]) ** 2 + (yy - goal[1]) ** 2) / (2 * 1.5 ** 2))
    img = frames.astype(np.float32) / 255.0
    img[..., 1] = np.maximum(img[..., 1], dot[None])  # green goal, drawn over blob and texture
    frames = (np.clip(img, 0, 1) * 255).round().astype(np.uint8)
    state = (2 * (pos - lo) / (hi - lo) - 1).astype(np.float32)
    return {"frames": frames, "actions": act, "state": state, "goal": goal.astype(np.float32)}


def make_goal_episodes(seeds, length: int, cfg: WorldConfig = WorldConfig()) -> list[dict]:
    return [make_goal_episode(int(s), length, cfg) for s in seeds]
