"""Mixture specification: sources (pyramid levels and datasets within them) with weights, and
statistics merged per embodiment tag as the original's LeRobotMixtureDataset does."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from groot_jax.data.errors import DataError
from groot_jax.data.modality import DataConfig
from groot_jax.data.stats import merge_stats, source_stats


@dataclasses.dataclass(frozen=True)
class SourceSpec:
    """One dataset of a mixture. kind: lerobot (v2.x or v3.0, detected), rlds, actionless."""

    path: str
    config: DataConfig
    weight: float = 1.0
    kind: str = "lerobot"
    split: str = "train"  # RLDS split
    name: str | None = None
    # A label sidecar (latent actions or IDM pseudo-actions, see sidecar_actions.py) whose
    # per-frame labels become this source's actions.
    action_sidecar: str | None = None


def detect_kind(path: str | Path) -> str | None:
    """The SourceSpec kind of a dataset directory from its metadata: "lerobot" (meta/info.json),
    "actionless" (meta/episodes.jsonl without info.json), else None."""
    meta = Path(path) / "meta"
    if (meta / "info.json").exists():
        return "lerobot"
    if (meta / "episodes.jsonl").exists():
        return "actionless"
    return None


def open_reader(path: str, kind: str = "lerobot", *, name: str | None = None,
                action_sidecar: str | None = None, config: DataConfig | None = None,
                split: str = "train"):
    """A dataset's EpisodeSource, not yet checked against a data config: the one place that maps
    a dataset kind (and a LeRobot codebase version) to its reader. `config` only for RLDS, whose
    reader needs it."""
    if kind == "lerobot":
        from groot_jax.data.dataset_config import info_path

        info = info_path(path)  # DataError naming the path when it is not a LeRobot dataset
        try:
            ver = str(json.loads(info.read_text()).get("codebase_version", ""))
        except json.JSONDecodeError as e:  # json's own message names no file
            raise DataError(f"{info}: not valid JSON ({e})") from e
        if ver.startswith("v3"):
            from groot_jax.data.lerobot_v3 import LeRobotV3Source

            src = LeRobotV3Source(path, name=name)
        else:
            from groot_jax.data.lerobot_v2 import LeRobotV2Source

            src = LeRobotV2Source(path, name=name)
    elif kind == "rlds":
        from groot_jax.data.rlds import RLDSSource

        if config is None:
            raise DataError(f"{path}: an RLDS source needs its data config")
        src = RLDSSource(path, config, split=split, name=name)
    elif kind == "actionless":
        from groot_jax.data.actionless import ActionlessSource

        src = ActionlessSource(path, name=name)
    else:
        raise DataError(f"unknown source kind {kind!r}")
    if action_sidecar is not None:
        from groot_jax.data.sidecar_actions import SidecarActionSource

        src = SidecarActionSource(src, action_sidecar)
    return src


def open_source(spec: SourceSpec):
    """SourceSpec -> an EpisodeSource checked against the spec's data config."""
    src = open_reader(spec.path, spec.kind, name=spec.name, action_sidecar=spec.action_sidecar,
                      config=spec.config, split=spec.split)
    src.check_config(spec.config)
    return src


def mixture_stats(sources, specs: list[SourceSpec], per_source: list | None = None
                  ) -> dict[str, dict]:
    """{embodiment_tag: {"state"|"action": {name: {stat: array}}}} merged with the mixture weights
    over the datasets sharing a tag (one dataset: its own stats). Action-less sources contribute
    no statistics. `per_source`: each source's key stats when already known (else source_stats)."""
    groups: dict[str, list] = {}
    for i, (src, spec) in enumerate(zip(sources, specs, strict=True)):
        if not src.modality.state and not src.modality.action:
            continue
        st = per_source[i] if per_source is not None else source_stats(src)
        groups.setdefault(spec.config.embodiment_tag, []).append((st, spec.weight))
    out = {}
    for tag, items in groups.items():
        merged = {}
        for group in ("state", "action"):
            # Datasets without this group (action-less video with pseudo-actions has no state)
            # neither contribute to nor conflict with the others' statistics.
            have = [(s[group], w) for s, w in items if s[group]]
            per = [p for p, _ in have]
            keys = set(per[0]) if per else set()
            if any(set(p) != keys for p in per):
                raise DataError(
                    f"embodiment {tag}: datasets define different {group} keys "
                    f"{[sorted(p) for p in per]}"
                )
            merged[group] = merge_stats(per, [w for _, w in have]) if keys else {}
        out[tag] = merged
    return out
