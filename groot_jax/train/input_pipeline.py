"""The one input pipeline of every real-data run: one dataset, several weighted ones, or the
levels of a data pyramid (all described by `TrainConfig.data`, groot_jax/train/data_spec.py).

`build_pipeline(cfg)` opens each dataset, gives it its data config (a preset checked against the
dataset, or derived from it: groot_jax/data/dataset_config.py), checks the mixture (sidecar labels
in the right embodiment slot, FLARE where action-less video would otherwise train nothing),
reads or computes the statistics, picks the fastest valid data path and builds the Grain mixture
of groot_jax/data/pipeline.py. `data_iterator(cfg)` is its checkpointable iterator of model keys.

How each kind of dataset trains (the model's loss, groot_jax/models/action_head.py):
- robot / simulation: recorded actions, flow matching (+ FLARE when enabled);
- human video with a latent-action sidecar: the VQ-VAE's latent actions are the flow-matching
  target in the dedicated `latent_action` embodiment slot;
- neural trajectories with an IDM sidecar: pseudo-actions in the robot's embodiment slot;
- action-less video without a sidecar: action_mask is all zero, so its flow-matching term is
  masked out per sample and only FLARE's alignment (future frames, `future_offset`) trains on it.

Statistics: a dataset's meta/stats.json when it covers every column read, else computed
(streaming) and written to `<checkpoint.dir>/stats/` (never into the dataset), and reused from
there on resume. A normalised key whose statistics have no range is an error naming the file.
"""
from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Callable

import numpy as np

from groot_jax.data.errors import DataError
from groot_jax.data.mixture import SourceSpec
from groot_jax.train.config import TrainConfig
from groot_jax.train.data_spec import DatasetSpec

LATENT_TAG = "latent_action"
DEFAULT_TAG = "new_embodiment"
MODEL_KEYS = ("input_ids", "attention_mask", "pixel_values", "state", "embodiment_id", "action",
              "action_mask")
FLARE_KEYS = ("future_pixel_values", "future_mask")
# With device augmentation the batches carry cropped uint8 frames and jitter draws instead of
# pixel_values; the train step finishes them on the accelerator (groot_jax.data.device_augment).
DEVICE_AUGMENT_KEYS = ("pixel_u8", "augment")
# With YUV transport as well, they carry crops of the decoded yuv420p planes instead of RGB.
DEVICE_YUV_KEYS = ("pixel_y", "pixel_u", "pixel_v", "yuv_meta", "augment")
STATS_DIR = "stats"
# Which statistics bound each normalisation mode's range (groot_jax/data/normalize.py).
RANGE_STATS = {"min_max": ("min", "max"), "scale": ("min", "max"), "q99": ("q01", "q99"),
               "mean_std": ("std",)}


@dataclasses.dataclass(frozen=True)
class DataPath:
    """Where images are finished: on the accelerator (device_augment), with YUV transport or not."""

    device_augment: bool
    device_yuv: bool
    reason: str

    def describe(self) -> str:
        if not self.device_augment:
            return f"data path: host transforms ({self.reason})"
        what = "device augment + YUV transport" if self.device_yuv else "device augment"
        return f"data path: {what} ({self.reason})"


@dataclasses.dataclass
class Resolved:
    """The datasets of a run, opened and configured, before the pipeline is built."""

    specs: list[SourceSpec]
    sources: list
    path: DataPath
    flare: bool
    stats_files: list = dataclasses.field(default_factory=list)


def flare_futures(cfg: TrainConfig) -> bool:
    return bool(cfg.model_config().action_head.flare.enabled and cfg.data.future_offset)


def _name(d: DatasetSpec, config_name: str) -> str:
    base = f"{Path(d.path).name}:{config_name}"
    return f"{d.level}/{base}" if d.level else base


def _default_tag(src, d: DatasetSpec) -> str:
    if d.embodiment:
        return d.embodiment
    kind = getattr(src, "kind", None)    # a sidecar source's kind
    if kind == "latent_actions":
        return LATENT_TAG
    if kind == "idm_actions":
        return str(src._manifest.get("embodiment") or DEFAULT_TAG)
    return DEFAULT_TAG


def data_config_for(d: DatasetSpec, src, model_cfg):
    """The DataConfig of one opened dataset: its preset fitted to the model, or derived from it;
    checked against the dataset's keys and the model's widths (DataError naming the file)."""
    from groot_jax.data import dataset_config as dc
    from groot_jax.data.embodiments import PRESETS

    ah = model_cfg.action_head
    fit = dict(action_horizon=ah.action_horizon, image_size=model_cfg.backbone.image_size,
               max_state_dim=ah.max_state_dim, max_action_dim=ah.action_dim)
    if d.data_config is not None:
        cfg = dc.fit_to_model(PRESETS[d.data_config](), embodiment_tag=d.embodiment, **fit)
    else:
        # Named after the sidecar when there is one: one video dataset may feed two sources.
        cfg = dc.derive_data_config(src.modality, name=Path(d.action_sidecar or d.path).name,
                                    embodiment_tag=_default_tag(src, d),
                                    has_actions=src.has_actions, **fit)
    dc.check_against_dataset(cfg, src.modality, file=dc.source_modality_file(src),
                             dataset=d.path, has_actions=src.has_actions)
    return cfg


def validate(specs: list[SourceSpec], sources: list, cfg: TrainConfig) -> None:
    """Fail before training on a mixture that would silently train the wrong thing."""
    flare = cfg.model_config().action_head.flare.enabled
    if flare and not cfg.data.future_offset:
        raise ValueError("the model has FLARE enabled: set data.future_offset (frames ahead)")
    for spec, src in zip(specs, sources, strict=True):
        tag = spec.config.embodiment_tag
        kind = getattr(src, "kind", None) if spec.action_sidecar is not None else None
        if kind == "latent_actions" and tag != LATENT_TAG:
            raise ValueError(f"{spec.name}: latent actions train the dedicated {LATENT_TAG!r} "
                             f"embodiment slot, not {tag!r}")
        if kind == "idm_actions" and tag == LATENT_TAG:
            raise ValueError(f"{spec.name}: IDM pseudo-actions belong to a robot embodiment, "
                             f"not the {LATENT_TAG!r} slot")
        if spec.action_sidecar is None and not src.has_actions and not flare:
            raise ValueError(f"{spec.name}: action-less video without a label sidecar trains "
                             f"nothing unless FLARE is enabled in the model")


def _probe_yuv(specs: list[SourceSpec], sources: list) -> tuple[bool, str]:
    """Whether every camera's video is yuv420p that the accelerator converts exactly (the first
    file of each camera is decoded once), and why not."""
    import av

    from groot_jax.data.video import yuv420_planes

    n = 0
    for spec, src in zip(specs, sources, strict=True):
        for key in spec.config.video_keys:
            path, _ = src._video_location(0, key.split(".", 1)[1])
            try:
                with av.open(str(path)) as c:
                    frame = next(c.decode(video=0))
                    fmt = frame.format.name
                    yuv420_planes(frame, str(path))
            except DataError:
                why = (f"{path} is {fmt}" if fmt != "yuv420p" else
                       f"{path} has colour tags or a size the accelerator does not convert")
                return False, why
            except (av.error.FFmpegError, StopIteration, OSError) as e:
                raise DataError(f"{path}: cannot decode video ({e})") from e
            n += 1
    return True, f"all {n} videos yuv420p"


def choose_path(cfg: TrainConfig, specs: list[SourceSpec], sources: list) -> DataPath:
    """The fastest valid data path unless the spec fixes one (data.device_augment / device_yuv)."""
    d = cfg.data
    futures = flare_futures(cfg)
    if d.device_augment is False:
        return DataPath(False, False, "data.device_augment=False")
    if futures:
        if d.device_augment:
            raise ValueError("data.device_augment=True cannot be combined with FLARE future "
                             "frames (data.future_offset): they are transformed on the host")
        return DataPath(False, False, "FLARE future frames are transformed on the host")
    if d.device_yuv is False:
        return DataPath(True, False, "data.device_yuv=False")
    ok, why = _probe_yuv(specs, sources)
    if d.device_yuv and not ok:
        raise DataError(f"data.device_yuv=True but {why} (YUV transport needs yuv420p)")
    return DataPath(True, ok, why if ok else f"{why}, not yuv420p: RGB transport")


def resolve(cfg: TrainConfig) -> Resolved:
    """Open every dataset of cfg.data, give each its data config and check the mixture."""
    from groot_jax.data.mixture import open_reader

    d = cfg.data
    if d.source != "datasets" or not d.datasets:
        raise ValueError(f"run {cfg.name!r}: no datasets to read (data.source={d.source!r}); "
                         f"give --dataset DIR")
    model_cfg = cfg.model_config()
    specs, sources = [], []
    for ds, w in zip(d.datasets, d.weights(), strict=True):
        preset = None
        if ds.kind == "rlds":
            from groot_jax.data.embodiments import PRESETS

            preset = PRESETS[ds.data_config]()
        src = open_reader(ds.path, ds.kind, action_sidecar=ds.action_sidecar, config=preset)
        dcfg = data_config_for(ds, src, model_cfg)
        name = _name(ds, dcfg.name)
        src.name = name
        specs.append(SourceSpec(ds.path, dcfg, weight=w, kind=ds.kind, name=name,
                                action_sidecar=ds.action_sidecar))
        sources.append(src)
    validate(specs, sources, cfg)
    return Resolved(specs, sources, choose_path(cfg, specs, sources), flare_futures(cfg))


def _stats_file(run_dir: str | None, spec: SourceSpec) -> Path | None:
    if run_dir is None or "://" in run_dir:
        return None
    key = f"{Path(spec.path).resolve()}|{spec.action_sidecar or ''}"
    digest = hashlib.sha1(key.encode()).hexdigest()[:8]
    return Path(run_dir) / STATS_DIR / f"{Path(spec.path).name}-{digest}.json"


def source_stats(spec: SourceSpec, src, run_dir: str | None) -> tuple[dict, Path]:
    """(per-key stats of one dataset, the file they come from): meta/stats.json when complete,
    else `<run_dir>/stats/<dataset>-<hash>.json` (computed once, streaming, then reused)."""
    from groot_jax.data import stats as st

    cols = st.stats_json_columns(src)
    where = Path(src.root) / "meta" / "stats.json"
    if cols is None:
        where = _stats_file(run_dir, spec)
        if where is not None and where.exists():
            cols = st.load_stats_json(where)
        else:
            cols = st.compute_column_stats(src)
            if where is not None:
                import jax

                if jax.process_index() == 0:
                    where.parent.mkdir(parents=True, exist_ok=True)
                    tmp = where.with_suffix(".tmp")
                    st.save_stats_json(tmp, cols)
                    tmp.replace(where)
            else:
                where = Path("<computed in memory>")
    return st.key_stats(src, cols), where


def check_ranges(spec: SourceSpec, key_stats: dict, file: Path) -> None:
    """A normalised key whose statistics have no range on any of its dims (min == max, q01 ==
    q99, std == 0) would train on a constant: DataError naming the statistics file and key.
    Single constant dims among others are left to the normalizer, which maps them to 0 as the
    original does."""
    cfg = spec.config
    for group, modes in (("state", cfg.state_normalization), ("action", cfg.action_normalization)):
        for key, mode in modes.items():
            name = key.split(".", 1)[1]
            s = key_stats.get(group, {}).get(name)
            if s is None or mode not in RANGE_STATS:
                continue
            if group == "action" and key not in cfg.action_keys:
                continue
            if group == "state" and key not in cfg.state_keys:
                continue
            if mode == "mean_std":
                flat = np.asarray(s["std"]) == 0
            else:
                lo, hi = RANGE_STATS[mode]
                flat = np.asarray(s[lo]) == np.asarray(s[hi])
            if flat.size and flat.all():
                stats = " == ".join(RANGE_STATS[mode]) if mode != "mean_std" else "std == 0"
                raise DataError(f"{file}: the statistics of {key} (dataset {spec.path}) have "
                                f"no range ({stats} on every dim) but {key} is {mode} "
                                f"normalised; fix or delete the statistics file, or use a data "
                                f"config without {key}")


def pipeline_stats(resolved: Resolved, cfg: TrainConfig) -> dict:
    """{embodiment tag: merged per-key stats} of the mixture (groot_jax.data.mixture)."""
    from groot_jax.data.mixture import mixture_stats

    per = []
    for spec, src in zip(resolved.specs, resolved.sources, strict=True):
        if not src.modality.state and not src.modality.action:
            per.append(None)   # action-less video: no statistics (mixture_stats skips it)
            continue
        ks, file = source_stats(spec, src, cfg.checkpoint.dir)
        check_ranges(spec, ks, file)
        resolved.stats_files.append(file)
        per.append(ks)
    return mixture_stats(resolved.sources, resolved.specs, per_source=per)


def tokenizer_dir(cfg: TrainConfig) -> str:
    tok = cfg.data.tokenizer
    if not tok:
        raise ValueError(f"run {cfg.name!r}: no tokenizer; give --tokenizer DIR (or --init a "
                         f"model directory that holds one)")
    if "://" not in tok and not Path(tok).is_dir():
        # Otherwise transformers takes the path for a Hub repo id and says so, confusingly.
        raise FileNotFoundError(f"tokenizer directory {tok} (data.tokenizer) does not exist")
    return tok


def build_pipeline(cfg: TrainConfig, *, train: bool = True, batch_size: int | None = None,
                   stats: dict | None = None, log: Callable[[str], None] | None = print):
    """The Grain mixture pipeline (groot_jax.data.pipeline.Pipeline) of cfg.data; logs the chosen
    data path. `stats`: {tag: per-key stats} to use instead of the datasets' own."""
    import jax

    from groot_jax.data.pipeline import PipelineConfig
    from groot_jax.data.pipeline import build_pipeline as build
    from groot_jax.data.prompt import PromptTokenizer, check_model_config

    model_cfg = cfg.model_config()
    tok = PromptTokenizer(tokenizer_dir(cfg), tokens_per_image=model_cfg.backbone.tokens_per_image)
    resolved = resolve(cfg)
    for s in resolved.specs:
        check_model_config(tok, model_cfg, s.config)
    if batch_size is None:
        if cfg.batch_size % jax.process_count():
            raise ValueError(f"batch_size={cfg.batch_size} is not divisible by "
                             f"{jax.process_count()} processes")
        batch_size = cfg.batch_size // jax.process_count()
    if stats is None:
        stats = pipeline_stats(resolved, cfg)
    d, path = cfg.data, resolved.path
    if log is not None and jax.process_index() == 0:
        log(path.describe())
    seed = cfg.seed if d.shuffle_seed is None else d.shuffle_seed
    pcfg = PipelineConfig(batch_size=batch_size, seed=seed, train=train,
                          num_workers=d.num_workers, max_seq_len=d.max_seq_len,
                          future_offset=d.future_offset if resolved.flare else None,
                          device_augment=path.device_augment, device_yuv=path.device_yuv,
                          drop_remainder=train)
    pipe = build(resolved.specs, pcfg, tok, stats=stats, sources=resolved.sources)
    pipe.specs = resolved.specs
    pipe.path = path
    pipe.stats_files = resolved.stats_files
    return pipe


def sized_to_tokenizer(cfg: TrainConfig) -> TrainConfig:
    """cfg whose model has the vocabulary (rounded up to a multiple of 64) and <IMG_CONTEXT> id
    of data.tokenizer, set in the `backbone` model override (TrainConfig.model_from_tokenizer)."""
    from groot_jax.data.prompt import PromptTokenizer

    tok = PromptTokenizer(tokenizer_dir(cfg))
    vocab = -(-len(tok.tokenizer) // 64) * 64
    bb = cfg.model_config().backbone.with_vocab(vocab, int(tok.image_token_id),
                                                **tok.special_token_ids())
    rest = tuple((k, v) for k, v in cfg.model_overrides if k != "backbone")
    return dataclasses.replace(cfg, model_overrides=rest + (("backbone", bb),))


def model_batch(sample: dict, flare: bool) -> dict:
    """The keys the model's loss reads (see groot_jax/models/groot.py)."""
    keys = MODEL_KEYS + (FLARE_KEYS if flare else ())
    if "pixel_y" in sample:
        keys = tuple(k for k in keys if k != "pixel_values") + DEVICE_YUV_KEYS
    elif "pixel_u8" in sample:
        keys = tuple(k for k in keys if k != "pixel_values") + DEVICE_AUGMENT_KEYS
    missing = [k for k in keys if k not in sample]
    if missing:
        raise DataError(f"batch lacks {missing} (has {sorted(sample)})")
    return {k: sample[k] for k in keys}


def data_iterator(cfg: TrainConfig, pipe=None, *, log: Callable[[str], None] | None = print):
    """A checkpointable Grain iterator of this process's rows of each batch, model keys only."""
    pipe = pipe if pipe is not None else build_pipeline(cfg, log=log)
    flare = flare_futures(cfg)
    return iter(pipe.dataset.map(lambda b: model_batch(b, flare)))


def prepare(cfg: TrainConfig, *, init=None, log: Callable[[str], None] | None = print):
    """The run's data iterator, after checking the data against an --init checkpoint's
    statistics (`init`: groot_jax.train.init_from.InitSource) and writing the processor files
    into checkpoint.dir (process 0)."""
    import jax

    pipe = build_pipeline(cfg, log=log)
    if init is not None and init.metadata:
        from groot_jax.train.init_from import check_widths_against_init

        _, meta = processor_entries(pipe)
        files = sorted({str(f) for f in getattr(pipe, "stats_files", [])}) or ["the datasets"]
        check_widths_against_init(meta, init.metadata, ", ".join(files), str(init.metadata_file))
    if cfg.checkpoint.dir and jax.process_index() == 0:
        out = write_processor(cfg, pipe)
        if log is not None:
            log(f"processor files: {out}")
    return data_iterator(cfg, pipe)


def processor_entries(pipe) -> tuple[dict, dict]:
    """({tag: DataConfig}, {tag: metadata.json entry}) of a built pipeline: for each embodiment
    trained on, the data config of its first dataset with state or actions (else its first) and
    the merged statistics of all its datasets (groot_jax.data.stats.dataset_metadata)."""
    from groot_jax.data.stats import dataset_metadata

    chosen: dict[str, tuple] = {}
    for spec, src in zip(pipe.specs, pipe.sources, strict=True):
        tag = spec.config.embodiment_tag
        rich = bool(src.modality.state or src.modality.action)
        if tag not in chosen or (rich and not chosen[tag][2]):
            chosen[tag] = (spec, src, rich)
    configs = {tag: spec.config for tag, (spec, _, _) in chosen.items()}
    meta = {tag: dataset_metadata(src, pipe.stats.get(tag, {"state": {}, "action": {}}), tag)
            for tag, (_, src, _) in chosen.items()}
    return configs, meta


def write_processor(cfg: TrainConfig, pipe, directory: str | Path | None = None) -> Path:
    """`<checkpoint.dir>/processor/`: data configs, statistics per embodiment and the tokenizer,
    what eval / serve / export read from a run (groot_jax.convert.processor_files)."""
    from groot_jax.convert.processor_files import PROCESSOR_DIR
    from groot_jax.convert.processor_files import write_processor as write

    configs, meta = processor_entries(pipe)
    out = Path(directory) if directory is not None else Path(cfg.checkpoint.dir) / PROCESSOR_DIR
    return write(out, data_configs=configs, metadata=meta, tokenizer_dir=cfg.data.tokenizer)
