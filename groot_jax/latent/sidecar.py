"""The writer of label sidecars (format and reader: groot_jax/data/sidecar.py).

Writes are atomic: each file goes to a `.tmp-*` file in the same directory, is fsynced, then
`os.replace`d; the manifest is rewritten the same way after each episode. So after a crash every
`episode_*.npz` is complete, the manifest lists only episodes whose file was complete when it was
written, and a rerun labels exactly the episodes the manifest does not list with a matching
sha256 (stale `.tmp-*` files are deleted). A sidecar made by a different producer is refused
unless `overwrite=True`.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from groot_jax.data.sidecar import SIDECAR_FORMAT, SIDECAR_VERSION, episode_file, file_sha256


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
        fresh = {"format": SIDECAR_FORMAT, "version": SIDECAR_VERSION, "kind": kind,
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
        return path.exists() and file_sha256(path) == entry["sha256"]

    def write(self, episode_id: int, arrays: dict[str, np.ndarray]) -> None:
        path = self.root / episode_file(episode_id)
        atomic_write_bytes(path, lambda f: np.savez(f, **arrays))
        length = len(next(iter(arrays.values())))
        self.manifest["episodes"][str(episode_id)] = {"file": path.name, "length": int(length),
                                                      "sha256": file_sha256(path)}
        self._write_manifest()

    def _write_manifest(self) -> None:
        data = json.dumps(self.manifest, indent=1, sort_keys=True).encode()
        atomic_write_bytes(self.root / "manifest.json", lambda f: f.write(data))

