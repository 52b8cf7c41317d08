"""MT10 in closed loop through the user's commands: record -> train -> evaluate, against the
observation-blind baselines and lerobot's own ACT trained for the same wall-clock budget.

    MUJOCO_GL=egl .venv/bin/python experiments/closed_loop/run.py --tasks mt10 --episodes 50 \
        --state mt10 --budget-min 30 --steps 1500 --seeds 0 1 \
        --peer ~/.cache/groot-jax/lerobot061-peer --out runs/mt10
    .venv/bin/python experiments/closed_loop/run.py --table-from R   # the table of a finished R

1. `groot-jax record metaworld --tasks ... --episodes N --seed 0,2 --state LAYOUT
   --out OUT/dataset --tokenizer-out OUT/tokenizer`: N successful expert demonstrations per task from the
   variations of seeds 0 then 2 (skipped when OUT/dataset exists);
2. per training seed S: `groot-jax train --config CONFIG ... seed=S steps=STEPS` on one core
   (`taskset -c 0`), stopped by SIGTERM at the budget if still running (the loop saves the step
   it reached): pick STEPS so the cosine schedule ends near the budget;
3. `groot-jax eval closed-loop --model OUT/seedS --episodes M --seed 1` on variations of seed 1
   (never recorded), with `--baselines` for the first seed;
4. with `--peer VENV`: experiments/closed_loop/peer_lerobot.py trains lerobot's ACT on the same
   dataset for the same budget on one core, then runs the same episodes.
Prints a markdown table of success per task (95% Wilson intervals), writes OUT/summary.json.
The 2026-12-03 runs did these steps two at a time, one per core (mt10_two_cores.sh).
Results: experiments/closed_loop/README.md.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GROOT_JAX = [str(Path(sys.executable).parent / "groot-jax")]


def run(argv, *, budget_s: float | None = None, python: list[str] | None = None,
        core: int | None = 0) -> float:
    """Run a command (groot-jax by default) on one core; returns its wall time. With `budget_s`
    it gets SIGTERM at the budget (groot-jax train saves and exits)."""
    argv = [*(python or GROOT_JAX), *[str(a) for a in argv]]
    if core is not None:
        argv = ["taskset", "-c", str(core), *argv]
    print("\n$ " + " ".join(argv), flush=True)
    env = dict(os.environ, PYTHONPATH=str(ROOT), MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl"))
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=env)
    try:
        rc = proc.wait(timeout=budget_s)
    except subprocess.TimeoutExpired:
        proc.terminate()
        rc = proc.wait()
        print(f"budget of {budget_s / 60:.0f} min reached: stopped", flush=True)
    if rc != 0:
        raise SystemExit(f"`{' '.join(argv)}` failed ({rc})")
    return time.perf_counter() - t0


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


def collect(reports: list[Path]) -> dict[str, dict[str, dict]]:
    """Per policy and task results of eval_*/closed_loop.json reports; the groot-jax rows are
    named by their training seed (eval_seedS), each baseline is taken once."""
    combined: dict[str, dict[str, dict]] = {}
    for path in reports:
        tag = path.parent.name.removeprefix("eval_")
        for name, per_task in json.loads(path.read_text())["results"].items():
            key = f"groot-jax {tag.replace('seed', 'seed ')}" if name == "groot-jax" else name
            combined.setdefault(key, per_task)
    return combined


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--tasks", default="mt10")
    p.add_argument("--episodes", type=int, default=50, help="demonstrations per task")
    p.add_argument("--image", type=int, default=64)
    p.add_argument("--state", default="mt10", choices=["mt10", "proprio"],
                   help="recorded observation.state (groot-jax record metaworld --state)")
    p.add_argument("--config", default="finetune_small")
    p.add_argument("--budget-min", type=float, default=30.0, help="wall-clock training budget")
    p.add_argument("--steps", type=int, default=1500, help="groot-jax steps (its cosine length)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--eval-episodes", type=int, default=50, help="held-out variations (seed 1)")
    p.add_argument("--max-steps", type=int, default=150)
    p.add_argument("--replan", type=int, default=8)
    p.add_argument("--peer", type=Path, default=None,
                   help="lerobot 0.6.1 environment (experiments/closed_loop/install_peer.sh)")
    p.add_argument("--out", type=Path, default=Path("runs/closed_loop"))
    p.add_argument("--set", nargs="*", default=[], help="more KEY=VALUE for groot-jax train")
    p.add_argument("--table-from", type=Path, default=None,
                   help="only print the table of a finished OUT (eval_seed*/, eval_act/)")
    args = p.parse_args()
    if args.table_from:
        reports = sorted(args.table_from.glob("eval_*/closed_loop.json"))
        if not reports:
            raise SystemExit(f"{args.table_from}: no eval_*/closed_loop.json")
        print(table(collect(reports)))
        return
    out, budget = args.out, 60 * args.budget_min
    data, tok = out / "dataset", out / "tokenizer"
    if not data.exists():
        run(["record", "metaworld", "--tasks", args.tasks, "--episodes", args.episodes,
             "--seed", "0,2", "--state", args.state, "--image", args.image,
             "--max-steps", args.max_steps,
             "--out", data, "--tokenizer-out", tok], core=None)
    episodes = ["--tasks", args.tasks, "--episodes", args.eval_episodes, "--seed", 1,
                "--image", args.image, "--max-steps", args.max_steps, "--replan", args.replan]
    summary = {"args": {k: str(v) for k, v in vars(args).items()}, "runs": {}}
    reports: list[Path] = []
    for i, seed in enumerate(args.seeds):
        run_dir, ev = out / f"seed{seed}", out / f"eval_seed{seed}"
        train_s = run(["train", "--config", args.config, "--dataset", data, "--tokenizer", tok,
                       f"seed={seed}", f"steps={args.steps}", f"batch_size={args.batch}",
                       f"checkpoint.dir={run_dir}", "checkpoint.every=250", "progress=False",
                       *args.set], budget_s=budget)
        run(["eval", "closed-loop", "--model", run_dir, "--env", "metaworld", *episodes,
             "--out", ev, *(["--baselines", "--videos", 2] if i == 0 else [])])
        reports.append(ev / "closed_loop.json")
        report = json.loads(reports[-1].read_text())
        summary["runs"][f"groot-jax seed {seed}"] = {"train_seconds": train_s,
                                                     "mean_success": report["mean_success"]}
    if args.peer:
        peer = [str(args.peer / "bin" / "python"), str(ROOT / "experiments" / "closed_loop" /
                                                       "peer_lerobot.py")]
        act, ev = out / "act_seed0", out / "eval_act"
        train_s = run(["train", "--dataset", data, "--out", act, "--budget-min",
                       args.budget_min, "--seed", 0], python=peer, budget_s=budget + 300)
        run(["eval", "--model", act, *episodes, "--out", ev], python=peer)
        reports.append(ev / "closed_loop.json")
        report = json.loads(reports[-1].read_text())
        summary["runs"]["lerobot ACT"] = {"train_seconds": train_s,
                                          "mean_success": report["mean_success"]}
    combined = collect(reports)
    summary["results"] = combined
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print("\n" + table(combined))


if __name__ == "__main__":
    main()
