"""Latent-action VQ-VAE and IDM on the synthetic world, over several seeds.

    .venv/bin/python experiments/latent_actions/run.py --seeds 0 1 2
    .venv/bin/python experiments/latent_actions/run.py --seeds 0 1 2 --no-restart   # ablation

About 30 s per seed on a 2-core CPU. Prints, per seed: LAM linear-probe R^2 on held-out pairs,
codebook usage (codes used / perplexity, as fractions of K), reconstruction loss first->last
(mean of 20 steps), and IDM held-out MAE / RMSE over the action range with the
predict-the-mean baseline. Settings are those of tests/latent (seed-dependent data here).
"""
import argparse
import json

import numpy as np

from groot_jax.latent.pairs import make_pairs
from groot_jax.latent.synthetic_world import make_episodes
from groot_jax.latent.train_idm import predict_chunks, relative_error, train_idm
from groot_jax.latent.train_lam import codebook_stats, encode_pairs, linear_probe_r2, train_lam
from groot_jax.models.idm import IDMConfig
from groot_jax.models.latent_action import LatentActionConfig


def run(seed: int, no_restart: bool = False) -> dict:
    base = 10_000 * (seed + 1)
    tr = make_pairs(make_episodes(range(base, base + 40), 32), 1)
    te = make_pairs(make_episodes(range(base + 5000, base + 5010), 32), 1)
    # dead_fraction=0 never restarts (and so also skips the data-dependent codebook init)
    cfg = LatentActionConfig.tiny(horizon=1, **({"dead_fraction": 0.0} if no_restart else {}))
    model, hist = train_lam(cfg, tr, steps=800, seed=seed)
    a, b = encode_pairs(model, tr["x0"], tr["x1"]), encode_pairs(model, te["x0"], te["x1"])
    out = {"seed": seed, "dead_code_restart": not no_restart,
           "probe_r2": linear_probe_r2(a["z_e"], tr["disp"], b["z_e"], te["disp"]),
           **codebook_stats(b["codes"], cfg.num_codes),
           "recon_first": float(np.mean([h["recon_loss"] for h in hist[:20]])),
           "recon_last": float(np.mean([h["recon_loss"] for h in hist[-20:]])),
           "recon_held_out": float(b["recon"].mean()),
           "recon_copy_baseline": float(np.mean((te["x0"] - te["x1"]) ** 2))}
    if no_restart:
        return out
    tr = make_pairs(make_episodes(range(base, base + 100), 32), 4, with_chunks=True)
    te = make_pairs(make_episodes(range(base + 5000, base + 5010), 32), 4, with_chunks=True)
    idm, _ = train_idm(IDMConfig.tiny(horizon=4), tr, steps=1000, seed=seed)
    flat = tr["chunk"].reshape(-1, 2)
    rng = flat.max(0) - flat.min(0)
    out["idm"] = relative_error(predict_chunks(idm, te), te["chunk"], rng)
    out["idm_mean_baseline"] = relative_error(np.broadcast_to(flat.mean(0), te["chunk"].shape),
                                              te["chunk"], rng)
    return out


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--no-restart", action="store_true", help="ablation: LAM without dead-code restart")
    args = p.parse_args()
    for s in args.seeds:
        print(json.dumps(run(s, args.no_restart)), flush=True)
