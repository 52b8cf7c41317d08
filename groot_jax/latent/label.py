"""Labelling loops: run a trained model over every episode of a whole-episode reader
(groot_jax/data/episodes.py) and write a sidecar (`sidecar.py`; format: groot_jax/data/sidecar.py),
skipping episodes already labelled.

Per-episode arrays, indexed by frame t; pairs are (t, min(t+H, T-1)) and `valid[t]` says whether
t+H was inside the episode:
- latent actions: `latent_actions` float32[T, N*D] (pre-quantization z_e), `codes` int32[T, N],
  `valid` bool[T];
- IDM: `action_chunks` float32[T, H, A], `actions` float32[T, A] (= action_chunks[:, 0], the
  pseudo-action for step t), `valid` bool[T].
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Callable

import numpy as np

from groot_jax.data.episodes import EpisodeArrays
from groot_jax.data.sidecar import sidecar_dir
from groot_jax.latent.pairs import pair_index, to_float
from groot_jax.latent.sidecar import SidecarWriter
from groot_jax.latent.train_idm import predict_chunks
from groot_jax.latent.train_lam import encode_pairs
from groot_jax.models.idm import InverseDynamicsModel
from groot_jax.models.latent_action import LatentActionModel


def _pairs(frames: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t0, t1 = pair_index(len(frames), horizon)
    x = to_float(frames)
    return x[t0], x[t1], t1 - t0 == horizon


def latent_action_labels(model: LatentActionModel, episode: dict, batch_size: int = 64) -> dict:
    x0, x1, valid = _pairs(episode["frames"], model.cfg.horizon)
    out = encode_pairs(model, x0, x1, batch_size)
    return {"latent_actions": out["z_e"].astype(np.float32), "codes": out["codes"].astype(np.int32),
            "valid": valid}


def idm_labels(model: InverseDynamicsModel, episode: dict, batch_size: int = 64) -> dict:
    x0, x1, valid = _pairs(episode["frames"], model.cfg.horizon)
    pairs = {"x0": x0, "x1": x1}
    if model.cfg.state_dim:
        if episode.get("state") is None:
            raise ValueError("this IDM uses state, but the episode has none")
        pairs["state"] = episode["state"].astype(np.float32)
    chunks = predict_chunks(model, pairs, batch_size).astype(np.float32)
    return {"action_chunks": chunks, "actions": chunks[:, 0], "valid": valid}


def run_labelling(source: EpisodeArrays, writer: SidecarWriter, label_fn: Callable[[dict], dict],
                  log: Callable[[str], None] = print) -> list[int]:
    """Label every episode the writer does not already hold; returns the ids labelled now."""
    done_now, t0 = [], time.time()
    ids = source.episode_ids()
    for i, episode_id in enumerate(ids):
        if writer.is_done(episode_id):
            continue
        writer.write(episode_id, label_fn(source.load(episode_id)))
        done_now.append(episode_id)
        log(f"labelled episode {episode_id} ({i + 1}/{len(ids)}, {time.time() - t0:.1f}s)")
    return done_now


def label_dataset(model, source: EpisodeArrays, dataset: str | Path, *, checkpoint: str = "",
                  embodiment: str | None = None, out: str | Path | None = None,
                  overwrite: bool = False, action_layout: list | None = None,
                  log: Callable[[str], None] = print) -> tuple[Path, list[int]]:
    """Write latent actions (LatentActionModel) or IDM pseudo-actions (InverseDynamicsModel)
    beside `dataset`; returns (sidecar directory, episode ids labelled by this call).
    `action_layout`: [(key, start, end)] of the IDM's action vector (from its training dataset),
    stored in the manifest so the data layer splits pseudo-actions into the embodiment's keys."""
    if isinstance(model, LatentActionModel):
        kind, fn = "latent_actions", latent_action_labels
    elif isinstance(model, InverseDynamicsModel):
        if not embodiment:
            raise ValueError("IDM labels need an embodiment tag")
        kind, fn = f"idm_actions.{embodiment}", idm_labels
    else:
        raise TypeError(type(model).__name__)
    root = Path(out) if out else sidecar_dir(dataset, kind)
    producer = {"model": type(model).__name__, "config": dataclasses.asdict(model.cfg),
                "checkpoint": str(checkpoint), "embodiment": embodiment}
    extra = {"horizon": model.cfg.horizon}
    if action_layout:
        if action_layout[-1][2] != getattr(model.cfg, "action_dim", None):
            raise ValueError(f"action_layout {action_layout} does not cover the IDM's "
                             f"action_dim={model.cfg.action_dim}")
        extra["action_layout"] = [list(x) for x in action_layout]
        producer["action_layout"] = extra["action_layout"]
    writer = SidecarWriter(root, kind=kind, dataset=dataset, producer=producer, overwrite=overwrite,
                           extra=extra)
    return root, run_labelling(source, writer, lambda ep: fn(model, ep), log)
