"""Label sidecars: the format, and the one reader of it (every read checks the file's sha256).

For a dataset directory `D`, labels of kind `K` live in `D.parent / f"{D.name}.{K}"` (`sidecar_dir`;
kinds: `latent_actions`, `idm_actions.<embodiment>`, whose base kind `sidecar_kind` returns). That
directory holds:

- `episode_XXXXXX.npz`: one file per episode, arrays indexed by the episode's frame t (the keys of
  each kind: groot_jax/latent/label.py);
- `manifest.json`: {"format": "groot-jax-sidecar", "version": 1, "kind", "dataset", "producer"
  (model kind, config, checkpoint, horizon, ...), "episodes": {"<id>": {"file", "length",
  "sha256"}}} plus kind-specific facts (`horizon`, the IDM's `action_layout`).

The writer (atomic, resumable) is groot_jax/latent/sidecar.py. Every reader (sidecar_actions.py,
which turns the labels into a source's actions; labelling checks; experiments) goes through
`load_episode`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from groot_jax.data.errors import DataError

SIDECAR_FORMAT = "groot-jax-sidecar"
SIDECAR_VERSION = 1
KINDS = ("latent_actions", "idm_actions")  # base kinds; idm_actions carries ".<embodiment>"


def sidecar_dir(dataset: str | Path, kind: str) -> Path:
    """Where the sidecar of `kind` for `dataset` lives: beside it, never inside."""
    dataset = Path(dataset).absolute()
    return dataset.parent / f"{dataset.name}.{kind}"


def episode_file(episode_id: int) -> str:
    return f"episode_{episode_id:06d}.npz"


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_manifest(root: str | Path) -> dict:
    """The manifest of the sidecar at `root`, checked for format and required keys."""
    p = Path(root) / "manifest.json"
    if not p.exists():
        raise DataError(f"{p}: sidecar manifest not found (run `groot-jax latent-actions label` or "
                        f"`groot-jax idm label` on the dataset first)")
    try:
        m = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise DataError(f"{p}: not valid JSON ({e})") from e
    if m.get("format") != SIDECAR_FORMAT:
        raise DataError(f"{p}: format {m.get('format')!r} is not {SIDECAR_FORMAT!r}")
    for req in ("kind", "episodes"):
        if req not in m:
            raise DataError(f"{p}: lacks {req!r}")
    return m


def sidecar_kind(manifest: dict, root: str | Path = "") -> str:
    """The base kind (`latent_actions` | `idm_actions`) of a manifest's `kind`."""
    kind = str(manifest["kind"]).split(".")[0]
    if kind not in KINDS:
        raise DataError(f"{Path(root) / 'manifest.json'}: unknown sidecar kind {manifest['kind']!r}")
    return kind


def load_episode(root: str | Path, episode_id: int, manifest: dict | None = None
                 ) -> dict[str, np.ndarray]:
    """All arrays of one episode's label file, after checking it against the manifest's sha256
    (DataError naming the file when it is unlisted, missing, changed or unreadable)."""
    root = Path(root)
    manifest = read_manifest(root) if manifest is None else manifest
    entry = manifest["episodes"].get(str(int(episode_id)))
    if entry is None:
        raise DataError(f"{root}: episode {int(episode_id)} is not labelled")
    path = root / entry["file"]
    try:
        digest = file_sha256(path)
    except OSError as e:
        raise DataError(f"{path}: cannot read labels ({e})") from e
    if digest != entry["sha256"]:
        raise DataError(f"{path} does not match the manifest's sha256 (changed after labelling; "
                        f"rerun the label command, it relabels such episodes)")
    try:
        with np.load(path) as z:
            return dict(z)
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: cannot read labels ({e})") from e
