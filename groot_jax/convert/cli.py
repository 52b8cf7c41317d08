"""`groot-jax convert import|export`."""
from __future__ import annotations

import time


def _import(args) -> int:
    from groot_jax.config import preset
    from groot_jax.convert.checkpoint import (
        TOKENIZER_HINT,
        CheckpointFileError,
        check_tokenizer,
        has_tokenizer,
        import_checkpoint,
    )

    if args.tokenizer is not None:  # before the (long) import, not after it
        try:
            check_tokenizer(args.tokenizer)
        except CheckpointFileError as e:
            raise SystemExit(str(e)) from None
    t0 = time.perf_counter()
    cfg = preset(args.preset) if args.preset else None
    out = import_checkpoint(args.ckpt_dir, args.out_dir, dtype=args.dtype, cfg=cfg,
                            tokenizer_dir=args.tokenizer)
    print(f"imported {args.ckpt_dir} -> {out} ({args.dtype}) in {time.perf_counter() - t0:.1f}s")
    if not has_tokenizer(out):
        print(f"note: {out} has no tokenizer, so `serve` / `eval` need one: {TOKENIZER_HINT}")
    return 0


def _export(args) -> int:
    from groot_jax.convert.checkpoint import export_checkpoint

    t0 = time.perf_counter()
    out = export_checkpoint(args.model_dir, args.out_dir, dtype=args.dtype, step=args.step,
                            max_shard_bytes=int(args.max_shard_gb * 2**30))
    print(f"exported {args.model_dir} -> {out} ({args.dtype}) in {time.perf_counter() - t0:.1f}s")
    return 0


def register(subparsers) -> None:
    convert = subparsers.add_parser("convert", help="checkpoints to and from PyTorch GR00T")
    sub = convert.add_subparsers(dest="convert_command", required=True)
    imp = sub.add_parser("import", help="Isaac-GR00T / lerobot checkpoint dir -> groot-jax model dir")
    imp.add_argument("ckpt_dir")
    imp.add_argument("out_dir")
    imp.add_argument("--dtype", default="float32", choices=["float32", "fp32", "bfloat16", "bf16"])
    imp.add_argument("--preset", default=None,
                     help="model config preset when config.json does not carry the sizes "
                          "(default: the released model of the checkpoint's model_type)")
    imp.add_argument("--tokenizer", default=None, metavar="DIR",
                     help="Eagle/Qwen3 tokenizer files to store in the model dir (a released "
                          "GR00T checkpoint has none; `serve` and `eval` need one)")
    imp.set_defaults(func=_import)
    exp = sub.add_parser("export", help="training run or groot-jax model dir -> Isaac-GR00T "
                         "checkpoint dir (metadata.json with the stats of every embodiment; "
                         "data configs in experiment_cfg/data_configs.json, tokenizer files at "
                         "the top level)")
    exp.add_argument("model_dir", metavar="RUN_OR_MODEL_DIR")
    exp.add_argument("out_dir")
    exp.add_argument("--step", type=int, default=None,
                     help="a training run's checkpoint step (default: the latest)")
    exp.add_argument("--dtype", default="float32", choices=["float32", "fp32", "bfloat16", "bf16"])
    exp.add_argument("--max-shard-gb", type=float, default=5.0)
    exp.set_defaults(func=_export)
