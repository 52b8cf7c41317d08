"""`groot-jax stats DATASET` and `groot-jax data inspect DATASET`.

Wire into groot_jax/cli.py with `from groot_jax.data.cli import register; register(subparsers)`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def _open(path: str, kind: str):
    # Not mixture.open_source: that one needs a DataConfig (RLDS reads through it, and every
    # source is checked against it); stats and inspect run before a config exists.
    if kind == "rlds":
        from groot_jax.data.rlds import RLDSSource

        return RLDSSource(path)
    if kind == "actionless":
        from groot_jax.data.actionless import ActionlessSource

        return ActionlessSource(path)
    if not Path(path).is_dir():
        raise FileNotFoundError(f"dataset {path}: no such directory")
    info_path = Path(path) / "meta" / "info.json"
    try:
        info = json.loads(info_path.read_text())
    except json.JSONDecodeError as e:   # json's own message names no file
        from groot_jax.data.errors import DataError

        raise DataError(f"{info_path}: not valid JSON ({e})") from e
    if str(info.get("codebase_version", "")).startswith("v3"):
        from groot_jax.data.lerobot_v3 import LeRobotV3Source

        return LeRobotV3Source(path)
    from groot_jax.data.lerobot_v2 import LeRobotV2Source

    return LeRobotV2Source(path)


def cmd_stats(args) -> int:
    from groot_jax.data.stats import (
        compute_column_stats,
        dataset_metadata,
        key_stats,
        save_metadata,
        save_stats_json,
    )

    if not Path(args.dataset).exists():
        raise FileNotFoundError(f"dataset {args.dataset}: no such file or directory")
    if args.out:
        out = Path(args.out)
    elif (Path(args.dataset) / "meta").is_dir():
        out = Path(args.dataset) / "meta" / "stats.json"
    else:   # do not create folders inside an RLDS / action-less dataset
        raise FileNotFoundError(f"{args.dataset} has no meta/ folder for stats.json; "
                                f"pass --out FILE")
    # Checked before the (long) computation; LeRobot datasets ship their own meta/stats.json.
    for path in (out, args.metadata):
        if path and Path(path).exists() and not args.overwrite:
            raise FileExistsError(f"{path} exists; pass --overwrite to replace it, or --out FILE "
                                  f"to write elsewhere")
    src = _open(args.dataset, args.kind)
    cols = compute_column_stats(src)
    if args.out:
        out.parent.mkdir(parents=True, exist_ok=True)
    save_stats_json(out, cols)
    print(f"wrote {out} ({len(src.episode_lengths)} episodes, {len(src)} frames)")
    for c, s in cols.items():
        print(f"  {c}: dim {len(s['mean'])}, mean {np.round(s['mean'], 4).tolist()}")
    if args.metadata:
        save_metadata(
            args.metadata,
            {args.embodiment_tag: dataset_metadata(src, key_stats(src, cols), args.embodiment_tag)},
        )
        print(f"wrote {args.metadata}")
    return 0


def cmd_inspect(args) -> int:
    from PIL import Image

    src = _open(args.dataset, args.kind)
    print(f"dataset {src.root} ({type(src).__name__})")
    print(f"  episodes {len(src.episode_lengths)}, frames {len(src)}, fps {src.fps}")
    print(f"  lengths: min {src.episode_lengths.min()}, max {src.episode_lengths.max()}")
    for group in ("state", "action"):
        for k, m in getattr(src.modality, group).items():
            print(
                f"  {group}.{k}: {m.original_key}[{m.start}:{m.end}] absolute={m.absolute}"
                f" rotation={m.rotation_type}"
            )
    for k, orig in src.modality.video.items():
        print(f"  video.{k}: {orig} resolution (W,H) {src.video_resolution.get(k)}")
    for k, orig in src.modality.annotation.items():
        print(f"  annotation.{k}: {orig}")
    ep = src.episode(0)
    for c, a in ep.columns.items():
        print(f"  episode {ep.index} column {c}: shape {a.shape} dtype {a.dtype}")
    n = min(args.frames, int(src.episode_lengths[0]))
    idx = np.linspace(0, int(src.episode_lengths[0]) - 1, n).astype(int)
    rows = []
    for vk in src.modality.video:
        rows.append(np.concatenate(list(src.video(0, ep, f"video.{vk}", idx)), 1))
    if rows:
        w = max(r.shape[1] for r in rows)
        grid = np.concatenate([np.pad(r, ((0, 0), (0, w - r.shape[1]), (0, 0))) for r in rows], 0)
        out = Path(args.png or "inspect.png")
        Image.fromarray(grid).save(out)
        size = f"{grid.shape[1]}x{grid.shape[0]}"
        print(f"  frames {idx.tolist()} of episode {ep.index} saved to {out} ({size})")
    return 0


def register(subparsers) -> None:
    """Add `stats` and `data inspect` to an argparse subparsers object."""
    p = subparsers.add_parser("stats", help="compute dataset statistics (meta/stats.json)")
    p.add_argument("dataset")
    p.add_argument("--kind", default="lerobot", choices=["lerobot", "rlds", "actionless"])
    p.add_argument("--out", help="output stats.json (default DATASET/meta/stats.json)")
    p.add_argument("--metadata", help="also write a checkpoint metadata.json here")
    p.add_argument("--embodiment-tag", default="new_embodiment")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing stats.json / metadata.json")
    p.set_defaults(func=cmd_stats)

    d = subparsers.add_parser("data", help="dataset tools")
    dsub = d.add_subparsers(dest="data_cmd", required=True)
    i = dsub.add_parser("inspect", help="print episodes, keys, shapes; save a PNG grid of frames")
    i.add_argument("dataset")
    i.add_argument("--kind", default="lerobot", choices=["lerobot", "rlds", "actionless"])
    i.add_argument("--frames", type=int, default=4)
    i.add_argument("--png", help="output PNG (default inspect.png)")
    i.set_defaults(func=cmd_inspect)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="groot-jax")
    register(ap.add_subparsers(dest="cmd", required=True))
    args = ap.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
