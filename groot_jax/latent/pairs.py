"""Frame pairs (t, t+H) of whole episodes: the inputs of the latent-action VQ-VAE and the IDM.

Episodes are the dicts of groot_jax/data/episodes.py (frames uint8[T, H, W, 3], actions
float32[T, A] | None, state float32[T, S] | None), read by any of its `EpisodeArrays` readers.
"""
from __future__ import annotations

import numpy as np


def to_float(frames: np.ndarray) -> np.ndarray:
    """uint8[..., H, W, 3] -> float32 in [-1, 1]."""
    return frames.astype(np.float32) / 127.5 - 1.0


def pair_index(length: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (t, min(t+H, T-1)) for every t of an episode of `length` frames."""
    t = np.arange(length)
    return t, np.minimum(t + horizon, length - 1)


def make_pairs(episodes: list[dict], horizon: int, with_chunks: bool = False) -> dict:
    """All full-horizon pairs (t, t+H) of the episodes.

    Returns x0, x1: float32[N, H, W, 3]; disp: float32[N, A] (sum of the actions between them);
    state: float32[N, S]; and, if `with_chunks`, chunk: float32[N, horizon, A].
    """
    out: dict[str, list] = {"x0": [], "x1": [], "disp": [], "state": [], "chunk": []}
    for ep in episodes:
        t = np.arange(len(ep["frames"]) - horizon)
        out["x0"].append(to_float(ep["frames"][t]))
        out["x1"].append(to_float(ep["frames"][t + horizon]))
        if ep.get("actions") is not None:
            chunk = np.stack([ep["actions"][t + k] for k in range(horizon)], 1)
            out["disp"].append(chunk.sum(1))
            if with_chunks:
                out["chunk"].append(chunk)
        if ep.get("state") is not None:
            out["state"].append(ep["state"][t])
    return {k: np.concatenate(v) for k, v in out.items() if v}
