"""`Policy`: observation dict (the original's keys) -> un-normalised action chunk.

    policy = Policy("ckpt_dir", groot_jax.data.embodiments.so100())
    action = policy.get_action({"video.webcam": uint8 [T, H, W, 3] or [B, T, H, W, 3],
                                "state.single_arm": [T, 5] or [B, T, 5], ...,
                                "annotation.human.task_description": "pick the cube"})
    action["action.single_arm"]  # [16, 5] (or [B, 16, 5]) in the dataset's units

Inputs pass the eval transforms of the data layer (centre crop 0.95, resize to 224x224, state
normalisation, padding to 64 dims, the Eagle prompt with the original's inference language
formatting `str([text])`, spec 3.5) and the jit-compiled sampler; outputs are split per action
key and un-normalised (spec 9.3). Statistics and modality shapes come from the checkpoint's
metadata for the data config's embodiment tag.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np

from groot_jax.convert.checkpoint import load_pretrained
from groot_jax.data.modality import DataConfig, LeRobotModality, StateActionMeta
from groot_jax.data.prompt import PromptTokenizer, left_pad
from groot_jax.data.transforms import SampleTransform


def modality_from_metadata(meta: dict, data_config: DataConfig) -> LeRobotModality:
    """The state/action layout recorded in a checkpoint's metadata (shapes, absolute,
    rotation types) as a modality table; slices are laid out in the metadata's key order."""
    tables = {}
    for group, default in (("state", "observation.state"), ("action", "action")):
        start, table = 0, {}
        for name, m in meta["modalities"][group].items():
            dim = int(m["shape"][0])
            table[name] = StateActionMeta(start=start, end=start + dim, original_key=default,
                                          absolute=bool(m.get("absolute", True)),
                                          rotation_type=m.get("rotation_type"))
            start += dim
        tables[group] = table
    video = {k.split(".", 1)[1]: f"observation.images.{k.split('.', 1)[1]}"
             for k in data_config.video_keys}
    annotation = {k.split(".", 1)[1]: k for k in data_config.language_keys}
    return LeRobotModality(state=tables["state"], action=tables["action"], video=video,
                           annotation=annotation)


def _stats_arrays(statistics: dict) -> dict:
    return {group: {name: {s: np.asarray(v, np.float32) for s, v in stats.items()}
                    for name, stats in keys.items()}
            for group, keys in statistics.items()}


class Policy:
    def __init__(self, model_path, data_config: DataConfig, *, tokenizer_dir=None,
                 num_steps: int = 4, dtype=None, seed: int = 0, max_seq_len: int | None = None):
        self.cfg, self.fns, self.params, metadata = load_pretrained(model_path, dtype=dtype)
        self.data_config, self.num_steps, self.max_seq_len = data_config, num_steps, max_seq_len
        tag = data_config.embodiment_tag
        if tag not in metadata:
            raise ValueError(f"{model_path}: metadata has no embodiment {tag!r} (it has "
                             f"{sorted(metadata)}); train or import a checkpoint for it")
        meta = metadata[tag]
        modality = modality_from_metadata(meta, data_config)
        tokenizer = PromptTokenizer(str(tokenizer_dir or model_path),
                                    expected_image_token_id=self.cfg.backbone.image_token_index)
        self.transform = SampleTransform(data_config, modality, _stats_arrays(meta["statistics"]),
                                         tokenizer, has_actions=False,
                                         inference_language_quirk=True)
        self.pad_id = tokenizer.pad_token_id
        self._key, self._calls = jax.random.key(seed), 0
        fns = self.fns
        self._sample = jax.jit(lambda p, inputs, key, noise: fns.sample_actions(
            p, inputs, key, num_steps=num_steps, noise=noise))

    def metadata(self) -> dict[str, Any]:
        return {"model": self.cfg.name, "embodiment_tag": self.data_config.embodiment_tag,
                "video_keys": list(self.data_config.video_keys),
                "state_keys": list(self.data_config.state_keys),
                "action_keys": list(self.data_config.action_keys),
                "language_keys": list(self.data_config.language_keys),
                "action_horizon": self.cfg.action_head.action_horizon}

    # ---- observation -> model inputs --------------------------------------------------------
    def _split(self, obs: dict) -> tuple[list[dict], bool]:
        cfg = self.data_config
        missing = [k for k in (*cfg.video_keys, *cfg.state_keys) if k not in obs]
        if missing:
            raise ValueError(f"observation lacks {missing}; expected keys {self.metadata()}")
        first = np.asarray(obs[cfg.video_keys[0]] if cfg.video_keys else obs[cfg.state_keys[0]])
        batched = first.ndim == (5 if cfg.video_keys else 3)
        size = len(first) if batched else 1
        samples = []
        for b in range(size):
            s = {}
            for k in (*cfg.video_keys, *cfg.state_keys):
                v = np.asarray(obs[k])
                want = 5 if k.startswith("video.") else 3
                if v.ndim != (want if batched else want - 1) or (batched and len(v) != size):
                    raise ValueError(f"{k}: expected {'[B, ' if batched else '['}T, ...] with "
                                     f"{want - (not batched)} dims, got shape {list(v.shape)}")
                s[k] = v[b] if batched else v
            for k in cfg.language_keys:
                text = obs.get(k)
                if batched and isinstance(text, (list, tuple, np.ndarray)):
                    text = text[b]
                s[k] = text
            samples.append(s)
        return samples, batched

    def prepare(self, obs: dict) -> tuple[dict, bool]:
        """Model inputs for an observation (and whether it was batched)."""
        samples, batched = self._split(obs)
        items = [self.transform(s, None) for s in samples]
        ids, mask = left_pad([it["input_ids"] for it in items], self.pad_id, self.max_seq_len)
        inputs = {"input_ids": ids, "attention_mask": mask,
                  "pixel_values": np.stack([it["pixel_values"] for it in items]),
                  "state": np.stack([it["state"] for it in items]),
                  "embodiment_id": np.stack([it["embodiment_id"] for it in items])}
        return inputs, batched

    # ---- inference --------------------------------------------------------------------------
    def get_action(self, obs: dict, *, noise: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """{action.<key>: [16, d]} (or [B, 16, d] for a batched observation) in dataset units.
        `noise` [B, 16, max_action_dim] fixes the initial noise (tests); otherwise each call
        draws fresh noise from the policy's seed."""
        inputs, batched = self.prepare(obs)
        key = jax.random.fold_in(self._key, self._calls)
        self._calls += 1
        normalised = np.asarray(self._sample(self.params, inputs, key, noise))
        out = self.transform.codec.unapply_action(normalised)
        return out if batched else {k: v[0] for k, v in out.items()}


def save_tokenizer_beside(model_dir, tokenizer_dir) -> None:
    """Copy a tokenizer (HF layout) into a model directory so `Policy(model_dir, ...)` finds it."""
    import shutil

    for f in Path(tokenizer_dir).iterdir():
        if f.is_file():
            shutil.copy2(f, Path(model_dir) / f.name)
