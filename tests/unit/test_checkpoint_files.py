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
