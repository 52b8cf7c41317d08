"""`--init`: a fine-tune from an Isaac-GR00T directory starts from its weights (first loss = the
imported model's loss on the same batch and rng), keeps frozen groups bit-identical, records
the checkpoint's model config, and refuses a dataset whose widths differ from the statistics
the checkpoint stores for the same embodiment."""
from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from groot_jax.config import GR00TConfig
from groot_jax.convert import checkpoint as ck
from groot_jax.models import groot
from groot_jax.train import loop, optimizer, synthetic
from groot_jax.train import state as state_lib
from groot_jax.train.config import OptimConfig, TrainConfig
from groot_jax.train.init_from import check_widths_against_init, init_from
from tests.data.fixtures import write_tokenizer, write_v2_dataset
from tests.tiny_model import tiny_config_for

STEPS = 3


def _entry(tag: str, state: dict[str, int], action: dict[str, int]) -> dict:
    """A metadata.json entry with the given key widths (statistics of that width)."""
    def mod(keys):
        return {k: {"absolute": True, "rotation_type": None, "shape": [w], "continuous": True}
                for k, w in keys.items()}

    def stats(keys):
        return {k: {s: [0.5] * w for s in ("mean", "std", "min", "max", "q01", "q99")}
                for k, w in keys.items()}
    return {"statistics": {"state": stats(state), "action": stats(action)},
            "modalities": {"video": {}, "state": mod(state), "action": mod(action)},
            "embodiment_tag": tag}


METADATA = {"new_embodiment": _entry("new_embodiment", {"arm": 5, "gripper": 1},
                                     {"arm": 5, "gripper": 1})}


def _cfg(**kw) -> TrainConfig:
    # fp32 everywhere, so the loop's loss and the independent one agree to rounding.
    return TrainConfig(model="tiny", steps=STEPS, batch_size=2, log_every=1, progress=False,
                       param_dtype="float32", frozen_dtype="float32", compute_dtype="float32",
                       optim=OptimConfig(lr=1e-3, warmup_ratio=0.0),
                       **kw)


def _release(out, cfg) -> tuple:
    _, params = groot.init(cfg, seed=123)
    return ck.export_gr00t(out, cfg, params, METADATA), cfg


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """A random tiny model written as an Isaac-GR00T directory: the "released checkpoint".
    Seed 123, not the run's seed 0, so a silent re-initialisation gives other weights."""
    cfg = dataclasses.replace(GR00TConfig.tiny(), name="tiny_released")
    return _release(tmp_path_factory.mktemp("released") / "ckpt", cfg)


@pytest.fixture(scope="module")
def batches(released):
    task = synthetic.SyntheticTask.for_model(released[1])
    it = iter(synthetic.dataset(task, 2, seed=7))
    return [next(it) for _ in range(STEPS)]


def _first_loss(model_cfg, params, batch, seed: int) -> float:
    """The loss of step 1 computed without the train loop: the model's own loss function on the
    batch, with the rng the step uses (the run's key folded with step 0)."""
    fns, _ = groot.abstract(model_cfg)
    rng = jax.random.fold_in(jax.random.key(seed), 0)
    b = {k: jnp.asarray(v) for k, v in batch.items()}
    return float(jax.jit(lambda p, b, r: fns.loss(p, b, r, train=True))(params, b, rng))


def _flat(tree) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in optimizer.flatten(jax.device_get(tree)).items()}


def test_first_loss_is_the_imported_models_and_frozen_stay(released, batches):
    path, model_cfg = released
    src = init_from(path, _cfg())
    cfg = src.cfg
    # The run takes the checkpoint's model config (its name too) and records it.
    assert cfg.model_config() == model_cfg and cfg.init == str(path)
    assert json.loads(cfg.to_json())["init"] == str(path)
    assert src.metadata == METADATA and src.metadata_file == path / ck.METADATA_FILE
    res = loop.train(cfg, params_fn=src.params_fn, data_iter=iter(batches), log=lambda m: None)
    assert sorted(res.losses) == list(range(1, STEPS + 1))

    _, _, imported, _ = ck.load_pretrained(path)
    want = _first_loss(model_cfg, imported, batches[0], cfg.seed)
    np.testing.assert_allclose(res.losses[1], want, rtol=1e-5)
    # Negative control: what a silent re-initialisation (the loop's default params) would give.
    fresh = state_lib.default_params_fn(cfg.model_config(), cfg.seed, cfg.category_init)()
    other = _first_loss(model_cfg, fresh, batches[0], cfg.seed)
    assert abs(other - want) > 1e-3 * abs(want), (other, want)

    # Default flags freeze the vision tower and the LLM: bit-identical after the steps.
    ref = _flat(nnx.to_pure_dict(imported))
    frozen, trained = _flat(res.state.frozen), _flat(res.state.params)
    assert frozen and all(k.startswith(("backbone/vision", "backbone/mlp1", "backbone/llm"))
                          for k in frozen), sorted(frozen)[:5]
    assert any(k.startswith("backbone/llm") for k in frozen)
    for k, v in frozen.items():
        np.testing.assert_array_equal(v, ref[k], err_msg=k)
    assert set(frozen) | set(trained) == set(ref)
    changed = [k for k, v in trained.items() if not np.array_equal(v, ref[k])]
    assert any(k.startswith("action_head/model") for k in changed), changed[:5]


def test_frozen_action_head_groups_stay_bit_identical(released, batches):
    path, _ = released
    src = init_from(path, _cfg(tune_projector=False, tune_diffusion_model=True, tune_llm=True))
    res = loop.train(src.cfg, params_fn=src.params_fn, data_iter=iter(batches),
                     log=lambda m: None)
    _, _, imported, _ = ck.load_pretrained(path)
    ref = _flat(nnx.to_pure_dict(imported))
    frozen, trained = _flat(res.state.frozen), _flat(res.state.params)
    projector = [k for k in ref if k.startswith(optimizer.HEAD_GROUPS["tune_projector"])]
    assert projector and set(projector) <= set(frozen)
    assert not any(k.startswith("backbone/llm") for k in frozen)   # tune_llm=True: trained
    for k, v in frozen.items():
        np.testing.assert_array_equal(v, ref[k], err_msg=k)
    changed = {k for k, v in trained.items() if not np.array_equal(v, ref[k])}
    assert any(k.startswith("backbone/llm") for k in changed)
    assert any(k.startswith("action_head/model") for k in changed)


def test_init_from_a_groot_jax_model_dir(released, tmp_path):
    path, model_cfg = released
    cfg, _, params, meta = ck.load_pretrained(path)
    ours = ck.save_model(tmp_path / "model", cfg, params, meta)
    src = init_from(ours, _cfg())
    assert src.cfg.model_config() == model_cfg and src.metadata == METADATA
    assert src.metadata_file == ours / ck.OUR_METADATA
    got, want = _flat(src.params_fn()), _flat(nnx.to_pure_dict(params))
    assert set(got) == set(want)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)


def test_checkpoint_config_replaces_the_run_configs_model(released, tmp_path):
    """A run config's own model settings (finetune_tiny's small images) give way to the
    checkpoint's, and the log says which."""
    path, model_cfg = released
    other = dataclasses.replace(model_cfg.action_head, max_state_dim=32)
    said = []
    src = init_from(path, _cfg(model_overrides=(("action_head", other),)), log=said.append)
    assert src.cfg.model_config() == model_cfg
    assert len(said) == 1 and "replacing the run config's name, action_head" in said[0], said
    with pytest.raises(ck.CheckpointFileError, match="neither an Isaac-GR00T"):
        init_from(tmp_path, _cfg())


def test_width_mismatch_names_both_files_tag_key_and_widths():
    init = {"new_embodiment": _entry("new_embodiment", {"arm": 5, "gripper": 1},
                                     {"arm": 5, "gripper": 1}),
            "gr1": _entry("gr1", {"x": 3}, {"x": 3})}
    same = {"new_embodiment": _entry("new_embodiment", {"arm": 5, "gripper": 1},
                                     {"arm": 5, "gripper": 1}),
            "other_tag": _entry("other_tag", {"x": 9}, {"x": 9})}
    check_widths_against_init(same, init, "run/stats.json", "ckpt/metadata.json")   # no error
    wide = {"new_embodiment": _entry("new_embodiment", {"arm": 6, "gripper": 1},
                                     {"arm": 5, "gripper": 1})}
    with pytest.raises(ValueError) as e:
        check_widths_against_init(wide, init, "run/stats.json", "ckpt/metadata.json")
    msg = str(e.value)
    for part in ("'new_embodiment'", "state.arm", "6 wide in run/stats.json",
                 "5 wide in ckpt/metadata.json"):
        assert part in msg, msg
    assert "gripper" not in msg, msg
    # A key the checkpoint's layout lacks (here: statistics only, no modality shape recorded).
    extra = _entry("new_embodiment", {"arm": 5, "gripper": 1}, {"arm": 5, "gripper": 1})
    extra["statistics"]["action"]["base"] = {"mean": [0.0, 0.0]}
    with pytest.raises(ValueError, match=r"action\.base: 2 wide in run.*absent in ckpt"):
        check_widths_against_init({"new_embodiment": extra}, init, "run", "ckpt")


def test_cli_refuses_a_dataset_whose_widths_differ_from_the_init_stats(tmp_path, capsys):
    """The v2.1 fixture's state.arm is 6 wide; the checkpoint's statistics for the same
    embodiment (new_embodiment) say 5: an error naming both files, before any training."""
    from groot_jax import cli

    tok = write_tokenizer(tmp_path / "tok")
    path, _ = _release(tmp_path / "released", tiny_config_for(tok))   # the tokenizer's vocab
    ds = write_v2_dataset(tmp_path / "ds")
    before = sorted((p.relative_to(ds), p.stat().st_mtime_ns) for p in ds.rglob("*"))
    rc = cli.main(["train", "--config", "finetune_tiny", "--dataset", str(ds), "--tokenizer",
                   str(tok), "--init", str(path), f"checkpoint.dir={tmp_path / 'run'}",
                   "steps=1"], handle_errors=True)
    err = capsys.readouterr().err
    assert rc == 1, err
    for part in ("'new_embodiment'", "state.arm: 6 wide", f"5 wide in {path / ck.METADATA_FILE}"):
        assert part in err, err
    assert sorted((p.relative_to(ds), p.stat().st_mtime_ns) for p in ds.rglob("*")) == before
    assert not list((tmp_path / "run").glob("[0-9]*"))   # no step was trained


SHARDED_INIT = """
import json, sys
import jax, numpy as np
from flax import nnx
from groot_jax import sharding
from groot_jax.convert import checkpoint as ck
from groot_jax.train import optimizer, state as st
from groot_jax.train.config import MeshConfig, TrainConfig
from groot_jax.train.init_from import init_from

assert jax.device_count() == 8
cfg = TrainConfig(model="tiny", frozen_dtype="float32", mesh=MeshConfig(fsdp=4, min_shard_bytes=0))
src = init_from(sys.argv[1], cfg, log=None)
loaded = optimizer.flatten(src.params_fn())
mesh = sharding.make_mesh(2, 4, 1)
s = st.setup(src.cfg, mesh)
state = st.init_state(src.cfg, s, src.params_fn)
want = optimizer.flatten(nnx.to_pure_dict(ck.load_pretrained(sys.argv[1])[2]))
got = optimizer.flatten(jax.device_get(optimizer.merge_params(state.params, state.frozen, src.cfg)))
print(json.dumps({
    "equal": all(np.array_equal(np.asarray(got[k]), np.asarray(want[k])) for k in want),
    "same_keys": sorted(got) == sorted(want),
    "loaded_split": sum(len(v.sharding.device_set) == 8 and "fsdp" in str(v.sharding.spec)
                        for v in loaded.values()),
}))
"""


def test_init_loads_each_parameter_onto_its_fsdp_sharding(released):
    """On 8 simulated devices (data=2 x fsdp=4) the weights are read straight onto their
    shardings and the train state holds exactly the checkpoint's values."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    path, _ = released
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8")
    p = subprocess.run([sys.executable, "-c", SHARDED_INIT, str(path)], env=env, text=True,
                       capture_output=True, timeout=300, cwd=Path(__file__).resolve().parents[2])
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads(p.stdout.strip().splitlines()[-1])
    assert r["equal"] and r["same_keys"], r
    assert r["loaded_split"] > 20, r
