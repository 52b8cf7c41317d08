"""`--init`: fine-tune from a released checkpoint instead of a random initialisation.

`init_from(path, cfg)` reads only the checkpoint's model config and its processor files
(statistics per embodiment) and returns an `InitSource`:
  cfg          the run's TrainConfig with `init` set and the checkpoint's whole model config as
               `model_overrides`, so `cfg.model_config()` is the checkpoint's config and the run
               records it (run_config.json): a resume needs neither the checkpoint nor `--init`.
  params_fn    for `loop.train(cfg, params_fn=...)`: reads the weights when the loop calls it
               (a fresh start, never a resume), each parameter placed straight onto its
               sharding on the run's mesh, so no device holds the whole model unsharded.
  metadata     the checkpoint's metadata.json entries ({tag: {"statistics", "modalities", ...}}).
`check_widths_against_init` compares a new run's metadata with those.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Callable

from flax import nnx
from jax.sharding import Mesh, NamedSharding

from groot_jax import sharding
from groot_jax.config import GR00TConfig, config_from_dict
from groot_jax.convert import checkpoint as ck
from groot_jax.convert.processor_files import PROCESSOR_DIR, RUN_CONFIG, read_processor
from groot_jax.convert.run_dir import is_run_dir, load_run, run_train_config
from groot_jax.train import optimizer
from groot_jax.train import state as state_lib
from groot_jax.train.config import TrainConfig


@dataclasses.dataclass(frozen=True)
class InitSource:
    path: Path
    model_config: GR00TConfig
    metadata: dict[str, dict]
    metadata_file: Path            # the file `metadata` was read from (for error messages)
    cfg: TrainConfig
    params_fn: Callable[[], dict]


def read_model_config(path) -> GR00TConfig:
    """The model config a training run (run_config.json), a groot-jax model dir
    (groot_config.json) or an Isaac-GR00T / lerobot dir (config.json) describes, without
    reading any weight."""
    path = Path(path)
    if is_run_dir(path):
        return run_train_config(path).model_config()
    if (path / ck.OUR_CONFIG).is_file():
        return config_from_dict(json.loads((path / ck.OUR_CONFIG).read_text()))
    if (path / "config.json").is_file():
        return ck.read_gr00t_config(path)
    raise ck.CheckpointFileError(
        f"--init {path}: neither an Isaac-GR00T checkpoint dir (config.json), a groot-jax "
        f"model dir ({ck.OUR_CONFIG}) nor a training run ({RUN_CONFIG})")


def metadata_file_of(path) -> Path:
    """Where read_processor finds metadata.json under `path` (same order it looks)."""
    path = Path(path)
    for f in (path / PROCESSOR_DIR / ck.OUR_METADATA, path / ck.OUR_METADATA,
              path / ck.METADATA_FILE):
        if f.is_file():
            return f
    return path / ck.METADATA_FILE


def with_model_config(cfg: TrainConfig, model_cfg: GR00TConfig) -> tuple[TrainConfig, list[str]]:
    """`cfg` whose model_config() is `model_cfg` (every top-level field of it as an override;
    the preset then only names the family), and the names of the run config's own model
    fields that this replaced. The weights fix the architecture, so the checkpoint wins: a run
    config's model settings (e.g. finetune_tiny's small images) describe a from-scratch run."""
    whole = {f.name: getattr(model_cfg, f.name) for f in dataclasses.fields(GR00TConfig)}
    own = cfg.model_config()
    replaced = [k for k in whole if getattr(own, k) != whole[k]]
    out = dataclasses.replace(cfg, model_overrides=tuple(whole.items()))
    if out.model_config() != model_cfg:   # a preset that does not pass its overrides through
        raise ValueError(f"preset {cfg.model!r} does not rebuild the model config {model_cfg.name!r}")
    return out, replaced


def _sharding_for(cfg: TrainConfig, model_cfg: GR00TConfig, mesh: Mesh):
    """path -> NamedSharding of that parameter on `mesh`, by the same rules as the train state
    (so the init jit moves no data between devices, only casts)."""
    from groot_jax.models.groot import abstract

    _, abstract_params = abstract(model_cfg)
    names = sharding.logical_names(abstract_params)
    specs = optimizer.flatten(state_lib._specs_for(nnx.to_pure_dict(abstract_params), names,
                                                   mesh, cfg))
    return lambda path: NamedSharding(mesh, specs["/".join(map(str, path))])


def _load_dtype(cfg: TrainConfig) -> str:
    # The train state casts every leaf to param_dtype / frozen_dtype; reading straight into
    # that dtype when both agree halves the peak for all-bf16 runs and rounds the same way.
    return cfg.param_dtype if cfg.param_dtype == cfg.frozen_dtype else "float32"


def init_from(path, cfg: TrainConfig, mesh: Mesh | None = None,
              log: Callable[[str], None] | None = print) -> InitSource:
    """The `--init` checkpoint (Isaac-GR00T dir, groot-jax model dir or training run: its
    latest step) at `path` for the run `cfg`. `mesh`: the one given to
    loop.train (default: the config's mesh over all devices, as the loop builds it)."""
    path = Path(path)
    model_cfg = read_model_config(path)
    processor = read_processor(path)
    run_cfg, replaced = with_model_config(dataclasses.replace(cfg, init=str(path)), model_cfg)
    if log is not None:
        log(f"--init {path}: model {model_cfg.name!r} as the checkpoint describes it"
            + (f" (replacing the run config's {', '.join(replaced)})" if replaced else ""))

    def params_fn() -> dict:
        if is_run_dir(path):
            # The latest step's weights, on the host (load_run reads no optimizer state); the
            # init jit places them.
            _, params, _ = load_run(path, dtype=_load_dtype(run_cfg))
            return nnx.to_pure_dict(params)
        m = mesh if mesh is not None else sharding.make_mesh(
            run_cfg.mesh.data, run_cfg.mesh.fsdp, run_cfg.mesh.tensor)
        _, _, params, _ = ck.load_pretrained(path, dtype=_load_dtype(run_cfg), cfg=model_cfg,
                                             sharding_for=_sharding_for(run_cfg, model_cfg, m))
        return nnx.to_pure_dict(params)

    return InitSource(path=path, model_config=model_cfg, metadata=processor.metadata,
                      metadata_file=metadata_file_of(path), cfg=run_cfg, params_fn=params_fn)


def _widths(entry: dict, modality: str) -> dict[str, int]:
    """{key: width} of one embodiment's state or action keys: the modality shape when recorded,
    else the length of the key's mean."""
    out = {}
    for key, m in entry.get("modalities", {}).get(modality, {}).items():
        shape = m.get("shape") if isinstance(m, dict) else None
        if shape:
            out[key] = int(shape[-1])
    for key, s in entry.get("statistics", {}).get(modality, {}).items():
        if key not in out and isinstance(s, dict) and "mean" in s:
            out[key] = len(s["mean"])
    return out


def check_widths_against_init(run_metadata: dict, init_metadata: dict, run_source: str,
                              init_source: str) -> None:
    """For every embodiment tag both metadata hold: the same state and action keys with the
    same widths. The checkpoint's per-embodiment encoder and decoder weights of that tag were
    trained on that layout; a different one would silently reuse them for other joints.
    ValueError naming both files, the tag, each differing key and both widths."""
    problems = []
    for tag in sorted(set(run_metadata) & set(init_metadata)):
        for modality in ("state", "action"):
            ours = _widths(run_metadata[tag], modality)
            theirs = _widths(init_metadata[tag], modality)
            for key in sorted(set(ours) | set(theirs)):
                a, b = ours.get(key), theirs.get(key)
                if a != b:
                    fmt = lambda w: "absent" if w is None else f"{w} wide"
                    problems.append(f"embodiment {tag!r} {modality}.{key}: {fmt(a)} in "
                                    f"{run_source}, {fmt(b)} in {init_source}")
    if problems:
        raise ValueError(
            "the dataset's state/action layout differs from the statistics the --init checkpoint "
            "stores for the same embodiment:\n  " + "\n  ".join(problems) +
            "\nuse another --embodiment tag (e.g. new_embodiment) to train that embodiment's "
            "projectors afresh, or a --data-config whose keys and widths match")
