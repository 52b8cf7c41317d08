"""`groot-jax eval open-loop --model RUN_OR_MODEL_DIR --dataset DIR` and
`groot-jax eval closed-loop --model RUN_OR_MODEL_DIR --env metaworld --tasks T1,T2|mt10`.

The data config, statistics and tokenizer come with the model (a training run's processor/, a
model dir's top level); --data-config / --embodiment-tag / --tokenizer override them. The
dataset is a GR00T-flavour LeRobot v2.x or v3.0 dataset with actions. Output (default
`<model>/eval/open_loop`, a new folder beside the weights; never inside the dataset):
plots/episode_<n>_<key>.png per episode and action key, and open_loop.json (MSE/MAE per key and
over all, the same for the mean-action baseline, the plot paths).
"""
from __future__ import annotations

import json

import numpy as np


def data_config_override(name: str | None):
    """The preset named by --data-config, or None; unknown names list the presets (a
    ValueError: `groot-jax` prints it as one line)."""
    if name is None:
        return None
    from groot_jax.data.embodiments import PRESETS

    if name not in PRESETS:
        raise ValueError(f"--data-config {name!r}: not a preset; choose one of {sorted(PRESETS)} "
                         "or leave it out to use the data config stored with the model")
    return PRESETS[name]()


def check_model_path(path: str) -> None:
    """One line when --model is neither a training run nor a model / GR00T checkpoint dir."""
    from pathlib import Path

    from groot_jax.convert.checkpoint import OUR_CONFIG, CheckpointFileError
    from groot_jax.convert.run_dir import is_run_dir

    p = Path(path)
    if not p.is_dir():
        raise CheckpointFileError(f"--model {path}: no such directory")
    if not (is_run_dir(p) or (p / OUR_CONFIG).is_file() or (p / "config.json").is_file()):
        raise CheckpointFileError(f"--model {path}: neither a training run (run_config.json, "
                                  f"step folders) nor a model dir ({OUR_CONFIG}) nor an "
                                  "Isaac-GR00T checkpoint (config.json)")


def open_dataset(path: str, data_config):
    """The evaluated dataset's episode source (LeRobot v2.x or v3.0), checked against the
    data config; DataError naming the path when it is not a LeRobot dataset."""
    from groot_jax.data.errors import DataError
    from groot_jax.data.mixture import detect_kind, open_reader

    kind = detect_kind(path)
    if kind != "lerobot":
        raise DataError(f"--dataset {path}: not a LeRobot dataset (no meta/info.json); open-loop "
                         "evaluation needs recorded actions")
    source = open_reader(path, "lerobot")
    source.check_config(data_config)
    return source


def _open_loop(args) -> int:
    from pathlib import Path

    from groot_jax.eval.open_loop import open_loop, summary_json
    from groot_jax.eval.policy import Policy

    check_model_path(args.model)
    policy = Policy(args.model, data_config_override(args.data_config),
                    embodiment=args.embodiment_tag, tokenizer_dir=args.tokenizer,
                    step=args.step, num_steps=args.steps)
    source = open_dataset(args.dataset, policy.data_config)
    n = len(source.episode_lengths)
    episodes = ([int(e) for e in args.episodes.split(",")] if args.episodes else list(range(n)))
    bad = [e for e in episodes if not 0 <= e < n]
    if bad:
        raise ValueError(f"--episodes {bad}: {args.dataset} has episode positions 0..{n - 1}")
    out = Path(args.out) if args.out else Path(args.model) / "eval" / "open_loop"
    out.mkdir(parents=True, exist_ok=True)
    # Default: a new chunk every action horizon (16 for N1.5, the data config's for others).
    every = args.every or len(policy.data_config.action_indices)
    result = open_loop(policy, source, episodes, every=every, batch_size=args.batch_size,
                       plot_dir=out / "plots")
    text = summary_json(result, model=str(args.model), dataset=str(args.dataset),
                        data_config=policy.data_config.name,
                        embodiment_tag=policy.data_config.embodiment_tag)
    (out / "open_loop.json").write_text(text + "\n")
    # A short table, not the JSON (which lists every plot): what a newcomer reads first.
    base = result["mean_action"]
    print(f"open-loop action error over {len(episodes)} episodes (every {every}th frame):")
    for key, m in result["per_key"].items():
        print(f"  {key}: MSE {m['mse']:.4f} (mean-action baseline {base['per_key'][key]['mse']:.4f})"
              f", MAE {m['mae']:.4f} (baseline {base['per_key'][key]['mae']:.4f})")
    print(f"  all keys: MSE {result['mse']:.4f} (baseline {base['mse']:.4f})")
    print(f"wrote {out / 'open_loop.json'} and {len(result['plots'])} plots in {out / 'plots'}")
    return 0


def _closed_loop(args) -> int:
    import time
    from pathlib import Path

    from groot_jax.data.video import write_video
    from groot_jax.eval.closed_loop import (
        observation_blind_policies,
        rollout,
        simulator_policy,
        write_report,
    )
    from groot_jax.sim.metaworld import CAMERA, VARIATIONS_PER_SEED, parse_tasks

    tasks = parse_tasks(args.tasks)
    if not 1 <= args.episodes <= VARIATIONS_PER_SEED:
        raise ValueError(f"--episodes {args.episodes}: a seed has {VARIATIONS_PER_SEED} "
                         "variations per task")
    policies, stats = {}, None
    if args.model:
        from groot_jax.eval.policy import Policy

        check_model_path(args.model)
        policy = Policy(args.model, data_config_override(args.data_config),
                        embodiment=args.embodiment_tag, step=args.step, num_steps=args.steps,
                        seed=args.seed)
        policies["groot-jax"] = simulator_policy(policy)
        stats = {k: {s: np.asarray(v) for s, v in d.items()}
                 for k, d in policy.statistics["action"].items()}
    if args.baselines:
        if stats is None:
            raise ValueError("--baselines needs --model (the baselines use its action statistics)")
        policies.update(observation_blind_policies(stats, seed=args.seed))
    if not policies:
        raise ValueError("nothing to evaluate: give --model (and optionally --baselines)")
    out = Path(args.out) if args.out else Path(args.model) / "eval" / "closed_loop"
    results: dict[str, dict[str, dict]] = {}
    for name, get_action in policies.items():
        results[name] = {}
        for task in tasks:
            t0 = time.perf_counter()
            r = rollout(get_action, task, list(range(args.episodes)), seed=args.seed,
                        max_steps=args.max_steps, replan_every=args.replan,
                        image_size=args.image, record=args.videos if name == "groot-jax" else 0,
                        render=name == "groot-jax")
            results[name][task] = r.summary()
            lo, hi = r.interval
            print(f"{name:>16} {task:>24}: {r.successes}/{r.episodes} = {100 * r.rate:.0f}% "
                  f"[{100 * lo:.1f}, {100 * hi:.1f}] ({time.perf_counter() - t0:.0f}s)", flush=True)
            for i, frames in enumerate(r.frames):
                (out / "videos").mkdir(parents=True, exist_ok=True)
                write_video(str(out / "videos" / f"{task}_variation{i}.mp4"), frames, 20,
                            codec="libx264", crf=23)
    meta = {"model": args.model, "env": args.env, "tasks": tasks, "seed": args.seed,
            "episodes_per_task": args.episodes, "replan_every": args.replan,
            "max_steps": args.max_steps, "image_size": args.image, "camera": CAMERA}
    path = write_report(results, out, meta)
    means = json.loads(path.read_text())["mean_success"]
    print("mean success over tasks: " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in means.items()))
    print(f"wrote {path} and {out / 'closed_loop.png'}")
    return 0


def register(subparsers) -> None:
    ev = subparsers.add_parser("eval", help="evaluate a policy")
    sub = ev.add_subparsers(dest="eval_command", required=True)
    p = sub.add_parser("open-loop", help="predicted vs recorded actions on held-out episodes")
    p.add_argument("--model", required=True,
                   help="training run dir (latest checkpoint), groot-jax model dir or "
                        "Isaac-GR00T checkpoint dir")
    p.add_argument("--dataset", required=True, help="LeRobot v2.x / v3.0 (GR00T flavour) dataset")
    p.add_argument("--step", type=int, default=None, help="a training run's checkpoint step")
    p.add_argument("--data-config", default=None,
                   help="data-config preset (default: the one stored with the model)")
    p.add_argument("--embodiment-tag", default=None,
                   help="which stored embodiment (needed when the model has several)")
    p.add_argument("--tokenizer", default=None, help="default: the one stored with the model")
    p.add_argument("--episodes", default=None, help="comma-separated episode positions")
    p.add_argument("--every", type=int, default=None,
                   help="frames between predicted chunks (default: the action horizon)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--out", default=None, help="default: <model>/eval/open_loop")
    p.set_defaults(func=_open_loop)
    c = sub.add_parser("closed-loop", help="success rate in a simulator, on held-out variations")
    c.add_argument("--model", default=None, help="training run dir, model dir or Isaac-GR00T dir")
    c.add_argument("--env", default="metaworld", choices=["metaworld"])
    c.add_argument("--tasks", required=True, help="'mt10' or comma-separated task names")
    c.add_argument("--episodes", type=int, default=50, help="variations per task (at most 50)")
    c.add_argument("--seed", type=int, default=1,
                   help="MT1 seed of the variations: use one the demonstrations did not (they "
                        "default to 0)")
    c.add_argument("--replan", type=int, default=8, help="execute this many steps of each chunk")
    c.add_argument("--max-steps", type=int, default=150)
    c.add_argument("--image", type=int, default=64,
                   help="camera resolution; the one the demonstrations were recorded at")
    c.add_argument("--baselines", action="store_true",
                   help="also run zero / mean demo / random actions (from the model's statistics)")
    c.add_argument("--videos", type=int, default=0, help="MP4s of the first N episodes per task")
    c.add_argument("--step", type=int, default=None, help="a training run's checkpoint step")
    c.add_argument("--data-config", default=None)
    c.add_argument("--embodiment-tag", default=None)
    c.add_argument("--steps", type=int, default=4, help="Euler steps")
    c.add_argument("--out", default=None, help="default: <model>/eval/closed_loop")
    c.set_defaults(func=_closed_loop)
