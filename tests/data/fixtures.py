"""Fixture writers for the data tests: a GR00T-flavour LeRobot v2.1 dataset written with pyarrow +
PyAV exactly as the format specifies (lossless libx264rgb video), and a tiny BPE tokenizer saved in
the Hugging Face layout with the Eagle special tokens and chat template."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from groot_jax.data.modality import DataConfig
from groot_jax.data.video import write_video
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
    """LeRobot v2.1 dataset, GR00T flavour. State layout: arm [0:6] (absolute), gripper [6:8];
    action: arm [0:6] (absolute), gripper [6:7]. Episode e uses task TASKS[e % 3].
    `mutate_episode(e, columns_dict)` may alter the parquet columns of an episode (bad inputs)."""
    root = Path(root)
    (root / "meta").mkdir(parents=True, exist_ok=True)
    h, w = hw
    features = {
        "observation.state": {"dtype": state_dtype, "shape": [state_dim], "names": None},
        "action": {"dtype": "float32", "shape": [action_dim], "names": None},
        "timestamp": {"dtype": "float32", "shape": [1], "names": None},
        "frame_index": {"dtype": "int64", "shape": [1], "names": None},
        "episode_index": {"dtype": "int64", "shape": [1], "names": None},
        "index": {"dtype": "int64", "shape": [1], "names": None},
        "task_index": {"dtype": "int64", "shape": [1], "names": None},
        "annotation.human.task_description": {"dtype": "int64", "shape": [1], "names": None},
    }
    for c in cameras:
        features[f"observation.images.{c}"] = {
            "dtype": "video",
            "shape": [h, w, 3],
            "names": ["height", "width", "channel"],
            "info": {
                "video.fps": fps,
                "video.height": h,
                "video.width": w,
                "video.channels": 3,
                "video.codec": "h264",
                "video.pix_fmt": "rgb24",
                "video.is_depth_map": False,
                "has_audio": False,
            },
        }
    info = {
        "codebase_version": "v2.1",
        "robot_type": "synthetic",
        "fps": fps,
        "chunks_size": 1000,
        "total_episodes": len(lengths),
        "total_frames": int(sum(lengths)),
        "total_tasks": len(TASKS),
        "splits": {"train": f"0:{len(lengths)}"},
        "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
        "video_path": "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4",
        "features": features,
    }
    (root / "meta" / "info.json").write_text(json.dumps(info, indent=2))
    modality = modality_override or {
        "state": {"arm": {"start": 0, "end": 6}, "gripper": {"start": 6, "end": 8}},
        "action": {"arm": {"start": 0, "end": 6}, "gripper": {"start": 6, "end": 7}},
        "video": {c: {"original_key": f"observation.images.{c}"} for c in cameras},
        "annotation": {"human.task_description": {}},
    }
    (root / "meta" / "modality.json").write_text(json.dumps(modality, indent=2))
    with open(root / "meta" / "tasks.jsonl", "w") as f:
        for i, t in enumerate(TASKS):
            f.write(json.dumps({"task_index": i, "task": t}) + "\n")
    index = 0
    with open(root / "meta" / "episodes.jsonl", "w") as f:
        for k, n in enumerate(lengths):
            e = first_episode + k
            f.write(json.dumps({"episode_index": e, "tasks": [TASKS[e % 3]], "length": n}) + "\n")
            state = np.stack([synth.state_row(e, i, state_dim) for i in range(n)])
            if state_dtype.startswith("int"):
                state = np.round(state * 100).astype(state_dtype)
            cols = {
                "observation.state": state,
                "action": np.stack([synth.action_row(e, i, action_dim) for i in range(n)]),
                "timestamp": (np.arange(n) / fps).astype(np.float32),
                "frame_index": np.arange(n, dtype=np.int64),
                "episode_index": np.full(n, e, np.int64),
                "index": np.arange(index, index + n, dtype=np.int64),
                "task_index": np.full(n, e % 3, np.int64),
                "annotation.human.task_description": np.full(n, e % 3, np.int64),
            }
            if mutate_episode is not None:
                mutate_episode(e, cols)
            arrays = {}
            for name, v in cols.items():
                v = np.asarray(v)
                if v.ndim == 2:
                    arrays[name] = pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), v.shape[1])
                else:
                    arrays[name] = pa.array(v)
            p = root / info["data_path"].format(episode_chunk=e // 1000, episode_index=e)
            p.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.table(arrays), p)
            for ci, c in enumerate(cameras):
                vp = root / info["video_path"].format(
                    episode_chunk=e // 1000, episode_index=e, video_key=f"observation.images.{c}"
                )
                vp.parent.mkdir(parents=True, exist_ok=True)
                write_video(
                    str(vp), np.stack([synth.frame(e, i, h, w, ci) for i in range(n)]), fps,
                    codec=codec, gop=gop,
                )
            index += n
    return root


IMAGE_TOKENS = ["<|im_start|>", "<|im_end|>", "<img>", "</img>", "<IMG_CONTEXT>", "<|endoftext|>"]

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
    """Train a tiny byte-level BPE and save it in the Hugging Face layout (tokenizer.json +
    tokenizer_config.json with the chat template)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    out = Path(out)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = (
        TASKS * 20
        + [
            "You are a helpful assistant.",
            "system user assistant image",
            "Perform the default behavior.",
            "['pick up the red cube']",
        ]
        * 20
    )
    tok.train_from_iterator(
        corpus,
        trainers.BpeTrainer(
            vocab_size=400,
            special_tokens=IMAGE_TOKENS,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<|endoftext|>",
        eos_token="<|im_end|>",
        additional_special_tokens=IMAGE_TOKENS[:5],
    )
    fast.chat_template = SPEC_CHAT_TEMPLATE
    fast.save_pretrained(out)
    return out
