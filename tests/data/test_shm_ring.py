"""Worker batches travel through reused shared-memory slots (groot_jax/data/shm_ring.py)."""

import os
import threading
import time

import numpy as np
import pytest
from grain.python import SharedMemoryArray

from groot_jax.data import shm_ring
from groot_jax.data.errors import DataError
from groot_jax.data.mixture import SourceSpec
from groot_jax.data.pipeline import PipelineConfig, build_pipeline
from groot_jax.data.processor import SHM_MIN_BYTES, make_collate
from tests.data.fixtures import V2_DATA_CONFIG


def _items(i, n=3):
    big = SHM_MIN_BYTES // 4
    return [{"a": np.full((2, big // 2), 10 * i + j, np.float32), "small": np.full((2,), j, np.int32),
             "input_ids": np.arange(j + 1, dtype=np.int32)} for j in range(n)]


def test_ring_slots_are_reused_and_read_as_copies():
    plain = make_collate(pad_id=0, max_seq_len=None)
    c = make_collate(pad_id=0, max_seq_len=None, ring_slots=2)
    c.enable_shared_memory_output()  # what Grain calls in a worker process
    refs, got = [], []
    for i in range(5):
        b = c(_items(i))
        ref = b["__slot__"]
        assert "a" not in b and b["small"].shape == (3, 2)  # small arrays travel pickled
        refs.append(ref)
        got.append(shm_ring.read_slots(b))
    assert len({r.ring for r in refs}) == 1  # one ring for the worker ...
    assert [r.slot for r in refs] == [0, 1, 0, 1, 0]  # ... whose slots come back once read
    assert not os.path.exists(os.path.join(shm_ring.SHM_DIR, refs[0].ring))  # unlinked once mapped
    for i, b in enumerate(got):  # copies: later batches written into the same slots change nothing
        want = plain(_items(i))
        assert b.keys() == want.keys() and "__slot__" not in b
        for k in want:
            np.testing.assert_array_equal(b[k], want[k], err_msg=k)
        assert not isinstance(b["a"], SharedMemoryArray)


def test_worker_waits_for_a_free_slot():
    c = make_collate(pad_id=0, max_seq_len=None, ring_slots=2)
    c.enable_shared_memory_output()
    held = [c(_items(0)), c(_items(1))]  # both slots taken, not read yet
    done = []
    t = threading.Thread(target=lambda: done.append(c(_items(2))))
    t.start()
    time.sleep(0.3)
    assert not done  # no slot: the worker waits instead of overwriting an unread batch
    first = shm_ring.read_slots(held[0])
    t.join(5)
    assert done and done[0]["__slot__"].slot == 0
    np.testing.assert_array_equal(first["a"], make_collate(0, None)(_items(0))["a"])
    for b in (held[1], done[0]):
        shm_ring.read_slots(b)


def test_ring_shape_mismatch_is_a_clear_error():
    c = make_collate(pad_id=0, max_seq_len=None, ring_slots=2)
    c.enable_shared_memory_output()
    bad = _items(0) + [{"a": np.zeros((2, 4), np.float32), "small": np.zeros((2,), np.int32),
                        "input_ids": np.arange(1, dtype=np.int32)}]
    with pytest.raises(DataError, match="batch key 'a': samples disagree on shape"):
        c(bad)


@pytest.mark.parametrize("workers", [1, 2])
def test_worker_batches_use_the_ring(v2_root, tokenizer_dir, workers):
    """With worker processes the batch function's shared-memory output is on (Grain enables it
    only with 2+ workers, and only when the batch dataset is what mp_prefetch receives), so
    batches come through the ring: plain arrays in the main process, equal to what Grain's own
    shared memory delivers."""
    spec = [SourceSpec(str(v2_root), V2_DATA_CONFIG)]
    out = {}
    for ring in (True, False):
        cfg = PipelineConfig(batch_size=2, seed=1, num_workers=workers, shm_ring=ring)
        it = iter(build_pipeline(spec, cfg, str(tokenizer_dir)))
        out[ring] = [next(it) for _ in range(9)]  # more batches than a worker's slots
        it.close()
    for a, b in zip(out[True], out[False], strict=True):
        assert type(a["pixel_values"]) is np.ndarray
        assert isinstance(b["pixel_values"], SharedMemoryArray)
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
