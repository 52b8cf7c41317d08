"""Grain pipelines: weighted mixture, shuffling, JAX-process sharding, batching, worker processes,
and iterator state that Orbax saves and restores exactly.

    ds = build_pipeline(specs, PipelineConfig(batch_size=8, num_workers=2), tokenizer_path=...)
    it = iter(ds); batch = next(it)
    state = it.get_state()  /  grain.checkpoint.CheckpointSave(it) under Orbax

Index level (deterministic, cheap): each source is MapDataset.range(num_steps) -> repeat() ->
a new stored permutation per epoch (EpochShuffle; Grain's shuffle for huge sources); sources are
mixed with MapDataset.mix(weights); each element gets its position in the stream; the stream is
sliced by JAX process (`ds[process_index::process_count]`).
Batch level: to_iter_dataset -> batch(batch_fn=LoadBatch), which loads, transforms and collates the
B samples of a batch in one call (in shared memory inside workers), with per-sample draws taken
from a generator keyed by the seed and the batch's first position, so restores are exact -> mp_prefetch
worker processes, whose batches arrive through reused shared-memory slots (shm_ring.py), or, in
process, a background thread prefetching batches.

Batch (B = batch_size; see groot_jax/models/groot.py):
  input_ids int32 [B, L] (left padded), attention_mask bool [B, L],
  pixel_values float32 [B, V, 224, 224, 3], state float32 [B, 1, 64], state_mask bool [B, 1, 64],
  embodiment_id int32 [B], action float32 [B, 16, 32], action_mask float32 [B, 16, 32],
  sample_id int64 [B, 3] (source, episode, frame), and with an action-less source in the mixture
  pseudo_action float32 [B, 16, 32] + pseudo_action_mask float32 [B, 16, 32] (zeros: a slot that
  latent / inverse-dynamics actions fill later), and with `PipelineConfig.future_offset` = H (FLARE)
  future_pixel_values float32 [B, V, 224, 224, 3] (the frames H steps ahead, same crop and jitter)
  + future_mask bool [B] (whether t + H is inside the episode).
"""

from __future__ import annotations

import concurrent.futures
import copy
import dataclasses

import grain
import numpy as np

from groot_jax.data import shm_ring
from groot_jax.data.codec import EncodedEpisode
from groot_jax.data.draws import batch_draws
from groot_jax.data.errors import DataError
from groot_jax.data.image_transforms import to_pixel_values, video_transform
from groot_jax.data.mixture import SourceSpec, mixture_stats, open_source
from groot_jax.data.processor import SHM_MIN_BYTES, Collate, SampleTransform, make_collate
from groot_jax.data.prompt import PromptTokenizer
from groot_jax.data.video import VideoDecoder


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    batch_size: int
    seed: int = 0
    train: bool = True  # shuffle + repeat + random crop/jitter; False: one ordered pass
    num_workers: int = 0  # Grain worker processes (mp_prefetch); 0 = in-process
    per_worker_buffer_size: int = 2
    read_threads: int = 1  # threads per process loading the samples of a batch
    prefetch: int = 4  # in process (num_workers=0): batches prepared ahead on a background thread
    # Video files kept open per process and read thread, over all sources of the mixture (least
    # recently used closed first). Reopening costs an open, a codec start and a seek per sample;
    # an open h264 stream holds ~2 MB at 256x256 (measured), more at higher resolutions.
    open_videos: int = 128
    max_seq_len: int | None = None  # fixed prompt length (static shapes); None = batch longest
    shard_index: int | None = None  # default jax.process_index()
    shard_count: int | None = None  # default jax.process_count()
    drop_remainder: bool = True
    inference_language_quirk: bool = False
    future_offset: int | None = None  # FLARE: also emit the frames this many steps ahead
    # Leave resize / colour jitter / normalization to the accelerator: batches carry the cropped
    # uint8 frames (`pixel_u8`) and their jitter draws (`augment`); the train step calls
    # groot_jax.data.device_augment.apply. Values equal the host path within one uint8 level.
    device_augment: bool = False
    # With device_augment: ship the crop of the decoded yuv420p planes instead of RGB, converted on
    # the accelerator bit-exactly as swscale converts it (groot_jax/data/yuv_tables.py). The host
    # then skips the RGB conversion (~0.16 ms of a ~0.6 ms random frame read at 256x256, measured)
    # and moves half the bytes. Every video of the mixture must be yuv420p (else DataError).
    device_yuv: bool = False
    # Worker processes hand batches over in reused shared-memory slots (shm_ring.py) instead of
    # fresh Grain shared-memory arrays; False = Grain's own mechanism.
    shm_ring: bool = True


class LoadAndTransform:
    """(source_index, step) -> transformed sample. Picklable for worker processes.

    State and action come from per-episode encoded tables (StateActionCodec.encode_episode, kept
    with the episode in its source's cache): a sample's windows are then row gathers instead of a
    rotation + normalization + padding per sample."""

    def __init__(self, sources, transforms, train: bool, future_offset: int | None = None):
        self.sources = sources
        self.transforms = transforms
        self.train = train
        self.future_offset = future_offset

    def _encoded_episode(self, si: int, pos: int) -> EncodedEpisode:
        src, codec = self.sources[si], self.transforms[si].codec
        ep = src.episode(pos)
        enc = ep.derived.get(codec)  # keyed by the codec object: pipelines may share sources
        if enc is None:  # a race between threads only computes it twice
            enc = ep.derived[codec] = codec.encode_episode(src, ep, src.has_actions)
        return enc

    def __call__(self, si: int, step: int, rng: np.random.Generator | None) -> dict:
        return self.finish(si, *self.read(si, step), rng)

    def read(self, si: int, step: int) -> tuple[int, int, dict]:
        """The decoding half: (episode position, frame, raw sample with decoded video)."""
        src = self.sources[si]
        pos, frame = src.locate(step)
        t = self.transforms[si]
        return pos, frame, src.get(pos, frame, t.cfg, state_action=False, yuv=t.device_yuv)

    def finish(self, si: int, pos: int, frame: int, raw: dict, rng) -> dict:
        """The transforming half: raw sample -> model input."""
        src = self.sources[si]
        cfg = self.transforms[si].cfg
        # The future frames must get the crop and jitter of the current ones: replay the rng.
        replay = copy.deepcopy(rng) if (self.train and self.future_offset) else None
        out = self.transforms[si](raw, rng if self.train else None, self._encoded_episode(si, pos))
        if self.future_offset:
            out.update(self._future(src, pos, frame, cfg, replay))
        out["sample_id"] = np.array([si, raw["__episode__"], frame], np.int64)
        return out

    def _future(self, src, pos: int, frame: int, cfg, rng) -> dict:
        """Frames `future_offset` steps ahead of each observation index (clamped into the
        episode), transformed like the current ones (SampleTransform draws the views' crops
        first, in this order)."""
        ep = src.episode(pos)
        idx = frame + self.future_offset + np.asarray(cfg.observation_indices)
        views = [video_transform(src.video(pos, ep, k, idx), cfg, rng, k) for k in cfg.video_keys]
        imgs = np.stack(views, 1).reshape((-1,) + views[0].shape[1:])
        return {"future_pixel_values": to_pixel_values(imgs),
                "future_mask": np.bool_(frame + self.future_offset < int(src.episode_lengths[pos]))}


# Samples decoded back to back before their transforms run. Interleaving ~0.05 ms of Python work
# with each ~0.47 ms frame decode made the pair cost 0.15 ms more than the two apart (measured
# in one process on the benchmark's videos: the decoder's state falls out of the core's caches).
# LoadBatch in one process, three runs (ms per sample, best of 5 passes), groups of 1 / 8 / 32:
# 0.80 / 0.73 / 0.75, 0.69 / 0.56 / 0.58, 0.59 / 0.50 / 0.55 (32 frames at once crowd the cache).
DECODE_GROUP = 8


class LoadBatch:
    """Grain batch_fn: B index elements (source, step, position) -> one collated batch.

    The pipeline's unit of work is a batch, not a sample: Grain's per-element machinery (iterator
    chain, per-element RNG, worker queues) costs ~0.17 ms per element in process and ~0.33 ms
    with worker processes (measured with a no-op element), close to the ~0.4 ms that decoding a
    frame costs. Randomness: each sample consumes its own row of uniforms drawn for the batch from
    a generator keyed by the seed and the global position of the batch's first element in the
    index stream (groot_jax/data/draws.py), so batches survive an iterator restore and do not
    depend on `read_threads`. `read_threads` > 1 loads the
    samples of a batch on that many threads (PyAV decodes without the GIL)."""

    def __init__(self, load: LoadAndTransform, collate: Collate, seed: int, read_threads: int = 1):
        self.load = load
        self.collate = collate
        self.seed = seed
        self.read_threads = read_threads
        self._pool = None

    def __getstate__(self):
        s = dict(self.__dict__)
        s["_pool"] = None
        return s

    def enable_shared_memory_output(self) -> None:  # grain SupportsSharedMemoryOutput
        self.collate.enable_shared_memory_output()

    def __call__(self, elements: list) -> dict:
        n = len(elements)
        rngs = [None] * n
        if self.load.train:  # each sample its own draws, so threads never share a stream
            rngs = batch_draws(self.seed, int(elements[0][2]), n)
        jobs = [(int(e[0]), int(e[1]), r) for e, r in zip(elements, rngs, strict=True)]
        if self.read_threads > 1 and n > 1:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(self.read_threads)
            items = list(self._pool.map(lambda job: self.load(*job), jobs))
        else:  # decode a few samples, then transform them (see DECODE_GROUP)
            items = []
            for g in range(0, n, DECODE_GROUP):
                group = jobs[g : g + DECODE_GROUP]
                raws = [self.load.read(si, step) for si, step, _ in group]
                items += [self.load.finish(si, *raw, r)
                          for (si, _, r), raw in zip(group, raws, strict=True)]
        return self.collate(items)


@dataclasses.dataclass
class Pipeline:
    dataset: grain.IterDataset
    sources: list
    stats: dict
    transforms: list

    def __iter__(self):
        return iter(self.dataset)


def _shard(cfg: PipelineConfig):
    if cfg.shard_index is not None:
        return cfg.shard_index, cfg.shard_count or 1
    import jax

    return jax.process_index(), jax.process_count()


def _with_position(position: int, element: tuple) -> tuple:
    return (element[0], element[1], position)


# Sources up to this many steps are shuffled by a stored permutation per epoch (4 bytes a step per
# process); larger ones by Grain's stateless index shuffle, which costs ~0.1 ms per element here.
PERMUTATION_MAX_STEPS = 1 << 26


class EpochShuffle:
    """map_with_index function over range(n).repeat(): position k (holding step k % n) -> step
    perm_e[k % n], with perm_e a permutation of range(n) drawn from (seed, epoch e = k // n), so
    every epoch visits each step once, in a new order. A stored permutation makes an element cost
    a few microseconds instead of the ~0.1 ms of Grain's index shuffle (measured), which every
    worker process pays for every element of the stream, including the batches it skips."""

    def __init__(self, n: int, seed: int):
        self.n = n
        self.seed = seed
        self._cache: dict = {}

    def __getstate__(self):
        return {"n": self.n, "seed": self.seed, "_cache": {}}

    def _perm(self, epoch: int) -> np.ndarray:
        perm = self._cache.get(epoch)
        if perm is None:
            perm = np.random.default_rng([self.seed, epoch]).permutation(self.n).astype(np.int32)
            if len(self._cache) >= 2:  # the stream moves forward: keep this epoch and the last
                self._cache.pop(min(self._cache))
            self._cache[epoch] = perm
        return perm

    def __call__(self, k: int, step: int) -> int:
        return int(self._perm(k // self.n)[step])


def mixture_index(lengths: list[int], weights: list[float], cfg: PipelineConfig) -> grain.MapDataset:
    """The index stream: elements (source_index, step, position), position being the element's
    place in the whole (unsliced) stream. Training: per-source shuffle + repeat, mixed by weight;
    eval: sources concatenated in order, one pass. Sliced by JAX process."""
    per_source = []
    for i, n in enumerate(lengths):
        if n == 0:
            raise DataError(f"source {i} of the mixture has no frames")
        ds = grain.MapDataset.range(n)
        if cfg.train and n <= PERMUTATION_MAX_STEPS:
            ds = ds.repeat().map_with_index(EpochShuffle(n, cfg.seed + 7919 * i))
        elif cfg.train:
            ds = ds.shuffle(seed=cfg.seed + 7919 * i).repeat()
        per_source.append(ds.map(lambda s, i=i: (i, s)))
    if len(per_source) == 1:
        ds = per_source[0]
    elif cfg.train:
        ds = grain.MapDataset.mix(per_source, weights=list(weights))
    else:
        ds = grain.MapDataset.concatenate(per_source)
    ds = ds.map_with_index(_with_position)
    idx, count = _shard(cfg)
    if count > 1:
        ds = ds[idx::count]
    return ds


def build_pipeline(
    specs: list[SourceSpec],
    cfg: PipelineConfig,
    tokenizer: PromptTokenizer | str | None,
    stats: dict | None = None,
    sources=None,
) -> Pipeline:
    """Build the mixture pipeline. `stats`: {tag: per-key stats} (e.g. from metadata.json); computed
    (and merged over the mixture) when None. `tokenizer`: a checkpoint directory or PromptTokenizer."""
    if not specs:
        raise DataError("empty mixture")
    if isinstance(tokenizer, str):
        tokenizer = PromptTokenizer(tokenizer)
    sources = sources if sources is not None else [open_source(s) for s in specs]
    decoder = VideoDecoder(max_open=cfg.open_videos)  # one cache and one budget for the mixture
    for src in sources:
        for s in (src, getattr(src, "base", None)):  # a sidecar source decodes through its base
            if s is not None:
                s.decoder = decoder
    if stats is None:
        stats = mixture_stats(sources, specs)
    transforms = []
    any_actionless = any(not s.has_actions for s in sources)
    for src, spec in zip(sources, specs, strict=True):
        st = stats.get(spec.config.embodiment_tag, {"state": {}, "action": {}})
        transforms.append(
            SampleTransform(
                spec.config,
                src.modality,
                st,
                tokenizer,
                has_actions=src.has_actions,
                inference_language_quirk=cfg.inference_language_quirk,
                pseudo_action_slot=any_actionless,
                device_augment=cfg.device_augment,
                device_yuv=cfg.device_yuv,
            )
        )
    ds = mixture_index([len(s) for s in sources], [s.weight for s in specs], cfg)
    if cfg.future_offset is not None and cfg.future_offset <= 0:
        raise DataError(f"PipelineConfig.future_offset must be positive, got {cfg.future_offset}")
    if cfg.device_augment and cfg.future_offset is not None:
        # The FLARE future frames are transformed on the host; mixing both paths in one batch
        # would give the current and future frames different pipelines.
        raise DataError("PipelineConfig.device_augment=True cannot be combined with future_offset "
                        f"(={cfg.future_offset}): FLARE future frames are transformed on the host")
    load = LoadAndTransform(sources, transforms, cfg.train, cfg.future_offset)
    pad_id = tokenizer.pad_token_id if tokenizer is not None else None
    # The index stream is cheap; all loading happens in the batch function (see LoadBatch).
    it = ds.to_iter_dataset(grain.ReadOptions(num_threads=0, prefetch_buffer_size=0))
    if cfg.num_workers > 0:
        # Set below the batch: Grain enables a batch function's shared-memory output only when the
        # dataset handed to mp_prefetch is itself the batch (an options wrapper on top hides it,
        # and Grain then copies every large array into shared memory once more).
        it = grain.experimental.WithOptionsIterDataset(
            it, grain.experimental.DatasetOptions(min_shm_size=SHM_MIN_BYTES)
        )
    # Worker batches go through a ring of reused shared-memory slots (groot_jax/data/shm_ring.py):
    # more slots than the worker's buffer, so a worker waits only when the main process lags.
    ring_slots = cfg.per_worker_buffer_size + 4 if cfg.num_workers > 0 and cfg.shm_ring else 0
    load_batch = LoadBatch(load, make_collate(pad_id, cfg.max_seq_len, ring_slots), cfg.seed,
                           cfg.read_threads)
    if cfg.num_workers > 0:
        # Batches are then only built in worker processes. Grain enables shared-memory output by
        # itself with 2+ workers but not with one (it then copies each array into fresh shared
        # memory after the fact: 12% of that worker's time, measured with py-spy).
        load_batch.enable_shared_memory_output()
    it = it.batch(cfg.batch_size, drop_remainder=cfg.drop_remainder, batch_fn=load_batch)
    if cfg.num_workers == 0 and cfg.prefetch > 0:
        it = grain.experimental.ThreadPrefetchIterDataset(it, prefetch_buffer_size=cfg.prefetch)
    if cfg.num_workers > 0:
        it = it.mp_prefetch(
            grain.MultiprocessingOptions(
                num_workers=cfg.num_workers, per_worker_buffer_size=cfg.per_worker_buffer_size
            )
        )
        if ring_slots:
            it = it.map(shm_ring.read_slots)
    return Pipeline(it, sources, stats, transforms)
