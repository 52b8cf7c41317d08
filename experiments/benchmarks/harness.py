"""The benchmarks' shared runner: sides in their own processes, interleaved, pinned, load-checked.

Every comparison (groot-jax vs lerobot, or several modes of one tool) runs as one fresh process
per side per round, A B A B ... for `--rounds` rounds, so that a slow phase of the machine hits
every side instead of one. Each child is pinned to the same CPUs (`sched_setaffinity`, which
also sizes XLA:CPU's thread pool) and the same thread count (OMP/MKL env vars, and
`torch.set_num_threads` in the reference child). The CPU model, the pinning and the load
average before and after each process are printed with the result; the ratio is reported per
round and as the median over rounds.

Load checks. A 1-minute load average >= LOAD_LIMIT (1.5) before the first round prints a
warning, or refuses with `--strict`. Once the rounds run, the load average mostly counts the
benchmark's own threads (a 2-thread child holds it near 2), so each process is also checked by
the CPU time *other* processes took on the pinned CPUs while it ran: /proc/stat busy time
(including steal) minus the child's own user + system time, in cores. At or above FOREIGN_LIMIT
(0.5 core) a round is flagged as loaded (with `--strict` the run stops); the report says whether
every round was clean.

A benchmark script calls, in its child branch, `child_main(args, {"ours": fn, ...})`, where
each fn(repeats) returns a dict of measurements, and in its parent branch `interleave(...)` then
`report(...)`.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REF_PYTHON = str(ROOT / ".venv-ref" / "bin" / "python")
LOAD_LIMIT = 1.5
FOREIGN_LIMIT = 0.5


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def loadavg() -> tuple[float, float, float]:
    return os.getloadavg()


def machine() -> dict:
    return {"cpu": cpu_model(), "cores": os.cpu_count(),
            "affinity": sorted(os.sched_getaffinity(0)), "loadavg": loadavg()}


class LoadedMachine(SystemExit):
    pass


def check_load(strict: bool, where: str, limit: float = LOAD_LIMIT) -> float:
    """The 1-minute load average; warn (or, with `strict`, refuse) when it is >= limit."""
    one = loadavg()[0]
    if one >= limit:
        msg = (f"{where}: load average {one:.2f} >= {limit}: the machine is busy, these figures "
               "are NOT valid measurements")
        if strict:
            raise LoadedMachine(f"refusing (--strict): {msg}")
        print(f"WARNING {msg}", file=sys.stderr, flush=True)
    return one


def timed(fn, repeats: int) -> float:
    """Median seconds of `repeats` calls after one warm-up call (jit compilation for jax)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def random_module(make, seed: int = 0):
    """(graphdef, params) of the nnx module `make(rngs)` with N(0, 0.02) weights (ones for
    norm scales, zeros for biases), drawn leaf by leaf on the host: one copy in memory. The
    values do not affect timing (fp32 dots take the same time for any numbers)."""
    from flax import nnx

    from groot_jax.models.groot import random_params

    graphdef, abstract = nnx.split(nnx.eval_shape(lambda: make(nnx.Rngs(0))), nnx.Param)
    return graphdef, random_params(abstract, seed)


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20   # kB -> GiB on Linux


def add_arguments(parser: argparse.ArgumentParser, *, rounds: int, repeats: int) -> None:
    parser.add_argument("--rounds", type=int, default=rounds,
                        help="interleaved rounds (one fresh process per side per round)")
    parser.add_argument("--repeats", type=int, default=repeats,
                        help="timed calls per process after one warm-up (median)")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                        help="CPUs (and threads) each side is pinned to")
    parser.add_argument("--strict", action="store_true",
                        help=f"refuse to run (or continue) when the load average is >= {LOAD_LIMIT}")
    parser.add_argument("--json", default=None, help="also write every round's results here")
    parser.add_argument("--side", default=None, help=argparse.SUPPRESS)


def pinned_cpus(threads: int) -> list[int]:
    cpus = sorted(os.sched_getaffinity(0))
    if threads > len(cpus):
        raise SystemExit(f"--threads {threads} > the {len(cpus)} CPUs this process may use")
    return cpus[:threads]


def thread_env(threads: int) -> dict:
    n = str(threads)
    return {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n,
            "GROOT_BENCH_THREADS": n, "HF_LEROBOT_HOME": "/tmp/groot_jax_bench_lerobot"}


def child_main(args, fns: dict) -> None:
    """Child branch: pin torch's threads too, run fns[args.side](args.repeats), print JSON."""
    threads = int(os.environ.get("GROOT_BENCH_THREADS", len(os.sched_getaffinity(0))))
    load_before = loadavg()
    if "torch" in sys.modules or args.side == "reference":
        import torch

        torch.set_num_threads(threads)
        torch.set_num_interop_threads(1)
    result = fns[args.side](args.repeats)
    result.update(side=args.side, threads=threads, affinity=sorted(os.sched_getaffinity(0)),
                  load_before=load_before, load_after=loadavg(), peak_rss_gb=peak_rss_gb())
    if args.side == "reference" or "torch" in sys.modules:
        import torch

        result["torch_threads"] = torch.get_num_threads()
    print(json.dumps(result))


@dataclasses.dataclass(frozen=True)
class Side:
    name: str
    argv: list            # script and arguments
    python: str = sys.executable


def two_envs(script: str, extra: list[str]) -> list[Side]:
    """groot-jax in this environment, lerobot in .venv-ref: `script --side NAME EXTRA`."""
    return [Side("ours", [script, "--side", "ours", *extra]),
            Side("reference", [script, "--side", "reference", *extra], REF_PYTHON)]


def sides_with_stacked(script: str, extra: list[str], stacked: bool
                       ) -> tuple[list[Side], tuple[str, ...]]:
    """`two_envs`, plus (when `stacked`) groot-jax on the stacked training layout as side
    'stacked' between them: the "before the inference layout" figures. Returns (sides, the
    non-reference side names for `report`)."""
    sides = two_envs(script, extra)
    if not stacked:
        return sides, ("ours",)
    sides.insert(1, Side("stacked", [script, "--side", "stacked", *extra]))
    return sides, ("ours", "stacked")


def busy_seconds(cpus: list[int]) -> float:
    """CPU seconds spent busy (user, nice, system, irq, softirq, steal) on `cpus` since boot."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for line in Path("/proc/stat").read_text().splitlines():
        name, *fields = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
            total += user + nice + system + irq + softirq + steal
    return total / tick


def children_cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_side(side: Side, threads: int) -> dict:
    cpus = pinned_cpus(threads)
    env = {**os.environ, **thread_env(threads)}
    busy0, own0, t0 = busy_seconds(cpus), children_cpu_seconds(), time.perf_counter()
    proc = subprocess.run([side.python, *side.argv], capture_output=True, text=True, env=env,
                          preexec_fn=lambda: os.sched_setaffinity(0, cpus))
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"{side.name} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    own = children_cpu_seconds() - own0
    result.update(wall_s=wall, own_cpu_s=own,
                  foreign_cores=max(0.0, busy_seconds(cpus) - busy0 - own) / wall)
    return result


def interleave(script: str | None, extra: list[str], args, sides: list[Side] | None = None,
               before_each=None) -> list[dict]:
    """`args.rounds` rounds of every side in turn (A B A B ...): [{side name: result}]."""
    sides = sides or two_envs(script, extra)
    print(f"{cpu_model()}, {os.cpu_count()} cores; each side pinned to CPUs "
          f"{pinned_cpus(args.threads)} with {args.threads} threads; {args.rounds} rounds of "
          f"{' '.join(s.name for s in sides)}; load average at start "
          f"{' / '.join(f'{x:.2f}' for x in loadavg())}", flush=True)
    check_load(args.strict, "before round 1")
    rounds = []
    for r in range(args.rounds):
        results = {}
        for side in sides:
            if before_each is not None:
                before_each(side)
            results[side.name] = run_side(side, args.threads)
            res = results[side.name]
            print(f"  round {r + 1} {side.name}: {res['wall_s']:.0f} s, load "
                  f"{res['load_before'][0]:.2f} -> {res['load_after'][0]:.2f}, other processes "
                  f"{res['foreign_cores']:.2f} cores, peak RSS {res['peak_rss_gb']:.1f} GiB",
                  flush=True)
            if res["foreign_cores"] >= FOREIGN_LIMIT:
                msg = (f"round {r + 1} {side.name}: other processes took "
                       f"{res['foreign_cores']:.2f} cores (>= {FOREIGN_LIMIT}) of the pinned CPUs")
                if args.strict:
                    raise LoadedMachine(f"refusing (--strict): {msg}")
                print(f"WARNING {msg}: NOT a valid measurement", file=sys.stderr, flush=True)
        rounds.append(results)
    return rounds


def report(rounds: list[dict], keys, args, *, title: str, unit: str = "ms",
           base: str = "reference", others=("ours",), labels: dict | None = None) -> dict:
    """Per round and median: each `key` for every side, and other / base ratios."""
    scale = {"ms": 1e3, "s": 1.0}[unit]
    labels = labels or {}
    names = [*others, base]
    loads = [res["load_before"][0] for rd in rounds for res in rd.values()]
    loads += [res["load_after"][0] for rd in rounds for res in rd.values()]
    start_load = rounds[0][names[0]]["load_before"][0] if rounds else float("nan")
    foreign = max(res["foreign_cores"] for rd in rounds for res in rd.values())
    print(f"\n{title}")
    print(f"{cpu_model()}; {args.threads} threads per side; {len(rounds)} interleaved rounds, "
          f"each the median of {args.repeats}; 1-min load average at start {start_load:.2f}, "
          f"over the run {min(loads):.2f}..{max(loads):.2f} (includes the benchmark itself); "
          f"other processes at most {foreign:.2f} cores")
    head = f"{'part':12s} {'round':>6s} " + " ".join(f"{labels.get(n, n) + ' ' + unit:>14s}"
                                                     for n in names)
    head += " " + " ".join(f"{labels.get(o, o) + '/' + labels.get(base, base):>16s}"
                           for o in others)
    print(head)
    summary = {}
    for key in keys:
        per = {n: [rd[n][key] for rd in rounds] for n in names}
        ratios = {o: [a / b for a, b in zip(per[o], per[base], strict=True)] for o in others}
        for i in range(len(rounds)):
            print(f"{key:12s} {i + 1:6d} " + " ".join(f"{scale * per[n][i]:14.1f}" for n in names)
                  + " " + " ".join(f"{ratios[o][i]:16.2f}" for o in others))
        med = {n: statistics.median(per[n]) for n in names}
        mr = {o: statistics.median(ratios[o]) for o in others}
        print(f"{key:12s} {'median':>6s} " + " ".join(f"{scale * med[n]:14.1f}" for n in names)
              + " " + " ".join(f"{mr[o]:16.2f}" for o in others))
        summary[key] = {"median": med, "median_ratio": mr, "ratios": ratios}
    valid = start_load < LOAD_LIMIT and foreign < FOREIGN_LIMIT
    print("machine quiet: valid measurement" if valid else
          f"LOADED MACHINE (start load {start_load:.2f}, limit {LOAD_LIMIT}; other processes up "
          f"to {foreign:.2f} cores, limit {FOREIGN_LIMIT}): do not publish these figures")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine(), "rounds": rounds,
                                               "summary": summary, "valid": valid}, indent=1))
    return summary
