"""`groot-jax record metaworld --tasks T1,T2|mt10 --episodes N --out DIR`."""
from __future__ import annotations

import argparse


def _seed_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: seeds are integers, e.g. 0 or 0,2") from None


def _record_metaworld(args: argparse.Namespace) -> int:
    from groot_jax.sim.metaworld import parse_tasks
    from groot_jax.sim.record import record_metaworld

    record_metaworld(parse_tasks(args.tasks), args.episodes, args.out, seeds=args.seed,
                     image_size=args.image, max_steps=args.max_steps,
                     steps_after_success=args.steps_after_success, keep_failed=args.keep_failed,
                     tokenizer_out=args.tokenizer_out, state_layout=args.state)
    return 0


def register(subparsers) -> None:
    from groot_jax.sim.metaworld import STATE_LAYOUTS

    rec = subparsers.add_parser("record", help="record scripted-expert demonstrations")
    sims = rec.add_subparsers(dest="simulator", required=True)
    mw = sims.add_parser("metaworld", help="Meta-World tasks -> a LeRobot v3.0 dataset")
    mw.add_argument("--tasks", required=True, help="'mt10' or comma-separated task names")
    mw.add_argument("--episodes", type=int, required=True,
                    help="successful demonstrations per task (a seed has 50 variations)")
    mw.add_argument("--out", required=True, help="a new dataset directory")
    mw.add_argument("--seed", type=_seed_list, default=(0,),
                    help="MT1 seed(s) of the variations, e.g. 0 or 0,2: the next seed's are used "
                         "when the expert fails on some (evaluate on a seed not listed)")
    mw.add_argument("--image", type=int, default=64, help="camera resolution (square, even)")
    mw.add_argument("--max-steps", type=int, default=150)
    mw.add_argument("--steps-after-success", type=int, default=0,
                    help="keep recording this many steps after the first success")
    mw.add_argument("--state", choices=sorted(STATE_LAYOUTS), default="proprio",
                    help="observation.state: proprio = hand xyz + gripper (objects and goal only "
                         "in the image); mt10 = also the object poses and goal, as the MT10 "
                         "benchmark observes them (21-d)")
    mw.add_argument("--keep-failed", action="store_true",
                    help="also write episodes where the expert did not succeed")
    mw.add_argument("--tokenizer-out", default=None,
                    help="also write a tiny tokenizer of the task sentences here (from-scratch "
                         "models; `groot-jax train --tokenizer DIR`)")
    mw.set_defaults(func=_record_metaworld)
