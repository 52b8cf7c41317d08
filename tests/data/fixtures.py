"""Fixtures for the data tests: a GR00T-flavour LeRobot v2.1 dataset of known content (tests/data/
synth.py, lossless libx264rgb video) and a tiny BPE tokenizer with the Eagle special tokens and the
spec's chat template, both made by the project's own writers (groot_jax.data.writers,
groot_jax.data.prompt.train_tiny_tokenizer)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from groot_jax.data.modality import DataConfig
from groot_jax.data.prompt import train_tiny_tokenizer
from groot_jax.data.writers import write_lerobot_v2
from tests.data import synth

TASKS = ["pick up the red cube", "open the drawer", "stack the blocks"]

# The data config of the v2.1 fixture dataset (write_v2_dataset), with one key of each
# normalization mode the original supports.
V2_DATA_CONFIG = DataConfig(
    name="t",
    embodiment_tag="new_embodiment",
    video_keys=("video.front", "video.wrist"),
    state_keys=("state.arm", "state.gripper"),
    action_keys=("action.arm", "action.gripper"),
    language_keys=("annotation.human.task_description",),
    state_normalization={"state.arm": "min_max", "state.gripper": "mean_std"},
    action_normalization={"action.arm": "q99", "action.gripper": "binary"},
)


def write_v2_dataset(
    root,
    lengths=(24, 9, 30),
    cameras=("front", "wrist"),
    hw=(60, 80),
    fps=10,
    state_dim=8,
    action_dim=7,
    state_dtype="float32",
    gop=2,
    modality_override=None,
    mutate_episode=None,
    first_episode=0,
    codec="libx264rgb",
) -> Path:
    """LeRobot v2.1 dataset, GR00T flavour, written by the project's writer
    (groot_jax.data.writers.write_lerobot_v2). State layout: arm [0:6] (absolute), gripper [6:8];
    action: arm [0:6] (absolute), gripper [6:7]. Episode e uses task TASKS[e % 3].
    `mutate_episode(e, columns_dict)` may alter the parquet columns of an episode (bad inputs)."""
    h, w = hw
    episodes = []
    for k, n in enumerate(lengths):
        e = first_episode + k
        state = np.stack([synth.state_row(e, i, state_dim) for i in range(n)])
        if state_dtype.startswith("int"):
            state = np.round(state * 100).astype(state_dtype)
        episodes.append({
            "frames": {c: np.stack([synth.frame(e, i, h, w, ci) for i in range(n)])
                       for ci, c in enumerate(cameras)},
            "state": state.astype(state_dtype),
            "actions": np.stack([synth.action_row(e, i, action_dim) for i in range(n)]),
            "task": TASKS[e % 3],
        })
    modality = modality_override or {
        "state": {"arm": {"start": 0, "end": 6}, "gripper": {"start": 6, "end": 8}},
        "action": {"arm": {"start": 0, "end": 6}, "gripper": {"start": 6, "end": 7}},
        "video": {c: {"original_key": f"observation.images.{c}"} for c in cameras},
        "annotation": {"human.task_description": {}},
    }
    return write_lerobot_v2(episodes, root, tasks=TASKS, fps=fps, modality=modality, codec=codec,
                            gop=gop, first_episode=first_episode, mutate_episode=mutate_episode)


# The spec's (3.5) chat template, written independently of groot_jax.data.prompt.
SPEC_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% set n = namespace(i=0) %}{% for c in message['content'] %}"
    "{% if c['type'] == 'image' %}{% set n.i = n.i + 1 %}<image-{{ n.i }}>"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def write_tokenizer(out) -> Path:
    """A tiny byte-level BPE on the fixture tasks, saved in the Hugging Face layout with the spec's
    chat template (the project's trainer, groot_jax.data.prompt.train_tiny_tokenizer)."""
    return train_tiny_tokenizer(out, TASKS, chat_template=SPEC_CHAT_TEMPLATE)
