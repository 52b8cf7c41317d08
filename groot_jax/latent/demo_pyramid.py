"""The synthetic demo pyramid that configs/pyramid_tiny.py trains on (groot_jax/train/pyramid.py):

    groot-jax latent-actions pyramid-demo runs/pyramid_tiny_data     # ~1 min on 2 cores

Four levels on the goal-reaching synthetic world, written as real datasets (groot_jax/data/writers.py):
robot and simulation as LeRobot v2.1 with recorded actions, human video and neural trajectories as
action-less video; a latent-action VQ-VAE labels the human video and an IDM the neural
trajectories (sidecars beside the datasets), plus a tiny tokenizer. The DataConfigs that read these
datasets are groot_jax.train.pyramid.demo_data_configs.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from groot_jax.data.episodes import open_episodes
from groot_jax.data.prompt import train_tiny_tokenizer
from groot_jax.data.writers import write_actionless, write_lerobot_v2
from groot_jax.latent import checkpoint
from groot_jax.latent.label import label_dataset
from groot_jax.latent.pairs import make_pairs
from groot_jax.latent.synthetic_world import WorldConfig, make_goal_episodes
from groot_jax.latent.train_idm import train_idm
from groot_jax.latent.train_lam import train_lam
from groot_jax.models.idm import IDMConfig
from groot_jax.models.latent_action import LatentActionConfig

TASK = "move the red dot"


def make_demo_data(root: str | Path, *, seed: int = 0, robot: int = 12, sim: int = 24,
                   human: int = 40, neural: int = 40, length: int = 32, lam_steps: int = 400,
                   idm_steps: int = 400, log=print) -> dict:
    """Write the demo pyramid under `root` (see the module docstring). Returns {name: path},
    also saved as `root/paths.json`."""
    root = Path(root)
    base = 1_000_000 * (seed + 1)
    world = WorldConfig()
    # "Simulation": the same dynamics with a flatter background (a rendering gap).
    sim_world = dataclasses.replace(world, texture_scale=0.1)
    eps = {"robot": make_goal_episodes(range(base, base + robot), length, world),
           "sim": make_goal_episodes(range(base + 10_000, base + 10_000 + sim), length, sim_world),
           "human": make_goal_episodes(range(base + 20_000, base + 20_000 + human), length, world),
           "neural": make_goal_episodes(range(base + 30_000, base + 30_000 + neural), length, world)}
    paths = {"robot": write_lerobot_v2(eps["robot"], root / "robot", tasks=(TASK,)),
             "sim": write_lerobot_v2(eps["sim"], root / "sim", tasks=(TASK,)),
             "human": write_actionless(eps["human"], root / "human", task=TASK),
             "neural": write_actionless(eps["neural"], root / "neural", task=TASK)}
    # The VQ-VAE learns from all video; the IDM from the action-labelled robot + sim episodes.
    lam_cfg = LatentActionConfig.tiny(horizon=1)
    pairs = make_pairs(eps["human"] + eps["neural"] + eps["robot"], lam_cfg.horizon)
    lam, _ = train_lam(lam_cfg, pairs, steps=lam_steps, seed=seed)
    checkpoint.save(lam, root / "lam")
    idm_cfg = IDMConfig.tiny(horizon=4, action_dim=2)
    idm, _ = train_idm(idm_cfg, make_pairs(eps["robot"] + eps["sim"], 4, with_chunks=True),
                       steps=idm_steps, seed=seed)
    checkpoint.save(idm, root / "idm", meta={"action_layout": [["move", 0, 2]]})
    quiet = lambda s: None  # noqa: E731
    paths["human.latent_actions"] = label_dataset(
        lam, open_episodes(paths["human"], lam_cfg.image_size), paths["human"],
        checkpoint=str(root / "lam"), log=quiet)[0]
    paths["neural.idm_actions"] = label_dataset(
        idm, open_episodes(paths["neural"], idm_cfg.image_size), paths["neural"],
        checkpoint=str(root / "idm"), embodiment="new_embodiment",
        action_layout=[["move", 0, 2]], log=quiet)[0]
    paths["tokenizer"] = train_tiny_tokenizer(root / "tokenizer", [TASK])
    (root / "paths.json").write_text(json.dumps({k: str(v) for k, v in paths.items()}, indent=1))
    log(f"demo pyramid in {root}: " + ", ".join(f"{k} ({len(v)} episodes)" for k, v in eps.items()))
    return paths
