"""Open-loop evaluation: predicted vs recorded action trajectories on held-out episodes.

Like the original's `eval_policy.py`, but jit-compiled and batched across episodes: every
`every` frames of every episode the policy predicts a chunk from the recorded observation; the
first `every` steps of each chunk are stitched into a trajectory and compared with the recorded
actions (dataset units). Reports MSE and MAE per action key and writes one PNG per episode
and key with predicted vs true curves per joint.

The baseline beside them: predicting the mean action of the model's training statistics at
every frame (`mean_action`: its MSE and MAE, per key and over all). A model that has learned
anything from the observations beats it; one that has not is no better than a constant.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from groot_jax.eval.policy import Policy


def _observation(raws: list[dict], policy: Policy) -> dict:
    cfg = policy.data_config
    obs = {k: np.stack([r[k] for r in raws]) for k in (*cfg.video_keys, *cfg.state_keys)}
    for k in cfg.language_keys:
        obs[k] = [r[k] for r in raws]
    return obs


def open_loop(policy: Policy, source, episodes: list[int], *, every: int = 16,
              batch_size: int = 8, plot_dir: str | Path | None = None) -> dict:
    """Metrics over the episodes at positions `episodes` of `source` (an episode source of
    groot_jax.data). Returns {"per_key": {key: {"mse", "mae"}}, "mse", "mae", "episodes",
    "predictions": {pos: {key: [T, d]}}, "truth": {...}, "plots": [paths]}."""
    cfg = policy.data_config
    horizon = len(cfg.action_indices)
    if not 1 <= every <= horizon:
        raise ValueError(f"every={every} must be within 1..{horizon} (the action horizon)")
    if not source.has_actions:
        raise ValueError(f"{source.name}: open-loop evaluation needs recorded actions")
    lengths = {pos: int(source.episode_lengths[pos]) for pos in episodes}
    truth = {pos: {k: source.state_action(source.episode(pos), k, np.arange(n))
                   for k in cfg.action_keys} for pos, n in lengths.items()}
    preds = {pos: {k: np.full_like(v, np.nan) for k, v in truth[pos].items()}
             for pos in episodes}
    jobs = [(pos, t) for pos in episodes for t in range(0, lengths[pos], every)]
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start:start + batch_size]
        out = policy.get_action(_observation([source.get(p, t, cfg) for p, t in chunk], policy))
        for i, (pos, t) in enumerate(chunk):
            n = min(every, lengths[pos] - t)
            for k in cfg.action_keys:
                preds[pos][k][t:t + n] = out[k][i, :n]
    mean = {k: policy.statistics["action"][k.split(".", 1)[1]]["mean"] for k in cfg.action_keys}
    baseline = {pos: {k: np.broadcast_to(mean[k], v.shape) for k, v in keys.items()}
                for pos, keys in truth.items()}
    model_err, per_key = _errors(preds, truth, episodes, cfg.action_keys)
    base_err, base_per_key = _errors(baseline, truth, episodes, cfg.action_keys)
    plots = _plot(preds, truth, source, plot_dir) if plot_dir is not None else []
    return {"per_key": per_key, **model_err, "episodes": len(episodes),
            "mean_action": {"per_key": base_per_key, **base_err},
            "predictions": preds, "truth": truth, "plots": plots}


def _errors(preds, truth, episodes, keys) -> tuple[dict, dict]:
    """({"mse", "mae"} over every key, {key: {"mse", "mae"}})."""
    per_key = {}
    for k in keys:
        err = np.concatenate([preds[p][k] - truth[p][k] for p in episodes])
        per_key[k] = {"mse": float(np.mean(err**2)), "mae": float(np.mean(np.abs(err)))}
    err = np.concatenate([np.concatenate([preds[p][k] - truth[p][k] for k in keys], -1)
                          for p in episodes])
    return {"mse": float(np.mean(err**2)), "mae": float(np.mean(np.abs(err)))}, per_key


def _plot(preds, truth, source, plot_dir) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plot_dir = Path(plot_dir)
    plot_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for pos, keys in preds.items():
        episode = int(source.episode_indices[pos])
        for key, pred in keys.items():
            dims = pred.shape[1]
            fig, axes = plt.subplots(dims, 1, figsize=(7, 1.6 * dims), sharex=True, squeeze=False)
            for d in range(dims):
                ax = axes[d, 0]
                ax.plot(truth[pos][key][:, d], label="recorded", color="black", lw=1.2)
                ax.plot(pred[:, d], label="predicted", color="tab:orange", lw=1.0)
                ax.set_ylabel(f"{d}")
            axes[0, 0].set_title(f"{source.name} episode {episode}: {key}")
            axes[0, 0].legend(loc="upper right", fontsize=7)
            axes[-1, 0].set_xlabel("frame")
            fig.tight_layout()
            path = plot_dir / f"episode_{episode:06d}_{key.replace('.', '_')}.png"
            fig.savefig(path, dpi=80)
            plt.close(fig)
            paths.append(str(path))
    return paths


def summary_json(result: dict, **extra) -> str:
    """The summary written as open_loop.json: metrics, the mean-action baseline, plot paths,
    and `extra` (e.g. which model, dataset and data config were evaluated)."""
    keys = ("per_key", "mse", "mae", "mean_action", "episodes", "plots")
    return json.dumps({**extra, **{k: result[k] for k in keys}}, indent=2)
