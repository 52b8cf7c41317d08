"""The processor that travels with a model: data configs, statistics and tokenizer files.

Where they live (read_processor finds them in any of these):
  <run>/processor/                  a training run (written at train start, before the first step)
  <model dir>/                      a groot-jax model dir (save_model): top level
  <Isaac-GR00T dir>/experiment_cfg/ metadata.json (the GR00T format) and, in our exports,
                                    data_configs.json; tokenizer files at the top level
  <N1.7 dir>/                       without experiment_cfg/: statistics.json and
                                    processor_config.json (convert/n17_files.py)
Files:
  data_configs.json   {embodiment_tag: DataConfig.to_json()}
  metadata.json       {embodiment_tag: {"statistics", "modalities", "embodiment_tag"}} (spec 9.1,
                      groot_jax.data.stats.dataset_metadata)
  tokenizer files     convert.checkpoint.TOKENIZER_FILES
A checkpoint from elsewhere carries no data configs; `data_config_from_metadata` derives one from
the metadata's modalities when the caller names none.
"""
from __future__ import annotations

import dataclasses
import json
import os
import warnings
from pathlib import Path

import numpy as np

from groot_jax.convert.checkpoint import (
    METADATA_FILE,
    OUR_CONFIG,
    OUR_METADATA,
    has_tokenizer,
    store_tokenizer,
    validate_metadata,
)
from groot_jax.convert.safetensors_io import CheckpointFileError
from groot_jax.data.errors import DataError
from groot_jax.data.modality import DataConfig

PROCESSOR_DIR = "processor"
DATA_CONFIGS = "data_configs.json"
RUN_CONFIG = "run_config.json"
# The language key a derived data config reads: the one GR00T LeRobot datasets for new
# embodiments use (the so100 preset's); metadata.json records no language keys.
DERIVED_LANGUAGE_KEY = "annotation.human.task_description"
NO_DATA_CONFIG_HINT = "pass --data-config NAME (a preset) to say which keys feed the model"


@dataclasses.dataclass(frozen=True)
class ProcessorFiles:
    data_configs: dict[str, DataConfig]  # embodiment tag -> data config
    metadata: dict[str, dict]  # metadata.json entries (JSON values: lists, not arrays)
    tokenizer_dir: Path | None
    source: str = ""  # where they were read from, for error messages

    def embodiments(self) -> list[str]:
        return sorted(set(self.data_configs) | set(self.metadata))

    def data_config(self, embodiment: str | None = None, *, action_horizon: int = 16,
                    max_state_dim: int = 64, max_action_dim: int = 32) -> DataConfig:
        """The data config of `embodiment` (None: the only one there is). Without a stored one
        it is derived from the metadata (a warning says so); ValueError naming the choices when
        `embodiment` is needed or unknown."""
        tags = self.embodiments()
        if embodiment is None:
            if len(tags) != 1:
                raise ValueError(f"{self.source}: "
                                 + (f"holds embodiments {tags}; pass --embodiment-tag (one of them)"
                                    if tags else f"holds no data config or metadata; "
                                    f"{NO_DATA_CONFIG_HINT}"))
            embodiment = tags[0]
        if embodiment in self.data_configs:
            return self.data_configs[embodiment]
        if embodiment not in self.metadata:
            raise ValueError(f"{self.source}: no embodiment {embodiment!r} (it has {tags})")
        warnings.warn(f"{self.source}: no {DATA_CONFIGS}; the data config of {embodiment!r} is "
                      "derived from metadata.json (every key of its modalities, min_max "
                      f"normalisation, language key {DERIVED_LANGUAGE_KEY}); if the model was "
                      f"trained otherwise, {NO_DATA_CONFIG_HINT}", stacklevel=2)
        return data_config_from_metadata(self.metadata[embodiment], embodiment,
                                         action_horizon=action_horizon,
                                         max_state_dim=max_state_dim,
                                         max_action_dim=max_action_dim)


def data_config_from_metadata(meta_entry: dict, tag: str, *, action_horizon: int = 16,
                              max_state_dim: int = 64, max_action_dim: int = 32) -> DataConfig:
    """A data config for a checkpoint that stores only metadata.json: video/state/action keys in
    the metadata's modality order, min_max normalisation of state and action (what the
    original's new-embodiment configs use; metadata.json does not record the mode)."""
    mods = meta_entry.get("modalities", {})
    video = tuple(f"video.{n}" for n in mods.get("video", {}))
    state = tuple(f"state.{n}" for n in mods.get("state", {}))
    action = tuple(f"action.{n}" for n in mods.get("action", {}))
    return DataConfig(name=f"{tag}_from_metadata", embodiment_tag=tag, video_keys=video,
                      state_keys=state, action_keys=action, language_keys=(DERIVED_LANGUAGE_KEY,),
                      action_indices=tuple(range(action_horizon)),
                      state_normalization={k: "min_max" for k in state},
                      action_normalization={k: "min_max" for k in action},
                      max_state_dim=max_state_dim, max_action_dim=max_action_dim)


def _json_default(x):
    if isinstance(x, (np.ndarray, np.generic)):
        return x.tolist()
    raise TypeError(f"{type(x).__name__} is not JSON serialisable")


def _write_json(path: Path, obj) -> None:
    """Write through a temporary file so a crash never leaves half a file behind."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=_json_default) + "\n")
    os.replace(tmp, path)


def check_processor(data_configs: dict[str, DataConfig], metadata: dict, source: str) -> None:
    """Each data config is filed under its own tag, and each of its state/action keys has
    statistics and a shape in the metadata of that tag; ValueError naming the key otherwise."""
    validate_metadata(metadata, source)
    for tag, cfg in data_configs.items():
        if not isinstance(cfg, DataConfig):
            raise TypeError(f"{source}: data_configs[{tag!r}] is a {type(cfg).__name__}, "
                            "not a DataConfig")
        if cfg.embodiment_tag != tag:
            raise ValueError(f"{source}: data config {cfg.name!r} has embodiment_tag "
                             f"{cfg.embodiment_tag!r} but is filed under {tag!r}")
        keys = (*cfg.state_keys, *cfg.action_keys)
        if keys and tag not in metadata:
            raise ValueError(f"{source}: no metadata (statistics) for embodiment {tag!r} of data "
                             f"config {cfg.name!r} (metadata has {sorted(metadata)})")
        for key in keys:
            group, _, name = key.partition(".")
            if name not in metadata[tag]["modalities"].get(group, {}):
                raise ValueError(f"{source}: metadata of {tag!r} has no modalities.{group}.{name} "
                                 f"(data config {cfg.name!r} reads {key!r})")
            if name not in metadata[tag]["statistics"].get(group, {}):
                raise ValueError(f"{source}: metadata of {tag!r} has no statistics.{group}.{name} "
                                 f"(data config {cfg.name!r} reads {key!r})")


def write_processor(directory, *, data_configs: dict[str, DataConfig], metadata: dict,
                    tokenizer_dir=None) -> Path:
    """Write data_configs.json, metadata.json and the tokenizer files of `tokenizer_dir` (None:
    none) into `directory` (created; files already there are replaced). Returns the directory."""
    directory = Path(directory)
    check_processor(data_configs, metadata, str(directory))
    directory.mkdir(parents=True, exist_ok=True)
    if tokenizer_dir is not None and Path(tokenizer_dir).resolve() != directory.resolve():
        store_tokenizer(directory, tokenizer_dir)
    _write_json(directory / OUR_METADATA, metadata)
    _write_json(directory / DATA_CONFIGS, {t: c.to_json() for t, c in data_configs.items()})
    return directory


def write_data_configs(directory, data_configs: dict[str, DataConfig]) -> None:
    """data_configs.json alone (into a model dir or an export's experiment_cfg/)."""
    _write_json(Path(directory) / DATA_CONFIGS, {t: c.to_json() for t, c in data_configs.items()})


def read_data_configs(path) -> dict[str, DataConfig]:
    """data_configs.json -> {tag: DataConfig}; DataError naming the file and field."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(raw, dict):
        raise DataError(f"{path}: must be a JSON object {{embodiment_tag: data config}}")
    out = {tag: DataConfig.from_json(obj, f"{path} [{tag!r}]") for tag, obj in raw.items()}
    for tag, cfg in out.items():
        if cfg.embodiment_tag != tag:
            raise DataError(f"{path}: data config {cfg.name!r} has embodiment_tag "
                            f"{cfg.embodiment_tag!r} but is filed under {tag!r}")
    return out


def _read_metadata(path: Path) -> dict:
    if not path.is_file():
        raise CheckpointFileError(f"{path}: missing (the statistics the model was trained with)")
    try:
        return validate_metadata(json.loads(path.read_text()), str(path))
    except json.JSONDecodeError as e:
        raise CheckpointFileError(f"{path}: not valid JSON ({e})") from e


def _read_files(configs_path: Path, metadata_path: Path, tok_dir: Path, source: Path, *,
                need_configs: bool) -> ProcessorFiles:
    if configs_path.is_file():
        configs = read_data_configs(configs_path)
    elif need_configs:
        raise CheckpointFileError(f"{configs_path}: missing (the data configs of the run)")
    else:
        configs = {}
    return ProcessorFiles(data_configs=configs, metadata=_read_metadata(metadata_path),
                          tokenizer_dir=tok_dir if has_tokenizer(tok_dir) else None,
                          source=str(source))


def _read_n17_files(path: Path) -> ProcessorFiles:
    """An N1.7 checkpoint from elsewhere: metadata and data configs from its statistics.json and
    processor_config.json (convert/n17_files.py)."""
    from groot_jax.convert.checkpoint import read_gr00t_config, read_gr00t_metadata
    from groot_jax.convert.n17_files import read_n17_data_configs

    metadata = read_gr00t_metadata(path)
    configs = read_n17_data_configs(path, read_gr00t_config(path))
    return ProcessorFiles(data_configs=configs, metadata=metadata,
                          tokenizer_dir=path if has_tokenizer(path) else None, source=str(path))


def read_processor(path) -> ProcessorFiles:
    """The processor files of a run dir (path/processor), a groot-jax model dir (top level), a
    processor dir itself, or an Isaac-GR00T dir (experiment_cfg/metadata.json; no data configs
    unless we exported it). CheckpointFileError naming the file when one is missing."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointFileError(f"{path}: not a directory (expected a training run, a groot-jax "
                                  "model dir or an Isaac-GR00T checkpoint dir)")
    proc = path / PROCESSOR_DIR
    if proc.is_dir():
        return _read_files(proc / DATA_CONFIGS, proc / OUR_METADATA, proc, path,
                           need_configs=True)
    from groot_jax.convert.run_dir import is_run_dir

    if is_run_dir(path):
        raise CheckpointFileError(f"{proc}: missing; this run was trained before processor files "
                                  "were written; pass --data-config NAME and --tokenizer DIR")
    if (path / OUR_CONFIG).is_file() or (path / DATA_CONFIGS).is_file():
        # a model dir saved before data configs were written has none: {}
        return _read_files(path / DATA_CONFIGS, path / OUR_METADATA, path, path,
                           need_configs=not (path / OUR_CONFIG).is_file())
    if (path / "config.json").is_file():
        from groot_jax.convert.n17_files import has_n17_sidecars

        if not (path / METADATA_FILE).is_file() and has_n17_sidecars(path):
            return _read_n17_files(path)
        return _read_files(path / METADATA_FILE.parent / DATA_CONFIGS, path / METADATA_FILE,
                           path, path, need_configs=False)
    raise CheckpointFileError(f"{path}: no processor files (neither {PROCESSOR_DIR}/, "
                              f"{OUR_CONFIG} nor config.json + {METADATA_FILE})")
