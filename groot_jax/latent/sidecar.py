"""Sidecar label files written beside a dataset, never inside it.

For a dataset directory `D`, labels of kind `K` live in `D.parent / f"{D.name}.{K}"` (kinds used:
`latent_actions`, `idm_actions.<embodiment>`). That directory holds:

- `episode_XXXXXX.npz`: one file per episode, arrays indexed by the episode's frame t
  (see `label.py` for the keys of each kind);
- `manifest.json`: {"format": "groot-jax-sidecar", "version": 1, "kind", "dataset", "producer"
  (model kind, config, checkpoint, horizon, ...), "episodes": {"<id>": {"file", "length",
  "sha256"}}}.

Writes are atomic: each file goes to a `.tmp-*` file in the same directory, is fsynced, then
`os.replace`d; the manifest is rewritten the same way after each episode. So after a crash every
`episode_*.npz` is complete, the manifest lists only episodes whose file was complete when it was
written, and a rerun labels exactly the episodes the manifest does not list with a matching
sha256 (stale `.tmp-*` files are deleted). A sidecar made by a different producer is refused
unless `overwrite=True`.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

# The reader (groot_jax.data.sidecar_actions) owns the format name and the manifest checks.
from groot_jax.data.sidecar_actions import SIDECAR_FORMAT as FORMAT
from groot_jax.data.sidecar_actions import read_sidecar_manifest

VERSION = 1


def sidecar_dir(dataset: str | Path, kind: str) -> Path:
    dataset = Path(dataset).absolute()
    return dataset.parent / f"{dataset.name}.{kind}"


def episode_file(episode_id: int) -> str:
    return f"episode_{episode_id:06d}.npz"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def atomic_write_bytes(path: Path, write) -> None:
    """Call write(fileobj) on a temp file beside `path`, fsync, then os.replace onto `path`."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class SidecarWriter:
    def __init__(self, root: str | Path, *, kind: str, dataset: str | Path, producer: dict,
                 overwrite: bool = False, extra: dict | None = None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        for stale in self.root.glob(".tmp-*"):
            stale.unlink()
        fresh = {"format": FORMAT, "version": VERSION, "kind": kind,
                 "dataset": str(Path(dataset).absolute()), "producer": producer, "episodes": {},
                 **(extra or {})}
        path = self.root / "manifest.json"
        if path.exists() and not overwrite:
            self.manifest = json.loads(path.read_text())
            for key in ("format", "version", "kind", "producer"):
                if self.manifest.get(key) != json.loads(json.dumps(fresh[key])):
                    raise ValueError(f"{path}: existing sidecar has a different {key!r} "
                                     f"({self.manifest.get(key)!r}); pass overwrite=True to replace it")
        else:
            if overwrite:
                for old in self.root.glob("episode_*.npz"):
                    old.unlink()
            self.manifest = fresh
            self._write_manifest()

    def is_done(self, episode_id: int) -> bool:
        entry = self.manifest["episodes"].get(str(episode_id))
        if entry is None:
            return False
        path = self.root / entry["file"]
        return path.exists() and _sha256(path) == entry["sha256"]

    def write(self, episode_id: int, arrays: dict[str, np.ndarray]) -> None:
        path = self.root / episode_file(episode_id)
        atomic_write_bytes(path, lambda f: np.savez(f, **arrays))
        length = len(next(iter(arrays.values())))
        self.manifest["episodes"][str(episode_id)] = {"file": path.name, "length": int(length),
                                                      "sha256": _sha256(path)}
        self._write_manifest()

    def _write_manifest(self) -> None:
        data = json.dumps(self.manifest, indent=1, sort_keys=True).encode()
        atomic_write_bytes(self.root / "manifest.json", lambda f: f.write(data))


def read_manifest(root: str | Path) -> dict:
    return read_sidecar_manifest(root)


def load_episode(root: str | Path, episode_id: int, verify: bool = True) -> dict[str, np.ndarray]:
    """The labels of one episode, checked against the manifest's sha256."""
    root = Path(root)
    entry = read_manifest(root)["episodes"].get(str(episode_id))
    if entry is None:
        raise KeyError(f"episode {episode_id} is not labelled in {root}")
    path = root / entry["file"]
    if verify and _sha256(path) != entry["sha256"]:
        raise ValueError(f"{path} does not match the manifest's sha256")
    with np.load(path) as z:
        return dict(z)
