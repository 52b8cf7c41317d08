"""A learnable synthetic task as a Grain pipeline, in the model's batch contract.

Until the real data layer (groot_jax/data/) lands, training runs on this. Each example is a
pure function of its index (so iterator checkpoints resume exactly):
  state[:8] ~ N(0, 1)  (rest zero-padded to max_state_dim)
  action[t, j] = tanh((M s)_j + (t / H) (N s)_j)  for j < 7 (rest zero, masked out)
with fixed random M, N. A mean-action predictor scores the per-dimension variance; a model that
reads the state can do much better. Images are blocky random pictures (8x8 upsampled), and the
prompt is a fixed token string with 256 <IMG_CONTEXT> tokens per view.
"""
from __future__ import annotations

import dataclasses

import grain
import jax
import numpy as np

from groot_jax.config import GR00TConfig

STATE_DIM = 8
ACTION_DIM = 7
EMBODIMENT_ID = 31   # "new_embodiment" in GR00T's tag table


@dataclasses.dataclass(frozen=True)
class SyntheticTask:
    max_state_dim: int
    max_action_dim: int
    horizon: int
    image_size: int
    tokens_per_image: int
    image_token: int
    num_views: int = 1
    prompt_len: int = 24
    seed: int = 1234

    @classmethod
    def for_model(cls, cfg: GR00TConfig, num_views: int = 1, prompt_len: int = 24) -> SyntheticTask:
        ah, bb = cfg.action_head, cfg.backbone
        return cls(ah.max_state_dim, ah.action_dim, ah.action_horizon, bb.image_size,
                   bb.tokens_per_image, bb.image_token_id, num_views, prompt_len)

    def _weights(self):
        r = np.random.default_rng(self.seed)
        return (r.normal(size=(ACTION_DIM, STATE_DIM)) / np.sqrt(STATE_DIM),
                r.normal(size=(ACTION_DIM, STATE_DIM)) / np.sqrt(STATE_DIM))

    def prompt(self) -> np.ndarray:
        r = np.random.default_rng(self.seed + 1)
        text = r.integers(100, 5000, self.prompt_len).astype(np.int32)
        half = self.prompt_len // 2
        img = np.full(self.tokens_per_image * self.num_views, self.image_token, np.int32)
        return np.concatenate([text[:half], img, text[half:]])

    def example(self, index: int) -> dict[str, np.ndarray]:
        r = np.random.default_rng([self.seed, int(index)])
        m, n = self._weights()
        s = r.normal(size=STATE_DIM)
        t = (np.arange(self.horizon) / self.horizon)[:, None]
        a = np.tanh((m @ s)[None] + t * (n @ s)[None])
        state = np.zeros((1, self.max_state_dim), np.float32)
        state[0, :STATE_DIM] = s
        action = np.zeros((self.horizon, self.max_action_dim), np.float32)
        action[:, :ACTION_DIM] = a
        mask = np.zeros_like(action)
        mask[:, :ACTION_DIM] = 1.0
        blocks = r.integers(0, 256, (self.num_views, 8, 8, 3)).astype(np.float32)
        rep = self.image_size // 8 + 1
        img = np.repeat(np.repeat(blocks, rep, 1), rep, 2)[:, :self.image_size, :self.image_size]
        ids = self.prompt()
        return dict(input_ids=ids, attention_mask=np.ones(ids.shape, bool),
                    pixel_values=(img / 255.0 - 0.5) / 0.5, state=state,
                    embodiment_id=np.int32(EMBODIMENT_ID), action=action, action_mask=mask)


def dataset(task: SyntheticTask, batch_size: int, *, split: str = "train", seed: int = 0,
            num_records: int = 4096, shard: bool = True) -> grain.IterDataset:
    """Shuffled, repeated, batched stream; `batch_size` is the global batch and each JAX process
    gets its own rows (batch_size / process_count of them)."""
    if split not in ("train", "train_eval", "eval"):
        raise ValueError(f"split must be train | train_eval | eval, got {split!r}")
    # train: shuffled and repeated; train_eval: the same records once, in order; eval: held out.
    offset = 10**6 if split == "eval" else 0
    n_proc, pid = (jax.process_count(), jax.process_index()) if shard else (1, 0)
    if batch_size % n_proc:
        raise ValueError(f"batch_size={batch_size} is not divisible by {n_proc} processes")
    lo, hi = pid * batch_size // n_proc, (pid + 1) * batch_size // n_proc
    ds = grain.MapDataset.range(num_records)
    if split == "train":
        ds = ds.shuffle(seed=seed).repeat()
    # Every process walks the same global index batches and builds only its own rows.
    ds = ds.batch(batch_size, drop_remainder=split == "train")
    ds = ds.map(lambda idx: _stack([task.example(int(i) + offset) for i in idx[lo:hi]]))
    # A small prefetch: Grain's default (500 elements) would hold ~5 GB of image batches and
    # spend the CPU on batches far ahead of the train step.
    return ds.to_iter_dataset(grain.ReadOptions(num_threads=1, prefetch_buffer_size=2))


def _stack(examples: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.stack([e[k] for e in examples]) for k in examples[0]}
