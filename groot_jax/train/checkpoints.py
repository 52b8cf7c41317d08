"""Orbax checkpoints of the train state, the Grain iterator and the resolved config.

Layout: <dir>/<step>/{state/, data_iter/process_<i>-of-<n>.json, meta/}. Saves are async
(the step loop continues while the arrays are written); Orbax writes into a temporary folder and
renames it when complete, so a killed save never becomes "latest". `restore_latest` walks the
steps newest first and falls back, with a warning, past any checkpoint that fails to load
(corrupted or truncated files); those are renamed to `<step>.corrupt-<time>` so that they are
neither counted by `keep` nor in the way of saving that step again.
"""
from __future__ import annotations

import logging
import os
import tempfile
import time
import warnings
from typing import Any, Callable

import grain
import jax
import orbax.checkpoint as ocp
from etils import epath

from groot_jax.train.config import CheckpointConfig

log = logging.getLogger(__name__)


class CheckpointDirError(OSError):
    """The checkpoint (or log) directory cannot be created or written."""


class NoRestorableCheckpoint(RuntimeError):
    """Every checkpoint in the directory failed to load."""


def check_writable_dir(path: str, what: str = "checkpoint.dir") -> None:
    """Create `path` and write a probe file into it, so that an unusable directory fails at
    start-up in one line instead of at the first save (where Orbax retries for minutes)."""
    if "://" in str(path):   # remote stores (gs://...): left to Orbax / etils
        return
    try:
        os.makedirs(path, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".groot-write-test-", dir=path)
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise CheckpointDirError(f"{what}={path} is not a writable directory: {reason}") from e


class Checkpoints:
    def __init__(self, cfg: CheckpointConfig):
        self.cfg = cfg
        check_writable_dir(cfg.dir)
        options = ocp.CheckpointManagerOptions(max_to_keep=cfg.keep, create=True,
                                               enable_async_checkpointing=cfg.async_save)
        # Orbax refuses relative paths; resolve local ones (leave gs:// and other URLs alone).
        directory = cfg.dir if "://" in str(cfg.dir) else os.path.abspath(cfg.dir)
        self.directory = epath.Path(directory)
        self.manager = ocp.CheckpointManager(directory, options=options)

    def save(self, step: int, state: Any, data_iter: grain.DatasetIterator | None,
             meta: dict, *, force: bool = False) -> bool:
        items = dict(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
        if data_iter is not None:
            items["data_iter"] = grain.checkpoint.CheckpointSave(data_iter)
        saved = self.manager.save(step, args=ocp.args.Composite(**items), force=force)
        if not saved and step in self.manager.all_steps():
            # Orbax skips a step it already has; say so instead of losing the work silently.
            log.warning("checkpoint step %d already exists in %s; not saved again", step,
                        self.cfg.dir)
        return saved

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
        _check_step_matches_folder(out["state"], step)
        return out["state"], out["meta"]

    def restore_latest(self, abstract_state: Any, data_iter: grain.DatasetIterator | None,
                       report: Callable[[str], None] | None = None):
        """(state, meta, step) of the newest loadable checkpoint, or None when there is none.

        Newer checkpoints that fail to load are set aside (renamed) once an older one loads,
        each reported through `report` (default: a RuntimeWarning and the logger).
        When none loads, nothing is renamed and NoRestorableCheckpoint is raised: that is
        more likely a changed model or config than corruption of every checkpoint."""
        failed: list[tuple[int, str]] = []
        for step in reversed(self.steps()):
            try:
                state, meta = self.restore(step, abstract_state, data_iter)
            except Exception as e:   # noqa: BLE001 - any failure to load means "corrupted"
                failed.append((step, f"{type(e).__name__}: {str(e)[:300]}"))
                continue
            for bad, why in failed:
                moved = self._set_aside(bad)
                msg = (f"checkpoint step {bad} in {self.cfg.dir} could not be restored ({why}); "
                       f"moved it to {moved} and fell back to step {step}")
                if report is not None:
                    report(msg)
                else:
                    warnings.warn(msg, RuntimeWarning, stacklevel=2)
                    log.warning(msg)
            return state, meta, step
        if failed:
            steps = [s for s, _ in failed]
            raise NoRestorableCheckpoint(
                f"none of the checkpoints in {self.cfg.dir} (steps {steps}) could be restored; "
                f"newest: {failed[0][1]}. Was the model or config changed? Use another "
                f"checkpoint.dir to start afresh.")
        return None

    def _set_aside(self, step: int) -> epath.Path:
        """Rename <dir>/<step> to <dir>/<step>.corrupt-<time> (not a step name to Orbax, which
        then neither counts it for max_to_keep nor skips re-saving the step), then reload."""
        src = self.directory / str(step)
        dst = self.directory / f"{step}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}"
        i = 1
        while dst.exists():   # set aside twice within a second
            dst, i = self.directory / f"{step}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}-{i}", i + 1
        if jax.process_index() == 0:
            src.rename(dst)
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils
            multihost_utils.sync_global_devices(f"groot_ckpt_set_aside_{step}")
        self.manager.reload()
        return dst


def _check_step_matches_folder(state: Any, step: int) -> None:
    """Cheap integrity check on top of Orbax's (which checks every leaf's shape): the step
    counter inside the state matches the folder name."""
    s = getattr(state, "step", None)
    if s is not None and int(jax.device_get(s)) != step:
        raise ValueError(f"checkpoint folder {step} holds state.step={int(jax.device_get(s))}")
