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


def open_source(spec: SourceSpec):
    """SourceSpec -> an EpisodeSource: the one place that maps a dataset kind (and a LeRobot
    codebase version) to its reader."""
    if spec.kind == "lerobot":
        info = Path(spec.path) / "meta" / "info.json"
        if not info.exists():
            raise DataError(f"{info}: not found")
        try:
            ver = str(json.loads(info.read_text()).get("codebase_version", ""))
        except json.JSONDecodeError as e:  # json's own message names no file
            raise DataError(f"{info}: not valid JSON ({e})") from e
        if ver.startswith("v3"):
            from groot_jax.data.lerobot_v3 import LeRobotV3Source

            src = LeRobotV3Source(spec.path, name=spec.name)
        else:
            from groot_jax.data.lerobot_v2 import LeRobotV2Source

            src = LeRobotV2Source(spec.path, name=spec.name)
    elif spec.kind == "rlds":
        from groot_jax.data.rlds import RLDSSource

        src = RLDSSource(spec.path, spec.config, split=spec.split, name=spec.name)
    elif spec.kind == "actionless":
        from groot_jax.data.actionless import ActionlessSource

        src = ActionlessSource(spec.path, name=spec.name)
    else:
        raise DataError(f"unknown source kind {spec.kind!r}")
    if spec.action_sidecar is not None:
        from groot_jax.data.sidecar_actions import SidecarActionSource

        src = SidecarActionSource(src, spec.action_sidecar)
    src.check_config(spec.config)
    return src


def mixture_stats(sources, specs: list[SourceSpec]) -> dict[str, dict]:
    """{embodiment_tag: {"state"|"action": {name: {stat: array}}}} merged with the mixture weights
    over the datasets sharing a tag (one dataset: its own stats). Action-less sources contribute
    no statistics."""
    groups: dict[str, list] = {}
    for src, spec in zip(sources, specs, strict=True):
        if not src.modality.state and not src.modality.action:
            continue
        groups.setdefault(spec.config.embodiment_tag, []).append((source_stats(src), spec.weight))
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
