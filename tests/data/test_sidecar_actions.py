"""Label sidecars (latent actions, IDM pseudo-actions) as the action target of a source, the
mixture statistics with action-only sources, and the future frames FLARE needs."""

import hashlib
import json

import numpy as np
import pytest

from groot_jax.data.embodiments import embodiment_id
from groot_jax.data.errors import DataError
from groot_jax.data.mixture import SourceSpec, mixture_stats, open_source
from groot_jax.data.modality import DataConfig
from groot_jax.data.pipeline import PipelineConfig, build_pipeline
from groot_jax.data.prompt import PromptTokenizer
from groot_jax.data.sidecar import sidecar_dir
from groot_jax.data.writers import write_actionless, write_lerobot_v2
from groot_jax.latent.sidecar import SidecarWriter

LENGTHS = (12, 7, 9)
COMMON = dict(video_keys=("video.ego_view",), language_keys=("annotation.human.task_description",),
              state_keys=(), action_indices=tuple(range(4)), image_size=16, color_jitter=None)
LATENT = DataConfig(name="latent", embodiment_tag="latent_action", action_keys=("action.latent",),
                    action_normalization={"action.latent": "min_max"}, **COMMON)
PSEUDO = DataConfig(name="idm", embodiment_tag="new_embodiment", action_keys=("action.move",),
                    action_normalization={"action.move": "min_max"}, **COMMON)
ROBOT = PSEUDO.replace(name="robot", video_keys=("video.front",), state_keys=("state.pos",),
                       state_normalization={"state.pos": "min_max"})


def _episodes(lengths, seed=0, static=False):
    r = np.random.default_rng(seed)
    eps = []
    for n in lengths:
        frames = r.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)
        if static:
            frames[:] = frames[0]
        eps.append({"frames": frames, "actions": r.normal(size=(n, 2)).astype(np.float32),
                    "state": r.normal(size=(n, 2)).astype(np.float32)})
    return eps


def _latent(e, t):  # known label values: episode, frame and dim are recoverable
    return np.float32(100 * e + t) + np.arange(3, dtype=np.float32) / 10


def _digest(root):
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file()}


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    root = write_actionless(_episodes(LENGTHS), tmp_path_factory.mktemp("sc") / "video")
    w = SidecarWriter(sidecar_dir(root, "latent_actions"), kind="latent_actions", dataset=root,
                      producer={"model": "test"})
    for e, n in enumerate(LENGTHS):
        valid = np.arange(n) + 2 <= n - 1  # horizon 2: the last two rows ran past the end
        w.write(e, {"latent_actions": np.stack([_latent(e, t) for t in range(n)]),
                    "codes": np.zeros((n, 1), np.int32), "valid": valid})
    w = SidecarWriter(sidecar_dir(root, "idm_actions.new_embodiment"), kind="idm_actions.new_embodiment",
                      dataset=root, producer={"model": "test"},
                      extra={"action_layout": [["move", 0, 2]]})
    for e, n in enumerate(LENGTHS):
        acts = np.stack([[e, t] for t in range(n)]).astype(np.float32)
        w.write(e, {"actions": acts, "action_chunks": acts[:, None], "valid": np.ones(n, bool)})
    return root


def test_latent_sidecar_is_the_action_column(video):
    before = _digest(video)
    spec = SourceSpec(str(video), LATENT, kind="actionless",
                      action_sidecar=str(sidecar_dir(video, "latent_actions")))
    src = open_source(spec)
    assert src.has_actions and list(src.modality.action) == ["latent"]
    s = src.get(1, 2, LATENT)  # episode 1 (7 frames), frame 2: rows 2..5; rows 5, 6 invalid
    want = np.stack([_latent(1, t) for t in (2, 3, 4, 4)])  # invalid row 5 -> last valid row 4
    np.testing.assert_array_equal(s["action.latent"], want)
    s = src.get(1, 5, LATENT)  # beyond the end: edge padding with the (replaced) last row
    np.testing.assert_array_equal(s["action.latent"], np.stack([_latent(1, 4)] * 4))
    assert _digest(video) == before  # reading never touches the dataset


def test_pipeline_latent_slot_and_pseudo_actions(video, tokenizer_dir):
    specs = [SourceSpec(str(video), LATENT, kind="actionless",
                        action_sidecar=str(sidecar_dir(video, "latent_actions"))),
             SourceSpec(str(video), PSEUDO, kind="actionless",
                        action_sidecar=str(sidecar_dir(video, "idm_actions.new_embodiment")))]
    tok = PromptTokenizer(str(tokenizer_dir), tokens_per_image=4)
    pipe = build_pipeline(specs, PipelineConfig(batch_size=56, train=False, drop_remainder=False),
                          tok)
    b = next(iter(pipe))
    lat = b["sample_id"][:, 0] == 0
    assert lat.sum() == sum(LENGTHS) == (~lat).sum()  # eval: one ordered pass of each source
    assert (b["embodiment_id"][lat] == embodiment_id("latent_action")).all()
    assert (b["embodiment_id"][~lat] == embodiment_id("new_embodiment")).all()
    # mask: the latent width (3) / the pseudo-action width (2), every step
    assert (b["action_mask"][lat][..., :3] == 1).all() and (b["action_mask"][lat][..., 3:] == 0).all()
    assert (b["action_mask"][~lat][..., :2] == 1).all() and (b["action_mask"][~lat][..., 2:] == 0).all()
    # min_max over the sidecar's rows: the largest latent value of dim 0 maps to +1
    st = pipe.stats["latent_action"]["action"]["latent"]
    assert st["max"][0] == pytest.approx(100 * 2 + 6)  # episode 2: row 6 is its last valid row
    assert b["action"][lat][..., :3].max() == pytest.approx(1.0)
    assert b["action"][lat][..., :3].min() == pytest.approx(-1.0)
    # pseudo-actions of episode e, frame t are (e, t): check one row after un-normalising
    st = pipe.stats["new_embodiment"]["action"]["move"]
    j = np.nonzero(~lat)[0][5]
    e, t = b["sample_id"][j, 1], b["sample_id"][j, 2]
    raw = (b["action"][j, 0, :2] + 1) / 2 * (st["max"] - st["min"]) + st["min"]
    np.testing.assert_allclose(raw, [e, t], atol=1e-5)


def test_bad_sidecars_name_the_file_and_episode(video, tmp_path):
    with pytest.raises(DataError, match="manifest.json: sidecar manifest not found"):
        open_source(SourceSpec(str(video), LATENT, kind="actionless",
                               action_sidecar=str(tmp_path / "missing")))
    part = tmp_path / "partial"
    part.mkdir()
    m = json.loads((sidecar_dir(video, "latent_actions") / "manifest.json").read_text())
    for k in ("1", "2"):
        del m["episodes"][k]
    (part / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(DataError, match="episode 1 of .* is not labelled"):
        open_source(SourceSpec(str(video), LATENT, kind="actionless", action_sidecar=str(part)))
    m = json.loads((sidecar_dir(video, "latent_actions") / "manifest.json").read_text())
    m["episodes"]["2"]["length"] = 99
    (part / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(DataError, match="episode 2 has 99 label rows but the dataset episode has 9"):
        open_source(SourceSpec(str(video), LATENT, kind="actionless", action_sidecar=str(part)))
    # the data config asks for a key the sidecar does not define
    with pytest.raises(DataError, match="'action.move' is not defined"):
        open_source(SourceSpec(str(video), PSEUDO, kind="actionless",
                               action_sidecar=str(sidecar_dir(video, "latent_actions"))))


def test_changed_label_file_is_refused_on_read(video, tmp_path):
    """Every read of a label file checks the manifest's sha256: a file rewritten after labelling
    (still a valid npz) is refused, naming it, instead of training on unlisted labels."""
    import shutil

    part = tmp_path / "changed"
    shutil.copytree(sidecar_dir(video, "latent_actions"), part)
    spec = SourceSpec(str(video), LATENT, kind="actionless", action_sidecar=str(part))
    src = open_source(spec)
    src.get(2, 0, LATENT)  # intact
    with np.load(part / "episode_000002.npz") as z:
        arrays = dict(z)
    arrays["latent_actions"] = arrays["latent_actions"] + 1
    np.savez(part / "episode_000002.npz", **arrays)
    with pytest.raises(DataError, match=r"episode_000002\.npz does not match the manifest's sha256"):
        open_source(spec).get(2, 0, LATENT)
    with pytest.raises(DataError, match="episode_000002.npz does not match"):
        from groot_jax.data.sidecar import load_episode

        load_episode(part, 2)


def test_stats_merge_with_an_action_only_source(video, tmp_path):
    """Robot data (state + action) and pseudo-labelled video (action only) share a tag: the
    state statistics come from the robot alone, the action statistics from both."""
    robot = write_lerobot_v2(_episodes((10, 10), seed=3), tmp_path / "robot", camera="front")
    specs = [SourceSpec(str(robot), ROBOT, weight=1.0),
             SourceSpec(str(video), PSEUDO, weight=1.0, kind="actionless",
                        action_sidecar=str(sidecar_dir(video, "idm_actions.new_embodiment")))]
    srcs = [open_source(s) for s in specs]
    st = mixture_stats(srcs, specs)["new_embodiment"]
    robot_only = mixture_stats(srcs[:1], specs[:1])["new_embodiment"]
    np.testing.assert_array_equal(st["state"]["pos"]["min"], robot_only["state"]["pos"]["min"])
    assert st["action"]["move"]["max"][1] == pytest.approx(11)  # the video's frame index 11
    assert st["action"]["move"]["max"][1] > robot_only["action"]["move"]["max"][1]


def test_future_frames_for_flare(tmp_path, tokenizer_dir):
    video = write_actionless(_episodes((6, 5)), tmp_path / "v")
    spec = SourceSpec(str(video), PSEUDO.replace(action_keys=()), kind="actionless")
    tok = PromptTokenizer(str(tokenizer_dir), tokens_per_image=4)
    pipe = build_pipeline([spec], PipelineConfig(batch_size=11, train=False, drop_remainder=False,
                                                 future_offset=2), tok)
    b = next(iter(pipe))
    frame, ep = b["sample_id"][:, 2], b["sample_id"][:, 1]
    np.testing.assert_array_equal(b["future_mask"], frame + 2 < np.where(ep == 0, 6, 5))
    for i in range(11):  # the future of (e, t) is the current frame of (e, min(t + 2, end))
        j = np.nonzero((ep == ep[i]) & (frame == min(frame[i] + 2, (6 if ep[i] == 0 else 5) - 1)))[0][0]
        np.testing.assert_array_equal(b["future_pixel_values"][i], b["pixel_values"][j])
    assert (b["action_mask"] == 0).all()
    # training: random crops; the future frames get the same crop (a static video shows it)
    static = write_actionless(_episodes((8,), static=True), tmp_path / "s")
    spec = SourceSpec(str(static), spec.config.replace(crop_scale=0.7), kind="actionless")
    b = next(iter(build_pipeline([spec], PipelineConfig(batch_size=8, future_offset=3), tok)))
    np.testing.assert_array_equal(b["future_pixel_values"], b["pixel_values"])
    assert len({b["pixel_values"][i].tobytes() for i in range(8)}) > 1  # crops did differ
    with pytest.raises(DataError, match="future_offset must be positive"):
        build_pipeline([spec], PipelineConfig(batch_size=8, future_offset=0), tok)
