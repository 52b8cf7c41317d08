"""Action-less sources: action_mask zeros and a pseudo-action slot, mixed with robot data."""

import json

import numpy as np
import pytest

from groot_jax.data.actionless import ActionlessSource
from groot_jax.data.mixture import SourceSpec
from groot_jax.data.modality import DataConfig
from groot_jax.data.pipeline import PipelineConfig, build_pipeline
from groot_jax.data.video import write_video
from tests.data import synth
from tests.data.test_pipeline import CFG_V2

HUMAN = DataConfig(
    name="human",
    embodiment_tag="new_embodiment",
    video_keys=("video.ego_view",),
    state_keys=(),
    action_keys=(),
    language_keys=("annotation.human.task_description",),
)


@pytest.fixture(scope="module")
def human_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("human")
    (root / "meta").mkdir()
    (root / "videos").mkdir()
    lines = []
    for e, n in enumerate((11, 6)):
        write_video(
            str(root / "videos" / f"clip{e}.mp4"),
            np.stack([synth.frame(10 + e, i, 60, 80) for i in range(n)]),
            fps=12,
        )
        lines.append(
            json.dumps({"episode_index": e, "video": f"videos/clip{e}.mp4", "task": f"human task {e}"})
        )
    (root / "meta" / "episodes.jsonl").write_text("\n".join(lines) + "\n")
    return root


def test_actionless_source(human_root):
    src = ActionlessSource(human_root)
    assert list(src.episode_lengths) == [11, 6] and not src.has_actions
    s = src.get(1, 5, HUMAN)
    np.testing.assert_array_equal(s["video.ego_view"][0], synth.frame(11, 5, 60, 80))
    assert s["annotation.human.task_description"] == ["human task 1"]


def test_actionless_in_mixture(human_root, v2_root, tokenizer_dir):
    specs = [
        SourceSpec(str(v2_root), CFG_V2.replace(video_keys=("video.front",)), weight=0.5),
        SourceSpec(str(human_root), HUMAN, weight=0.5, kind="actionless"),
    ]
    it = iter(build_pipeline(specs, PipelineConfig(batch_size=8, seed=2), str(tokenizer_dir)))
    b = next(it)
    human = b["sample_id"][:, 0] == 1
    assert human.any() and (~human).any()
    assert (b["action_mask"][human] == 0).all() and (b["action"][human] == 0).all()
    assert (b["action_mask"][~human][:, :, :7] == 1).all()
    assert not b["state_mask"][human].any() and b["state_mask"][~human][:, 0, :8].all()
    assert b["pseudo_action"].shape == (8, 16, 32) and (b["pseudo_action_mask"] == 0).all()
