"""File-level checkpoints: Isaac-GR00T directories <-> our Orbax model directories."""
import json
import shutil
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from groot_jax.config import GR00TConfig
from groot_jax.convert import checkpoint as ck
from groot_jax.convert.gr00t_config import ConfigError
from groot_jax.convert.safetensors_io import INDEX, CheckpointFileError, SafetensorsCheckpoint
from groot_jax.convert.state_dict import StateDictError, from_torch_state_dict
from tests.unit.test_checkpoint_layout import _random_state_dict

METADATA = {"new_embodiment": {
    "statistics": {"state": {"arm": {"min": [0.0], "max": [1.0], "mean": [0.5], "std": [0.2],
                                     "q01": [0.01], "q99": [0.99]}}, "action": {}},
    "modalities": {"video": {}, "state": {}, "action": {}},
    "embodiment_tag": "new_embodiment"}}


@pytest.fixture(scope="module")
def tiny_model():
    cfg = GR00TConfig.tiny()
    sd = _random_state_dict(cfg, seed=7)
    return cfg, from_torch_state_dict(cfg, sd), sd


def _tensors(directory: Path) -> dict[str, np.ndarray]:
    ckpt = SafetensorsCheckpoint(directory)
    return {k: ckpt.get(k) for k in ckpt.files}


def test_export_import_export_is_byte_identical(tiny_model, tmp_path):
    cfg, params, _ = tiny_model
    first = ck.export_gr00t(tmp_path / "first", cfg, params, METADATA, max_shard_bytes=4 << 20)
    assert (first / INDEX).exists() and len(list(first.glob("model-*.safetensors"))) > 1
    ours = ck.import_checkpoint(first, tmp_path / "ours")
    second = ck.export_checkpoint(ours, tmp_path / "second", max_shard_bytes=4 << 20)
    a, b = _tensors(first), _tensors(second)
    assert list(a) == list(b)
    for key in a:
        assert a[key].dtype == np.float32 and a[key].tobytes() == b[key].tobytes(), key
    assert (first / "config.json").read_text() == (second / "config.json").read_text()
    assert json.loads((second / ck.METADATA_FILE).read_text()) == METADATA
    cfg2, _, params2, meta2 = ck.load_pretrained(ours)
    assert cfg2 == cfg and meta2 == METADATA


def test_bf16_export_and_import(tiny_model, tmp_path):
    cfg, params, sd = tiny_model
    out = ck.export_gr00t(tmp_path / "bf16", cfg, params, METADATA, dtype="bf16")
    assert json.loads((out / "config.json").read_text())["torch_dtype"] == "bfloat16"
    tensors = _tensors(out)
    key = "action_head.vlln.weight"
    assert tensors[key].dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(tensors[key], sd[key].astype(ml_dtypes.bfloat16))
    _, _, bf16_params, _ = ck.load_pretrained(out, dtype="bf16")
    _, _, fp32_params, _ = ck.load_pretrained(out)
    leaf = np.asarray(bf16_params["action_head"]["vlln"]["scale"][...])
    assert leaf.dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(np.asarray(fp32_params["action_head"]["vlln"]["scale"][...]),
                                  sd[key].astype(ml_dtypes.bfloat16).astype(np.float32))


def _exported(tiny_model, tmp_path, name="ckpt", **kw):
    cfg, params, _ = tiny_model
    return ck.export_gr00t(tmp_path / name, cfg, params, METADATA, **kw)


def _rewrite(directory: Path, edit):
    """Apply `edit(tensors)` to a single-file checkpoint."""
    path = directory / "model.safetensors"
    tensors = load_file(str(path))
    edit(tensors)
    save_file(tensors, str(path))


def test_missing_unexpected_and_misshaped_keys_are_named(tiny_model, tmp_path):
    d = _exported(tiny_model, tmp_path)

    def edit(t):
        del t["action_head.position_embedding.weight"]
        t["action_head.mystery.weight"] = np.zeros(2, np.float32)
        t["action_head.vlln.bias"] = np.zeros(5, np.float32)

    _rewrite(d, edit)
    with pytest.raises(StateDictError) as err:
        ck.read_gr00t(d)
    msg = str(err.value)
    assert str(d) in msg and "action_head.position_embedding.weight" in msg
    assert "action_head.mystery.weight" in msg
    assert "action_head.vlln.bias: expected (64,), found (5,)" in msg


def test_wrong_model_type_and_n1_checkpoint(tiny_model, tmp_path):
    d = _exported(tiny_model, tmp_path)
    config = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps(dict(config, model_type="llama")))
    with pytest.raises(ConfigError, match=r"config.json: model_type 'llama' is not a GR00T"):
        ck.read_gr00t(d)
    (d / "config.json").write_text(json.dumps(dict(config, model_type="gr00t_n1")))
    with pytest.raises(ConfigError, match="gr00t_n1 checkpoint but the requested config 'tiny'"):
        ck.read_gr00t(d, cfg=GR00TConfig.tiny())

    n1 = GR00TConfig.tiny_n1()
    n1_dir = ck.export_gr00t(tmp_path / "n1", n1, from_torch_state_dict(n1, _random_state_dict(n1)))
    config = json.loads((n1_dir / "config.json").read_text())
    config.pop("groot_jax")
    (n1_dir / "config.json").write_text(json.dumps(dict(config, model_type="gr00t_n1_5")))
    with pytest.raises(StateDictError, match="holds an N1 checkpoint .*use preset 'n1_2b'"):
        ck.read_gr00t(n1_dir, cfg=GR00TConfig.tiny())


def test_truncated_and_corrupt_files(tiny_model, tmp_path):
    d = _exported(tiny_model, tmp_path, max_shard_bytes=4 << 20)
    shard = sorted(d.glob("model-*.safetensors"))[0]
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) - 100])
    with pytest.raises(CheckpointFileError, match=f"{shard.name}: truncated"):
        ck.read_gr00t(d)
    shard.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json!!!!!}" + data[24:])
    with pytest.raises(CheckpointFileError, match=f"{shard.name}: corrupt safetensors header"):
        ck.read_gr00t(d)
    shard.unlink()
    with pytest.raises(CheckpointFileError, match=f"lists {shard.name}, which does not exist"):
        ck.read_gr00t(d)


def test_pickled_weights_are_refused_not_loaded(tmp_path, tiny_model):
    d = _exported(tiny_model, tmp_path)
    (d / "model.safetensors").unlink()
    (d / "pytorch_model.bin").write_bytes(b"not even looked at")
    with pytest.raises(CheckpointFileError, match="never unpickled"):
        ck.read_gr00t(d)


def test_refuses_to_overwrite(tiny_model, tmp_path):
    d = _exported(tiny_model, tmp_path)
    with pytest.raises(FileExistsError):
        _exported(tiny_model, tmp_path)
    shutil.rmtree(d)


def test_cli_import_export(tiny_model, tmp_path, capsys):
    from groot_jax.cli import main

    src = _exported(tiny_model, tmp_path, name="src")
    assert main(["convert", "import", str(src), str(tmp_path / "ours"), "--preset", "tiny"]) == 0
    assert main(["convert", "export", str(tmp_path / "ours"), str(tmp_path / "back")]) == 0
    a, b = _tensors(src), _tensors(tmp_path / "back")
    assert all(a[k].tobytes() == b[k].tobytes() for k in a)
    assert "imported" in capsys.readouterr().out


# ---- the processor files (data configs, statistics, tokenizer) beside the weights -------------
def _wide_config():
    """A data config no preset has (two cameras, 3-d state, 4-d action) with every field set."""
    from groot_jax.data.modality import DataConfig

    return DataConfig(name="two_cam", embodiment_tag="new_embodiment",
                      video_keys=("video.left", "video.right"), state_keys=("state.joints",),
                      action_keys=("action.joints",), language_keys=("annotation.human.task",),
                      observation_indices=(-1, 0), action_indices=tuple(range(8)),
                      state_normalization={"state.joints": "mean_std"},
                      action_normalization={"action.joints": "q99"},
                      state_target_rotations={"state.joints": "rotation_6d"},
                      crop_scale=0.9, image_size=112, color_jitter=None)


def _wide_metadata():
    def stats(n):
        return {"min": [-1.0] * n, "max": [1.0] * n, "mean": [0.0] * n, "std": [0.5] * n,
                "q01": [-0.9] * n, "q99": [0.9] * n}

    key = {"absolute": True, "rotation_type": None, "continuous": True}
    return {"new_embodiment": {
        "statistics": {"state": {"joints": stats(3)}, "action": {"joints": stats(4)}},
        "modalities": {"video": {"left": {}, "right": {}}, "state": {"joints": {**key, "shape": [3]}},
                       "action": {"joints": {**key, "shape": [4]}}},
        "embodiment_tag": "new_embodiment"}}


def test_data_config_json_round_trip_restores_tuples():
    from groot_jax.data.embodiments import PRESETS
    from groot_jax.data.modality import DataConfig

    for cfg in [_wide_config()] + [f() for f in PRESETS.values()]:
        back = DataConfig.from_json(json.loads(json.dumps(cfg.to_json())), "x.json")
        assert back == cfg
        assert isinstance(back.video_keys, tuple) and isinstance(back.action_indices, tuple)
    assert DataConfig.from_json(_wide_config().to_json()).color_jitter is None


@pytest.mark.parametrize("edit, match", [
    (lambda d: d.update(colour="red"), r"cfg\.json: unknown data config field\(s\) \['colour'\]"),
    (lambda d: d.pop("state_keys"), r"cfg\.json: data config lacks required field\(s\) \['state_k"),
    (lambda d: d.update(action_indices=[0, "1"]), r"cfg\.json: .*'action_indices' must be"),
    (lambda d: d.update(video_keys="video.left"), r"cfg\.json: .*'video_keys' must be a list"),
    (lambda d: d.update(color_jitter=[0.1]), r"cfg\.json: .*'color_jitter' must be null or"),
])
def test_data_config_from_json_names_file_and_field(edit, match):
    from groot_jax.data.errors import DataError
    from groot_jax.data.modality import DataConfig

    obj = _wide_config().to_json()
    edit(obj)
    with pytest.raises(DataError, match=match):
        DataConfig.from_json(obj, "cfg.json")


def test_data_config_fields_with_defaults_may_be_absent():
    from groot_jax.data.modality import DataConfig

    obj = {k: v for k, v in _wide_config().to_json().items() if k not in ("crop_scale",
                                                                            "image_size")}
    back = DataConfig.from_json(obj)
    assert back.crop_scale == 0.95 and back.image_size == 224 and back.observation_indices == (-1, 0)


def test_processor_write_read_in_processor_model_and_export_dirs(tiny_model, tmp_path):
    from groot_jax.convert import processor_files as pf
    from tests.data.fixtures import write_tokenizer

    cfg, params, _ = tiny_model
    tok = write_tokenizer(tmp_path / "tok")
    data, meta = {"new_embodiment": _wide_config()}, _wide_metadata()
    run = tmp_path / "run"
    pf.write_processor(run / pf.PROCESSOR_DIR, data_configs=data, metadata=meta, tokenizer_dir=tok)
    (run / pf.RUN_CONFIG).write_text("{}")
    for where in (run, run / pf.PROCESSOR_DIR):
        got = pf.read_processor(where)
        assert got.data_configs == data and got.metadata == meta
        assert got.tokenizer_dir == run / pf.PROCESSOR_DIR and ck.has_tokenizer(got.tokenizer_dir)
        assert got.data_config() == data["new_embodiment"]
    model = ck.save_model(tmp_path / "model", cfg, params, meta, data_configs=data)
    got = pf.read_processor(model)
    assert got.data_configs == data and got.metadata == meta and got.tokenizer_dir is None
    exported = ck.export_checkpoint(model, tmp_path / "gr00t")
    assert (exported / "experiment_cfg" / pf.DATA_CONFIGS).is_file()
    got = pf.read_processor(exported)
    assert got.data_configs == data and got.metadata == meta
    # import carries the data configs of our export back into a model dir
    again = ck.import_checkpoint(exported, tmp_path / "again")
    assert pf.read_processor(again).data_configs == data


def test_processor_errors_name_the_file_and_key(tmp_path):
    from groot_jax.convert import processor_files as pf
    from groot_jax.data.errors import DataError

    data, meta = {"new_embodiment": _wide_config()}, _wide_metadata()
    bad = json.loads(json.dumps(meta))
    del bad["new_embodiment"]["statistics"]["action"]["joints"]
    with pytest.raises(ValueError, match=r"no statistics\.action\.joints .*'action\.joints'"):
        pf.write_processor(tmp_path / "p", data_configs=data, metadata=bad)
    with pytest.raises(ValueError, match=r"filed under 'gr1'"):
        pf.write_processor(tmp_path / "p", data_configs={"gr1": _wide_config()}, metadata=meta)
    assert not (tmp_path / "p").exists()  # nothing written when the check fails
    proc = pf.write_processor(tmp_path / "p", data_configs=data, metadata=meta)
    (proc / pf.DATA_CONFIGS).write_text(json.dumps({"new_embodiment": {"name": "x"}}))
    with pytest.raises(DataError, match=r"data_configs\.json \['new_embodiment'\]: .*lacks"):
        pf.read_processor(proc)
    (proc / "metadata.json").unlink()
    (proc / pf.DATA_CONFIGS).unlink()
    pf.write_data_configs(proc, data)
    with pytest.raises(CheckpointFileError, match=r"p/metadata\.json: missing"):
        pf.read_processor(proc)
    with pytest.raises(CheckpointFileError, match="no processor files"):
        pf.read_processor(tmp_path)


def test_data_config_choice_and_derivation_from_metadata():
    from groot_jax.convert import processor_files as pf

    meta = _wide_metadata()
    two = {**meta, "gr1": {**meta["new_embodiment"], "embodiment_tag": "gr1"}}
    files = pf.ProcessorFiles({}, two, None, source="ckpt")
    with pytest.raises(ValueError, match=r"ckpt: holds embodiments \['gr1', 'new_embodiment'\]"):
        files.data_config()
    with pytest.raises(ValueError, match=r"no embodiment 'oxe_droid'"):
        files.data_config("oxe_droid")
    with pytest.warns(UserWarning, match="derived from metadata.json"):
        derived = files.data_config("gr1", action_horizon=8)
    assert derived.video_keys == ("video.left", "video.right")
    assert derived.state_keys == ("state.joints",) and derived.action_keys == ("action.joints",)
    assert derived.language_keys == (pf.DERIVED_LANGUAGE_KEY,) and derived.embodiment_tag == "gr1"
    assert derived.action_indices == tuple(range(8))
    assert derived.action_normalization == {"action.joints": "min_max"}
