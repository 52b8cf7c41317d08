"""What a training run reads: the typed data spec inside `TrainConfig.data`.

`DataSpec(source="synthetic")` is the in-memory synthetic task (tests, dry runs, the tiny demo);
`source="datasets"` is one or more datasets on disk, each a `DatasetSpec`, read through the one
Grain pipeline of groot_jax/train/input_pipeline.py. The data pyramid (robot / simulation / human
video / neural trajectories) is the same spec with a `level` on each dataset and a weight per
level in `level_weights`:

    DataSpec(source="datasets", tokenizer="runs/tok", future_offset=4, datasets=(
        DatasetSpec("robot", level="real_robot"),
        DatasetSpec("human", kind="actionless", action_sidecar="human.latent_actions",
                    level="human_video")),
        level_weights=(("real_robot", 0.6), ("human_video", 0.4)))

Both are frozen and JSON round-trippable (`TrainConfig.to_json` / `TrainConfig.from_json`), so
`<run>/run_config.json` restores the exact data a run trained on.
"""
from __future__ import annotations

import dataclasses
from typing import Literal

from groot_jax.data.embodiments import EMBODIMENT_TAG_TO_ID
from groot_jax.data.embodiments import PRESETS as DATA_CONFIG_PRESETS

KINDS = ("lerobot", "actionless", "rlds")


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """One dataset. `data_config`: a preset name of groot_jax/data/embodiments.PRESETS, or None =
    derived from the dataset (groot_jax/data/dataset_config.py). `embodiment`: the embodiment tag
    (projector slot), None = the preset's, else new_embodiment (latent_action for latent-action
    labels). `action_sidecar`: a label sidecar whose labels become the actions. `weight`: the
    sampling weight (within its level when `level` is set)."""

    path: str
    weight: float = 1.0
    data_config: str | None = None
    embodiment: str | None = None
    kind: Literal["lerobot", "actionless", "rlds"] = "lerobot"
    action_sidecar: str | None = None
    level: str | None = None

    def __post_init__(self):
        if not self.path:
            raise ValueError("DatasetSpec.path is empty")
        if not isinstance(self.weight, (int, float)) or isinstance(self.weight, bool) \
                or self.weight < 0:
            raise ValueError(f"dataset {self.path}: weight must be a number >= 0, "
                             f"got {self.weight!r}")
        if self.kind not in KINDS:
            raise ValueError(f"dataset {self.path}: kind must be one of {'|'.join(KINDS)}, "
                             f"got {self.kind!r}")
        if self.data_config is not None and self.data_config not in DATA_CONFIG_PRESETS:
            raise ValueError(f"dataset {self.path}: unknown data config {self.data_config!r}; "
                             f"presets: {sorted(DATA_CONFIG_PRESETS)} (or none: derived from "
                             f"the dataset)")
        if self.embodiment is not None and self.embodiment not in EMBODIMENT_TAG_TO_ID:
            raise ValueError(f"dataset {self.path}: unknown embodiment tag {self.embodiment!r}; "
                             f"known: {sorted(EMBODIMENT_TAG_TO_ID)}")
        if self.kind == "rlds" and self.data_config is None:
            raise ValueError(f"dataset {self.path}: an RLDS dataset has no modality file to "
                             f"derive a data config from; name a preset (--data-config)")


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """The data of a run and the pipeline's options.

    device_augment: resize / colour jitter / normalisation on the accelerator; None = the fastest
      valid path (on, unless FLARE future frames need the host's transforms).
    device_yuv: with device augmentation, ship yuv420p planes instead of RGB; None = when every
      video is yuv420p (the first file of each camera is probed).
    shuffle_seed: None = TrainConfig.seed. future_offset: FLARE's future frame, in frames.
    max_seq_len: a fixed prompt length (static shapes); None = the longest of each batch.
    tokenizer: a Hugging Face tokenizer directory (the CLI defaults it to the --init model's)."""

    source: Literal["synthetic", "datasets"] = "synthetic"
    datasets: tuple[DatasetSpec, ...] = ()
    tokenizer: str | None = None
    num_workers: int = 0
    device_augment: bool | None = None
    device_yuv: bool | None = None
    shuffle_seed: int | None = None
    future_offset: int | None = None
    max_seq_len: int | None = None
    level_weights: tuple[tuple[str, float], ...] = ()

    def __post_init__(self):
        if self.source not in ("synthetic", "datasets"):
            raise ValueError(f"data.source must be synthetic|datasets, got {self.source!r}")
        if self.source == "synthetic" and self.datasets:
            raise ValueError("data.source='synthetic' with datasets: set data.source='datasets'")
        if not isinstance(self.num_workers, int) or self.num_workers < 0:
            raise ValueError(f"data.num_workers must be a whole number >= 0, "
                             f"got {self.num_workers!r}")
        if self.future_offset is not None and self.future_offset <= 0:
            raise ValueError(f"data.future_offset must be positive, got {self.future_offset}")
        if self.device_yuv and self.device_augment is False:
            raise ValueError("data.device_yuv=True needs the device augmentation path "
                             "(data.device_augment=False was given)")
        levels = [d.level for d in self.datasets]
        named = dict(self.level_weights)
        if len(named) != len(self.level_weights):
            raise ValueError(f"data.level_weights names a level twice: {self.level_weights}")
        if any(w < 0 for w in named.values()):
            raise ValueError(f"data.level_weights must be >= 0, got {self.level_weights}")
        if self.level_weights or any(lv is not None for lv in levels):
            missing = sorted({d.path for d in self.datasets if d.level is None})
            if missing:
                raise ValueError(f"datasets {missing} have no level while others do: give every "
                                 f"dataset of a pyramid its level")
            unweighted = sorted(set(levels) - set(named))
            if unweighted:
                raise ValueError(f"levels {unweighted} have no weight in data.level_weights "
                                 f"({self.level_weights})")
            empty = sorted(set(named) - set(levels))
            if empty and self.datasets:
                raise ValueError(f"data.level_weights names levels {empty} that no dataset has")

    def weights(self) -> list[float]:
        """The sampling weight of each dataset, normalised to sum 1: the dataset's weight, or with
        levels its level's share times its share within the level."""
        if not self.datasets:
            return []
        if not self.level_weights:
            raw = [d.weight for d in self.datasets]
        else:
            lw = dict(self.level_weights)
            inner: dict[str, float] = {}
            for d in self.datasets:
                inner[d.level] = inner.get(d.level, 0.0) + d.weight
            raw = [lw[d.level] * (d.weight / inner[d.level] if inner[d.level] else 0.0)
                   for d in self.datasets]
        total = sum(raw)
        if total <= 0:
            raise ValueError("data: every dataset (or level) weight is zero")
        return [w / total for w in raw]
