"""Deterministic synthetic content shared by fixture writers and tests (numpy only, so the
throwaway lerobot environment can import it too)."""

from __future__ import annotations

import numpy as np


def frame(episode: int, index: int, h: int, w: int, camera: int = 0) -> np.ndarray:
    """uint8 [h, w, 3]: smooth gradients plus flat blocks whose colours encode (episode, index),
    so that a lossy codec still lets a test tell which frame was decoded."""
    y, x = np.mgrid[0:h, 0:w]
    img = np.empty((h, w, 3), np.uint8)
    img[..., 0] = (x * 255 // max(w - 1, 1) + 37 * index) % 256
    img[..., 1] = (y * 255 // max(h - 1, 1) + 53 * episode + 11 * camera) % 256
    img[..., 2] = (17 * index + 91 * episode + 60 * camera) % 256
    # a block whose brightness codes the index: robust to compression
    img[: h // 2, : w // 2, :] = (index * 29 + episode * 71 + camera * 13) % 256
    return img


def state_row(episode: int, index: int, dim: int) -> np.ndarray:
    d = np.arange(dim)
    return (np.sin(0.3 * index + 0.7 * d + episode) * (1 + d) + 0.01 * episode).astype(np.float32)


def action_row(episode: int, index: int, dim: int) -> np.ndarray:
    d = np.arange(dim)
    return (np.cos(0.2 * index + 0.5 * d - episode) * (2 + d) - 0.03 * d).astype(np.float32)
