"""The data config of a dataset a user brings: derived from its own metadata, or a preset checked
against it.

Derived (`derive_data_config`): every video, state and action key of the dataset's modality,
which comes from `meta/modality.json` when present (GR00T v2.1 flavour, also honoured on v3.0) or
else from `meta/info.json` features as lerobot v3.0 writes them (observation.images.<cam> ->
video.<cam>, observation.state -> state.state, action -> action.action, task ->
annotation.human.task_description; groot_jax.data.lerobot_v3.default_modality). State and action
keys are min_max normalised (the finetune script's choice for new embodiments); the action window
is the model's horizon and the image size the model's. Action-less video and label sidecars give
their readers' modalities (video.ego_view; action.latent / the IDM layout).

Checks (`check_against_dataset`), each a DataError naming the file and key: a key of the config
the dataset does not define, and a dataset wider than the model's max state / action dims.
"""

from __future__ import annotations

import json
from pathlib import Path

from groot_jax.data import rotation
from groot_jax.data.errors import DataError
from groot_jax.data.modality import DataConfig, LeRobotModality

LANGUAGE_PREFERENCE = ("human.task_description", "human.action.task_description",
                       "human.coarse_action", "language.language_instruction")
LEROBOT_LAYOUT = ("a LeRobot dataset directory (v2.1 or v3.0): meta/info.json, data/ and videos/")


def info_path(root: str | Path) -> Path:
    """meta/info.json of a LeRobot dataset; DataError naming the path when there is none."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such dataset directory (expected {LEROBOT_LAYOUT})")
    p = root / "meta" / "info.json"
    if not p.exists():
        raise DataError(f"{root}: not a LeRobot dataset: {p} not found (expected "
                        f"{LEROBOT_LAYOUT})")
    return p


def modality_file(root: str | Path) -> Path:
    """The file that defines a LeRobot dataset's keys: meta/modality.json, else meta/info.json."""
    m = Path(root) / "meta" / "modality.json"
    return m if m.exists() else info_path(root)


def dataset_modality(root: str | Path) -> tuple[LeRobotModality, Path]:
    """(the keys of a LeRobot dataset, the file they come from), read without opening the data."""
    from groot_jax.data.lerobot_v3 import default_modality

    p = modality_file(root)
    if p.name == "modality.json":
        return LeRobotModality.load(p), p
    try:
        info = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise DataError(f"{p}: not valid JSON ({e})") from e
    return default_modality(info), p


def source_modality_file(source) -> Path:
    """For error messages: the file that defined an opened source's keys."""
    sidecar = getattr(source, "sidecar", None)
    if sidecar is not None:   # its actions come from the sidecar's manifest
        return Path(sidecar) / "manifest.json"
    root = Path(source.root)
    if (root / "meta" / "modality.json").exists():
        return root / "meta" / "modality.json"
    if (root / "meta" / "info.json").exists():
        return root / "meta" / "info.json"
    return root / "meta" / "episodes.jsonl"   # action-less video


def _language_key(modality: LeRobotModality) -> tuple[str, ...]:
    names = list(modality.annotation)
    for want in LANGUAGE_PREFERENCE:
        if want in names:
            return (f"annotation.{want}",)
    return (f"annotation.{names[0]}",) if names else ()


def derive_data_config(modality: LeRobotModality, *, name: str, embodiment_tag: str,
                       action_horizon: int, image_size: int, max_state_dim: int,
                       max_action_dim: int, has_actions: bool = True) -> DataConfig:
    """A DataConfig reading every key of `modality` (see the module docstring)."""
    state = tuple(f"state.{k}" for k in modality.state)
    action = tuple(f"action.{k}" for k in modality.action) if has_actions else ()
    return DataConfig(
        name=name, embodiment_tag=embodiment_tag,
        video_keys=tuple(f"video.{k}" for k in modality.video),
        state_keys=state, action_keys=action, language_keys=_language_key(modality),
        action_indices=tuple(range(action_horizon)),
        state_normalization={k: "min_max" for k in state},
        action_normalization={k: "min_max" for k in action},
        image_size=image_size, max_state_dim=max_state_dim, max_action_dim=max_action_dim)


def fit_to_model(cfg: DataConfig, *, action_horizon: int, image_size: int, max_state_dim: int,
                 max_action_dim: int, embodiment_tag: str | None = None) -> DataConfig:
    """A preset's config with the model's padding widths, action window and image size (the
    presets carry N1.5's 64/32/16/224), and an embodiment tag override."""
    return cfg.replace(
        action_indices=tuple(range(action_horizon)), image_size=image_size,
        max_state_dim=max_state_dim, max_action_dim=max_action_dim,
        embodiment_tag=embodiment_tag or cfg.embodiment_tag)


def key_width(modality: LeRobotModality, key: str, mode: str | None, target: str | None) -> int:
    """Width of one state/action key in the model's vector: its slice, or its target rotation's
    width, doubled by sin_cos (as groot_jax.data.codec encodes it)."""
    meta = modality.lookup(key)
    d = rotation.rotation_dim(target) if target else meta.dim
    return 2 * d if mode == "sin_cos" else d


def check_against_dataset(cfg: DataConfig, modality: LeRobotModality, *, file: str | Path,
                          dataset: str | Path, has_actions: bool = True) -> None:
    """DataError naming `file` and the key for a key of `cfg` the dataset does not define, and
    naming the dataset and widths when its state or action is wider than cfg's max dims."""
    groups = {"video": modality.video, "state": modality.state, "action": modality.action,
              "annotation": modality.annotation}
    keys = [*cfg.video_keys, *cfg.state_keys, *cfg.language_keys]
    if has_actions:
        keys += list(cfg.action_keys)
    for k in keys:
        group, _, name = k.partition(".")
        table = groups.get(group)
        if table is None or name not in table:
            have = sorted(f"{group}.{n}" for n in (table or {}))
            raise DataError(f"{file}: data config {cfg.name!r} reads {k!r}, which this dataset "
                            f"does not define (its {group} keys: {have})")
    for group, keys, modes, rots, limit, field in (
            ("state", cfg.state_keys, cfg.state_normalization, cfg.state_target_rotations,
             cfg.max_state_dim, "max_state_dim"),
            ("action", cfg.action_keys if has_actions else (), cfg.action_normalization,
             cfg.action_target_rotations, cfg.max_action_dim, "max_action_dim")):
        widths = {k: key_width(modality, k, modes.get(k), rots.get(k)) for k in keys}
        total = sum(widths.values())
        if total > limit:
            raise DataError(f"dataset {dataset}: {group} is {total} wide "
                            f"({', '.join(f'{k}={w}' for k, w in widths.items())}; {file}) but "
                            f"the model's {field} is {limit}")
