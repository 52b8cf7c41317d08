"""`groot-jax train --config NAME|configs/X.py [--dataset DIR [--weight W]] ... [KEY=VALUE ...]`.

Data: each `--dataset DIR` adds a dataset (LeRobot v2.1 GR00T flavour or v3.0) to the run's
`TrainConfig.data` (groot_jax/train/data_spec.py); `--weight W` sets the sampling weight of the
`--dataset` before it (default 1). `--data-config NAME` (a preset of groot_jax/data/embodiments;
default: derived from each dataset's own metadata) and `--embodiment TAG` given once apply to
every dataset, given once per dataset apply to the datasets in order. `--tokenizer DIR` defaults
to the `--init` model's tokenizer. `--init PATH` fine-tunes from an Isaac-GR00T or groot-jax model
directory (groot_jax/train/init_from.py).

Overrides are TrainConfig fields by dotted path, given positionally or with `--set`:
`groot-jax train --config finetune_n15 --dataset ~/data/arm --dry-run batch_size=4 mesh.fsdp=8`.
A run resumes when its checkpoint.dir holds steps: the data spec and model then come from its
run_config.json, and flags that would change them are an error naming both values.
`groot-jax pyramid train` is the same command (kept as an alias).
Exit status: 0 finished, 75 preempted (SIGTERM; the step was saved, rerun the same command to
resume), 1 an error (see groot_jax/cli.py)."""
from __future__ import annotations

import argparse
import dataclasses
import difflib
import importlib
import json
import sys
from pathlib import Path
from types import ModuleType

from groot_jax.train.config import TrainConfig, apply_overrides
from groot_jax.train.data_spec import DatasetSpec

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
TOKENIZER_FILE = "tokenizer_config.json"


def _config_path(name: str) -> Path:
    path = Path(name)
    if path.suffix != ".py":
        path = CONFIG_DIR / f"{name}.py"
    elif not path.is_absolute() and not path.exists():   # "configs/x.py" from another cwd
        path = CONFIG_DIR.parent / path
    if not path.exists():
        known = sorted(p.stem for p in CONFIG_DIR.glob("*.py"))
        near = difflib.get_close_matches(name, known, n=1)
        hint = f" Did you mean {near[0]!r}?" if near else ""
        raise FileNotFoundError(f"no run config {name!r} at {path}; known: {known}.{hint}")
    return path


def load_module(name: str | Path) -> ModuleType:
    """The run-config module `configs/<name>.py` (or a path to such a file), executed once."""
    path = _config_path(str(name))
    spec = importlib.util.spec_from_file_location(f"groot_run_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    if not hasattr(mod, "get_config"):
        raise ValueError(f"{path}: defines no get_config() (every run config needs one)")
    return mod


class _DatasetAction(argparse.Action):
    """--dataset DIR starts a dataset entry; --weight W sets the weight of the last one."""

    def __call__(self, parser, namespace, value, option_string=None):
        entries = list(getattr(namespace, "datasets", None) or [])
        if option_string == "--dataset":
            entries.append({"path": value})
        else:
            if not entries:
                parser.error("--weight must follow the --dataset it weights")
            if "weight" in entries[-1]:
                parser.error(f"--weight given twice for --dataset {entries[-1]['path']}")
            try:
                entries[-1]["weight"] = float(value)
            except ValueError:
                parser.error(f"--weight {value!r} is not a number")
        namespace.datasets = entries


def _per_dataset(values: list[str], n: int, flag: str) -> list[str | None]:
    if not values:
        return [None] * n
    if len(values) == 1:
        return values * n
    if len(values) != n:
        raise ValueError(f"{flag} given {len(values)} times for {n} datasets: give it once (all "
                         f"datasets) or once per --dataset, in order")
    return values


def datasets_from_flags(args) -> tuple[DatasetSpec, ...]:
    entries = args.datasets or []
    configs = _per_dataset(args.data_config, len(entries), "--data-config")
    tags = _per_dataset(args.embodiment, len(entries), "--embodiment")
    return tuple(DatasetSpec(path=e["path"], weight=e.get("weight", 1.0), data_config=c,
                             embodiment=t) for e, c, t in zip(entries, configs, tags, strict=True))


def _has_tokenizer(path: Path) -> bool:
    return (path / TOKENIZER_FILE).is_file() or (path / "tokenizer.json").is_file()


def default_tokenizer(init: str | None) -> str | None:
    """The tokenizer that travels with an --init model: its top level, or a run dir's processor/."""
    if not init:
        return None
    for d in (Path(init), Path(init) / "processor"):
        if _has_tokenizer(d):
            return str(d)
    return None


def _steps_in(directory: str | None) -> list[int]:
    if not directory or "://" in directory or not Path(directory).is_dir():
        return []
    return sorted(int(p.name) for p in Path(directory).iterdir() if p.name.isdigit())


def _resumed(cfg: TrainConfig, data_flags: bool, init_flag: bool) -> TrainConfig:
    """On resume (checkpoint.dir holds steps), the data spec and model of its run_config.json;
    flags that change them are an error naming both values."""
    from groot_jax.train.loop import RUN_CONFIG, read_run_config

    if not _steps_in(cfg.checkpoint.dir):
        return cfg
    prev = read_run_config(cfg.checkpoint.dir)
    if prev is None:
        return cfg
    where = f"{cfg.checkpoint.dir}/{RUN_CONFIG}"
    if data_flags and cfg.data != prev.data:
        raise ValueError(f"resuming {cfg.checkpoint.dir}: it trained on data {prev.data} "
                         f"({where}), the flags give data {cfg.data}; use another checkpoint.dir "
                         f"for other data")
    if init_flag and (cfg.init, cfg.model_overrides) != (prev.init, prev.model_overrides):
        raise ValueError(f"resuming {cfg.checkpoint.dir}: it was initialised from {prev.init} "
                         f"({where}), the flags give --init {cfg.init}")
    return dataclasses.replace(cfg, data=prev.data, model=prev.model, init=prev.init,
                               model_overrides=prev.model_overrides)


def build_config(args: argparse.Namespace):
    """(TrainConfig, InitSource or None) from the run config, the flags and, on resume, the run
    directory."""
    from groot_jax.train.loop import SYNTHETIC_MODELS

    mod = load_module(args.config)
    overrides = [*args.set, *args.overrides]
    cfg = apply_overrides(mod.get_config(), overrides)
    data = cfg.data
    datasets = datasets_from_flags(args)
    if not datasets and (args.data_config or args.embodiment):
        raise ValueError("--data-config / --embodiment apply to --dataset DIR; none was given")
    if datasets:
        data = dataclasses.replace(data, source="datasets", datasets=datasets, level_weights=())
    if args.tokenizer:
        data = dataclasses.replace(data, tokenizer=args.tokenizer)
    cfg = dataclasses.replace(cfg, data=data)
    init = None
    if args.init:
        try:
            from groot_jax.train.init_from import init_from
        except ImportError as e:   # helper module missing in a partial install
            raise ModuleNotFoundError(f"--init needs groot_jax.train.init_from ({e})") from e
        init = init_from(args.init, cfg)
        cfg = init.cfg
        if not cfg.data.tokenizer and cfg.data.source == "datasets":
            tok = default_tokenizer(args.init)
            if tok is None:
                raise ValueError(f"--init {args.init} holds no tokenizer ({TOKENIZER_FILE}); give "
                                 f"--tokenizer DIR")
            cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, tokenizer=tok))
    data_flags = bool(datasets or args.tokenizer or any(o.strip().startswith("data.")
                                                         for o in overrides))
    cfg = _resumed(cfg, data_flags, bool(args.init))
    if cfg.model_from_tokenizer and not cfg.init and cfg.data.tokenizer:
        from groot_jax.train.input_pipeline import sized_to_tokenizer

        cfg = sized_to_tokenizer(cfg)
    if not args.dry_run:
        if cfg.data.source == "datasets" and not cfg.data.datasets:
            raise ValueError(f"{cfg.name} needs --dataset DIR (a LeRobot dataset to train on)")
        if cfg.data.source == "synthetic" and cfg.model not in SYNTHETIC_MODELS:
            raise ValueError(f"{cfg.name} needs --dataset DIR: model {cfg.model} never trains "
                             f"on the synthetic task")
    return cfg, init


def _dry_run(cfg: TrainConfig, args) -> int:
    from groot_jax.train import memory, tpu_aot

    shapes = None
    if cfg.data.source == "datasets" and cfg.data.datasets:
        from groot_jax.train import input_pipeline

        # One batch of the real pipeline gives the real shapes (views, prompt length, pixel
        # path); nothing is written (statistics stay in memory).
        dry = dataclasses.replace(cfg, checkpoint=dataclasses.replace(cfg.checkpoint, dir=None))
        batch = next(input_pipeline.data_iterator(dry))
        shapes = memory.batch_shapes(batch, cfg.batch_size)
    try:
        r = memory.report(cfg, tpu=args.tpu, shapes=shapes)
    except tpu_aot.TpuOutOfMemory as e:
        print(f"does NOT fit on {args.tpu} (the TPU compiler refused the step): {e}")
        return 1
    print(memory.format_report(r))
    if args.json:
        print(json.dumps(r))
    return 0


def _train(args: argparse.Namespace) -> int:
    import jax

    from groot_jax.train import loop

    if args.tpu:
        # The TPU is only described (ahead-of-time compile); keep the local backend CPU so JAX
        # does not try to open a chip through the libtpu that --tpu puts on TPU_LIBRARY_PATH.
        jax.config.update("jax_platforms", "cpu")
    if args.cpu_devices:
        # Simulated CPU devices (for dry runs of multi-chip meshes); must precede backend start.
        jax.config.update("jax_platforms", "cpu")
        jax.config.update("jax_num_cpu_devices", args.cpu_devices)
    if args.tpu and not args.dry_run:
        raise SystemExit("--tpu only compiles (ahead of time, no chip): use it with --dry-run")
    loop.maybe_initialize_distributed()
    cfg, init = build_config(args)
    if args.dry_run:
        return _dry_run(cfg, args)
    data_iter = None
    if cfg.data.source == "datasets":
        from groot_jax.train import input_pipeline

        data_iter = input_pipeline.prepare(cfg, init=init)
    # Every step's loss beside the checkpoints (also what the demo and notebook read back).
    local = cfg.checkpoint.dir and "://" not in cfg.checkpoint.dir   # gs:// etc.: TensorBoard only
    metrics = str(Path(cfg.checkpoint.dir) / "metrics.jsonl") if local else None
    result = loop.train(cfg, data_iter=data_iter, metrics_file=metrics,
                        params_fn=init.params_fn if init is not None else None)
    step = int(jax.device_get(result.state.step))
    if result.status == "preempted":
        print(f"preempted at step {step}, resume with the same command", file=sys.stderr)
        return loop.EXIT_PREEMPTED
    losses = result.losses
    if losses:
        steps = sorted(losses)
        first, last = steps[: min(10, len(steps))], steps[-min(10, len(steps)):]
        print(f"loss {sum(losses[s] for s in first) / len(first):.4f} (first {len(first)} "
              f"steps) -> {sum(losses[s] for s in last) / len(last):.4f} (last {len(last)})")
    print(f"{result.status} at step {step}")
    return 0


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="configs/<name>.py or a path to one")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a TrainConfig field, e.g. --set optim.lr=3e-4 --set mesh.fsdp=8")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="TrainConfig overrides, e.g. optim.lr=3e-4 mesh.fsdp=8 batch_size=4")
    p.add_argument("--dataset", action=_DatasetAction, dest="datasets", metavar="DIR",
                   help="a LeRobot dataset (v2.1 or v3.0) to train on; repeat for a mixture")
    p.add_argument("--weight", action=_DatasetAction, dest="datasets", metavar="W",
                   help="sampling weight of the --dataset before it (default 1)")
    p.add_argument("--data-config", action="append", default=[], metavar="NAME",
                   help="data-config preset (groot_jax/data/embodiments.py); once = every "
                        "dataset, else once per --dataset; default: derived from the dataset")
    p.add_argument("--embodiment", action="append", default=[], metavar="TAG",
                   help="embodiment tag (projector slot); once = every dataset, else once per "
                        "--dataset; default: the preset's, else new_embodiment")
    p.add_argument("--tokenizer", default=None, metavar="DIR",
                   help="tokenizer directory (default: the --init model's)")
    p.add_argument("--init", default=None, metavar="PATH",
                   help="fine-tune from an Isaac-GR00T checkpoint or a groot-jax model dir")
    p.add_argument("--dry-run", action="store_true",
                   help="compile the step and print per-device memory; do not train")
    p.add_argument("--cpu-devices", type=int, default=0, metavar="N",
                   help="run on N simulated CPU devices (e.g. --dry-run of an 8-chip mesh)")
    p.add_argument("--json", action="store_true", help="with --dry-run, also print JSON")
    p.add_argument("--tpu", default=None, metavar="TOPOLOGY",
                   help="with --dry-run, compile for this TPU slice instead of the local devices "
                        "(e.g. v5e:1x1 = Colab v5e-1, v5e:2x4); needs libtpu (`make tpu-aot`)")
    p.set_defaults(func=_train, datasets=None)


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train or fine-tune (sharded, resumable)",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_arguments(p)
    # The data pyramid is a data spec with levels (configs/pyramid_tiny.py), trained by the same
    # command; `groot-jax pyramid train` stays as its alias.
    pyr = subparsers.add_parser("pyramid", help="alias: `groot-jax pyramid train` = "
                                "`groot-jax train` (a pyramid is a data spec with levels)")
    sub = pyr.add_subparsers(dest="pyramid_command", required=True)
    _add_arguments(sub.add_parser("train", help="the same as `groot-jax train`"))
