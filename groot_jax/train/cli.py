"""`groot-jax train --config NAME|configs/X.py [--dry-run] [key.path=value ...]`.

Overrides are TrainConfig fields by dotted path, given positionally or with `--set`:
`groot-jax train --config configs/finetune_n15.py --dry-run batch_size=4 mesh.fsdp=8`.
Exit status: 0 finished, 75 preempted (SIGTERM; the step was saved, rerun the same command to
resume), 1 an error (see groot_jax/cli.py)."""
from __future__ import annotations

import argparse
import difflib
import importlib
import json
import sys
from pathlib import Path
from types import ModuleType

from groot_jax.train.config import apply_overrides

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"


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
    loop.maybe_initialize_distributed()
    mod = load_module(args.config)
    cfg = apply_overrides(mod.get_config(), [*args.set, *args.overrides])
    if args.tpu and not args.dry_run:
        raise SystemExit("--tpu only compiles (ahead of time, no chip): use it with --dry-run")
    if args.dry_run:
        from groot_jax.train import memory, tpu_aot

        try:
            r = memory.report(cfg, tpu=args.tpu)
        except tpu_aot.TpuOutOfMemory as e:
            print(f"does NOT fit on {args.tpu} (the TPU compiler refused the step): {e}")
            return 1
        print(memory.format_report(r))
        if args.json:
            print(json.dumps(r))
        return 0
    data_iter = None
    if cfg.data == "pyramid":
        # A pyramid run config (configs/pyramid_*.py) also defines get_pyramid(cfg): its levels
        # become the Grain mixture the loop trains on.
        from groot_jax.train import pyramid

        pyr = pyramid.pyramid_of(mod, cfg)
        if "://" not in pyr.tokenizer and not Path(pyr.tokenizer).is_dir():
            # Otherwise transformers takes the path for a Hub repo id and says so, confusingly.
            raise FileNotFoundError(f"tokenizer directory {pyr.tokenizer} (Pyramid.tokenizer "
                                    f"of {args.config}) does not exist")
        data_iter = pyramid.data_iterator(cfg, pyr)
    result = loop.train(cfg, data_iter=data_iter)
    step = int(jax.device_get(result.state.step))
    if result.status == "preempted":
        print(f"preempted at step {step}, resume with the same command", file=sys.stderr)
        return loop.EXIT_PREEMPTED
    print(f"{result.status} at step {step}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train or fine-tune (sharded, resumable)")
    p.add_argument("--config", required=True, help="configs/<name>.py or a path to one")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a TrainConfig field, e.g. --set optim.lr=3e-4 --set mesh.fsdp=8")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="TrainConfig overrides, e.g. optim.lr=3e-4 mesh.fsdp=8 batch_size=4")
    p.add_argument("--dry-run", action="store_true",
                   help="compile the step and print per-device memory; do not train")
    p.add_argument("--cpu-devices", type=int, default=0, metavar="N",
                   help="run on N simulated CPU devices (e.g. --dry-run of an 8-chip mesh)")
    p.add_argument("--json", action="store_true", help="with --dry-run, also print JSON")
    p.add_argument("--tpu", default=None, metavar="TOPOLOGY",
                   help="with --dry-run, compile for this TPU slice instead of the local devices "
                        "(e.g. v5e:1x1 = Colab v5e-1, v5e:2x4); needs libtpu (`make tpu-aot`)")
    p.set_defaults(func=_train)
