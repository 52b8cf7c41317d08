"""`groot-jax` command line: thin shells over the library.

Exit status: 0 success; 1 an error (bad input: one line on stderr, `--debug` for the traceback);
2 a usage error; 75 a training run preempted by SIGTERM (its step was saved: rerun the same
command to resume); 130 interrupted (Ctrl-C)."""
from __future__ import annotations

import argparse
import json
import sys
import time


def _demo(args: argparse.Namespace) -> int:
    """Build a preset with random weights, run one inference on a synthetic observation and
    print the action chunk (grows into the full train -> eval -> export job)."""
    import jax
    import numpy as np

    from groot_jax.config import preset
    from groot_jax.models import groot

    cfg = preset(args.preset)
    t0 = time.perf_counter()
    fns, params = groot.init(cfg, seed=args.seed)
    n_params = sum(x.size for x in jax.tree.leaves(params))
    print(f"built {cfg.name}: {n_params:,} parameters in {time.perf_counter() - t0:.1f}s")

    rng = np.random.default_rng(args.seed)
    n_img = cfg.backbone.tokens_per_image
    ids = rng.integers(0, 1000, (1, 20 + n_img)).astype(np.int32)
    ids[0, 8:8 + n_img] = cfg.backbone.image_token_id
    size = cfg.backbone.image_size
    frame = rng.integers(0, 256, (1, 1, size, size, 3), dtype=np.uint8)
    inputs = dict(input_ids=ids, attention_mask=np.ones(ids.shape, bool),
                  pixel_values=(frame.astype(np.float32) / 255.0 - 0.5) / 0.5,
                  state=rng.normal(size=(1, 1, cfg.action_head.max_state_dim)).astype(np.float32),
                  embodiment_id=np.array([31], np.int32))
    sample = jax.jit(fns.sample_actions, static_argnames="num_steps")
    t0 = time.perf_counter()
    actions = np.asarray(sample(params, inputs, jax.random.key(args.seed), num_steps=args.steps))
    t1 = time.perf_counter()
    np.asarray(sample(params, inputs, jax.random.key(args.seed + 1), num_steps=args.steps))
    t2 = time.perf_counter()
    print(f"sample_actions ({args.steps} Euler steps): first call {t1 - t0:.2f}s (compile), "
          f"then {1000 * (t2 - t1):.1f} ms")
    np.set_printoptions(precision=3, suppress=True, linewidth=120)
    print(f"action chunk {actions.shape} (normalised; first 6 dims):")
    print(actions[0, :, :6])
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="groot-jax", description=__doc__)
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error instead of one line")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="build a model and run one inference on CPU")
    demo.add_argument("--preset", default="tiny")
    demo.add_argument("--steps", type=int, default=4)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_demo)
    from groot_jax.convert.cli import register as register_convert

    register_convert(sub)
    from groot_jax.data.cli import register as register_data

    register_data(sub)
    from groot_jax.serve.cli import register as register_serve

    register_serve(sub)
    from groot_jax.eval.cli import register as register_eval

    register_eval(sub)
    from groot_jax.train.cli import register as register_train

    register_train(sub)
    from groot_jax.sim.cli import register as register_record

    register_record(sub)
    from groot_jax.latent.cli import register as register_latent

    register_latent(sub)
    return parser


def _expected_errors() -> tuple[type[BaseException], ...]:
    """What bad input raises: missing or unwritable paths, broken files, bad values. Anything
    else is a bug and keeps its traceback."""
    training = []   # only if imported: otherwise they were not raised (and importing costs JAX)
    for module, name in (("groot_jax.train.checkpoints", "NoRestorableCheckpoint"),
                         ("groot_jax.train.loop", "NonFiniteLossError")):
        if module in sys.modules:
            training.append(getattr(sys.modules[module], name))
    return (OSError, ValueError, KeyError, SyntaxError, ModuleNotFoundError, *training)


def _message(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror and e.filename:   # "[Errno 2] ..." -> "path: ..."
        return f"{e.filename}: {e.strerror}"
    if isinstance(e, KeyError) and e.args:   # str(KeyError) adds quotes
        return str(e.args[0])
    if isinstance(e, json.JSONDecodeError):
        return f"invalid JSON: {e}"
    return str(e) or type(e).__name__


def main(argv: list[str] | None = None, *, handle_errors: bool | None = None) -> int:
    """Run a subcommand; returns its exit status.

    Run as the `groot-jax` program (argv None), or with handle_errors=True, an expected error
    (see _expected_errors) is printed as one line plus a hint on stderr and the exit status is
    1; `--debug` (anywhere on the line) shows the traceback instead. Callers passing argv get the
    exception itself (tests, notebooks)."""
    if handle_errors is None:
        handle_errors = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--debug" in argv:   # accepted after the subcommand too, where argparse would refuse it
        argv = ["--debug"] + [a for a in argv if a != "--debug"]
    args = build_parser().parse_args(argv)
    if args.debug or not handle_errors:
        return args.func(args)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print(f"groot-jax {args.command}: interrupted", file=sys.stderr)
        return 130
    except _expected_errors() as e:
        print(f"groot-jax {args.command}: error: {_message(e)}\n"
              f"(rerun with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
