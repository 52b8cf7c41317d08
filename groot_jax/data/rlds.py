"""RLDS / Open-X-Embodiment datasets through tensorflow-datasets, without TensorFlow.

`tfds.builder_from_directory(dir)` reads dataset_info.json + features.json; episodes are read with
`builder.as_data_source(split)` (random access, numpy, no TF) which requires the ArrayRecord file
format. TFRecord shards need TF for tfds' reader; convert them TF-free first (copy the records with
grain.experimental.TFRecordIterDataset into an ArrayRecordWriter and set "fileFormat":
"array_record" in dataset_info.json, see ../shared/notes/jax_stack.md section 6).

Keys exposed (OXE layout, steps: {observation: {...}, action, language_instruction, ...}):
  video.<name>                         each Image feature of observation
  state.<name>                         each other observation tensor (whole vector)
  action.action                        steps/action (whole vector)
  annotation.language.language_instruction   steps/language_instruction
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from groot_jax.data.errors import DataError
from groot_jax.data.modality import LeRobotModality, StateActionMeta, clamp_indices
from groot_jax.data.source import Episode, EpisodeSource, check_finite, to_float32

LANG_KEY = "language.language_instruction"


def _feature_tree(builder):
    steps = builder.info.features["steps"]
    return steps.feature if hasattr(steps, "feature") else steps


class RLDSSource(EpisodeSource):
    def __init__(self, path: str | Path, cfg=None, split: str = "train", name: str | None = None, **kw):
        super().__init__(**kw)
        import tensorflow_datasets as tfds

        self.root = Path(path)
        self.name = name or self.root.name
        self.split = split
        try:
            self.builder = tfds.builder_from_directory(str(self.root))
        except Exception as e:  # tfds raises several types for a bad directory
            raise DataError(f"{self.root}: not a TFDS dataset directory ({e})") from e
        fmt = str(getattr(self.builder.info, "file_format", "")).lower()
        if "array_record" not in fmt:
            raise DataError(
                f"{self.root}: file format {fmt or 'tfrecord'}; RLDS reading without "
                "TensorFlow needs ArrayRecord (convert the TFRecord shards first)"
            )
        self._ds = None
        steps = _feature_tree(self.builder)
        obs = steps["observation"]
        video, state = {}, {}
        import tensorflow_datasets as tfds_

        for k, f in obs.items():
            if isinstance(f, tfds_.features.Image):
                video[k] = f"observation/{k}"
            else:
                state[k] = StateActionMeta(0, int(np.prod(f.shape)), f"observation/{k}")
        action = {"action": StateActionMeta(0, int(np.prod(steps["action"].shape)), "action")}
        self.modality = LeRobotModality(
            state=state, action=action, video=video, annotation={LANG_KEY: "language_instruction"}
        )
        self.video_resolution = {k: (int(obs[k].shape[1]), int(obs[k].shape[0])) for k in video}
        self.fps = 10.0
        self.tasks = {}
        ds = self._data()
        self.episode_indices = np.arange(len(ds), dtype=np.int64)
        self.episode_lengths = np.array([len(ds[i]["steps"]) for i in range(len(ds))], np.int64)
        self.has_actions = True

    def __getstate__(self):
        s = super().__getstate__()
        s["_ds"] = None
        s["builder"] = None
        return s

    def _data(self):
        if self._ds is None:
            if self.builder is None:
                import tensorflow_datasets as tfds

                self.builder = tfds.builder_from_directory(str(self.root))
            self._ds = self.builder.as_data_source(self.split)
        return self._ds

    def _load_episode(self, pos: int) -> Episode:
        ep = self._data()[int(pos)]
        steps = ep["steps"]
        n = len(steps)
        rows = [steps[i] for i in range(n)]
        file = f"{self.root}[{self.split}][episode {pos}]"
        cols = {}
        for name, m in self.modality.state.items():
            cols[m.original_key] = to_float32(
                np.stack([np.asarray(r["observation"][name]).reshape(-1) for r in rows]), file, name
            )
        cols["action"] = to_float32(
            np.stack([np.asarray(r["action"]).reshape(-1) for r in rows]), file, "action"
        )
        check_finite(cols, file)
        images = {k: np.stack([r["observation"][k] for r in rows]) for k in self.modality.video}
        lang = np.array([r.get("language_instruction", b"") for r in rows], dtype=object)
        episode = Episode(
            index=int(pos),
            length=n,
            columns=cols,
            timestamps=np.arange(n) / self.fps,
            annotations={"language_instruction": lang},
            file=file,
        )
        episode.images = images
        return episode

    def video(self, pos, ep, key, step_indices, yuv: bool = False):
        if yuv:
            raise DataError(f"{self.root}: RLDS images are stored decoded, not as yuv420p video; "
                            "use PipelineConfig(device_yuv=False) for this source")
        name = key.split(".", 1)[1]
        self.modality.lookup(key)
        return ep.images[name][clamp_indices(step_indices, ep.length)]
