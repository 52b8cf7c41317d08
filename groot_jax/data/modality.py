"""modality.json (GR00T LeRobot flavour), modality configs, delta indices and edge padding.

Keys are referenced as `video.<name>`, `state.<name>`, `action.<name>`, `annotation.<source>.<type>`
(spec 10). For each modality a sample at base index i reads frames `i + delta_indices`:
video and language indices are clamped into the episode; state/action out of range are padded with
the first/last frame for `absolute=true` keys and zeros for relative keys (`pad_edges`).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from groot_jax.data.errors import DataError

ROTATION_TYPES = (
    "axis_angle",
    "quaternion",
    "rotation_6d",
    "matrix",
    "euler_angles_rpy",
    "euler_angles_ryp",
    "euler_angles_pry",
    "euler_angles_pyr",
    "euler_angles_yrp",
    "euler_angles_ypr",
)


@dataclasses.dataclass(frozen=True)
class StateActionMeta:
    """One `state.<name>` / `action.<name>` entry: the slice [start:end] of column `original_key`."""

    start: int
    end: int
    original_key: str
    absolute: bool = True
    rotation_type: str | None = None
    dtype: str = "float64"
    range: tuple[float, float] | None = None

    @property
    def dim(self) -> int:
        return self.end - self.start


@dataclasses.dataclass(frozen=True)
class LeRobotModality:
    """Parsed meta/modality.json."""

    state: dict[str, StateActionMeta]
    action: dict[str, StateActionMeta]
    video: dict[str, str]  # name -> original_key (e.g. observation.images.ego_view)
    annotation: dict[str, str]  # "<source>.<type>" -> original_key (a task-index column)

    @classmethod
    def from_json(cls, obj: dict, path: str = "meta/modality.json") -> LeRobotModality:
        def sa(section: str, default_key: str) -> dict[str, StateActionMeta]:
            out = {}
            for name, m in (obj.get(section) or {}).items():
                for req in ("start", "end"):
                    if req not in m:
                        raise DataError(f"{path}: {section}.{name} lacks required field {req!r}")
                start, end = int(m["start"]), int(m["end"])
                if not 0 <= start < end:
                    raise DataError(
                        f"{path}: {section}.{name} has an empty or negative slice [{start}:{end}]"
                    )
                rot = m.get("rotation_type")
                if rot is not None and rot not in ROTATION_TYPES:
                    raise DataError(
                        f"{path}: {section}.{name} rotation_type {rot!r} not in {ROTATION_TYPES}"
                    )
                rng = m.get("range")
                out[name] = StateActionMeta(
                    start=start,
                    end=end,
                    original_key=m.get("original_key") or default_key,
                    absolute=bool(m.get("absolute", True)),
                    rotation_type=rot,
                    dtype=m.get("dtype", "float64"),
                    range=tuple(rng) if rng is not None else None,
                )
            return out

        for section in ("state", "action", "video"):
            if section not in obj and section != "action":
                raise DataError(f"{path}: missing top-level section {section!r}")
        video = {
            n: (m or {}).get("original_key") or f"observation.images.{n}"
            for n, m in (obj.get("video") or {}).items()
        }
        ann = {
            n: (m or {}).get("original_key") or f"annotation.{n}"
            for n, m in (obj.get("annotation") or {}).items()
        }
        return cls(
            state=sa("state", "observation.state"),
            action=sa("action", "action"),
            video=video,
            annotation=ann,
        )

    @classmethod
    def load(cls, path: str | Path) -> LeRobotModality:
        path = Path(path)
        if not path.exists():
            raise DataError(f"{path}: modality.json not found (required for GR00T LeRobot datasets)")
        with open(path) as f:
            return cls.from_json(json.load(f), str(path))

    def to_json(self) -> dict:
        def sa(d):
            return {
                n: {
                    k: v
                    for k, v in {
                        "start": m.start,
                        "end": m.end,
                        "original_key": m.original_key,
                        "absolute": m.absolute,
                        "rotation_type": m.rotation_type,
                        "dtype": m.dtype,
                        "range": list(m.range) if m.range else None,
                    }.items()
                    if v is not None
                }
                for n, m in d.items()
            }

        return {
            "state": sa(self.state),
            "action": sa(self.action),
            "video": {n: {"original_key": k} for n, k in self.video.items()},
            "annotation": {n: {"original_key": k} for n, k in self.annotation.items()},
        }

    def lookup(self, key: str, path: str = "meta/modality.json"):
        """Entry for a full key like `state.left_arm`; DataError naming the file and key if absent."""
        modality, _, name = key.partition(".")
        table = {
            "state": self.state,
            "action": self.action,
            "video": self.video,
            "annotation": self.annotation,
        }.get(modality)
        if table is None:
            raise DataError(f"key {key!r}: modality must be video/state/action/annotation")
        if name not in table:
            raise DataError(f"{path}: key {key!r} is not defined (has {modality} keys {sorted(table)})")
        return table[name]


@dataclasses.dataclass(frozen=True)
class ModalityConfig:
    """Which keys a modality reads and at which offsets from the base index."""

    delta_indices: tuple[int, ...]
    modality_keys: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """A data config (the original's `data_config.py` entries).

    Normalization modes: min_max, q99, mean_std, binary, sin_cos (state only, no stats), or absent
    (raw). `*_target_rotations` convert absolute rotations (rotation_6d, axis_angle, quaternion,
    euler_angles_*, matrix) before normalization.
    """

    name: str
    embodiment_tag: str
    video_keys: tuple[str, ...]
    state_keys: tuple[str, ...]
    action_keys: tuple[str, ...]
    language_keys: tuple[str, ...]
    observation_indices: tuple[int, ...] = (0,)
    action_indices: tuple[int, ...] = tuple(range(16))
    state_normalization: dict = dataclasses.field(default_factory=dict)
    action_normalization: dict = dataclasses.field(default_factory=dict)
    state_target_rotations: dict = dataclasses.field(default_factory=dict)
    action_target_rotations: dict = dataclasses.field(default_factory=dict)
    crop_scale: float = 0.95
    image_size: int = 224
    color_jitter: tuple[float, float, float, float] | None = (0.3, 0.4, 0.5, 0.08)
    max_state_dim: int = 64
    max_action_dim: int = 32

    def modality_configs(self) -> dict[str, ModalityConfig]:
        return {
            "video": ModalityConfig(self.observation_indices, self.video_keys),
            "state": ModalityConfig(self.observation_indices, self.state_keys),
            "action": ModalityConfig(self.action_indices, self.action_keys),
            "language": ModalityConfig(self.observation_indices, self.language_keys),
        }

    def replace(self, **kw) -> DataConfig:
        return dataclasses.replace(self, **kw)

    def to_json(self) -> dict:
        """A JSON object of every field (tuples as lists); `from_json` reads it back equal."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else (dict(v) if isinstance(v, dict) else v)
        return out

    @classmethod
    def from_json(cls, obj, source: str = "data config") -> DataConfig:
        """Inverse of `to_json`. Fields with a default may be absent (files written before a
        field existed still load); a missing required field, an unknown field or a value of the
        wrong type is a DataError naming `source` (the file) and the field."""
        if not isinstance(obj, dict):
            raise DataError(f"{source}: a data config must be a JSON object, got {type(obj).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(obj) - set(fields))
        if unknown:
            raise DataError(f"{source}: unknown data config field(s) {unknown} "
                            f"(known: {sorted(fields)})")
        missing = [n for n, f in fields.items() if n not in obj and f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING]
        if missing:
            raise DataError(f"{source}: data config lacks required field(s) {missing}")
        kw = {}
        for name, value in obj.items():
            kw[name] = _field_value(name, value, source)
        return cls(**kw)


_STR_FIELDS = ("name", "embodiment_tag")
_KEY_TUPLES = ("video_keys", "state_keys", "action_keys", "language_keys")
_INT_TUPLES = ("observation_indices", "action_indices")
_STR_MAPS = ("state_normalization", "action_normalization", "state_target_rotations",
             "action_target_rotations")
_INTS = ("image_size", "max_state_dim", "max_action_dim")


def _field_value(name: str, value, source: str):
    """One DataConfig field from JSON, typed as the dataclass holds it (tuples, not lists)."""
    def bad(expected: str):
        return DataError(f"{source}: data config field {name!r} must be {expected}, got {value!r}")

    if name in _STR_FIELDS:
        if not isinstance(value, str) or not value:
            raise bad("a non-empty string")
        return value
    if name in _KEY_TUPLES:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad("a list of key strings")
        return tuple(value)
    if name in _INT_TUPLES:
        if not isinstance(value, list) or not value or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise bad("a non-empty list of integers")
        return tuple(value)
    if name in _STR_MAPS:
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise bad("an object of key -> string")
        return dict(value)
    if name in _INTS:
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise bad("a positive integer")
        return value
    if name == "crop_scale":
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value <= 1:
            raise bad("a number in (0, 1]")
        return float(value)
    if name == "color_jitter":
        if value is None:
            return None
        if not isinstance(value, list) or len(value) != 4 or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            raise bad("null or a list of 4 numbers (brightness, contrast, saturation, hue)")
        return tuple(float(v) for v in value)
    raise DataError(f"{source}: data config field {name!r} has no JSON reader")  # a new field


def clamp_indices(step_indices: np.ndarray, length: int) -> np.ndarray:
    """Video/language rule: indices clamped into [0, length-1]."""
    return np.minimum(np.maximum(step_indices, 0), length - 1)  # np.clip costs ~3x more here


def pad_edges(array: np.ndarray, step_indices: np.ndarray, absolute: bool) -> np.ndarray:
    """State/action rule (original `retrieve_data_and_pad`): array [T, D] -> [len(idx), D].

    Indices < 0 take row 0 and indices >= T take row T-1 when `absolute`; otherwise they are zeros.
    """
    step_indices = np.asarray(step_indices)
    length = array.shape[0]
    if length == 0:
        raise DataError("cannot index an empty episode")
    inside = (step_indices >= 0) & (step_indices < length)
    out = np.zeros((len(step_indices),) + array.shape[1:], array.dtype)
    out[inside] = array[step_indices[inside]]
    if absolute:
        out[step_indices < 0] = array[0]
        out[step_indices >= length] = array[-1]
    return out
