"""`groot-jax latent-actions train|label|synthetic|pyramid-demo` and `groot-jax idm train|label`.

Registered in `groot-jax` (groot_jax/cli.py). Training reads a dataset (LeRobot v2.x / v3.0,
action-less video, or episode_*.npz) through groot_jax.data.episodes.open_episodes into memory
(or generates the synthetic world), holds out the last tenth of the episodes for the metrics it
prints, and saves an Orbax checkpoint (`checkpoint.py`).
Labelling writes a sidecar beside DATASET (`sidecar.py`) and can be rerun to finish a crashed run.
`pyramid-demo` writes the synthetic data pyramid that configs/pyramid_tiny.py trains on
(`demo_pyramid.py`).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from groot_jax.data.episodes import open_episodes, write_npz_dir
from groot_jax.latent import checkpoint
from groot_jax.latent.pairs import make_pairs
from groot_jax.latent.synthetic_world import make_episodes


def _episodes(args, image_size: int) -> tuple[list[dict], list | None]:
    """(episodes, action layout of the dataset or None)."""
    if args.synthetic:
        eps = make_episodes(range(args.seed * 100_000, args.seed * 100_000 + args.synthetic),
                            args.episode_length)
        return eps, None
    src = open_episodes(args.dataset, image_size, args.video_key)
    return [src.load(i) for i in src.episode_ids()], getattr(src, "action_layout", None)


def _split(episodes: list[dict]) -> tuple[list[dict], list[dict]]:
    n_eval = max(1, len(episodes) // 10) if len(episodes) > 1 else 0
    return episodes[:len(episodes) - n_eval], episodes[len(episodes) - n_eval:]


def _train_lam(args) -> int:
    from groot_jax.latent.train_lam import codebook_stats, encode_pairs, linear_probe_r2, train_lam
    from groot_jax.models.latent_action import LatentActionConfig

    cfg = getattr(LatentActionConfig, args.preset)(horizon=args.horizon)
    episodes, _ = _episodes(args, cfg.image_size)
    train_eps, eval_eps = _split(episodes)
    tr = make_pairs(train_eps, cfg.horizon)
    model, hist = train_lam(cfg, tr, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                            seed=args.seed, log_every=args.log_every)
    metrics = {"recon_first": hist[0]["recon_loss"], "recon_last": hist[-1]["recon_loss"]}
    if eval_eps:
        te = make_pairs(eval_eps, cfg.horizon)
        a, b = encode_pairs(model, tr["x0"], tr["x1"]), encode_pairs(model, te["x0"], te["x1"])
        metrics.update(codebook_stats(b["codes"], cfg.num_codes), eval_recon=float(b["recon"].mean()))
        if "disp" in tr and "disp" in te:
            metrics["probe_r2"] = linear_probe_r2(a["z_e"], tr["disp"], b["z_e"], te["disp"])
    checkpoint.save(model, args.out)
    print(json.dumps(metrics))
    return 0


def _train_idm(args) -> int:
    from groot_jax.latent.train_idm import predict_chunks, relative_error, train_idm
    from groot_jax.models.idm import IDMConfig

    episodes, layout = _episodes(args, getattr(IDMConfig, args.preset)().image_size)
    train_eps, eval_eps = _split(episodes)
    tr = make_pairs(train_eps, args.horizon, with_chunks=True)
    if "chunk" not in tr:
        raise SystemExit(f"idm train: {args.dataset or 'the data'} has no actions; the IDM learns "
                         f"from action-labelled robot episodes")
    if args.use_state and "state" not in tr:
        raise SystemExit(f"idm train --use-state: {args.dataset} has no state keys")
    cfg = getattr(IDMConfig, args.preset)(horizon=args.horizon, action_dim=tr["chunk"].shape[-1],
                                          state_dim=tr["state"].shape[-1] if args.use_state else 0)
    model, hist = train_idm(cfg, tr, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                            seed=args.seed, log_every=args.log_every)
    metrics = {"mse_first": hist[0]["mse"], "mse_last": hist[-1]["mse"]}
    if eval_eps:
        te = make_pairs(eval_eps, args.horizon, with_chunks=True)
        flat = tr["chunk"].reshape(-1, cfg.action_dim)
        metrics.update(relative_error(predict_chunks(model, te), te["chunk"], np.ptp(flat, 0)))
    checkpoint.save(model, args.out, meta={"action_layout": layout})
    print(json.dumps(metrics))
    return 0


def _label(args, kind: str) -> int:
    from groot_jax.latent.label import label_dataset

    model = checkpoint.load(args.checkpoint, expect_kind=kind)
    layout = checkpoint.load_meta(args.checkpoint).get("action_layout")
    root, done = label_dataset(model, open_episodes(args.dataset, model.cfg.image_size, args.video_key),
                               args.dataset, checkpoint=str(Path(args.checkpoint).absolute()),
                               embodiment=getattr(args, "embodiment", None), out=args.out,
                               overwrite=args.overwrite, action_layout=layout)
    print(f"sidecar {root}: labelled {len(done)} episode(s) this run")
    return 0


def _synthetic(args) -> int:
    from groot_jax.data.writers import write_actionless, write_lerobot_v2
    from groot_jax.latent.synthetic_world import make_goal_episodes

    make = make_goal_episodes if args.world == "goal" else make_episodes
    eps = make(range(args.seed * 100_000, args.seed * 100_000 + args.episodes), args.length)
    if args.format == "lerobot":
        print(write_lerobot_v2(eps, args.out))
    elif args.format == "actionless" or args.drop_actions:
        if args.format == "npz":
            eps = [{**e, "actions": None} for e in eps]
            print(write_npz_dir(eps, args.out))
        else:
            print(write_actionless(eps, args.out))
    else:
        print(write_npz_dir(eps, args.out))
    return 0


def _pyramid_demo(args) -> int:
    from groot_jax.latent.demo_pyramid import make_demo_data

    make_demo_data(args.root, seed=args.seed)
    return 0


def _train_args(p: argparse.ArgumentParser, steps: int, horizon: int) -> None:
    p.add_argument("--out", required=True, help="checkpoint directory")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("dataset", nargs="?", help="dataset directory: LeRobot, action-less video, or "
                     "episode_*.npz (see groot_jax.data.episodes.open_episodes)")
    p.add_argument("--video-key", help="camera to use, e.g. video.front (default: the first)")
    src.add_argument("--synthetic", type=int, default=0, help="train on N synthetic-world episodes")
    p.add_argument("--episode-length", type=int, default=32)
    p.add_argument("--preset", default="tiny", choices=("tiny", "small"))
    p.add_argument("--horizon", type=int, default=horizon)
    p.add_argument("--steps", type=int, default=steps)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=100)


def _label_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", help="dataset directory; labels go to a sidecar beside it")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--video-key", help="camera to use, e.g. video.front (default: the first)")
    p.add_argument("--out", help="sidecar directory (default: DATASET.<kind> beside the dataset)")
    p.add_argument("--overwrite", action="store_true", help="replace a sidecar from another model")


def register(subparsers) -> None:
    lam = subparsers.add_parser("latent-actions", help="latent-action VQ-VAE: train, label")
    lam_sub = lam.add_subparsers(dest="latent_command", required=True)
    p = lam_sub.add_parser("train", help="train the VQ-VAE on frame pairs")
    _train_args(p, steps=800, horizon=1)
    p.set_defaults(func=_train_lam)
    p = lam_sub.add_parser("label", help="write latent actions beside DATASET (resumable)")
    _label_args(p)
    p.set_defaults(func=lambda a: _label(a, "latent_action"))
    p = lam_sub.add_parser("synthetic", help="write synthetic-world episodes (npz, LeRobot or "
                           "action-less video)")
    p.add_argument("out")
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--length", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--drop-actions", action="store_true", help="action-less video (npz format)")
    p.add_argument("--format", choices=("npz", "lerobot", "actionless"), default="npz",
                   help="episode_*.npz, a LeRobot v2.1 dataset, or an action-less video directory")
    p.add_argument("--world", choices=("random", "goal"), default="random",
                   help="random: AR(1) actions; goal: the blob moves toward a drawn goal")
    p.set_defaults(func=_synthetic)
    p = lam_sub.add_parser("pyramid-demo", help="write the synthetic data pyramid with its "
                           "latent-action and IDM sidecars (for configs/pyramid_tiny.py)")
    p.add_argument("root")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_pyramid_demo)

    idm = subparsers.add_parser("idm", help="inverse dynamics model: train, label")
    idm_sub = idm.add_subparsers(dest="idm_command", required=True)
    p = idm_sub.add_parser("train", help="train the IDM on action-labelled episodes")
    _train_args(p, steps=1000, horizon=4)
    p.add_argument("--use-state", action="store_true")
    p.set_defaults(func=_train_idm)
    p = idm_sub.add_parser("label", help="write IDM pseudo-actions beside DATASET (resumable)")
    _label_args(p)
    p.add_argument("--embodiment", required=True, help="embodiment tag of the pseudo-actions")
    p.set_defaults(func=lambda a: _label(a, "idm"))


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (`python -m groot_jax.latent.cli ...`); `groot-jax` registers the same."""
    parser = argparse.ArgumentParser(prog="groot-jax")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
