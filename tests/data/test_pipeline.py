"""Grain pipelines: batch contract, exact iterator restore (in-process, with worker processes, with
a mixture, through Orbax), process sharding, mixture weights, one ordered eval pass."""

import grain
import numpy as np
import orbax.checkpoint as ocp
import pytest

from groot_jax.data.mixture import SourceSpec
from groot_jax.data.pipeline import PipelineConfig, build_pipeline, mixture_index
from tests.data.fixtures import V2_DATA_CONFIG

CFG_V2 = V2_DATA_CONFIG.replace(name="v2")


@pytest.fixture(scope="module")
def mixture(v2_root, tmp_path_factory):
    from tests.data.fixtures import write_v2_dataset

    other = write_v2_dataset(tmp_path_factory.mktemp("v2b") / "ds", lengths=(12, 15), first_episode=5)
    gr1 = CFG_V2.replace(name="other", embodiment_tag="gr1")
    return [SourceSpec(str(v2_root), CFG_V2, weight=0.75), SourceSpec(str(other), gr1, weight=0.25)]


def _equal(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_batch_contract(mixture, tokenizer_dir):
    p = build_pipeline(mixture[:1], PipelineConfig(batch_size=3, seed=1), str(tokenizer_dir))
    b = next(iter(p))
    spec = {
        "input_ids": (np.int32, 2),
        "attention_mask": (np.bool_, 2),
        "pixel_values": (np.float32, (3, 2, 224, 224, 3)),
        "state": (np.float32, (3, 1, 64)),
        "state_mask": (np.bool_, (3, 1, 64)),
        "embodiment_id": (np.int32, (3,)),
        "action": (np.float32, (3, 16, 32)),
        "action_mask": (np.float32, (3, 16, 32)),
    }
    for k, (dt, shape) in spec.items():
        assert b[k].dtype == dt, (k, b[k].dtype)
        if isinstance(shape, tuple):
            assert b[k].shape == shape, (k, b[k].shape)
        else:
            assert b[k].ndim == shape and b[k].shape[0] == 3
    assert b["pixel_values"].min() >= -1 and b["pixel_values"].max() <= 1
    assert (b["embodiment_id"] == 31).all()
    # left padding: every row ends with the generation prompt, masks are contiguous at the right
    assert b["attention_mask"][:, -1].all()
    for row in b["attention_mask"]:
        assert not row[: np.argmax(row)].any() and row[np.argmax(row) :].all()


@pytest.mark.parametrize("workers", [0, 2])
def test_restore_reproduces_following_batches_mixture(mixture, tokenizer_dir, workers):
    cfg = PipelineConfig(batch_size=2, seed=3, num_workers=workers)
    it = iter(build_pipeline(mixture, cfg, str(tokenizer_dir)))
    for _ in range(3):
        next(it)
    state = it.get_state()
    want = [next(it) for _ in range(4)]
    it2 = iter(build_pipeline(mixture, cfg, str(tokenizer_dir)))
    it2.set_state(state)
    got = [next(it2) for _ in range(4)]
    for a, b in zip(want, got, strict=False):
        _equal(a, b)
    ids = np.concatenate([w["sample_id"][:, 0] for w in want])
    assert set(ids.tolist()) == {0, 1}  # both datasets of the mixture appear
    if workers:
        return
    # a different seed gives different batches (the test could fail)
    it3 = iter(
        build_pipeline(
            mixture, PipelineConfig(batch_size=4, seed=4, num_workers=workers), str(tokenizer_dir)
        )
    )
    assert not np.array_equal(
        next(it3)["sample_id"], next(iter(build_pipeline(mixture, cfg, str(tokenizer_dir))))["sample_id"]
    )


def test_orbax_checkpoint_of_iterator(mixture, tokenizer_dir, tmp_path):
    cfg = PipelineConfig(batch_size=2, seed=5)
    it = iter(build_pipeline(mixture, cfg, str(tokenizer_dir)))
    next(it), next(it)
    mngr = ocp.CheckpointManager(tmp_path / "ckpt")
    mngr.save(7, args=ocp.args.Composite(data_iter=grain.checkpoint.CheckpointSave(it)))
    mngr.wait_until_finished()
    want = [next(it) for _ in range(2)]
    fresh = iter(build_pipeline(mixture, cfg, str(tokenizer_dir)))
    mngr.restore(7, args=ocp.args.Composite(data_iter=grain.checkpoint.CheckpointRestore(fresh)))
    for a in want:
        _equal(a, next(fresh))


def test_process_sharding_and_eval_pass(mixture, tokenizer_dir):
    base = dict(batch_size=1, train=False, drop_remainder=False)
    full = [
        tuple(b["sample_id"][0])
        for b in build_pipeline(
            mixture, PipelineConfig(**base, shard_index=0, shard_count=1), str(tokenizer_dir)
        )
    ]
    assert len(full) == 24 + 9 + 30 + 12 + 15 and len(set(full)) == len(full)  # each frame once
    shards = [
        [
            tuple(b["sample_id"][0])
            for b in build_pipeline(
                mixture, PipelineConfig(**base, shard_index=i, shard_count=2), str(tokenizer_dir)
            )
        ]
        for i in range(2)
    ]
    assert not set(shards[0]) & set(shards[1])
    assert set(shards[0]) | set(shards[1]) == set(full)


def test_mixture_weights_and_shuffle():
    """Index level: the draw frequency follows the weights; every frame of a source is visited once
    per epoch of that source."""
    cfg = PipelineConfig(batch_size=1, seed=0, shard_index=0, shard_count=1)
    ds = mixture_index([63, 27], [0.75, 0.25], cfg)
    els = [ds[i] for i in range(2000)]
    src = np.array([e[0] for e in els])
    assert abs((src == 1).mean() - 0.25) < 0.03, (src == 1).mean()
    first = [e[1] for e in els if e[0] == 0][:63]
    assert sorted(first) == list(range(63)) and first != list(range(63))
    second = [e[1] for e in els if e[0] == 0][63:126]
    assert sorted(second) == list(range(63)) and second != first  # a new order every epoch
    assert [e[2] for e in els[:5]] == [0, 1, 2, 3, 4]  # each element carries its position


def test_large_sources_use_grains_index_shuffle(monkeypatch):
    """Above PERMUTATION_MAX_STEPS no permutation is stored: Grain's stateless shuffle, with the
    same per-epoch guarantee."""
    from groot_jax.data import pipeline

    monkeypatch.setattr(pipeline, "PERMUTATION_MAX_STEPS", 10)
    ds = mixture_index([27], [1.0], PipelineConfig(batch_size=1, seed=0, shard_index=0, shard_count=1))
    steps = [ds[i][1] for i in range(54)]
    assert sorted(steps[:27]) == sorted(steps[27:]) == list(range(27))
    assert steps[:27] != list(range(27)) and steps[:27] != steps[27:]


def test_collate_writes_worker_batches_to_shared_memory():
    from grain.python import SharedMemoryArray

    from groot_jax.data.errors import DataError
    from groot_jax.data.processor import SHM_MIN_BYTES, make_collate

    big = SHM_MIN_BYTES // 4  # float32 values: three of these make a batch array over the limit
    items = [{"a": np.full((2, big // 2), i, np.float32), "small": np.full((2,), i, np.int32),
              "input_ids": np.arange(i + 1, dtype=np.int32)} for i in range(3)]
    plain = make_collate(pad_id=0, max_seq_len=None)(items)
    c = make_collate(pad_id=0, max_seq_len=None)
    c.enable_shared_memory_output()   # what Grain calls in a worker process
    shm = c(items)
    assert isinstance(shm["a"], SharedMemoryArray) and not isinstance(plain["a"], SharedMemoryArray)
    assert not isinstance(shm["small"], SharedMemoryArray)  # small arrays are pickled instead
    np.testing.assert_array_equal(np.asarray(shm["a"]), plain["a"])
    np.testing.assert_array_equal(shm["small"], plain["small"])
    np.testing.assert_array_equal(shm["input_ids"], plain["input_ids"])
    assert plain["input_ids"].shape == (3, 3) and plain["attention_mask"][0].tolist() == [0, 0, 1]
    shm["a"].unlink_on_del()
    bad = items + [{"a": np.zeros((2, 4), np.float32), "small": np.zeros((2,), np.int32),
                    "input_ids": np.arange(1, dtype=np.int32)}]
    with pytest.raises(DataError, match="batch key 'a': samples disagree on shape"):
        c(bad)


def test_read_threads_give_the_same_batches(mixture, tokenizer_dir):
    """Samples of a batch loaded on threads: the same batches as one thread (per-sample
    generators), and a different seed changes the crops / jitter (the check could fail)."""
    def batches(threads, seed=2):
        cfg = PipelineConfig(batch_size=4, seed=seed, read_threads=threads, prefetch=0)
        it = iter(build_pipeline(mixture, cfg, str(tokenizer_dir)))
        return [next(it) for _ in range(3)]

    for a, b in zip(batches(1), batches(3), strict=True):
        _equal(a, b)
    one, other = batches(1)[0], batches(1, seed=9)[0]
    assert not np.array_equal(one["pixel_values"], other["pixel_values"])


def test_one_video_cache_for_the_mixture(mixture, tokenizer_dir):
    """All sources decode through one decoder cache with the configured budget; a budget of one
    open file still gives the same batches (files are reopened, never mixed up)."""
    p = build_pipeline(mixture, PipelineConfig(batch_size=4, seed=1, open_videos=1, prefetch=0),
                       str(tokenizer_dir))
    decoders = {id(s.decoder) for s in p.sources}
    assert len(decoders) == 1 and p.sources[0].decoder.max_open == 1
    small = [next(it) for it in [iter(p)] for _ in range(3)]
    assert p.sources[0].decoder.opens > 2
    big = iter(build_pipeline(mixture, PipelineConfig(batch_size=4, seed=1, prefetch=0),
                              str(tokenizer_dir)))
    for a in small:
        _equal(a, next(big))
