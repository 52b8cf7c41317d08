"""The synthetic demo pyramid that configs/pyramid_tiny.py trains on (`groot-jax train`, whose
data spec it is: `pyramid_data_spec`; groot_jax/train/input_pipeline.py reads it):

    groot-jax latent-actions pyramid-demo runs/pyramid_tiny_data     # ~1 min on 2 cores

Four levels on the goal-reaching synthetic world, written as real datasets (groot_jax/data/writers.py):
robot and simulation as LeRobot v2.1 with recorded actions, human video and neural trajectories as
action-less video; a latent-action VQ-VAE labels the human video and an IDM the neural
trajectories (sidecars beside the datasets), plus a tiny tokenizer. Their data configs are derived
from the datasets and sidecars (groot_jax/data/dataset_config.py). `tiny_model_overrides` sizes the
tiny preset to these worlds.
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
from groot_jax.train.data_spec import DatasetSpec, DataSpec

TASK = "move the red dot"
# The pyramid's levels and their shares of the batch: few real-robot frames, more simulation,
# most video.
LEVEL_WEIGHTS = (("real_robot", 0.3), ("simulation", 0.2), ("human_video", 0.3),
                 ("neural_trajectories", 0.2))
FUTURE_OFFSET = 4   # FLARE: the future frame 4 steps ahead
LATENT_TAG = "latent_action"   # the latent actions' projector slot (groot_jax/data/embodiments.py)


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


def pyramid_data_spec(root: str | Path, *, future_offset: int = FUTURE_OFFSET,
                      max_seq_len: int | None = 64, **options) -> DataSpec:
    """The demo pyramid under `root` as a run's data spec: robot and simulation with recorded
    actions (new_embodiment slot), human video half with latent actions (latent_action slot)
    and half FLARE-only, neural trajectories with IDM pseudo-actions (new_embodiment slot)."""
    root = Path(root)
    if not (root / "paths.json").exists():
        raise FileNotFoundError(f"{root}: no demo pyramid; run `groot-jax latent-actions "
                                f"pyramid-demo {root}`")
    return DataSpec(
        source="datasets", tokenizer=str(root / "tokenizer"), future_offset=future_offset,
        max_seq_len=max_seq_len, level_weights=LEVEL_WEIGHTS, datasets=(
            DatasetSpec(str(root / "robot"), level="real_robot"),
            DatasetSpec(str(root / "sim"), level="simulation"),
            DatasetSpec(str(root / "human"), kind="actionless",
                        action_sidecar=str(root / "human.latent_actions"), level="human_video"),
            DatasetSpec(str(root / "human"), kind="actionless", level="human_video"),
            DatasetSpec(str(root / "neural"), kind="actionless",
                        action_sidecar=str(root / "neural.idm_actions.new_embodiment"),
                        level="neural_trajectories")),
        **options)


def tiny_model_overrides(vocab_size: int | None = None, image_token_index: int | None = None,
                         *, image_size: int = 32, patch_size: int = 8, action_horizon: int = 8,
                         flare: bool = True, flare_weight: float = 0.2) -> tuple:
    """`TrainConfig.model_overrides` for the tiny preset on the synthetic worlds: small images
    (16 tokens), a short action horizon, FLARE on or off, and the tokenizer's vocabulary size and
    <IMG_CONTEXT> id when given (a run config can leave them to TrainConfig.model_from_tokenizer)."""
    from groot_jax.config import FlareConfig, GR00TConfig

    base = GR00TConfig.tiny()
    bb = dataclasses.replace(base.backbone, vision=dataclasses.replace(
        base.backbone.vision, image_size=image_size, patch_size=patch_size))
    if vocab_size is not None or image_token_index is not None:   # together: they must agree
        bb = dataclasses.replace(
            bb, llm=dataclasses.replace(bb.llm, vocab_size=vocab_size or bb.llm.vocab_size),
            image_token_index=bb.image_token_index if image_token_index is None
            else image_token_index)
    ah = dataclasses.replace(base.action_head, action_horizon=action_horizon,
                             flare=FlareConfig(enabled=flare, weight=flare_weight))
    return (("backbone", bb), ("action_head", ah))


def demo_data_configs(action_horizon: int = 8, image_size: int = 32) -> dict:
    """Hand-written DataConfigs of the demo pyramid's datasets (groot_jax.data.writers' default
    keys; no state, no colour jitter), for experiments that build their own mixtures
    (experiments/pyramid/run.py); `groot-jax train` derives its configs from the datasets."""
    from groot_jax.data.modality import DataConfig

    common = dict(language_keys=("annotation.human.task_description",), state_keys=(),
                  action_indices=tuple(range(action_horizon)), image_size=image_size,
                  color_jitter=None)
    robot = DataConfig(name="robot", embodiment_tag="new_embodiment", video_keys=("video.front",),
                       action_keys=("action.move",),
                       action_normalization={"action.move": "min_max"}, **common)
    video = dict(common, video_keys=("video.ego_view",))
    return {
        "robot": robot,
        "latent": DataConfig(name="latent", embodiment_tag=LATENT_TAG,
                             action_keys=("action.latent",),
                             action_normalization={"action.latent": "min_max"}, **video),
        "idm": DataConfig(name="idm", embodiment_tag="new_embodiment",
                          action_keys=("action.move",),
                          action_normalization={"action.move": "min_max"}, **video),
        "video": DataConfig(name="video", embodiment_tag="new_embodiment", action_keys=(), **video),
    }
