"""A tiny-preset model dir for the `so100` data config (one camera, a 5-dim arm, a gripper),
with and without a stored tokenizer, and one warmed-up Policy shared by the server tests."""
import shutil
import socket

import jax
import numpy as np
import pytest

from groot_jax.convert import checkpoint as ck
from groot_jax.data.embodiments import so100
from groot_jax.models import groot
from tests.data.fixtures import write_tokenizer
from tests.tiny_model import tiny_config_for

TOKEN_BUCKET = 320  # the tiny tokenizer's shortest prompt is 289 tokens (256 of them image)
BATCH_BUCKETS = (1, 2, 4, 8)
TASKS = ["pick up the red cube", "open the drawer", "stack the blocks", "pick",
         "open the red drawer now", "x", "stack the red blocks on the drawer", "open"]


def _stats(n, lo, hi):
    return {"min": [lo] * n, "max": [hi] * n, "mean": [0.0] * n, "std": [1.0] * n,
            "q01": [lo] * n, "q99": [hi] * n}


def _key(n):
    return {"absolute": True, "rotation_type": None, "shape": [n], "continuous": True}


METADATA = {"new_embodiment": {
    "statistics": {"state": {"single_arm": _stats(5, -1.0, 1.0), "gripper": _stats(1, 0.0, 1.0)},
                   "action": {"single_arm": _stats(5, -2.0, 2.0), "gripper": _stats(1, 0.0, 1.0)}},
    "modalities": {"video": {"webcam": {"resolution": [64, 48], "channels": 3, "fps": 10}},
                   "state": {"single_arm": _key(5), "gripper": _key(1)},
                   "action": {"single_arm": _key(5), "gripper": _key(1)}},
    "embodiment_tag": "new_embodiment"}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def observation(rng: np.random.Generator, task: str) -> dict:
    """One so100 observation: no batch axis, T = 1."""
    return {"video.webcam": rng.integers(0, 256, (1, 48, 64, 3), dtype=np.uint8),
            "state.single_arm": rng.uniform(-1, 1, (1, 5)).astype(np.float32),
            "state.gripper": rng.uniform(0, 1, (1, 1)).astype(np.float32),
            "annotation.human.task_description": task}


@pytest.fixture(scope="session")
def served_model(tmp_path_factory):
    """(model dir with tokenizer, the same without, tokenizer dir, the model config)."""
    root = tmp_path_factory.mktemp("served")
    tok = write_tokenizer(root / "tokenizer")
    cfg = tiny_config_for(tok)
    _, params = groot.init(cfg, seed=3)
    bare = ck.save_model(root / "bare", cfg, params, METADATA)
    model = shutil.copytree(bare, root / "model")
    ck.store_tokenizer(model, tok)
    return model, bare, tok, cfg


@pytest.fixture(scope="session")
def tiny_policy(served_model):
    from groot_jax.eval.policy import Policy

    policy = Policy(served_model[0], so100(), token_buckets=(TOKEN_BUCKET,),
                    batch_buckets=BATCH_BUCKETS, seed=0)
    policy.warmup()
    return policy


@pytest.fixture(scope="session")
def cache_env():
    """Environment for `groot-jax serve` subprocesses: the tests' persistent compile cache, so
    they load the programs tiny_policy compiled instead of compiling them again."""
    import os

    return {**os.environ, "JAX_PLATFORMS": "cpu",
            "JAX_COMPILATION_CACHE_DIR": jax.config.jax_compilation_cache_dir,
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
            "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
