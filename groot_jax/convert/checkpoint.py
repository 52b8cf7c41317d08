"""Checkpoints in and out: Isaac-GR00T / lerobot directories <-> our Orbax model directories.

Isaac-GR00T layout (read and written):
  config.json                      model_type gr00t_n1_5 | gr00t_n1, backbone_cfg, action_head_cfg
  model.safetensors | model-0000i-of-0000n.safetensors + model.safetensors.index.json
  experiment_cfg/metadata.json     per-embodiment statistics and modality metadata (spec 9.1)
  experiment_cfg/data_configs.json our exports only: the data configs (convert/processor_files.py)
  tokenizer files                  our exports only, when the model has them (TOKENIZER_FILES)
GR00T N1.7 layout (lerobot 0.6.1 / Isaac-GR00T N1.7, N1.7 spec 1.5; read and written):
  config.json                      lerobot's GR00TN17Config (model_type Gr00tN1d7; gr00t_config.py)
  model.safetensors | model-*.safetensors + index   1031 tensors, tied lm_head omitted on export
                                   (lerobot re-ties it) and accepted and dropped on import
  processor_config.json, statistics.json, embodiment_id.json   the processor (n17_files.py)
  qwen3_vl/config.json             our exports of a non-Cosmos backbone only: the Qwen3-VL config
                                   config.json's model_name points at (absolute path)
  experiment_cfg/metadata.json, experiment_cfg/data_configs.json, tokenizer files: our exports
                                   only, as above (import prefers them to the sidecars: lossless)
Our model directory:
  groot_config.json  params/ (Orbax)  metadata.json  data_configs.json  tokenizer files

Import reads tensor by tensor from memory-mapped files and places each parameter (all layers
of a stacked parameter) on its device before reading the next, so host memory peaks near one
copy of the model plus one parameter.
"""
from __future__ import annotations

import dataclasses
import json
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

import jax
import ml_dtypes
import numpy as np
from flax import nnx

from groot_jax.config import FlareConfig, GR00TConfig, config_from_dict, config_to_dict
from groot_jax.convert.gr00t_config import ConfigError, from_gr00t_json, to_gr00t_json
from groot_jax.convert.keymap import gr00t_entries, ignorable_keys, to_ours, to_torch
from groot_jax.convert.safetensors_io import CheckpointFileError, SafetensorsCheckpoint, write_checkpoint
from groot_jax.convert.state_dict import LEROBOT_PREFIX, StateDictError, _get, check_state_dict

# The dtype names a user types (--dtype); safetensors_io.DTYPES maps the file format's codes.
DTYPES = {"float32": np.float32, "fp32": np.float32, "bfloat16": ml_dtypes.bfloat16,
          "bf16": ml_dtypes.bfloat16}
METADATA_FILE = Path("experiment_cfg") / "metadata.json"
OUR_CONFIG, OUR_PARAMS, OUR_METADATA = "groot_config.json", "params", "metadata.json"


def _dtype(name) -> np.dtype:
    if isinstance(name, str):
        if name not in DTYPES:
            raise ValueError(f"dtype {name!r} not supported; use one of {sorted(DTYPES)}")
        return np.dtype(DTYPES[name])
    return np.dtype(name)


def validate_metadata(metadata: Any, source: str) -> dict:
    """Per-embodiment metadata: {tag: {"statistics", "modalities", "embodiment_tag"}}."""
    if not isinstance(metadata, dict):
        raise ValueError(f"{source}: metadata must be a JSON object keyed by embodiment tag")
    for tag, meta in metadata.items():
        missing = [k for k in ("statistics", "modalities", "embodiment_tag")
                   if not isinstance(meta, dict) or k not in meta]
        if missing:
            raise ValueError(f"{source}: embodiment {tag!r} lacks {missing}")
    return metadata


# ---- reading Isaac-GR00T directories ----------------------------------------------------------
def read_gr00t_config(ckpt_dir: Path, expect: GR00TConfig | None = None) -> GR00TConfig:
    path = Path(ckpt_dir) / "config.json"
    if not path.exists():
        raise CheckpointFileError(f"{ckpt_dir}: no config.json (not a GR00T checkpoint directory)")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointFileError(f"{path}: not valid JSON ({e})") from e
    return from_gr00t_json(data, source=str(path), expect=expect, base_dir=Path(ckpt_dir))


def _torch_keys(ckpt: SafetensorsCheckpoint) -> dict[str, str]:
    """Checkpoint key -> file key, dropping the `_groot_model.` prefix of lerobot finetunes."""
    keys = list(ckpt.files)
    if keys and all(k.startswith(LEROBOT_PREFIX) for k in keys):
        return {k[len(LEROBOT_PREFIX):]: k for k in keys}
    return {k: k for k in keys}


def read_gr00t(ckpt_dir, *, cfg: GR00TConfig | None = None, dtype="float32",
               sharding_for: Callable[[tuple[str, ...]], Any] | None = None):
    """(cfg, params, metadata) from an Isaac-GR00T or lerobot checkpoint directory.

    `cfg` forces a config (its model type must match); `sharding_for(path)` gives the
    `jax.sharding.Sharding` of each parameter (default: the default device)."""
    ckpt_dir = Path(ckpt_dir)
    cfg = read_gr00t_config(ckpt_dir, expect=cfg)
    ckpt = SafetensorsCheckpoint(ckpt_dir)
    names = _torch_keys(ckpt)
    shapes = {k: ckpt.shapes[f] for k, f in names.items()}
    if cfg.model_type == "gr00t_n1_5" and any(k.startswith("backbone.model.") for k in shapes):
        raise StateDictError(f"{ckpt_dir} holds an N1 checkpoint (keys 'backbone.model.*') but "
                             f"the config is N1.5 ({cfg.name}); use preset 'n1_2b'")
    if cfg.model_type == "gr00t_n1" and any(k.startswith("backbone.eagle_model.") for k in shapes):
        raise StateDictError(f"{ckpt_dir} holds an N1.5 checkpoint (keys 'backbone.eagle_model.*')"
                             f" but the config is N1 ({cfg.name}); use preset 'n1_5_3b'")
    from groot_jax.models.groot import abstract

    _, target = abstract(cfg)
    pure = nnx.to_pure_dict(target)
    entries = gr00t_entries(cfg)
    check_state_dict(entries, shapes, pure, ignore=ignorable_keys(cfg), source=str(ckpt_dir))
    out_dtype = _dtype(dtype)
    groups: dict[tuple[str, ...], list] = defaultdict(list)
    for e in entries:
        groups[e.path].append(e)
    for path, group in groups.items():
        host = np.empty(_get(pure, path).shape, out_dtype)
        for e in group:
            value = to_ours(e.kind, ckpt.get(names[e.torch_key]))
            if e.layer is None:
                host[...] = value
            else:
                host[e.layer] = value
        sharding = sharding_for(path) if sharding_for else None
        leaf = jax.device_put(host, sharding) if sharding is not None else jax.numpy.asarray(host)
        _set_leaf(pure, path, leaf)
        del host
    ckpt.close()
    params = jax.tree.map(lambda x: x, target)
    nnx.replace_by_pure_dict(params, pure)
    return cfg, params, read_gr00t_metadata(ckpt_dir)


def read_gr00t_metadata(ckpt_dir) -> dict:
    """The per-embodiment metadata of a checkpoint dir: experiment_cfg/metadata.json (N1.5, and
    our exports), else an N1.7 dir's statistics.json + processor_config.json; {} with a
    warning when it has neither."""
    from groot_jax.convert.n17_files import STATISTICS, has_n17_sidecars, read_n17_metadata

    ckpt_dir = Path(ckpt_dir)
    metadata_path = ckpt_dir / METADATA_FILE
    if metadata_path.exists():
        return validate_metadata(json.loads(metadata_path.read_text()), str(metadata_path))
    if has_n17_sidecars(ckpt_dir):
        return validate_metadata(read_n17_metadata(ckpt_dir), str(ckpt_dir / STATISTICS))
    warnings.warn(f"{ckpt_dir} has no {METADATA_FILE} (nor an N1.7 {STATISTICS}): no "
                  "normalisation statistics imported", stacklevel=3)
    return {}


def _set_leaf(tree: dict, path: tuple[str, ...], value) -> None:
    for p in path[:-1]:
        tree = tree[p]
    tree[path[-1]] = value


# ---- our Orbax model directories ---------------------------------------------------------------
def save_model(out_dir, cfg: GR00TConfig, params: nnx.State, metadata: dict | None = None, *,
               data_configs: dict | None = None) -> Path:
    """Write our model directory (config, Orbax params, metadata, and data_configs.json when
    `data_configs` {tag: DataConfig} is given). Refuses a non-empty target."""
    import orbax.checkpoint as ocp

    from groot_jax.convert.processor_files import check_processor, write_data_configs

    if data_configs:  # before anything is written
        check_processor(data_configs, metadata or {}, str(out_dir))

    out_dir = Path(out_dir).absolute()
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} exists and is not empty; choose a new directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(out_dir / OUR_PARAMS, nnx.to_pure_dict(params))
        ckptr.wait_until_finished()
    (out_dir / OUR_METADATA).write_text(json.dumps(metadata or {}, indent=2) + "\n")
    (out_dir / OUR_CONFIG).write_text(json.dumps(config_to_dict(cfg), indent=2) + "\n")
    if data_configs:
        write_data_configs(out_dir, data_configs)
    return out_dir


def load_model(model_dir, *, dtype=None, sharding_for=None):
    """(cfg, params, metadata) from our model directory; `dtype` casts on restore."""
    import orbax.checkpoint as ocp

    model_dir = Path(model_dir).absolute()
    for name in (OUR_CONFIG, OUR_PARAMS):
        if not (model_dir / name).exists():
            raise CheckpointFileError(f"{model_dir}: missing {name} (not a groot-jax model dir)")
    cfg = config_from_dict(json.loads((model_dir / OUR_CONFIG).read_text()))
    from groot_jax.models.groot import abstract

    _, target = abstract(cfg)
    pure = nnx.to_pure_dict(target)
    flat = jax.tree_util.tree_flatten_with_path(pure)[0]
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    for keypath, leaf in flat:
        path = tuple(k.key for k in keypath)
        sharding = (sharding_for(path) if sharding_for else None) or device
        _set_leaf(pure, path, jax.ShapeDtypeStruct(leaf.shape, _dtype(dtype) if dtype else
                                                   leaf.dtype, sharding=sharding))
    with ocp.StandardCheckpointer() as ckptr:
        try:
            restored = ckptr.restore(Path(model_dir).absolute() / OUR_PARAMS, pure)
        except Exception as e:
            raise CheckpointFileError(f"{model_dir / OUR_PARAMS}: cannot restore ({e})") from e
    params = jax.tree.map(lambda x: x, target)
    nnx.replace_by_pure_dict(params, restored)
    metadata = json.loads((model_dir / OUR_METADATA).read_text()) if (
        model_dir / OUR_METADATA).exists() else {}
    return cfg, params, validate_metadata(metadata, str(model_dir / OUR_METADATA))


# ---- writing Isaac-GR00T directories -----------------------------------------------------------
def export_gr00t(out_dir, cfg: GR00TConfig, params: nnx.State, metadata: dict | None = None, *,
                 dtype="float32", max_shard_bytes: int = 5 * 2**30,
                 data_configs: dict | None = None,
                 embodiment_ids: dict[str, int] | None = None) -> Path:
    """Write an Isaac-GR00T checkpoint directory that lerobot's / Isaac-GR00T's
    `GR00TN15.from_pretrained` loads, or for an N1.7 model the directory lerobot 0.6.1's
    `GR00TN17.from_pretrained` (and its processor, from the sidecars built from `metadata`,
    `data_configs` and `embodiment_ids`: n17_files.py) loads. The tied `lm_head` is not
    written (as HF does)."""
    from groot_jax.convert.gr00t_config import (
        COSMOS_REASON2_2B,
        QWEN3_VL_DIR,
        is_cosmos_reason2_2b,
        qwen3_vl_hf_json,
    )

    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} exists and is not empty; choose a new directory")
    out_dtype = _dtype(dtype)
    model_name = None
    if cfg.model_type == "gr00t_n1_7":
        model_name = COSMOS_REASON2_2B
        if not is_cosmos_reason2_2b(cfg.backbone):  # before any tensor is written
            backbone_json = qwen3_vl_hf_json(cfg.backbone)
            model_name = str((out_dir / QWEN3_VL_DIR).absolute())
        to_gr00t_json(cfg, model_name=model_name)  # ConfigError now, not after the weights
    entries = {e.torch_key: e for e in gr00t_entries(cfg)}
    host = jax.tree.map(np.asarray, nnx.to_pure_dict(params))
    if cfg.action_head.flare.enabled:
        dropped = sum(x.size for x in jax.tree.leaves(host["action_head"]["flare_projector"]))
        warnings.warn(f"the FLARE projector ({dropped:,} parameters) is not part of the GR00T "
                      "checkpoint layout and is not exported; the exported config has FLARE off",
                      stacklevel=2)
        cfg = dataclasses.replace(cfg, action_head=dataclasses.replace(
            cfg.action_head, flare=FlareConfig()))

    def get(key):
        e = entries[key]
        value = _get(host, e.path)
        value = value[e.layer] if e.layer is not None else value
        return to_torch(e.kind, value).astype(out_dtype)

    sizes = []
    for key, e in entries.items():
        shape = _get(host, e.path).shape[(1 if e.layer is not None else 0):]
        sizes.append((key, int(np.prod(shape, dtype=np.int64)) * out_dtype.itemsize))
    write_checkpoint(out_dir, sizes, get, max_shard_bytes=max_shard_bytes)
    torch_dtype = "bfloat16" if out_dtype == np.dtype(ml_dtypes.bfloat16) else "float32"
    config = to_gr00t_json(cfg, torch_dtype, model_name=model_name)
    (out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (out_dir / METADATA_FILE).parent.mkdir(parents=True, exist_ok=True)
    (out_dir / METADATA_FILE).write_text(json.dumps(metadata or {}, indent=2) + "\n")
    if cfg.model_type == "gr00t_n1_7":
        from groot_jax.convert.n17_files import write_n17_sidecars

        if model_name != COSMOS_REASON2_2B:
            (out_dir / QWEN3_VL_DIR).mkdir()
            (out_dir / QWEN3_VL_DIR / "config.json").write_text(
                json.dumps(backbone_json, indent=2) + "\n")
        write_n17_sidecars(out_dir, cfg, metadata or {}, data_configs, embodiment_ids)
    return out_dir


# ---- the tokenizer beside the weights (a released GR00T checkpoint ships none) ----------------
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt",
                   "added_tokens.json", "special_tokens_map.json", "chat_template.json",
                   "chat_template.jinja")
TOKENIZER_HINT = ("pass --tokenizer DIR with the Eagle/Qwen3 tokenizer files (tokenizer.json / "
                  "vocab.json + merges.txt, tokenizer_config.json), or store them in the model "
                  "dir with `groot-jax convert import CKPT OUT --tokenizer DIR`")


def has_tokenizer(path) -> bool:
    """Whether `path` holds a Hugging Face tokenizer that loads without sentencepiece/tiktoken."""
    p = Path(path)
    return (p / "tokenizer_config.json").is_file() and (
        (p / "tokenizer.json").is_file() or ((p / "vocab.json").is_file()
                                              and (p / "merges.txt").is_file()))


def check_tokenizer(path) -> Path:
    """`path` if it holds a tokenizer, else CheckpointFileError saying what to pass."""
    if not has_tokenizer(path):
        raise CheckpointFileError(f"{path}: no tokenizer (no tokenizer_config.json with "
                                  f"tokenizer.json or vocab.json + merges.txt); {TOKENIZER_HINT}")
    return Path(path)


def store_tokenizer(model_dir, tokenizer_dir) -> list[str]:
    """Copy the tokenizer files of `tokenizer_dir` into `model_dir`; the names copied."""
    import shutil

    check_tokenizer(tokenizer_dir)
    names = [n for n in TOKENIZER_FILES if (Path(tokenizer_dir) / n).is_file()]
    for n in names:
        shutil.copy2(Path(tokenizer_dir) / n, Path(model_dir) / n)
    return names


# ---- the two CLI operations and load_pretrained ----------------------------------------------
def import_checkpoint(ckpt_dir, out_dir, *, dtype="float32", cfg: GR00TConfig | None = None,
                      sharding_for=None, tokenizer_dir=None) -> Path:
    """`groot-jax convert import`: Isaac-GR00T / lerobot directory -> our model directory.
    The tokenizer of `tokenizer_dir` (checked first), or one inside `ckpt_dir`, is stored too,
    and so are the data configs of experiment_cfg/data_configs.json (our exports have them; a
    released checkpoint has none: Policy then takes --data-config or derives one from the
    metadata)."""
    from groot_jax.convert.n17_files import (
        EMBODIMENT_IDS,
        has_n17_sidecars,
        read_embodiment_ids,
        read_n17_data_configs,
    )
    from groot_jax.convert.processor_files import DATA_CONFIGS, read_data_configs

    if tokenizer_dir is not None:
        check_tokenizer(tokenizer_dir)
    elif has_tokenizer(ckpt_dir):
        tokenizer_dir = ckpt_dir
    configs_path = Path(ckpt_dir) / METADATA_FILE.parent / DATA_CONFIGS
    data_configs = read_data_configs(configs_path) if configs_path.is_file() else None
    embodiment_ids = read_embodiment_ids(ckpt_dir)
    if data_configs is None and has_n17_sidecars(ckpt_dir):  # N1.7 from elsewhere
        data_configs = read_n17_data_configs(ckpt_dir, read_gr00t_config(ckpt_dir, expect=cfg))
    cfg, params, metadata = read_gr00t(ckpt_dir, cfg=cfg, dtype=dtype, sharding_for=sharding_for)
    out = save_model(out_dir, cfg, params, metadata, data_configs=data_configs)
    if tokenizer_dir is not None:
        store_tokenizer(out, tokenizer_dir)
    if embodiment_ids is not None:  # the checkpoint's tag -> projector slot table, kept
        (out / EMBODIMENT_IDS).write_text(json.dumps(embodiment_ids, indent=2) + "\n")
    return out


def export_checkpoint(model_dir, out_dir, *, dtype="float32", step: int | None = None,
                      max_shard_bytes: int = 5 * 2**30) -> Path:
    """`groot-jax convert export`: our model directory, or a training run (its latest or
    `step` checkpoint and processor/), -> Isaac-GR00T directory. experiment_cfg/metadata.json
    holds the statistics of every embodiment; the data configs go beside it
    (experiment_cfg/data_configs.json) and the tokenizer files to the top level, extras that
    Isaac-GR00T / lerobot ignore and `groot-jax convert import`, Policy, eval and serve read."""
    from groot_jax.convert.n17_files import read_embodiment_ids
    from groot_jax.convert.processor_files import DATA_CONFIGS, read_data_configs, write_data_configs
    from groot_jax.convert.run_dir import is_run_dir, load_run

    model_dir = Path(model_dir)
    if is_run_dir(model_dir):
        cfg, params, processor = load_run(model_dir, step)
        metadata, data_configs, tokenizer = (processor.metadata, processor.data_configs,
                                             processor.tokenizer_dir)
    else:
        if step is not None:
            raise CheckpointFileError(f"{model_dir}: --step is for training runs; this is a "
                                      "model dir (one set of weights)")
        cfg, params, metadata = load_model(model_dir)
        data_configs = (read_data_configs(model_dir / DATA_CONFIGS)
                        if (model_dir / DATA_CONFIGS).is_file() else {})
        tokenizer = model_dir if has_tokenizer(model_dir) else None
    out = export_gr00t(out_dir, cfg, params, metadata, dtype=dtype,
                       max_shard_bytes=max_shard_bytes, data_configs=data_configs,
                       embodiment_ids=None if is_run_dir(model_dir)
                       else read_embodiment_ids(model_dir))
    if data_configs:
        write_data_configs(out / METADATA_FILE.parent, data_configs)
    if tokenizer is not None:
        store_tokenizer(out, tokenizer)
    return out


def load_pretrained(path, *, dtype=None, cfg: GR00TConfig | None = None, sharding_for=None):
    """(cfg, fns, params, metadata) from an Isaac-GR00T / lerobot directory or our own model
    directory, whichever `path` is."""
    from groot_jax.models.groot import abstract

    path = Path(path)
    if (path / OUR_CONFIG).exists():
        cfg_loaded, params, metadata = load_model(path, dtype=dtype, sharding_for=sharding_for)
        if cfg is not None and cfg != cfg_loaded:
            raise ConfigError(f"{path / OUR_CONFIG} describes {cfg_loaded.name!r}, not the "
                              f"requested {cfg.name!r}")
        cfg = cfg_loaded
    elif (path / "config.json").exists():
        cfg, params, metadata = read_gr00t(path, cfg=cfg, dtype=dtype or "float32",
                                           sharding_for=sharding_for)
    else:
        raise CheckpointFileError(f"{path}: neither a GR00T checkpoint (config.json) nor a "
                                  f"groot-jax model directory ({OUR_CONFIG})")
    fns, _ = abstract(cfg)
    return cfg, fns, params, metadata


