"""A training run directory (TrainConfig.checkpoint.dir) read as a model.

Layout (groot_jax/train/checkpoints.py, train/loop.py):
  <run>/run_config.json        the TrainConfig (model preset and overrides included)
  <run>/processor/             data configs, statistics, tokenizer (convert/processor_files.py)
  <run>/<step>/state/          Orbax TrainState {step, params (trainable), frozen, opt_state}
  <run>/<step>/meta/metadata   JSON {"step", "loss", "config": TrainConfig, "time"}
`load_run` restores only `params` and `frozen` of one step, as numpy arrays on the host: the
optimizer state (twice the trainable weights) is never read and no optimizer is built.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from flax import nnx

from groot_jax.config import GR00TConfig
from groot_jax.convert.processor_files import (
    PROCESSOR_DIR,
    RUN_CONFIG,
    ProcessorFiles,
    read_processor,
)
from groot_jax.convert.safetensors_io import CheckpointFileError

STATE_ITEM, META_ITEM = "state", "meta"


def _step_dirs(path: Path) -> dict[int, Path]:
    """Finished step folders: digit names with a state item (Orbax writes into a temporary name
    and renames, so an unfinished save is not a digit name; set-aside ones are `N.corrupt-*`)."""
    if not path.is_dir():
        return {}
    return {int(p.name): p for p in path.iterdir()
            if p.name.isdigit() and (p / STATE_ITEM).is_dir()}


def is_run_dir(path) -> bool:
    """Whether `path` is a training run: run_config.json, or step folders with their meta."""
    path = Path(path)
    return (path / RUN_CONFIG).is_file() or any(
        (p / META_ITEM).is_dir() for p in _step_dirs(path).values())


def run_steps(path) -> list[int]:
    return sorted(_step_dirs(Path(path)))


def _train_config_json(run: Path, step_dir: Path) -> tuple[dict, Path]:
    """The TrainConfig as JSON and the file it came from: run_config.json, else (runs from
    before it existed) the config saved in the step's checkpoint metadata."""
    candidates = [(run / RUN_CONFIG, None), (step_dir / META_ITEM / "metadata", "config")]
    for path, key in candidates:
        if path.is_file():
            try:
                data = json.loads(path.read_text())
            except json.JSONDecodeError as e:
                raise CheckpointFileError(f"{path}: not valid JSON ({e})") from e
            if key is not None:
                if not isinstance(data, dict) or key not in data:
                    raise CheckpointFileError(f"{path}: no {key!r} (the TrainConfig of the run)")
                data = data[key]
            return data, path
    raise CheckpointFileError(f"{run}: no {RUN_CONFIG} and no {step_dir.name}/{META_ITEM}/metadata "
                              "(the TrainConfig of the run)")


def run_train_config(run, step_dir: Path | None = None):
    """The run's TrainConfig (groot_jax.train.config), read back from its JSON."""
    from groot_jax.train.config import TrainConfig

    run = Path(run)
    step_dir = step_dir or next(iter(_step_dirs(run).values()), run / "0")
    data, source = _train_config_json(run, step_dir)
    try:
        return TrainConfig.from_dict(data)
    except (TypeError, ValueError, KeyError) as e:
        raise CheckpointFileError(f"{source}: not a TrainConfig this version reads ({e})") from e


def _select_step(run: Path, step: int | None) -> tuple[int, Path]:
    steps = _step_dirs(run)
    if not steps:
        raise CheckpointFileError(f"{run}: no checkpoint yet (no step folders with a {STATE_ITEM}/ "
                                  "item); train longer or point at a finished run")
    if step is None:
        step = max(steps)
    if step not in steps:
        raise CheckpointFileError(f"{run}: no checkpoint of step {step}; it has steps "
                                  f"{sorted(steps)}")
    return step, steps[step]


def _restore_weights(state_dir: Path) -> tuple[dict, dict]:
    """(trainable, frozen) nested dicts of host numpy arrays, as saved (dtypes unchanged)."""
    import jax
    import orbax.checkpoint as ocp

    state_dir = Path(state_dir).absolute()   # Orbax misreads relative paths
    with ocp.PyTreeCheckpointer() as ckptr:
        try:
            tree = ckptr.metadata(state_dir).item_metadata
            missing = [k for k in ("params", "frozen") if k not in tree]
            if missing:
                raise CheckpointFileError(f"{state_dir}: not a TrainState (no {missing}; has "
                                          f"{sorted(tree)})")
            sub = {k: tree[k] for k in ("params", "frozen")}
            target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype), sub)
            args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), sub)
            out = ckptr.restore(state_dir, args=ocp.args.PyTreeRestore(
                item=target, restore_args=args, partial_restore=True))
        except CheckpointFileError:
            raise
        except Exception as e:  # noqa: BLE001 - any Orbax failure: name the folder
            raise CheckpointFileError(f"{state_dir}: cannot restore the weights ({e})") from e
    return out["params"] or {}, out["frozen"] or {}


def load_run(path, step: int | None = None, *, dtype=None, require_processor: bool = True
             ) -> tuple[GR00TConfig, nnx.State, ProcessorFiles]:
    """(model config, params, processor files) of the latest (or `step`) checkpoint of a run.

    Params are host numpy arrays as saved (trainable fp32 master weights, frozen ones in
    frozen_dtype, LoRA adapters merged into their kernels); `dtype` casts every leaf.
    `require_processor=False` returns empty processor files for runs trained before they were
    written, instead of the error."""
    from groot_jax.convert.checkpoint import _dtype
    from groot_jax.models.groot import abstract
    from groot_jax.train.optimizer import flatten, merge_params

    run = Path(path)
    if not is_run_dir(run):
        raise CheckpointFileError(f"{run}: not a training run (no {RUN_CONFIG}, no step folders)")
    step, step_dir = _select_step(run, step)
    if (run / PROCESSOR_DIR).is_dir() or require_processor:
        processor = read_processor(run)  # before the weights: a missing file fails fast
    else:
        processor = ProcessorFiles({}, {}, None, source=str(run))
    train_cfg = run_train_config(run, step_dir)
    cfg = train_cfg.model_config()
    trainable, frozen = _restore_weights(step_dir / STATE_ITEM)
    pure = merge_params(trainable, frozen, train_cfg)  # LoRA-merged kernels: jax arrays
    _, target = abstract(cfg)
    want = flatten(nnx.to_pure_dict(target))
    have = flatten(pure)
    problems = sorted(set(want) ^ set(have)) or [
        k for k in want if tuple(want[k].shape) != tuple(np.shape(have[k]))]
    if problems:
        raise CheckpointFileError(
            f"{step_dir / STATE_ITEM}: weights do not match the model of {RUN_CONFIG} "
            f"({cfg.name}): {problems[:5]}{' ...' if len(problems) > 5 else ''}")
    out_dtype = _dtype(dtype) if dtype is not None else None
    pure = _map(pure, lambda x: np.asarray(x, out_dtype) if out_dtype is not None
                else np.asarray(x))  # to the host
    params = _copy_state(target)
    nnx.replace_by_pure_dict(params, pure)
    return cfg, params, processor


def _map(tree: dict, fn) -> dict:
    return {k: _map(v, fn) if isinstance(v, dict) else fn(v) for k, v in tree.items()}


def _copy_state(target: nnx.State) -> nnx.State:
    import jax

    return jax.tree.map(lambda x: x, target)
