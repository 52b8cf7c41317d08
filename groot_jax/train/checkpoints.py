"""Orbax checkpoints of the train state, the Grain iterator and the resolved config.

Layout: <dir>/<step>/{state/, data_iter/process_<i>-of-<n>.json, meta/}. Saves are async
(the step loop continues while the arrays are written); Orbax writes into a temporary folder and
renames it when complete, so a killed save never becomes "latest". `restore_latest` walks the
steps newest first and falls back, with a warning, past any checkpoint that fails to load
(corrupted or truncated files).
"""
from __future__ import annotations

import logging
import os
import warnings
from typing import Any

import grain
import jax
import orbax.checkpoint as ocp

from groot_jax.train.config import CheckpointConfig

log = logging.getLogger(__name__)


class Checkpoints:
    def __init__(self, cfg: CheckpointConfig):
        self.cfg = cfg
        options = ocp.CheckpointManagerOptions(max_to_keep=cfg.keep, create=True,
                                               enable_async_checkpointing=cfg.async_save)
        # Orbax refuses relative paths; resolve local ones (leave gs:// and other URLs alone).
        directory = cfg.dir if "://" in str(cfg.dir) else os.path.abspath(cfg.dir)
        self.manager = ocp.CheckpointManager(directory, options=options)

    def save(self, step: int, state: Any, data_iter: grain.DatasetIterator | None,
             meta: dict, *, force: bool = False) -> bool:
        items = dict(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
        if data_iter is not None:
            items["data_iter"] = grain.checkpoint.CheckpointSave(data_iter)
        return self.manager.save(step, args=ocp.args.Composite(**items), force=force)

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.close()

    def steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def restore(self, step: int, abstract_state: Any, data_iter: grain.DatasetIterator | None):
        items = dict(state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore())
        if data_iter is not None:
            items["data_iter"] = grain.checkpoint.CheckpointRestore(data_iter)
        out = self.manager.restore(step, args=ocp.args.Composite(**items))
        _check_finite_tree(out["state"], step)
        return out["state"], out["meta"]

    def restore_latest(self, abstract_state: Any, data_iter: grain.DatasetIterator | None):
        """(state, meta, step) of the newest loadable checkpoint, or None when there is none."""
        for step in reversed(self.steps()):
            try:
                state, meta = self.restore(step, abstract_state, data_iter)
                return state, meta, step
            except Exception as e:   # noqa: BLE001 - any failure to load means "corrupted"
                msg = (f"checkpoint step {step} in {self.cfg.dir} could not be restored "
                       f"({type(e).__name__}: {str(e)[:300]}); falling back to the previous one")
                warnings.warn(msg, RuntimeWarning, stacklevel=2)
                log.warning(msg)
        return None


def _check_finite_tree(state: Any, step: int) -> None:
    """Cheap integrity check on top of Orbax's: every leaf has its expected shape (Orbax checks)
    and the step counter matches the folder name."""
    s = getattr(state, "step", None)
    if s is not None and int(jax.device_get(s)) != step:
        raise ValueError(f"checkpoint folder {step} holds state.step={int(jax.device_get(s))}")
