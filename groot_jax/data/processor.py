"""The processor: raw sample -> model input (`SampleTransform`), and samples -> batch (`Collate`).
This pair is what inference needs besides the model (groot_jax/eval/policy.py builds one), and what
is to be saved beside a checkpoint; the Grain pipeline (pipeline.py) only schedules it.

`SampleTransform(cfg, modality, stats, tokenizer)` turns a raw sample (see source.py) into the
unbatched model input, in the original pipeline's order (spec 9.3):
  input_ids      int32   [L]               (prompt; batching left-pads)
  pixel_values   float32 [V*T_o, 224, 224, 3] in [-1, 1], images ordered (t v)
  state          float32 [T_o, max_state_dim]    state_mask bool [T_o, max_state_dim]
  action         float32 [T_a, max_action_dim]   action_mask float32 [T_a, max_action_dim]
  embodiment_id  int32   []
Video: image_transforms.py (bit-exact to torchvision); state/action: codec.py; prompt: prompt.py.
With `SampleTransform(..., device_augment=True)` (off by default) the sample carries the cropped
uint8 frames `pixel_u8` [V*T_o, ch, cw, 3] and the jitter draws `augment` [V*T_o, 8] instead of
`pixel_values` (device_inputs.py), which groot_jax.data.device_augment finishes on the accelerator.

`Collate` stacks samples into a batch and left-pads the prompts (input_ids int32 [B, L],
attention_mask bool [B, L]); in Grain worker processes it writes the large arrays straight into
shared memory (shm_ring.py).
"""

from __future__ import annotations

import numpy as np
from grain.python import SharedMemoryArray

from groot_jax.data import shm_ring
from groot_jax.data.codec import EncodedEpisode, StateActionCodec
from groot_jax.data.device_inputs import device_augment_inputs, device_yuv_inputs
from groot_jax.data.embodiments import embodiment_id
from groot_jax.data.errors import DataError
from groot_jax.data.image_transforms import views_to_pixel_values
from groot_jax.data.modality import DataConfig, LeRobotModality
from groot_jax.data.prompt import PromptTokenizer, format_language, left_pad


class SampleTransform:
    """Raw sample -> model input (see module docstring). `rng` None = eval mode."""

    def __init__(
        self,
        cfg: DataConfig,
        modality: LeRobotModality,
        stats: dict,
        tokenizer: PromptTokenizer | None,
        has_actions: bool = True,
        inference_language_quirk: bool = False,
        pseudo_action_slot: bool = False,
        device_augment: bool = False,
        device_yuv: bool = False,
    ):
        """device_augment: emit cropped uint8 frames + augmentation parameters (`pixel_u8`,
        `augment`) instead of `pixel_values`, for groot_jax.data.device_augment to finish on the
        accelerator (equal to the host path within rounding; see that module). Off by default.
        device_yuv (with device_augment): the sample's video must come as decoded yuv420p planes
        (`source.get(..., yuv=True)`) and is emitted as their crop (`pixel_y`, `pixel_u`,
        `pixel_v`, `yuv_meta`); the accelerator converts it to RGB exactly as swscale does."""
        if device_yuv and not device_augment:
            raise DataError("device_yuv=True needs device_augment=True")
        self.cfg = cfg
        self.device_augment = device_augment
        self.device_yuv = device_yuv
        self.pseudo_action_slot = pseudo_action_slot
        self.codec = StateActionCodec(cfg, modality, stats)
        self.tokenizer = tokenizer
        self.has_actions = has_actions
        self.quirk = inference_language_quirk
        self.embodiment_id = np.int32(embodiment_id(cfg.embodiment_tag))

    def __getstate__(self):  # the prompt cache is rebuilt per process
        d = dict(self.__dict__)
        d["_prompt_cache"] = {}
        return d

    def _input_ids(self, num_images: int, text: str) -> np.ndarray:
        """Tokenized prompt, memoised: the prompt is a pure function of (num_images, text) and a
        dataset has few distinct task strings, while rendering + tokenizing costs ~0.5 ms."""
        cache = self.__dict__.setdefault("_prompt_cache", {})
        key = (id(self.tokenizer), num_images, text)
        ids = cache.get(key)
        if ids is None:
            ids = self.tokenizer(num_images, text)
            if len(cache) >= 4096:
                cache.clear()
            cache[key] = ids
        return ids.copy()

    def __call__(
        self,
        sample: dict,
        rng: np.random.Generator | None = None,
        encoded: EncodedEpisode | None = None,
    ) -> dict:
        """`encoded`: the sample's episode from `codec.encode_episode`; the state and action then
        come from its rows (the sample needs no raw state/action windows, only `__frame__`)."""
        cfg = self.cfg
        out = {"embodiment_id": self.embodiment_id}
        n_img = 0
        if cfg.video_keys and getattr(self, "device_yuv", False):
            out.update(device_yuv_inputs([sample[k] for k in cfg.video_keys], cfg, rng))
            n_img = out["pixel_y"].shape[0]
        elif cfg.video_keys and getattr(self, "device_augment", False):
            views = [sample[k] for k in cfg.video_keys]
            out["pixel_u8"], out["augment"] = device_augment_inputs(views, cfg, rng)
            n_img = out["pixel_u8"].shape[0]
        elif cfg.video_keys:  # [T*V, S, S, 3], images ordered (t v)
            out["pixel_values"] = views_to_pixel_values([sample[k] for k in cfg.video_keys], cfg, rng)
            n_img = out["pixel_values"].shape[0]
        if encoded is not None:
            out["state"] = encoded.state_window(sample["__frame__"])
            out["state_mask"] = self.codec.state_mask
        else:
            out["state"], out["state_mask"] = self.codec.state(sample)
        if encoded is not None and encoded.action is not None:
            out["action"] = encoded.action_window(sample["__frame__"])
            out["action_mask"] = self.codec.action_mask
        elif self.has_actions and all(k in sample for k in cfg.action_keys):
            out["action"], out["action_mask"] = self.codec.action(sample)
        else:
            t = len(cfg.action_indices)
            out["action"] = np.zeros((t, cfg.max_action_dim), np.float32)
            out["action_mask"] = np.zeros((t, cfg.max_action_dim), np.float32)
        if self.pseudo_action_slot:  # filled later by latent / inverse-dynamics actions
            t = len(cfg.action_indices)
            out["pseudo_action"] = np.zeros((t, cfg.max_action_dim), np.float32)
            out["pseudo_action_mask"] = np.zeros((t, cfg.max_action_dim), np.float32)
        if self.tokenizer is not None:
            lang = sample.get(cfg.language_keys[0]) if cfg.language_keys else None
            text = format_language(lang, self.quirk)
            out["input_ids"] = self._input_ids(n_img, text)
        return out


# Batch arrays at least this large travel from worker processes through shared memory; smaller
# ones are pickled (a shared-memory block costs several system calls on both sides).
SHM_MIN_BYTES = 64 << 10


class Collate:
    """Stack samples into a batch; left-pad the prompts. In Grain worker processes, Grain calls
    `enable_shared_memory_output()` (the `SupportsSharedMemoryOutput` protocol), and the large
    batch arrays are then written straight into shared memory, so they reach the main process
    without being pickled through a pipe (measured: ~0.2 ms of host CPU per sample at batch 8):
    with `ring_slots` > 0 into a reused slot of this worker's SlotRing (the batch then carries a
    `__slot__` reference that shm_ring.read_slots resolves in the main process), else into one
    fresh Grain shared-memory array per key."""

    def __init__(self, pad_id: int | None, max_seq_len: int | None, ring_slots: int = 0):
        self.pad_id = pad_id
        self.max_seq_len = max_seq_len
        self.ring_slots = ring_slots
        self.shared_memory = False
        self._ring = None

    def __getstate__(self):
        s = dict(self.__dict__)
        s["_ring"] = None  # each worker process makes its own
        return s

    def enable_shared_memory_output(self) -> None:
        self.shared_memory = True

    @staticmethod
    def _large(first: np.ndarray, n: int) -> bool:
        return (not first.dtype.hasobject and first.dtype.kind not in "US"
                and first.nbytes * n >= SHM_MIN_BYTES)

    @staticmethod
    def _shape_error(k: str, xs: list) -> DataError:
        shapes = sorted({str(np.shape(x)) for x in xs})
        return DataError(f"batch key {k!r}: samples disagree on shape {shapes}")

    def _to_ring(self, items: list[dict]) -> dict:
        big = {k: [it[k] for it in items] for k in items[0]
               if k != "input_ids" and self._large(np.asarray(items[0][k]), len(items))}
        layout = shm_ring.layout(big)
        if self._ring is None or layout.nbytes > self._ring.slot_bytes:
            self._ring = shm_ring.SlotRing(layout.nbytes, self.ring_slots)
        try:
            ref = self._ring.stack(big, layout)
        except ValueError as e:
            k = next(k for k, xs in big.items() if len({np.shape(x) for x in xs}) > 1)
            raise self._shape_error(k, big[k]) from e
        out = {k: self._stack(k, [it[k] for it in items]) for k in items[0]
               if k != "input_ids" and k not in big}
        out["__slot__"] = ref
        return out

    def _stack(self, k: str, xs: list) -> np.ndarray:
        first = np.asarray(xs[0])
        out = None
        if self.shared_memory and self._large(first, len(xs)):
            out = SharedMemoryArray((len(xs),) + first.shape, dtype=first.dtype)
        try:
            return np.stack(xs, out=out, casting="no" if out is not None else "same_kind")
        except ValueError as e:
            raise self._shape_error(k, xs) from e

    def __call__(self, items: list[dict]) -> dict:
        if self.shared_memory and self.ring_slots > 0 and shm_ring.available():
            out = self._to_ring(items)
        else:
            out = {k: self._stack(k, [it[k] for it in items]) for k in items[0] if k != "input_ids"}
        if "input_ids" in items[0]:
            out["input_ids"], out["attention_mask"] = left_pad(
                [it["input_ids"] for it in items], self.pad_id, self.max_seq_len
            )
        return out


def make_collate(pad_id: int | None, max_seq_len: int | None, ring_slots: int = 0) -> Collate:
    return Collate(pad_id, max_seq_len, ring_slots)
