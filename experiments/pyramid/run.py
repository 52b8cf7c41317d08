"""Few action-labelled episodes + many action-less ones: does the action-less video help?

World: the goal-reaching synthetic world (groot_jax/latent/synthetic_world.py:
make_goal_episode): a red blob moves toward a green goal dot drawn in the 32x32 frame, so the
action chunk is (up to small noise) a function of the frame. Per seed:

  labelled   L robot episodes (LeRobot v2.1, recorded actions)
  unlabelled U episodes of the same world written as action-less video (actions dropped)
  held-out   E robot episodes, never trained on

Everything goes through the real stack: the datasets are written to disk, the VQ-VAE is trained
on all training video (labelled + unlabelled frames) and labels the action-less video, the IDM is
trained on the labelled episodes only and labels the action-less video, and the samples come out of
groot_jax.data (sidecar actions, normalization, embodiment slots, future frames) and are trained
with groot_jax.train.loop.train. Variants of the tiny GR00T policy (same steps, batch, lr, init):

  (a) labelled       labelled episodes only
  (b) +latent        + action-less video with latent actions in the `latent_action` slot
  (c) +IDM           + action-less video with IDM pseudo-actions in the robot slot
  (d) +FLARE         + action-less video, flow matching masked, FLARE alignment (model FLARE on)

In (b)-(d) half of each batch is labelled robot data and half action-less video. Evaluation:
open-loop action chunks (8 steps x 2 dims, 4 Euler steps, fixed noise) on every frame of the
held-out episodes; MAE in the dataset's action units divided by the action range (max - min of
the labelled actions), and the same for predicting the mean labelled chunk.

    .venv/bin/python experiments/pyramid/run.py --seeds 0            # ~10 min on 2 CPU cores
    .venv/bin/python experiments/pyramid/run.py --seeds 0 1 2 --out runs/pyramid_exp
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import grain
import jax
import numpy as np

from groot_jax.data.episodes import open_episodes
from groot_jax.data.mixture import SourceSpec, mixture_stats, open_source
from groot_jax.data.pipeline import PipelineConfig, build_pipeline
from groot_jax.data.prompt import PromptTokenizer, train_tiny_tokenizer
from groot_jax.data.sidecar import load_episode
from groot_jax.data.writers import write_actionless, write_lerobot_v2
from groot_jax.latent import checkpoint
from groot_jax.latent.demo_pyramid import demo_data_configs, tiny_model_overrides
from groot_jax.latent.label import label_dataset
from groot_jax.latent.pairs import make_pairs
from groot_jax.latent.synthetic_world import make_goal_episodes
from groot_jax.latent.train_idm import relative_error, train_idm
from groot_jax.latent.train_lam import codebook_stats, encode_pairs, linear_probe_r2, train_lam
from groot_jax.models.idm import IDMConfig
from groot_jax.models.latent_action import LatentActionConfig
from groot_jax.train import loop
from groot_jax.train import step as step_lib
from groot_jax.train.config import MeshConfig, OptimConfig, TrainConfig
from groot_jax.train.input_pipeline import MODEL_KEYS

HORIZON = 8          # action chunk of the policy
FUTURE = 4           # FLARE future frame offset
IDM_H = 4
N_SAMPLES = 8        # evaluation: one sampled chunk, and the mean of this many
VARIANTS = ("labelled", "+latent", "+IDM", "+FLARE")


def materialise(spec: SourceSpec, stats: dict, tok: PromptTokenizer, future: bool) -> dict:
    """Every frame of a source through the data layer (eval mode: centre crop, no jitter)."""
    pcfg = PipelineConfig(batch_size=64, train=False, drop_remainder=False, max_seq_len=64,
                          future_offset=FUTURE if future else None, shard_index=0, shard_count=1)
    pipe = build_pipeline([spec], pcfg, tok, stats=stats)
    batches = list(iter(pipe))
    return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}


class MixedBatches(grain.MapDataset):
    """Batch i: each row from `main` with probability p_main else from `extra`, rows drawn with
    an rng seeded by (seed, i), so the stream is a pure function of the index (resumable)."""

    def __init__(self, main: dict, extra: dict | None, p_main: float, batch: int, keys, seed: int):
        super().__init__()
        self.main, self.extra, self.p, self.b = main, extra, p_main, batch
        self.keys, self.seed = keys, seed

    def __len__(self):
        return 10**9

    def __getitem__(self, i):
        r = np.random.default_rng([self.seed, int(i)])
        use_main = r.random(self.b) < self.p if self.extra is not None else np.ones(self.b, bool)
        out = {}
        for k in self.keys:
            a = self.main[k][r.integers(0, len(self.main[k]), self.b)]
            if self.extra is not None:
                e = self.extra[k][r.integers(0, len(self.extra[k]), self.b)]
                if a.shape[1:] != e.shape[1:]:
                    raise ValueError(f"{k}: shapes {a.shape} vs {e.shape}")
                a = np.where(use_main.reshape((-1,) + (1,) * (a.ndim - 1)), a, e)
            out[k] = a
        return out


def build_data(root: Path, seed: int, n_lab: int, n_unl: int, n_eval: int, length: int,
               lam_steps: int, idm_steps: int, log) -> dict:
    base = 7_000_000 + 100_000 * seed
    lab = make_goal_episodes(range(base, base + n_lab), length)
    unl = make_goal_episodes(range(base + 10_000, base + 10_000 + n_unl), length)
    held = make_goal_episodes(range(base + 20_000, base + 20_000 + n_eval), length)
    paths = {"lab": write_lerobot_v2(lab, root / "labelled"),
             "unl": write_actionless(unl, root / "video"),
             "held": write_lerobot_v2(held, root / "held_out")}
    info = {}
    # Latent actions: the VQ-VAE trains on all training video (it needs no actions).
    t0 = time.time()
    lam_cfg = LatentActionConfig.tiny(horizon=1)
    lam, hist = train_lam(lam_cfg, make_pairs(lab + unl, 1), steps=lam_steps, seed=seed)
    checkpoint.save(lam, root / "lam")
    label_dataset(lam, open_episodes(paths["unl"], lam_cfg.image_size), paths["unl"],
                  checkpoint=str(root / "lam"), log=lambda s: None)
    # Probe the latent actions against the true actions of the action-less video (known here).
    pl, pu = make_pairs(lab, 1), make_pairs(unl, 1)
    a, b = encode_pairs(lam, pl["x0"], pl["x1"]), encode_pairs(lam, pu["x0"], pu["x1"])
    info["lam"] = {"probe_r2_lab_to_unl": linear_probe_r2(a["z_e"], pl["disp"], b["z_e"], pu["disp"]),
                   **codebook_stats(b["codes"], lam_cfg.num_codes),
                   "recon_first": float(np.mean([h["recon_loss"] for h in hist[:20]])),
                   "recon_last": float(np.mean([h["recon_loss"] for h in hist[-20:]]))}
    # IDM: trained on the labelled episodes only, then labels the action-less video.
    idm_cfg = IDMConfig.tiny(horizon=IDM_H, action_dim=2)
    idm, _ = train_idm(idm_cfg, make_pairs(lab, IDM_H, with_chunks=True), steps=idm_steps, seed=seed)
    checkpoint.save(idm, root / "idm", meta={"action_layout": [["move", 0, 2]]})
    sc, _ = label_dataset(idm, open_episodes(paths["unl"], idm_cfg.image_size), paths["unl"],
                          checkpoint=str(root / "idm"), embodiment="new_embodiment",
                          action_layout=[["move", 0, 2]], log=lambda s: None)
    flat = np.concatenate([e["actions"][:-1] for e in lab])
    rng_ = flat.max(0) - flat.min(0)
    # Pseudo-action vs true action of the same step, on the rows whose pair was complete.
    pred = np.concatenate([load_episode(sc, i)["actions"][:length - IDM_H] for i in range(n_unl)])
    true = np.concatenate([e["actions"][:length - IDM_H] for e in unl])
    info["idm"] = relative_error(pred, true, rng_)
    info["action_range"] = rng_.tolist()
    log(f"  LAM + IDM trained and labelled ({time.time() - t0:.0f}s): {json.dumps(info)}")

    # Samples through the data layer. Statistics: the labelled robot data for the robot slot
    # (all variants normalise robot actions identically), the sidecar for the latent slot.
    tok = PromptTokenizer(str(train_tiny_tokenizer(root / "tokenizer", ["move the red dot"])),
                          tokens_per_image=16)
    c = demo_data_configs(HORIZON)
    specs = {"lab": SourceSpec(str(paths["lab"]), c["robot"]),
             "held": SourceSpec(str(paths["held"]), c["robot"]),
             "latent": SourceSpec(str(paths["unl"]), c["latent"], kind="actionless",
                                  action_sidecar=str(root / "video.latent_actions")),
             "idm": SourceSpec(str(paths["unl"]), c["idm"], kind="actionless",
                               action_sidecar=str(root / "video.idm_actions.new_embodiment")),
             "video": SourceSpec(str(paths["unl"]), c["video"], kind="actionless")}
    stats = mixture_stats([open_source(specs["lab"]), open_source(specs["latent"])],
                          [specs["lab"], specs["latent"]])
    t0 = time.time()
    data = {k: materialise(s, stats, tok, future=True) for k, s in specs.items()}
    log(f"  samples materialised ({time.time() - t0:.0f}s): "
        + ", ".join(f"{k} {len(v['action'])}" for k, v in data.items()))
    amin = np.asarray(stats["new_embodiment"]["action"]["move"]["min"], np.float64)
    amax = np.asarray(stats["new_embodiment"]["action"]["move"]["max"], np.float64)
    return {"data": data, "info": info, "tok": tok, "amin": amin, "amax": amax,
            "range": rng_}


def train_variant(name: str, d: dict, seed: int, steps: int, batch: int, lr: float, log) -> dict:
    tok, data = d["tok"], d["data"]
    vocab = len(tok.tokenizer)
    flare = name == "+FLARE"
    cfg = TrainConfig(
        name=f"pyramid_exp_{name}", model="tiny",
        model_overrides=tiny_model_overrides(vocab, tok.image_token_id, action_horizon=HORIZON,
                                             flare=flare),
        tune_visual=True, tune_llm=True, param_dtype="float32", frozen_dtype="float32",
        compute_dtype="float32", batch_size=batch, steps=steps, seed=seed, log_every=10**9,
        progress=False, optim=OptimConfig(lr=lr, warmup_ratio=0.05),
        mesh=MeshConfig(min_shard_bytes=0))
    extra = {"labelled": None, "+latent": data["latent"], "+IDM": data["idm"],
             "+FLARE": data["video"]}[name]
    keys = MODEL_KEYS + (("future_pixel_values", "future_mask") if flare else ())
    it = iter(MixedBatches(data["lab"], extra, 0.5, batch, keys, seed).to_iter_dataset())
    t0 = time.time()
    result = loop.train(cfg, data_iter=it, log=lambda s: None)
    train_s = time.time() - t0
    losses = [result.losses[k] for k in sorted(result.losses)]
    # Open-loop evaluation on every held-out frame, fixed noise.
    sample = jax.jit(step_lib.make_sample_fn(result.setup.fns, cfg, num_steps=4))
    held = data["held"]
    n = len(held["action"])
    draws = []  # N_SAMPLES chunks per frame, each from its own fixed noise (same for all variants)
    for k in range(N_SAMPLES):
        preds = []
        for i in range(0, n, 64):
            sl = slice(i, min(i + 64, n))
            inputs = {key: held[key][sl] for key in ("input_ids", "attention_mask", "pixel_values",
                                                     "state", "embodiment_id")}
            m = len(inputs["state"])
            if m < 64:  # pad to one shape: one compile
                inputs = {key: np.concatenate([v, np.repeat(v[-1:], 64 - m, 0)])
                          for key, v in inputs.items()}
            rng = jax.random.key(1000 * k + i)
            preds.append(np.asarray(sample(result.state, inputs, rng))[:m])
        draws.append(np.concatenate(preds)[..., :2])
    single = score(draws[0], held, d)
    avg = score(np.mean(draws, 0), held, d)
    return {"variant": name, "train_s": round(train_s, 1), "loss_first": float(np.mean(losses[:10])),
            "loss_last": float(np.mean(losses[-10:])), **single,
            f"mae_over_range_mean_of_{N_SAMPLES}": avg["mae_over_range"]}


def to_raw(y: np.ndarray, d: dict) -> np.ndarray:
    """min_max-normalised [-1, 1] -> action units."""
    return (y + 1) / 2 * (d["amax"] - d["amin"]) + d["amin"]


def score(pred_norm: np.ndarray, held: dict, d: dict) -> dict:
    true = to_raw(held["action"][..., :2], d)
    err = np.abs(to_raw(pred_norm, d) - true)  # [N, H, 2]
    return {"mae_over_range": float(np.mean(err.mean((0, 1)) / d["range"])),
            "first_step_mae_over_range": float(np.mean(err[:, 0].mean(0) / d["range"]))}


def run_seed(seed: int, args, log=print) -> dict:
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix=f"pyramid_exp{seed}_") as tmp:
        d = build_data(Path(tmp), seed, args.labelled, args.unlabelled, args.held_out, args.length,
                       args.lam_steps, args.idm_steps, log)
    lab = d["data"]["lab"]
    mean_chunk = lab["action"][..., :2].mean(0)
    held = d["data"]["held"]
    out = {"seed": seed, **d["info"],
           "mean_action_baseline": score(np.broadcast_to(mean_chunk, held["action"][..., :2].shape),
                                         held, d), "variants": []}
    log(f"  mean-action baseline: {out['mean_action_baseline']}")
    for name in args.variants:
        r = train_variant(name, d, seed, args.steps, args.batch, args.lr, log)
        log(f"  {json.dumps(r)}")
        out["variants"].append(r)
    out["total_s"] = round(time.time() - t0, 1)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--labelled", type=int, default=6, help="action-labelled episodes")
    p.add_argument("--unlabelled", type=int, default=60, help="action-less episodes")
    p.add_argument("--held-out", type=int, default=12)
    p.add_argument("--length", type=int, default=32)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lam-steps", type=int, default=600)
    p.add_argument("--idm-steps", type=int, default=600)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--out", type=Path, help="write results.json here")
    p.add_argument("--compile-cache", default=str(Path(tempfile.gettempdir()) / "groot_jax_xla_cache"),
                   help="persistent XLA cache: variants (a)-(c) share one train-step program")
    args = p.parse_args()
    if args.compile_cache:
        jax.config.update("jax_compilation_cache_dir", args.compile_cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    results = []
    for s in args.seeds:
        print(f"seed {s}", flush=True)
        results.append(run_seed(s, args, log=lambda m: print(m, flush=True)))
    summary = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
               "results": results}
    for name in args.variants:
        vals = [next(v for v in r["variants"] if v["variant"] == name)["mae_over_range"]
                for r in results]
        print(f"{name:10s} MAE/range " + " ".join(f"{v:.3f}" for v in vals)
              + f"   mean {np.mean(vals):.3f}")
    base = [r["mean_action_baseline"]["mae_over_range"] for r in results]
    print(f"{'mean-act':10s} MAE/range " + " ".join(f"{v:.3f}" for v in base)
          + f"   mean {np.mean(base):.3f}")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
