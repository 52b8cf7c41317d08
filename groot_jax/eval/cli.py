"""`groot-jax eval open-loop`."""
from __future__ import annotations


def _open_loop(args) -> int:
    from pathlib import Path

    from groot_jax.data.embodiments import PRESETS
    from groot_jax.data.lerobot_v2 import LeRobotV2Source
    from groot_jax.eval.open_loop import open_loop, summary_json
    from groot_jax.eval.policy import Policy

    data_config = PRESETS[args.data_config]()
    if args.embodiment_tag:
        data_config = data_config.replace(embodiment_tag=args.embodiment_tag)
    policy = Policy(args.model, data_config, tokenizer_dir=args.tokenizer, num_steps=args.steps)
    source = LeRobotV2Source(args.dataset)
    episodes = ([int(e) for e in args.episodes.split(",")] if args.episodes
                else list(range(len(source.episode_lengths))))
    result = open_loop(policy, source, episodes, every=args.every, batch_size=args.batch_size,
                       plot_dir=Path(args.out) / "plots")
    text = summary_json(result)
    (Path(args.out) / "open_loop.json").write_text(text + "\n")
    print(text)
    return 0


def register(subparsers) -> None:
    ev = subparsers.add_parser("eval", help="evaluate a policy")
    sub = ev.add_subparsers(dest="eval_command", required=True)
    p = sub.add_parser("open-loop", help="predicted vs recorded actions on held-out episodes")
    p.add_argument("--model", required=True)
    p.add_argument("--dataset", required=True, help="LeRobot v2.x (GR00T flavour) dataset dir")
    p.add_argument("--data-config", required=True)
    p.add_argument("--embodiment-tag", default=None)
    p.add_argument("--tokenizer", default=None)
    p.add_argument("--episodes", default=None, help="comma-separated episode positions")
    p.add_argument("--every", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--out", required=True)
    p.set_defaults(func=_open_loop)
