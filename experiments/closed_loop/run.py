"""Closed-loop Meta-World experiment through the user's commands: record -> train -> evaluate.

    MUJOCO_GL=egl .venv/bin/python experiments/closed_loop/run.py --tasks mt10 --episodes 50 \
        --steps 20000 --seeds 0 1 --eval-episodes 50 --out runs/mt10

1. `groot-jax record metaworld --tasks ... --episodes N --seed 0 --out OUT/dataset
   --tokenizer-out OUT/tokenizer` (skipped when OUT/dataset exists);
2. per training seed S: `groot-jax train --config CONFIG --dataset OUT/dataset --tokenizer
   OUT/tokenizer seed=S steps=... checkpoint.dir=OUT/seedS` (wall time recorded);
3. `groot-jax eval closed-loop --model OUT/seedS --tasks ... --episodes M --seed 1` on
   variations of seed 1 (never recorded), with `--baselines` (zero, mean demo, random action)
   for the first seed.
Prints a markdown table of success per task (95% Wilson intervals) and writes OUT/summary.json.
Results: experiments/closed_loop/README.md.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from groot_jax.cli import main as groot_jax


def run(*argv) -> None:
    argv = [str(a) for a in argv]
    print("\n$ groot-jax " + " ".join(argv), flush=True)
    if groot_jax(argv, handle_errors=True) != 0:
        raise SystemExit(f"`groot-jax {' '.join(argv)}` failed")


def table(results: dict[str, dict[str, dict]]) -> str:
    tasks = list(next(iter(results.values())))
    head = "| policy | " + " | ".join(tasks) + " | mean |"
    lines = [head, "|" + "---|" * (len(tasks) + 2)]
    for name, per_task in results.items():
        cells = []
        for t in tasks:
            r = per_task[t]
            lo, hi = r["wilson95"]
            cells.append(f"{r['successes']}/{r['episodes']} [{100 * lo:.0f}-{100 * hi:.0f}]")
        mean = sum(r["rate"] for r in per_task.values()) / len(per_task)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {100 * mean:.1f}% |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--tasks", default="mt10")
    p.add_argument("--episodes", type=int, default=50, help="demonstrations per task (seed 0)")
    p.add_argument("--image", type=int, default=64)
    p.add_argument("--config", default="finetune_small")
    p.add_argument("--steps", type=int, default=20000)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--eval-episodes", type=int, default=50, help="held-out variations (seed 1)")
    p.add_argument("--max-steps", type=int, default=150)
    p.add_argument("--replan", type=int, default=8)
    p.add_argument("--out", type=Path, default=Path("runs/closed_loop"))
    p.add_argument("--set", nargs="*", default=[], help="more KEY=VALUE for groot-jax train")
    args = p.parse_args()
    out = args.out
    data, tok = out / "dataset", out / "tokenizer"
    if not data.exists():
        t0 = time.perf_counter()
        run("record", "metaworld", "--tasks", args.tasks, "--episodes", args.episodes,
            "--image", args.image, "--max-steps", args.max_steps, "--out", data,
            "--tokenizer-out", tok)
        print(f"recorded in {time.perf_counter() - t0:.0f}s")
    summary = {"args": {k: str(v) for k, v in vars(args).items()}, "seeds": {}}
    combined: dict[str, dict[str, dict]] = {}
    for i, seed in enumerate(args.seeds):
        run_dir = out / f"seed{seed}"
        t0 = time.perf_counter()
        run("train", "--config", args.config, "--dataset", data, "--tokenizer", tok,
            f"seed={seed}", f"steps={args.steps}", f"batch_size={args.batch}",
            f"checkpoint.dir={run_dir}", "progress=False", *args.set)
        train_s = time.perf_counter() - t0
        ev = out / f"eval_seed{seed}"
        run("eval", "closed-loop", "--model", run_dir, "--tasks", args.tasks,
            "--episodes", args.eval_episodes, "--seed", 1, "--image", args.image,
            "--max-steps", args.max_steps, "--replan", args.replan, "--out", ev,
            *(["--baselines", "--videos", 2] if i == 0 else []))
        report = json.loads((ev / "closed_loop.json").read_text())
        summary["seeds"][seed] = {"train_seconds": train_s, "mean_success": report["mean_success"]}
        for name, per_task in report["results"].items():
            combined[name if name != "groot-jax" else f"groot-jax seed {seed}"] = per_task
    summary["results"] = combined
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print("\n" + table(combined))
    for seed, s in summary["seeds"].items():
        print(f"seed {seed}: trained {s['train_seconds'] / 60:.1f} min")


if __name__ == "__main__":
    main()
