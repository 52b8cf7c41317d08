"""Sharded (8 simulated CPU devices, data=2 x fsdp=4) vs single device: same losses and params
after 5 steps. Runs in a subprocess so this pytest process keeps its single device."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from jax.sharding import PartitionSpec as P

from groot_jax import sharding

ROOT = Path(__file__).resolve().parents[2]
TOL = 1e-5


def test_sharded_matches_single_device():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8")
    p = subprocess.run([sys.executable, "-m", "tests.train.sharded_equal"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads(p.stdout.strip().splitlines()[-1])
    assert r["n_sharded"] > 50, r          # the parameters really are split over the mesh
    assert r["loss_changed"]
    assert r["loss_rel"] <= TOL, r
    assert r["param_rel"] <= TOL, r
    assert r["global_rel"] <= TOL, r
    assert r["n_leaves"] > 100, r
    # Zero-true-gradient key biases: within the 5 steps' total learning rate of each other.
    assert r["k_bias_abs"] <= 2 * 5 * 1e-4, r


class _Mesh:
    shape = {"data": 2, "fsdp": 4, "tensor": 2}


def test_logical_rules_resolve_safely():
    rules = sharding.RULES["fsdp_tp"]
    m = _Mesh()
    assert sharding.logical_to_spec(("layers", "embed", "mlp"), (2, 64, 128), m, rules) == \
        P(None, "fsdp", "tensor")
    # The same mesh axis is never used twice; an indivisible dimension stays whole.
    assert sharding.logical_to_spec(("embed", "embed"), (32, 32), m, rules) == P("fsdp")
    assert sharding.logical_to_spec(("embed",), (30,), m, rules) == P()
    assert sharding.logical_to_spec(("vocab", "embed"), (8, 64), m, rules) == P("tensor", "fsdp")
    # Small arrays stay replicated.
    assert sharding.logical_to_spec(("embed", "mlp"), (64, 128), m, rules,
                                    min_shard_bytes=2**20) == P()
    assert sharding.logical_to_spec(("embed", "mlp"), (64, 128), m, sharding.RULES["dp"]) == P()
    assert np.all([isinstance(k, str) for k in sharding.RULES])
