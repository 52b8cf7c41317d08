"""GR00T N1.7 checkpoints across the framework boundary, against lerobot 0.6.1's own loading and
saving code (tests/reference/n17/ckpt_worker.py, in the N1.7 reference environment).

- `groot-jax convert export` of a tiny_n1_7 model dir with random weights and a processor is
  loaded by `GR00TN17.from_pretrained` offline (its Qwen3-VL config travels in the export as
  qwen3_vl/, config.json's model_name points at it): every tensor arrives unchanged, the tied
  lm_head is re-tied, and its action chunk equals ours for the same inputs and initial noise;
  lerobot's processor reads our statistics.json / processor_config.json / embodiment_id.json
  back to our statistics and slots.
- A directory lerobot's `save_pretrained` writes (sharded, a 4-layer Qwen3-VL config cut at
  select_layer 3, no groot_jax key) goes through `groot-jax convert import` to exactly its
  parameters, a config equal to tiny_n1_7, and its action chunk.

Inputs: the Qwen3-VL chat layout with 4 image tokens per 64x64 frame; lerobot's pixel rows come
from transformers' image processor (mean = std = 0.5, no resize) on the uint8 frames, ours from
(frames / 255 - 0.5) / 0.5 as [B, 1, 64, 64, 3].
"""
import dataclasses
import gc
import json

import jax
import numpy as np
import pytest
from flax import nnx

from groot_jax.cli import main as cli
from groot_jax.config import GR00TConfig
from groot_jax.convert import checkpoint as ck
from groot_jax.convert.gr00t_config import COSMOS_REASON2_2B, QWEN3_VL_DIR
from groot_jax.convert.state_dict import to_torch_state_dict
from groot_jax.data.embodiments import EMBODIMENT_TAG_TO_ID
from groot_jax.data.modality import DataConfig
from groot_jax.models import groot
from tests.parity.reference_env import run_n17_reference
from tests.parity.torch_helpers import max_abs

pytestmark = pytest.mark.parity
TOL = 1e-4
LM_HEAD = "backbone.model.lm_head.weight"
TAG = "new_embodiment"
STATS = ("mean", "std", "min", "max", "q01", "q99")
# Qwen special tokens (real ids) and ordinary ones ("user", "\n", "assistant").
IM_START, IM_END, PAD, USER, NEWLINE, ASSISTANT = 151644, 151645, 151643, 872, 198, 77091


def _perturbed(cfg: GR00TConfig, seed: int, scale: float = 0.05):
    """Random weights with every leaf perturbed (no norm left at ones, no bias at zeros)."""
    fns, params = groot.init(cfg, seed)
    rng = np.random.default_rng(seed)
    pure = jax.tree.map(lambda x: np.asarray(x) + scale * rng.standard_normal(x.shape, np.float32),
                        nnx.to_pure_dict(params))
    nnx.replace_by_pure_dict(params, pure)
    return fns, params


def _processor(cfg: GR00TConfig):
    """Metadata of one embodiment (state 5 + 3, action 5 + 2 dims) and its data config."""
    rng = np.random.default_rng(5)

    def stats(dim):
        lo = rng.normal(size=dim) - 2
        return {"mean": rng.normal(size=dim).tolist(), "std": rng.uniform(1, 2, dim).tolist(),
                "min": lo.tolist(), "max": (lo + 5).tolist(), "q01": (lo + 0.5).tolist(),
                "q99": (lo + 4.5).tolist()}

    def mod(dim):
        return {"absolute": True, "rotation_type": None, "shape": [dim], "continuous": True}

    state, action = {"arm": 5, "gripper": 3}, {"arm": 5, "gripper": 2}
    metadata = {TAG: {
        "statistics": {"state": {k: stats(d) for k, d in state.items()},
                       "action": {k: stats(d) for k, d in action.items()}},
        "modalities": {"video": {"front": {"resolution": [64, 64], "channels": 3, "fps": 10}},
                       "state": {k: mod(d) for k, d in state.items()},
                       "action": {k: mod(d) for k, d in action.items()}},
        "embodiment_tag": TAG}}
    keys = dict(state_keys=tuple(f"state.{k}" for k in state),
                action_keys=tuple(f"action.{k}" for k in action))
    data_config = DataConfig(
        name="tiny_n17_robot", embodiment_tag=TAG, video_keys=("video.front",),
        language_keys=("annotation.human.task_description",),
        action_indices=tuple(range(cfg.action_head.action_horizon)),
        state_normalization={k: "q99" for k in keys["state_keys"]},
        action_normalization={k: "q99" for k in keys["action_keys"]},
        image_size=cfg.backbone.image_size, max_state_dim=cfg.action_head.max_state_dim,
        max_action_dim=cfg.action_head.action_dim, **keys)
    return metadata, {TAG: data_config}


def _inputs(cfg: GR00TConfig, slot: int, seed: int) -> dict[str, np.ndarray]:
    """Two Qwen3-VL chat prompts (row 1 left-padded), one uint8 frame each, state, slots,
    initial noise: what ckpt_worker.py's make_inputs builds."""
    rng = np.random.default_rng(seed)
    bb, head = cfg.backbone, cfg.action_head

    def chat(text_ids):
        return ([IM_START, USER, NEWLINE, bb.vision_start_token_id]
                + [bb.image_token_id] * bb.tokens_per_image + [bb.vision_end_token_id]
                + text_ids + [IM_END, NEWLINE, IM_START, ASSISTANT, NEWLINE])

    rows = [chat(rng.integers(0, 150000, 6).tolist()), chat(rng.integers(0, 150000, 2).tolist())]
    length = max(map(len, rows))
    input_ids = np.full((2, length), PAD, np.int64)
    attention_mask = np.zeros((2, length), np.int64)
    for b, row in enumerate(rows):
        input_ids[b, length - len(row):], attention_mask[b, length - len(row):] = row, 1
    size = bb.image_size
    return dict(frames=rng.integers(0, 256, (2, size, size, 3), dtype=np.uint8),
                input_ids=input_ids, attention_mask=attention_mask,
                state=rng.normal(size=(2, 1, head.max_state_dim)).astype(np.float32),
                embodiment_id=np.array([3, slot], np.int64),
                init_noise=rng.normal(size=(2, head.action_horizon, head.action_dim)
                                      ).astype(np.float32))


def _ours(fns, params, io) -> np.ndarray:
    frames = (io["frames"].astype(np.float32) / 255.0 - 0.5) / 0.5
    inputs = dict(input_ids=io["input_ids"].astype(np.int32),
                  attention_mask=io["attention_mask"].astype(bool),
                  pixel_values=frames[:, None], state=io["state"],
                  embodiment_id=io["embodiment_id"].astype(np.int32))
    run = jax.jit(lambda p: fns.sample_actions(p, inputs, None, num_steps=4,
                                               noise=io["init_noise"]))
    return np.asarray(run(params))


def _flat(metadata, group, stat):
    """lerobot's flattening: the keys of a group in order, one vector per statistic."""
    return np.concatenate([np.asarray(v[stat], np.float32)
                           for v in metadata[TAG]["statistics"][group].values()])


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """tiny_n1_7 with random weights and a processor -> our model dir -> `convert export`
    (16 MB shards) -> lerobot loads it."""
    root = tmp_path_factory.mktemp("n17_export")
    cfg = GR00TConfig.tiny_n1_7()
    fns, params = _perturbed(cfg, seed=3)
    metadata, data_configs = _processor(cfg)
    ck.save_model(root / "model", cfg, params, metadata, data_configs=data_configs)
    assert cli(["convert", "export", str(root / "model"), str(root / "ckpt"),
                "--max-shard-gb", str(16 / 1024)]) == 0
    io = _inputs(cfg, EMBODIMENT_TAG_TO_ID[TAG], seed=4)
    np.savez(root / "inputs.npz", **io)
    state_dict, ref = run_n17_reference("ckpt_worker.py", root / "ref", "load", str(root / "ckpt"),
                                        "--inputs", str(root / "inputs.npz"))
    return dict(root=root, cfg=cfg, fns=fns, params=params, metadata=metadata, io=io,
                state_dict=state_dict, ref=ref)


def test_export_layout(exported):
    """The N1.7 release layout: sharded safetensors with their index, the three sidecars, no
    lm_head; config.json in lerobot's GR00TN17Config layout pointing at our Qwen3-VL config."""
    ckpt = exported["root"] / "ckpt"
    names = {p.name for p in ckpt.iterdir()}
    assert {"config.json", "model.safetensors.index.json", "processor_config.json",
            "statistics.json", "embodiment_id.json", QWEN3_VL_DIR} <= names
    assert len([n for n in names if n.startswith("model-")]) >= 2
    weight_map = json.loads((ckpt / "model.safetensors.index.json").read_text())["weight_map"]
    assert LM_HEAD not in weight_map and len(weight_map) == 207
    config = json.loads((ckpt / "config.json").read_text())
    assert config["model_type"] == "Gr00tN1d7" and config["architectures"] == ["GR00TN17"]
    assert config["model_name"] == str((ckpt / QWEN3_VL_DIR).absolute())
    assert config["model_name"] != COSMOS_REASON2_2B
    assert config["select_layer"] == 3
    assert exported["ref"]["is_raw_n17"]  # lerobot's own test for a raw N1.7 checkpoint


def test_lerobot_loads_our_export(exported):
    """Every tensor of our export arrives unchanged, in fp32. The file has no lm_head (as
    lerobot's own save_pretrained): from_pretrained leaves a fresh one, which GrootPolicy's
    re-tie (done by the worker) binds to embed_tokens; get_action never reads it."""
    ref, state_dict = exported["ref"], exported["state_dict"]
    ours = to_torch_state_dict(exported["cfg"], exported["params"])
    assert set(state_dict) == set(ours)
    differ = [k for k in ours if not np.array_equal(np.asarray(ours[k]), state_dict[k])]
    assert not differ, differ[:5]
    assert ref["param_dtypes"].tolist() == ["torch.float32"]
    assert ref["lm_head_untied_after_load"] and ref["lm_head_tied"]
    assert int(ref["llm_layers"]) == 3


def test_lerobot_chunk_equals_ours(exported):
    ours = _ours(exported["fns"], exported["params"], exported["io"])
    assert ours.shape == exported["ref"]["action_pred"].shape == (2, 4, 7)
    assert not exported["io"]["attention_mask"].all()  # a padded row
    assert max_abs(ours, exported["ref"]["action_pred"]) <= TOL


def test_lerobot_reads_our_processor_sidecars(exported):
    """lerobot's processor reads our statistics (q01/q99 as bounds: the data config normalises
    with q99), our projector slots, the frame size, the video keys and the action horizon."""
    ref, metadata = exported["ref"], exported["metadata"]
    assert ref["use_percentiles"]
    for group, ours in (("observation.state", "state"), ("action", "action")):
        for name, stat in (("min", "q01"), ("max", "q99"), ("mean", "mean"), ("std", "std")):
            np.testing.assert_array_equal(ref[f"stats/{group}/{name}"],
                                          _flat(metadata, ours, stat))
    assert json.loads(str(ref["embodiment_mapping"])) == EMBODIMENT_TAG_TO_ID
    assert ref["image_target_size"].tolist() == [64, 64]
    assert ref["video_modality_keys"].tolist() == ["front"]
    assert ref["action_delta_indices"].tolist() == [0, 1, 2, 3]


def test_reimport_of_our_export_is_lossless(exported, tmp_path):
    out = tmp_path / "model"
    assert cli(["convert", "import", str(exported["root"] / "ckpt"), str(out)]) == 0
    cfg, params, metadata = ck.load_model(out)
    assert cfg == exported["cfg"] and metadata == exported["metadata"]
    a, b = to_torch_state_dict(cfg, params), to_torch_state_dict(cfg, exported["params"])
    assert all(np.array_equal(np.asarray(a[k]), np.asarray(b[k])) for k in b)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("n17_save")
    state_dict, io = run_n17_reference("ckpt_worker.py", root / "ref", "save", "--seed", "9")
    return root, state_dict, io


def test_lerobot_save_pretrained_imports_exactly(saved, tmp_path):
    """lerobot's sharded save_pretrained dir (no groot_jax key; model_name = its 4-layer
    Qwen3-VL config dir) -> `convert import` -> exactly its parameters, tiny_n1_7's config, its
    action chunk."""
    root, state_dict, io = saved
    ckpt = root / "ref" / "ckpt"
    assert "model.safetensors.index.json" in io["files"].tolist()
    assert "groot_jax" not in json.loads((ckpt / "config.json").read_text())
    assert LM_HEAD not in state_dict
    with pytest.warns(UserWarning, match="no normalisation statistics"):
        assert cli(["convert", "import", str(ckpt), str(tmp_path / "model")]) == 0
    cfg, params, metadata = ck.load_model(tmp_path / "model")
    # The frame size is a processor setting: lerobot's config.json keeps its default
    # image_target_size [256, 256] (no weight depends on it), so the import says 256.
    assert cfg.backbone.image_size == 256
    cfg = dataclasses.replace(cfg, name="tiny_n1_7",
                              backbone=dataclasses.replace(cfg.backbone, image_size=64))
    assert cfg == GR00TConfig.tiny_n1_7()
    assert metadata == {}
    ours = to_torch_state_dict(cfg, params)
    assert set(ours) == set(state_dict)
    differ = [k for k in ours if not np.array_equal(np.asarray(ours[k]), state_dict[k])]
    assert not differ, differ[:5]
    fns, _ = groot.abstract(cfg)
    assert max_abs(_ours(fns, params, io), io["action_pred"]) <= TOL


def test_import_reads_released_style_sidecars(saved, tmp_path):
    """The sidecars of a released N1.7 checkpoint (the layout of lerobot's raw-checkpoint test
    fixture) become our metadata and a data config: keys in modality order, q01/q99
    normalisation from use_percentiles, the checkpoint's slot table kept beside the model."""
    import shutil

    root, _, _ = saved
    ckpt = tmp_path / "ckpt"
    shutil.copytree(root / "ref" / "ckpt", ckpt)

    def stats(values):
        return {"min": values, "max": [v + 100 for v in values], "mean": [v + 50 for v in values],
                "std": [1.0] * len(values), "q01": [v + 1 for v in values],
                "q99": [v + 99 for v in values]}

    (ckpt / "processor_config.json").write_text(json.dumps({
        "processor_class": "Gr00tN1d7Processor", "processor_kwargs": {
            "use_percentiles": True, "use_relative_action": False, "crop_fraction": 0.95,
            "modality_configs": {"libero_sim": {
                "video": {"delta_indices": [0], "modality_keys": ["image", "wrist_image"]},
                "state": {"delta_indices": [0], "modality_keys": ["xyz", "gripper"]},
                "action": {"delta_indices": [0, 1, 2, 3], "modality_keys": ["xyz", "gripper"]},
                "language": {"delta_indices": [0], "modality_keys": [
                    "annotation.human.action.task_description"]}}}}}))
    (ckpt / "statistics.json").write_text(json.dumps({"libero_sim": {
        "state": {"gripper": stats([6.0, 7.0]), "xyz": stats([0.0, 1.0, 2.0])},
        "action": {"xyz": stats([10.0, 11.0, 12.0]), "gripper": stats([16.0])},
        "relative_action": {}}}))
    (ckpt / "embodiment_id.json").write_text(json.dumps({"libero_sim": 2, TAG: 10}))
    out = tmp_path / "model"
    assert cli(["convert", "import", str(ckpt), str(out)]) == 0
    _, _, metadata = ck.load_model(out)
    entry = metadata["libero_sim"]
    assert list(entry["statistics"]["state"]) == ["xyz", "gripper"]  # modality_keys order
    assert entry["statistics"]["state"]["gripper"] == stats([6.0, 7.0])
    assert entry["modalities"]["action"]["xyz"]["shape"] == [3]
    assert list(entry["modalities"]["video"]) == ["image", "wrist_image"]
    from groot_jax.convert.processor_files import read_processor

    proc = read_processor(out)
    dc = proc.data_config("libero_sim")
    assert dc.state_keys == ("state.xyz", "state.gripper")
    assert dc.video_keys == ("video.image", "video.wrist_image")
    assert dc.language_keys == ("annotation.human.action.task_description",)
    assert dc.action_indices == (0, 1, 2, 3)
    assert set(dc.state_normalization.values()) == {"q99"}
    assert json.loads((out / "embodiment_id.json").read_text()) == {"libero_sim": 2, TAG: 10}


@pytest.mark.slow
def test_n1_7_3b_export_loads_in_lerobot(tmp_path):
    """n1_7_3b (3.14B parameters, fp32) with random weights: our export (model_name
    nvidia/Cosmos-Reason2-2B, lerobot's hard-coded backbone config) -> lerobot's chunk equals
    ours. Our weights are freed before lerobot loads, so host memory peaks near one fp32 copy
    (12.6 GB) plus one 1 GB shard."""
    cfg = GR00TConfig.n1_7_3b()
    fns, params = groot.init_host(cfg, seed=21)
    io = _inputs(cfg, EMBODIMENT_TAG_TO_ID[TAG], seed=22)
    ours = _ours(fns, params, io)
    assert np.isfinite(ours).all()
    metadata, data_configs = _processor(cfg)
    ck.export_gr00t(tmp_path / "ckpt", cfg, params, metadata, data_configs=data_configs,
                    max_shard_bytes=1 << 30)
    del params
    gc.collect()
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["model_name"] == COSMOS_REASON2_2B
    assert not (tmp_path / "ckpt" / QWEN3_VL_DIR).exists()
    np.savez(tmp_path / "inputs.npz", **io)
    _, ref = run_n17_reference("ckpt_worker.py", tmp_path / "ref", "load",
                               str(tmp_path / "ckpt"), "--inputs", str(tmp_path / "inputs.npz"),
                               "--digest")
    assert int(ref["llm_layers"]) == 16
    err = max_abs(ours, ref["action_pred"])
    print(f"\nn1_7_3b: our export loaded by lerobot, action chunk max abs diff {err:.2e}")
    assert err <= 1e-4, err
