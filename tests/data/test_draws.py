"""Per-sample random draws (groot_jax/data/draws.py): the Generator methods the transforms use,
with the right ranges and distributions, deterministic per (seed, batch position, sample)."""

import copy

import numpy as np
import pytest

from groot_jax.data.draws import DRAWS_PER_SAMPLE, batch_draws


def test_draws_are_keyed_by_seed_and_position():
    a, b = batch_draws(0, 64, 4), batch_draws(0, 64, 4)
    assert [d.random() for d in a] == [d.random() for d in b]
    c = batch_draws(0, 96, 4)
    assert len({d.random() for d in a + c}) == 8  # samples and batches draw different values
    assert batch_draws(1, 64, 1)[0].random() != batch_draws(0, 64, 1)[0].random()


def test_ranges_distributions_and_replay():
    d = batch_draws(3, 0, 1)[0]
    ints = [d.integers(2, 7) for _ in range(4000)]  # runs past the pre-drawn block (fallback)
    assert set(ints) == {2, 3, 4, 5, 6}
    assert np.abs(np.bincount(ints)[2:] / 4000 - 0.2).max() < 0.03
    assert d._extra > 0 and len(d._u) > DRAWS_PER_SAMPLE
    u = [d.uniform(-0.08, 0.08) for _ in range(4000)]
    assert -0.08 <= min(u) and max(u) < 0.08 and abs(np.mean(u)) < 0.005
    perms = [tuple(d.permutation(4)) for _ in range(4800)]
    assert all(sorted(p) == [0, 1, 2, 3] for p in perms)
    counts = np.array(list({p: perms.count(p) for p in set(perms)}.values()))
    assert len(counts) == 24 and np.abs(counts / 4800 - 1 / 24).max() < 0.015
    replay = copy.deepcopy(d)  # FLARE replays a sample's draws for its future frames
    assert [d.random() for _ in range(50)] == [replay.random() for _ in range(50)]
    with pytest.raises(ValueError, match="high"):
        d.integers(3, 3)
