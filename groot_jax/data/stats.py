"""Statistics: streaming computation with exact quantiles, mixture merge, stats.json and the
checkpoint metadata.json format (spec 9.1).

`compute_column_stats(source)` visits episodes one at a time (never the whole dataset in memory):
  pass 1: count, mean and M2 (Chan's parallel update in float64), min, max;
  pass 2: a per-dim histogram between min and max (4096 bins) locating the order statistics that
          np.quantile's linear rule needs for q01 and q99;
  pass 3: collects only the values inside those bins and picks the exact order statistics.
The result equals np.quantile / np.mean / np.std (ddof 0) over all rows up to float64 rounding;
the original computes them in float32 over the concatenated rows.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from groot_jax.data.errors import DataError

STAT_NAMES = ("mean", "std", "min", "max", "q01", "q99")
_BINS = 4096


class _Acc:
    def __init__(self, d):
        self.n = 0
        self.mean = np.zeros(d)
        self.m2 = np.zeros(d)
        self.min = np.full(d, np.inf)
        self.max = np.full(d, -np.inf)

    def add(self, x):
        x = np.asarray(x, np.float64)
        nb = x.shape[0]
        if nb == 0:
            return
        mb = x.mean(0)
        m2b = ((x - mb) ** 2).sum(0)
        delta = mb - self.mean
        tot = self.n + nb
        self.mean = self.mean + delta * nb / tot
        self.m2 = self.m2 + m2b + delta**2 * self.n * nb / tot
        self.n = tot
        self.min = np.minimum(self.min, x.min(0))
        self.max = np.maximum(self.max, x.max(0))


def _bin_of(x, lo, hi):
    span = np.where(hi > lo, hi - lo, 1.0)
    return np.clip(((x - lo) / span * _BINS).astype(np.int64), 0, _BINS - 1)


def stream_stats(chunks_factory, quantiles=(0.01, 0.99)) -> dict[str, np.ndarray]:
    """Stats over the rows of all chunks. `chunks_factory()` yields float arrays [n_i, D] and is
    called three times (one per pass). Returns {mean,std,min,max,q01,q99}: float64 [D]."""
    acc = None
    for x in chunks_factory():
        if acc is None:
            acc = _Acc(x.shape[1])
        if x.shape[1] != acc.mean.shape[0]:
            raise DataError(f"inconsistent width {x.shape[1]} vs {acc.mean.shape[0]}")
        acc.add(x)
    if acc is None or acc.n == 0:
        raise DataError("no rows to compute statistics from")
    d, n = acc.mean.shape[0], acc.n
    lo, hi = acc.min, acc.max
    hist = np.zeros((d, _BINS), np.int64)
    for x in chunks_factory():
        b = _bin_of(np.asarray(x, np.float64), lo, hi)
        for j in range(d):
            hist[j] += np.bincount(b[:, j], minlength=_BINS)
    cum = np.cumsum(hist, 1)
    # order statistics needed: floor(q*(n-1)) and +1 for each q
    wanted = {}
    for q in quantiles:
        pos = q * (n - 1)
        k0 = int(np.floor(pos))
        wanted[q] = (k0, min(k0 + 1, n - 1), pos - k0)
    ranks = sorted({k for k0, k1, _ in wanted.values() for k in (k0, k1)})
    # per dim, per rank: the bin holding it and how many values precede that bin
    bins_needed = np.stack([np.searchsorted(cum[j], np.array(ranks), side="right") for j in range(d)])
    before = np.stack([np.where(bins_needed[j] > 0, cum[j][bins_needed[j] - 1], 0) for j in range(d)])
    collected = [[[] for _ in ranks] for _ in range(d)]
    for x in chunks_factory():
        x = np.asarray(x, np.float64)
        b = _bin_of(x, lo, hi)
        for j in range(d):
            for r in range(len(ranks)):
                sel = x[b[:, j] == bins_needed[j, r], j]
                if sel.size:
                    collected[j][r].append(sel)
    order = np.zeros((d, len(ranks)))
    for j in range(d):
        for r, k in enumerate(ranks):
            vals = np.sort(np.concatenate(collected[j][r]))
            order[j, r] = vals[k - before[j, r]]
    out = {"mean": acc.mean, "std": np.sqrt(acc.m2 / n), "min": lo, "max": hi}
    for q, name in zip(quantiles, ("q01", "q99"), strict=False):
        k0, k1, frac = wanted[q]
        a, b = order[:, ranks.index(k0)], order[:, ranks.index(k1)]
        out[name] = a + (b - a) * frac
    return out


def compute_column_stats(source, columns: list[str] | None = None) -> dict[str, dict[str, np.ndarray]]:
    """Per-column stats (`observation.state`, `action`, ...) over every episode of a source."""
    if columns is None:
        columns = sorted(
            {m.original_key for m in source.modality.state.values()}
            | {m.original_key for m in source.modality.action.values()}
        )
    out = {}
    for c in columns:

        def chunks(c=c):
            for pos in range(len(source.episode_lengths)):
                yield source._load_episode(pos).columns[c]

        out[c] = {k: v.astype(np.float32) for k, v in stream_stats(chunks).items()}
    return out


def key_stats(source, column_stats: dict) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """Slice per-column stats into per-key stats: {"state": {name: {...}}, "action": {...}}."""
    out = {"state": {}, "action": {}}
    for modality in ("state", "action"):
        for name, m in getattr(source.modality, modality).items():
            cs = column_stats.get(m.original_key)
            if cs is None:
                raise DataError(f"{source.root}: no statistics for column {m.original_key!r}")
            out[modality][name] = {k: np.asarray(cs[k])[m.start : m.end] for k in STAT_NAMES}
    return out


def save_stats_json(path, column_stats: dict) -> None:
    with open(path, "w") as f:
        json.dump(
            {c: {k: np.asarray(v).tolist() for k, v in s.items()} for c, s in column_stats.items()},
            f,
            indent=2,
        )


def load_stats_json(path) -> dict:
    """LeRobot-style stats.json -> {column: {stat: float32 array}}; DataError if a field is missing."""
    with open(path) as f:
        raw = json.load(f)
    out = {}
    for c, s in raw.items():
        if not isinstance(s, dict) or "mean" not in s:
            continue
        missing = [k for k in STAT_NAMES if k not in s]
        if missing:
            raise DataError(f"{path}: column {c!r} lacks statistics {missing}")
        out[c] = {k: np.asarray(s[k], np.float32).reshape(-1) for k in STAT_NAMES}
    return out


def merge_stats(per_dataset: list[dict], weights) -> dict:
    """Mixture merge (original `compute_overall_statistics`, percentile mixing "weighted_average").

    per_dataset: list of {key: {stat: [D]}} with the same keys; weights: sampling weights (normalised
    to sum 1 here). mean = Σ w μ; std = sqrt(Σ w (σ² + μ²) − mean²); min/max elementwise;
    q01/q99 = Σ w q.
    """
    w = np.asarray(weights, np.float64)
    if len(w) != len(per_dataset) or (w < 0).any() or w.sum() <= 0:
        raise DataError(f"bad mixture weights {weights} for {len(per_dataset)} datasets")
    w = w / w.sum()
    out = {}
    for key in per_dataset[0]:
        for i, ds in enumerate(per_dataset):
            if key not in ds:
                raise DataError(f"dataset {i} of the mixture has no statistics for {key!r}")
        mus = [np.asarray(ds[key]["mean"], np.float64) for ds in per_dataset]
        sds = [np.asarray(ds[key]["std"], np.float64) for ds in per_dataset]
        mean = sum(wi * m for wi, m in zip(w, mus, strict=True))
        sq = sum(wi * (s**2 + m**2) for wi, s, m in zip(w, sds, mus, strict=True))
        out[key] = {
            "mean": mean,
            "std": np.sqrt(np.maximum(sq - mean**2, 0.0)),
            "min": np.min([np.asarray(ds[key]["min"]) for ds in per_dataset], 0),
            "max": np.max([np.asarray(ds[key]["max"]) for ds in per_dataset], 0),
            "q01": sum(
                wi * np.asarray(ds[key]["q01"], np.float64)
                for wi, ds in zip(w, per_dataset, strict=True)
            ),
            "q99": sum(
                wi * np.asarray(ds[key]["q99"], np.float64)
                for wi, ds in zip(w, per_dataset, strict=True)
            ),
        }
    return out


def dataset_metadata(source, stats_by_key: dict, embodiment_tag: str) -> dict:
    """One embodiment's entry of experiment_cfg/metadata.json (original `DatasetMetadata`)."""
    mods = {"video": {}, "state": {}, "action": {}}
    for name, (w, h) in source.video_resolution.items():
        mods["video"][name] = {"resolution": [w, h], "channels": 3, "fps": source.fps}
    for modality in ("state", "action"):
        for name, m in getattr(source.modality, modality).items():
            mods[modality][name] = {
                "absolute": m.absolute,
                "rotation_type": m.rotation_type,
                "shape": [m.dim],
                "continuous": True,
            }
    stats = {
        mod: {k: {s: np.asarray(v[s]).tolist() for s in STAT_NAMES} for k, v in d.items()}
        for mod, d in stats_by_key.items()
    }
    return {"statistics": stats, "modalities": mods, "embodiment_tag": embodiment_tag}


def save_metadata(path, entries: dict[str, dict]) -> None:
    """metadata.json: {embodiment_tag: dataset_metadata(...)}."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        json.dump(entries, f, indent=2)


def load_metadata(path) -> dict[str, dict]:
    """metadata.json -> {tag: {"statistics": {"state"|"action": {name: {stat: float32}}}, ...}}."""
    with open(path) as f:
        raw = json.load(f)
    for tag, e in raw.items():
        for req in ("statistics", "modalities"):
            if req not in e:
                raise DataError(f"{path}: entry {tag!r} lacks {req!r}")
        e["statistics"] = {
            mod: {k: {s: np.asarray(v[s], np.float32) for s in STAT_NAMES} for k, v in d.items()}
            for mod, d in e["statistics"].items()
        }
    return raw


def stats_json_columns(source) -> dict | None:
    """The column stats of a source's meta/stats.json when it exists, loads and covers every
    state/action column the source reads; None otherwise (the original then recomputes)."""
    p = Path(source.root) / "meta" / "stats.json"
    if not p.exists():
        return None
    try:
        cols = load_stats_json(p)
    except (DataError, ValueError, KeyError):
        return None
    needed = {m.original_key for m in source.modality.state.values()}
    needed |= {m.original_key for m in source.modality.action.values()}
    return cols if needed <= set(cols) else None


def source_stats(source, use_stats_json: bool = True) -> dict:
    """Per-key stats of a source: from meta/stats.json when present and complete, else computed."""
    cols = stats_json_columns(source) if use_stats_json else None
    if cols is None:
        cols = compute_column_stats(source)
    return key_stats(source, cols)
