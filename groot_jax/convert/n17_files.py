"""The processor sidecars of a GR00T N1.7 checkpoint (N1.7 spec 1.5) <-> our processor files.

What lerobot 0.6.1 reads from a raw N1.7 checkpoint dir (processor_groot.py
`_load_n1_7_checkpoint_processor_assets`, utils.py `flatten_n1_7_modality_stats`):
  processor_config.json {"processor_class": "Gr00tN1d7Processor", "processor_kwargs": {
                          "modality_configs": {tag: {"video"|"state"|"action"|"language":
                              {"delta_indices": [...], "modality_keys": [...]}}},
                          "use_percentiles", "use_relative_action", "clip_outliers",
                          "formalize_language", "image_target_size", "image_crop_size",
                          "crop_fraction", "shortest_image_edge", "use_albumentations",
                          "letter_box_transform", "max_state_dim", "max_action_dim",
                          "max_action_horizon", "state_dropout_prob"}}
  statistics.json       {tag: {"state": {key: {min, max, mean, std, q01, q99}}, "action": {...},
                          "relative_action": {...}}}; lerobot flattens state/action in
                          modality_keys order, q01/q99 as min/max when use_percentiles
  embodiment_id.json    {tag: projector slot}; replaces lerobot's built-in N1.7 table
Ours (processor_files.py): metadata.json {tag: {"statistics", "modalities", "embodiment_tag"}} and
data_configs.json {tag: DataConfig}. Keys: ours "state.x" <-> modality key "x" (same for video /
action); language keys are kept whole ("annotation.human.task_description").

Our normalisation modes map onto lerobot's one switch: every state/action key "q99" ->
use_percentiles true, every key "min_max" -> false (a mixture, or mean_std / binary / sin_cos,
cannot be written; a warning says which keys differ). The image geometry is written as lerobot's
torch path: resize to image_target_size (our frame size), centre crop `crop_fraction` (our
crop_scale), resize back; ours crops then resizes once, so frames differ by resampling only.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

from groot_jax.config import GR00TConfig
from groot_jax.convert.safetensors_io import CheckpointFileError
from groot_jax.data.modality import DataConfig

PROCESSOR_CONFIG, STATISTICS, EMBODIMENT_IDS = ("processor_config.json", "statistics.json",
                                                "embodiment_id.json")
PROCESSOR_CLASS = "Gr00tN1d7Processor"
STAT_NAMES = ("mean", "std", "min", "max", "q01", "q99")


def _strip(keys, group: str) -> list[str]:
    return [k.split(".", 1)[1] if k.startswith(group + ".") else k for k in keys]


def _data_configs_for(cfg: GR00TConfig, metadata: dict, data_configs: dict) -> dict:
    from groot_jax.convert.processor_files import data_config_from_metadata

    head = cfg.action_head
    out = dict(data_configs)
    for tag in sorted(set(metadata) - set(out)):
        out[tag] = data_config_from_metadata(metadata[tag], tag,
                                             action_horizon=head.action_horizon,
                                             max_state_dim=head.max_state_dim,
                                             max_action_dim=head.action_dim)
    return dict(sorted(out.items()))


def _use_percentiles(configs: dict[str, DataConfig]) -> bool:
    modes = {}
    for tag, dc in configs.items():
        for key in dc.state_keys:
            modes[f"{tag}:{key}"] = dc.state_normalization.get(key)
        for key in dc.action_keys:
            modes[f"{tag}:{key}"] = dc.action_normalization.get(key)
    q99 = sorted(k for k, m in modes.items() if m == "q99")
    other = sorted(k for k, m in modes.items() if m not in ("q99", "min_max"))
    if other or (q99 and len(q99) != len(modes)):
        warnings.warn(f"lerobot's N1.7 processor normalises every state/action key one way "
                      f"(min/max, or q01/q99 with use_percentiles); the data configs mix modes "
                      f"{ {k: modes[k] for k in (other or q99)} }: use_percentiles="
                      f"{len(q99) * 2 > len(modes)} is written", stacklevel=3)
    return len(q99) * 2 > len(modes)


def n17_sidecars(cfg: GR00TConfig, metadata: dict, data_configs: dict | None = None,
                 embodiment_ids: dict[str, int] | None = None) -> dict[str, dict]:
    """{file name: JSON} of processor_config.json, statistics.json and embodiment_id.json for
    our model's processor (metadata {tag: entry}, data configs {tag: DataConfig}; a tag with
    metadata and no data config gets the derived one). `embodiment_ids` default: our tag table
    (groot_jax.data.embodiments), the slots our processor trains each tag in."""
    from groot_jax.data.embodiments import EMBODIMENT_TAG_TO_ID

    head = cfg.action_head
    configs = _data_configs_for(cfg, metadata or {}, data_configs or {})
    modality_configs = {}
    for tag, dc in configs.items():
        if dc.state_target_rotations or dc.action_target_rotations:
            warnings.warn(f"{tag}: lerobot's N1.7 processor does not convert rotations "
                          f"({dc.state_target_rotations or dc.action_target_rotations}); the "
                          "exported processor config reads the stored values as they are",
                          stacklevel=2)
        obs = list(dc.observation_indices)
        modality_configs[tag] = {
            "video": {"delta_indices": obs, "modality_keys": _strip(dc.video_keys, "video")},
            "state": {"delta_indices": obs, "modality_keys": _strip(dc.state_keys, "state")},
            "action": {"delta_indices": list(dc.action_indices),
                       "modality_keys": _strip(dc.action_keys, "action"),
                       "action_configs": [{"rep": "absolute", "type": "non_eef",
                                           "format": "default", "state_key": None}
                                          for _ in dc.action_keys]},
            "language": {"delta_indices": obs, "modality_keys": list(dc.language_keys)},
        }
    crops = {dc.crop_scale for dc in configs.values()}
    crop = crops.pop() if len(crops) == 1 else 0.95
    side = cfg.backbone.image_size
    processor = {"processor_class": PROCESSOR_CLASS, "processor_kwargs": {
        "modality_configs": modality_configs,
        "use_percentiles": _use_percentiles(configs), "use_relative_action": False,
        "clip_outliers": True, "formalize_language": True,
        "image_target_size": [side, side], "image_crop_size": [round(side * crop)] * 2,
        "crop_fraction": crop, "shortest_image_edge": None, "use_albumentations": False,
        "letter_box_transform": False, "max_state_dim": head.max_state_dim,
        "max_action_dim": head.action_dim, "max_action_horizon": head.action_horizon,
        "state_dropout_prob": head.state_dropout_prob, "apply_sincos_state_encoding": False,
        "use_mean_std": False}}
    statistics = {tag: {"state": entry["statistics"].get("state", {}),
                        "action": entry["statistics"].get("action", {}), "relative_action": {}}
                  for tag, entry in sorted((metadata or {}).items())}
    ids = dict(EMBODIMENT_TAG_TO_ID if embodiment_ids is None else embodiment_ids)
    return {PROCESSOR_CONFIG: processor, STATISTICS: statistics, EMBODIMENT_IDS: ids}


def write_n17_sidecars(directory, cfg: GR00TConfig, metadata: dict,
                       data_configs: dict | None = None,
                       embodiment_ids: dict[str, int] | None = None) -> None:
    from groot_jax.convert.processor_files import _write_json

    for name, obj in n17_sidecars(cfg, metadata, data_configs, embodiment_ids).items():
        _write_json(Path(directory) / name, obj)


def has_n17_sidecars(directory) -> bool:
    return (Path(directory) / STATISTICS).is_file()


def _read(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointFileError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(data, dict):
        raise CheckpointFileError(f"{path}: must be a JSON object")
    return data


def read_embodiment_ids(directory) -> dict[str, int] | None:
    data = _read(Path(directory) / EMBODIMENT_IDS)
    try:
        return {str(k): int(v) for k, v in data.items()} or None
    except (TypeError, ValueError) as e:
        raise CheckpointFileError(f"{Path(directory) / EMBODIMENT_IDS}: {e}") from e


def _stat_dim(stats: dict) -> int:
    import numpy as np

    for name in ("mean", "min", "max", "q01", "q99", "std"):
        if name in stats:
            return int(np.asarray(stats[name]).reshape(-1).shape[0])
    return 0


def read_n17_metadata(directory) -> dict:
    """Our metadata {tag: {"statistics", "modalities", "embodiment_tag"}} from statistics.json
    and processor_config.json: keys in modality_keys order (then any other key with stats),
    shapes from the statistics, every key absolute without rotation type (the sidecars do not
    say otherwise). Relative-action statistics are not imported (a warning says so)."""
    directory = Path(directory)
    stats_all = _read(directory / STATISTICS)
    kwargs = _read(directory / PROCESSOR_CONFIG).get("processor_kwargs") or {}
    modality_configs = kwargs.get("modality_configs") or {}
    out = {}
    for tag, entry in stats_all.items():
        if not isinstance(entry, dict):
            raise CheckpointFileError(f"{directory / STATISTICS}: entry {tag!r} is not an object")
        mod_cfg = modality_configs.get(tag) or {}
        if entry.get("relative_action"):
            warnings.warn(f"{directory / STATISTICS}: {tag!r} has relative-action statistics "
                          "(use_relative_action checkpoints); groot-jax imports the absolute "
                          "state/action statistics only", stacklevel=2)
        statistics, modalities = {}, {"video": {}, "state": {}, "action": {}}
        for group in ("state", "action"):
            group_stats = entry.get(group) or {}
            order = [k for k in (mod_cfg.get(group) or {}).get("modality_keys", [])
                     if k in group_stats]
            order += [k for k in group_stats if k not in order]
            statistics[group] = {}
            for key in order:
                missing = [s for s in STAT_NAMES if s not in group_stats[key]]
                if missing:
                    raise CheckpointFileError(f"{directory / STATISTICS}: {tag}.{group}.{key} "
                                              f"lacks {missing}")
                statistics[group][key] = {s: group_stats[key][s] for s in STAT_NAMES}
                modalities[group][key] = {"absolute": True, "rotation_type": None,
                                          "shape": [_stat_dim(group_stats[key])],
                                          "continuous": True}
        side = (kwargs.get("image_target_size") or [None, None])
        for key in (mod_cfg.get("video") or {}).get("modality_keys", []):
            modalities["video"][key] = {"resolution": [side[1], side[0]], "channels": 3,
                                        "fps": None}
        out[tag] = {"statistics": statistics, "modalities": modalities, "embodiment_tag": tag}
    return out


def read_n17_data_configs(directory, cfg: GR00TConfig) -> dict[str, DataConfig]:
    """Data configs from processor_config.json's modality configs (tags that have statistics):
    its keys and delta indices, min_max or q99 normalisation (use_percentiles), our frame size
    and its crop fraction."""
    directory = Path(directory)
    kwargs = _read(directory / PROCESSOR_CONFIG).get("processor_kwargs") or {}
    stats = _read(directory / STATISTICS)
    if kwargs.get("use_relative_action"):
        warnings.warn(f"{directory / PROCESSOR_CONFIG}: use_relative_action is set; groot-jax's "
                      "data configs decode absolute actions only, so the derived data configs "
                      "do not reproduce this checkpoint's action decoding", stacklevel=2)
    mode = "q99" if kwargs.get("use_percentiles") else "min_max"
    head = cfg.action_head
    out = {}
    for tag, mc in (kwargs.get("modality_configs") or {}).items():
        if tag not in stats or not isinstance(mc, dict):
            continue

        def keys(group, prefix=True, mc=mc):
            names = (mc.get(group) or {}).get("modality_keys") or []
            return tuple(f"{group}.{k}" if prefix else k for k in names)

        state, action = keys("state"), keys("action")
        obs = tuple((mc.get("video") or mc.get("state") or {}).get("delta_indices") or (0,))
        out[tag] = DataConfig(
            name=f"{tag}_from_processor_config", embodiment_tag=tag, video_keys=keys("video"),
            state_keys=state, action_keys=action, language_keys=keys("language", prefix=False),
            observation_indices=obs,
            action_indices=tuple((mc.get("action") or {}).get("delta_indices")
                                 or range(head.action_horizon)),
            state_normalization={k: mode for k in state},
            action_normalization={k: mode for k in action},
            crop_scale=float(kwargs.get("crop_fraction") or 0.95),
            image_size=cfg.backbone.image_size,
            max_state_dim=head.max_state_dim, max_action_dim=head.action_dim)
    return out
