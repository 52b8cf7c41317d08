"""Orbax checkpoints of the latent-action model and the IDM.

Layout of `DIR`: `config.json` ({"kind": "latent_action" | "idm", "config": {...}, "meta": {...}})
and `state/` (the full `nnx.state(model)`, Orbax StandardCheckpointer). The codebook usage EMA is
saved too.

Why not one of the two other checkpoint formats: groot_jax/convert/checkpoint.py's model directory
(groot_config.json + params/) holds a GR00TConfig and only nnx.Param leaves, restored against
`groot.abstract` (the VQ-VAE's usage EMA is not a Param, and these models have their own config
classes); groot_jax/train/checkpoints.py saves a sharded TrainState + Grain iterator per step for
resuming a run (these models train in seconds in memory and are saved once, as a finished model).
Only the outer layer differs: all three write their arrays with Orbax.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import orbax.checkpoint as ocp
from flax import nnx

from groot_jax.models.idm import IDMConfig, InverseDynamicsModel
from groot_jax.models.latent_action import LatentActionConfig, LatentActionModel

KINDS = {"latent_action": (LatentActionConfig, LatentActionModel),
         "idm": (IDMConfig, InverseDynamicsModel)}


def _kind(model: nnx.Module) -> str:
    for kind, (_, cls) in KINDS.items():
        if isinstance(model, cls):
            return kind
    raise TypeError(f"no checkpoint kind for {type(model).__name__}")


def save(model: nnx.Module, directory: str | Path, meta: dict | None = None) -> Path:
    """`meta`: extra JSON facts stored beside the config (e.g. the IDM's `action_layout`)."""
    directory = Path(directory).absolute()
    directory.mkdir(parents=True, exist_ok=True)
    with ocp.StandardCheckpointer() as ck:
        ck.save(directory / "state", nnx.state(model), force=True)
        ck.wait_until_finished()
    info = {"kind": _kind(model), "config": dataclasses.asdict(model.cfg), "meta": meta or {}}
    (directory / "config.json").write_text(json.dumps(info, indent=1))
    return directory


def load_meta(directory: str | Path) -> dict:
    """The `meta` dict saved with the checkpoint ({} for checkpoints saved without one)."""
    path = Path(directory).absolute() / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: not a latent-action / IDM checkpoint (no config.json)")
    return json.loads(path.read_text()).get("meta") or {}


def load(directory: str | Path, expect_kind: str | None = None) -> nnx.Module:
    directory = Path(directory).absolute()
    if not (directory / "config.json").exists():
        raise FileNotFoundError(f"{directory / 'config.json'}: not a latent-action / IDM checkpoint")
    meta = json.loads((directory / "config.json").read_text())
    if expect_kind is not None and meta["kind"] != expect_kind:
        raise ValueError(f"{directory} holds a {meta['kind']!r} checkpoint, expected {expect_kind!r}")
    cfg_cls, model_cls = KINDS[meta["kind"]]
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in meta["config"].items()}
    cfg = cfg_cls(**fields)
    abstract = nnx.eval_shape(lambda: model_cls(cfg, rngs=nnx.Rngs(0)))
    graphdef, abstract_state = nnx.split(abstract)
    with ocp.StandardCheckpointer() as ck:
        state = ck.restore(Path(directory).absolute() / "state", abstract_state)
    return nnx.merge(graphdef, state)
