"""`Policy`: observation dict (the original's keys) -> un-normalised action chunk.

    policy = Policy("run_or_model_dir")   # data config, statistics, tokenizer stored there
    policy = Policy("ckpt_dir", groot_jax.data.embodiments.so100())   # or named explicitly
    action = policy.get_action({"video.webcam": uint8 [T, H, W, 3] or [B, T, H, W, 3],
                                "state.single_arm": [T, 5] or [B, T, 5], ...,
                                "annotation.human.task_description": "pick the cube"}, seed=3)
    action["action.single_arm"]  # [16, 5] (or [B, 16, 5]) in the dataset's units

Observations are checked against `metadata()["observation"]` (`eval.observation_spec`: keys,
dtypes, dims, T = the model's frames, finite values, instruction length) before anything runs.
Prompts are left-padded to fixed token buckets and batches to fixed batch buckets (padding rows
are copies whose outputs are dropped), so the sampler compiles once per (bucket, batch bucket),
at `warmup()` or on first use. Padding matters to the action head (it attends to every VL token,
pads included), so a prompt's result depends on its own bucket only, never on batch mates. Each
row's initial noise comes from its own seed: a row gives the same chunk alone or in a batch.

Inputs pass the eval transforms of the data layer (centre crop 0.95, resize to the backbone's
image size, state normalisation, padding to the head's widths, the backbone's prompt format
with the original's inference language formatting, spec 3.5 / N1.7 spec 4) and the
jit-compiled sampler; outputs are split per action key and un-normalised (spec 9.3).
Statistics and modality shapes come from the checkpoint's metadata for the data config's
embodiment tag.

`model_path` is a training run (its latest checkpoint, `groot_jax.convert.run_dir`), a groot-jax
model dir or an Isaac-GR00T dir. Without `data_config` the stored one is used
(`convert.processor_files`: the only embodiment, or `embodiment=`; a checkpoint with metadata
but no data configs gets one derived from the metadata, with a warning); the tokenizer too.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from groot_jax.convert.checkpoint import (
    CheckpointFileError,
    check_tokenizer,
    load_pretrained,
    store_tokenizer,
)
from groot_jax.convert.processor_files import PROCESSOR_DIR, read_processor
from groot_jax.convert.run_dir import is_run_dir, load_run
from groot_jax.data.modality import DataConfig, LeRobotModality, StateActionMeta
from groot_jax.data.processor import SampleTransform
from groot_jax.data.prompt import PromptTokenizer, format_language, left_pad
from groot_jax.eval.observation_spec import ObservationError, check_observation

BUCKET_STEP = 64  # token buckets: multiples of this, from the shortest prompt to max_seq_len
BATCH_BUCKETS = (1, 2, 4, 8, 16)
SEED_LIMIT = 2**32


def default_token_buckets(shortest: int, max_seq_len: int | None,
                          step: int = BUCKET_STEP) -> list[int]:
    """Padded prompt lengths: multiples of `step` from `shortest` up, the last `max_seq_len`
    (default one step above the first: each bucket compiles once per batch bucket)."""
    first = -(-shortest // step) * step
    top = first + step if max_seq_len is None else max_seq_len
    if top < shortest:
        raise ValueError(f"max_seq_len {top} is shorter than the shortest prompt ({shortest} "
                         "tokens with the image tokens)")
    return list(range(first, top, step)) + [top]


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


def _load(model_path, data_config, embodiment, tokenizer_dir, dtype, step):
    """(cfg, fns, params, metadata, data config, tokenizer dir) of a run / model / GR00T dir;
    files are checked before the weights load."""
    path = Path(model_path)
    run = is_run_dir(path)
    if not run and step is not None:
        raise CheckpointFileError(f"{path}: a step is for training runs; this is a model dir")
    processor = read_processor(path) if run or data_config is None else None
    # A run keeps its tokenizer in processor/, a model or GR00T dir at its top level.
    tokenizer_dir = check_tokenizer(tokenizer_dir or (path / PROCESSOR_DIR if run else path))
    if run:
        # Saved weights are mixed (fp32 trainable, bf16 frozen); one dtype for the sampler.
        cfg, params, processor = load_run(path, step, dtype=dtype or "float32")
        params = jax.device_put(params)
        from groot_jax.models.groot import abstract

        fns, metadata = abstract(cfg)[0], processor.metadata
    else:
        cfg, fns, params, metadata = load_pretrained(path, dtype=dtype)
    ah = cfg.action_head
    if data_config is None:
        data_config = processor.data_config(embodiment, action_horizon=ah.action_horizon,
                                            max_state_dim=ah.max_state_dim,
                                            max_action_dim=ah.action_dim)
    elif embodiment is not None:
        data_config = data_config.replace(embodiment_tag=embodiment)
    return cfg, fns, params, metadata, data_config, tokenizer_dir


class Policy:
    def __init__(self, model_path, data_config: DataConfig | None = None, *,
                 embodiment: str | None = None, tokenizer_dir=None, step: int | None = None,
                 num_steps: int = 4, dtype=None, seed: int = 0, max_seq_len: int | None = None,
                 token_buckets: tuple[int, ...] | None = None,
                 batch_buckets: tuple[int, ...] = BATCH_BUCKETS, max_prompt_chars: int = 512,
                 default_instruction: str | None = None):
        """`data_config` / `embodiment` / `tokenizer_dir` default to the ones stored with the
        model (see the module docstring); `embodiment` with a `data_config` replaces its tag.
        `step`: a training run's checkpoint (default the latest). `dtype`: of the weights (a
        run's default float32). `token_buckets` default: `default_token_buckets(shortest
        prompt, max_seq_len)`; `max_prompt_chars` bounds the task text; `default_instruction`
        replaces a missing or empty one (None: such an observation is refused)."""
        (self.cfg, self.fns, self.params, metadata, data_config,
         tokenizer_dir) = _load(model_path, data_config, embodiment, tokenizer_dir, dtype, step)
        # The sampler's inference layout (GR00TFunctions.inference_params): one module per layer
        # with [out, in] kernels, applied unrolled: faster on XLA:CPU, same actions. release=True
        # frees the stacked originals as they are laid out (one copy of the weights in memory).
        self.params = self.fns.inference_params(self.params, release=True)
        self.data_config, self.num_steps = data_config, num_steps
        tag = data_config.embodiment_tag
        if tag not in metadata:
            raise ValueError(f"{model_path}: metadata has no embodiment {tag!r} (it has "
                             f"{sorted(metadata)}); train or import a checkpoint for it")
        meta = metadata[tag]
        self.modality = modality_from_metadata(meta, data_config)
        tokenizer = PromptTokenizer(str(tokenizer_dir),
                                    expected_image_token_id=self.cfg.backbone.image_token_id)
        self.statistics = _stats_arrays(meta["statistics"])  # {"state"|"action": {name: ..}}
        self.transform = SampleTransform(data_config, self.modality, self.statistics, tokenizer,
                                         has_actions=False, inference_language_quirk=True)
        self.pad_id = tokenizer.pad_token_id
        frames = len(data_config.observation_indices)
        self.default_instruction = default_instruction
        self.max_prompt_chars = max_prompt_chars
        self.spec = {**{k: {"dtype": "uint8", "shape": [frames, "H", "W", 3]}
                        for k in data_config.video_keys},
                     **{k: {"dtype": "float32", "shape": [frames, self.modality.lookup(k).dim]}
                        for k in data_config.state_keys},
                     **{k: {"dtype": "str", "max_chars": max_prompt_chars, "frames": frames}
                        for k in data_config.language_keys}}
        shortest = len(tokenizer(len(data_config.video_keys) * frames,
                                 format_language("x", True)))
        self.token_buckets = sorted(token_buckets or default_token_buckets(shortest, max_seq_len))
        self.batch_buckets = sorted(batch_buckets)
        self.compiled: set[tuple[int, int]] = set()
        self.call_seconds: dict[tuple[int, int], float] = {}  # (length, size) -> measured
        self._rng = np.random.default_rng(seed)
        fns, ah = self.fns, self.cfg.action_head
        self._sample = jax.jit(lambda p, inputs, noise: fns.sample_actions(
            p, inputs, None, num_steps=num_steps, noise=noise))
        self._noise = jax.jit(lambda s: jax.random.normal(
            jax.random.key(s), (ah.action_horizon, ah.action_dim), jnp.float32))

    def metadata(self) -> dict[str, Any]:
        horizon = self.cfg.action_head.action_horizon
        return {"model": self.cfg.name, "embodiment_tag": self.data_config.embodiment_tag,
                "video_keys": list(self.data_config.video_keys),
                "state_keys": list(self.data_config.state_keys),
                "action_keys": list(self.data_config.action_keys),
                "language_keys": list(self.data_config.language_keys),
                "action_horizon": horizon, "num_steps": self.num_steps,
                "observation": self.spec,
                "actions": {k: [horizon, self.modality.lookup(k).dim]
                            for k in self.data_config.action_keys},
                "default_instruction": self.default_instruction,
                "max_prompt_chars": self.max_prompt_chars,
                "max_prompt_tokens": self.token_buckets[-1],
                "token_buckets": self.token_buckets, "batch_buckets": self.batch_buckets,
                "max_batch": self.batch_buckets[-1],
                "compiled": [list(c) for c in sorted(self.compiled)]}

    # ---- observation -> checked, transformed rows -------------------------------------------
    def validate(self, observation: dict, *, batch: bool,
                 max_batch: int | None = None) -> list[dict]:
        """One transformed sample per single observation; ObservationError naming the key."""
        items = []
        for sample in check_observation(observation, self.spec, batch=batch, max_batch=max_batch,
                                        default_instruction=self.default_instruction):
            item = self.transform(sample, None)
            if len(item["input_ids"]) > self.token_buckets[-1]:
                key = self.data_config.language_keys[0]
                raise ObservationError(
                    f"{key}: the prompt is {len(item['input_ids'])} tokens, more than the "
                    f"largest token bucket {self.token_buckets[-1]}; shorten the instruction")
            items.append(item)
        return items

    def _looks_batched(self, obs: dict) -> bool:
        arrays = [k for k, w in self.spec.items() if w["dtype"] != "str"]
        return bool(arrays) and isinstance(obs, dict) and np.ndim(
            obs.get(arrays[0])) == len(self.spec[arrays[0]]["shape"]) + 1

    def _inputs(self, items: list[dict], length: int) -> dict:
        ids, mask = left_pad([it["input_ids"] for it in items], self.pad_id, length)
        return {"input_ids": ids, "attention_mask": mask,
                "pixel_values": np.stack([it["pixel_values"] for it in items]),
                "state": np.stack([it["state"] for it in items]),
                "embodiment_id": np.stack([it["embodiment_id"] for it in items])}

    def _bucket(self, n: int) -> int:
        return next(b for b in self.token_buckets if b >= n)

    def prepare(self, obs: dict, batch: bool | None = None) -> tuple[dict, bool]:
        """Model inputs for an observation (and whether it was batched), prompts padded to the
        bucket of the longest (get_action pads each prompt to its own bucket)."""
        batch = self._looks_batched(obs) if batch is None else batch
        items = self.validate(obs, batch=batch)
        return self._inputs(items, self._bucket(max(len(it["input_ids"]) for it in items))), batch

    # ---- inference --------------------------------------------------------------------------
    def _run(self, items: list[dict], noise: np.ndarray, length: int, size: int) -> np.ndarray:
        """Normalised chunks [len(items), H, D] from one call of shape (length, size)."""
        rows = list(range(len(items))) + [len(items) - 1] * (size - len(items))  # pad: copies
        inputs = self._inputs([items[i] for i in rows], length)
        out = np.asarray(self._sample(self.params, inputs, noise[rows]))
        self.compiled.add((length, size))
        return out[:len(items)]

    def _act(self, items: list[dict], noise: np.ndarray) -> list[dict[str, np.ndarray]]:
        by_bucket: dict[int, list[int]] = {}
        for i, it in enumerate(items):
            by_bucket.setdefault(self._bucket(len(it["input_ids"])), []).append(i)
        out: list = [None] * len(items)
        for length, idx in by_bucket.items():
            for start in range(0, len(idx), self.batch_buckets[-1]):
                rows = idx[start:start + self.batch_buckets[-1]]
                size = next(b for b in self.batch_buckets if b >= len(rows))
                chunk = self._run([items[i] for i in rows], noise[rows], length, size)
                actions = self.transform.codec.unapply_action(chunk)
                for j, i in enumerate(rows):
                    out[i] = {k: v[j] for k, v in actions.items()}
        return out

    def act(self, items: list[dict], seeds: list[int]) -> list[dict[str, np.ndarray]]:
        """{action.<key>: [H, d]} per validated item; row i's noise from `seeds[i]` only."""
        noise = np.stack([np.asarray(self._noise(np.uint32(s))) for s in seeds])
        return self._act(items, noise)

    def get_action(self, obs: dict, *, batch: bool | None = None, noise: np.ndarray | None = None,
                   seed: int | None = None) -> dict[str, np.ndarray]:
        """{action.<key>: [16, d]} (or [B, 16, d] for a batch) in dataset units. `batch` None:
        a batch when the first array has one more axis than the spec. `noise` [B, 16,
        max_action_dim] fixes the initial noise; else row i's comes from `seed` + i, or from a
        seed drawn from the policy's generator."""
        batch = self._looks_batched(obs) if batch is None else batch
        items = self.validate(obs, batch=batch)
        if noise is not None:
            noise = np.asarray(noise, np.float32).reshape((len(items), -1) + np.shape(noise)[-1:])
            rows = self._act(items, noise)
        else:
            seeds = ([(seed + i) % SEED_LIMIT for i in range(len(items))] if seed is not None
                     else self._rng.integers(0, SEED_LIMIT, len(items)))
            rows = self.act(items, seeds)
        if not batch:
            return rows[0]
        return {k: np.stack([r[k] for r in rows]) for k in rows[0]}

    def warmup(self, buckets: list[tuple[int, int]] | None = None,
               before: Callable[[int, int], bool] | None = None) -> None:
        """Compile the sampler for each (token bucket, batch bucket) (default: all) not compiled
        yet; `before(length, size)` is called first and may return False to stop."""
        frames = len(self.data_config.observation_indices)
        dummy = {k: (np.zeros([frames, 64, 64, 3], np.uint8) if w["dtype"] == "uint8" else
                     np.zeros(w["shape"], np.float32) if w["dtype"] == "float32" else "warm up")
                 for k, w in self.spec.items()}
        item = self.validate(dummy, batch=False)
        ah = self.cfg.action_head
        for length, size in buckets or [(t, b) for t in self.token_buckets
                                        for b in self.batch_buckets]:
            if (length, size) in self.compiled and (length, size) in self.call_seconds:
                continue
            if before is not None and before(length, size) is False:
                return
            noise = np.zeros((size, ah.action_horizon, ah.action_dim), np.float32)
            self._run(item * size, noise, length, size)
            # What a call of this shape costs once compiled (best of 2): the server batches
            # only where a bigger call serves more rows per second (`call_costs`).
            times = []
            for _ in range(2):
                t0 = time.perf_counter()
                self._run(item * size, noise, length, size)
                times.append(time.perf_counter() - t0)
            self.call_seconds[(length, size)] = min(times)
        np.asarray(self._noise(np.uint32(0)))

    def call_costs(self) -> dict[int, float]:
        """Seconds per sampler call by batch size, measured by `warmup` (the slowest token
        bucket of each size); empty before warmup."""
        costs: dict[int, float] = {}
        for (_, size), seconds in self.call_seconds.items():
            costs[size] = max(costs.get(size, 0.0), seconds)
        return costs


def save_tokenizer_beside(model_dir, tokenizer_dir) -> None:
    """Copy a tokenizer (HF layout) into a model directory so `Policy(model_dir, ...)` finds it."""
    store_tokenizer(model_dir, tokenizer_dir)
