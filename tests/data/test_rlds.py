"""RLDS (Open-X-Embodiment layout) written with tensorflow-datasets (ArrayRecord, PNG-encoded
images, no TensorFlow), read back through tfds.builder_from_directory by RLDSSource."""

import io
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from groot_jax.data.mixture import SourceSpec
from groot_jax.data.modality import DataConfig
from groot_jax.data.pipeline import PipelineConfig, build_pipeline
from groot_jax.data.rlds import RLDSSource
from tests.data import synth

LENGTHS = (7, 12, 5)
INSTR = ("put the carrot in the pot", "close the microwave", "wipe the table")


def _png(a):
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


class TinyOxe(tfds.core.GeneratorBasedBuilder):
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {
                    "steps": tfds.features.Dataset(
                        {
                            "observation": tfds.features.FeaturesDict(
                                {
                                    "image": tfds.features.Image(
                                        shape=(32, 40, 3), encoding_format="png"
                                    ),
                                    "state": tfds.features.Tensor(shape=(7,), dtype=np.float32),
                                }
                            ),
                            "action": tfds.features.Tensor(shape=(7,), dtype=np.float32),
                            "reward": tfds.features.Scalar(dtype=np.float32),
                            "is_first": tfds.features.Scalar(dtype=np.bool_),
                            "is_last": tfds.features.Scalar(dtype=np.bool_),
                            "language_instruction": tfds.features.Text(),
                        }
                    ),
                    "episode_metadata": tfds.features.FeaturesDict({"file_path": tfds.features.Text()}),
                }
            ),
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        for e, n in enumerate(LENGTHS):
            steps = [
                {
                    "observation": {
                        "image": _png(synth.frame(e, i, 32, 40)),
                        "state": synth.state_row(e, i, 7),
                    },
                    "action": synth.action_row(e, i, 7),
                    "reward": 0.0,
                    "is_first": i == 0,
                    "is_last": i == n - 1,
                    "language_instruction": INSTR[e],
                }
                for i in range(n)
            ]
            yield f"ep{e}", {"steps": steps, "episode_metadata": {"file_path": f"ep{e}"}}


@pytest.fixture(scope="module")
def rlds_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("rlds")
    b = TinyOxe(data_dir=str(d), file_format="array_record")
    b.download_and_prepare(download_config=tfds.download.DownloadConfig(try_download_gcs=False))
    return b.data_path


CFG = DataConfig(
    name="oxe",
    embodiment_tag="oxe_droid",
    video_keys=("video.image",),
    state_keys=("state.state",),
    action_keys=("action.action",),
    language_keys=("annotation.language.language_instruction",),
    state_normalization={"state.state": "min_max"},
    action_normalization={"action.action": "q99"},
)


def test_rlds_values_without_tensorflow(rlds_dir):
    assert "tensorflow" not in sys.modules  # the whole read path runs without TF
    src = RLDSSource(rlds_dir)
    # tfds stores episodes in its own (hashed key) order; the instruction identifies the episode
    assert sorted(src.episode_lengths) == sorted(LENGTHS)
    seen = set()
    for pos, n in enumerate(src.episode_lengths):
        e = INSTR.index(src.get(pos, 0, CFG)["annotation.language.language_instruction"][0])
        seen.add(e)
        assert n == LENGTHS[e]
        for f in range(n):
            s = src.get(pos, f, CFG)
            np.testing.assert_array_equal(s["video.image"][0], synth.frame(e, f, 32, 40))
            np.testing.assert_array_equal(s["state.state"][0], synth.state_row(e, f, 7))
            want = np.stack([synth.action_row(e, min(i, n - 1), 7) for i in range(f, f + 16)])
            np.testing.assert_array_equal(s["action.action"], want)
            assert s["annotation.language.language_instruction"] == [INSTR[e]]
    assert seen == {0, 1, 2}
    assert "tensorflow" not in sys.modules


def test_rlds_in_pipeline(rlds_dir, tokenizer_dir):
    b = next(
        iter(
            build_pipeline(
                [SourceSpec(str(rlds_dir), CFG, kind="rlds")],
                PipelineConfig(batch_size=2),
                str(tokenizer_dir),
            )
        )
    )
    assert b["pixel_values"].shape == (2, 1, 224, 224, 3)
    assert (b["embodiment_id"] == 17).all()
    assert b["action_mask"][:, :, :7].all() and not b["action_mask"][:, :, 7:].any()
