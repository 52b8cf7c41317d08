"""The `latent-actions` / `idm` sub-commands end to end, in-process, with a few training steps."""
import argparse
import json

import numpy as np
import pytest

from groot_jax.data import sidecar
from groot_jax.latent import checkpoint
from groot_jax.latent.cli import main, register


def test_register_adds_both_commands():
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["idm", "label", "DS", "--checkpoint", "C", "--embodiment", "gr1"])
    assert args.embodiment == "gr1" and callable(args.func)
    args = parser.parse_args(["latent-actions", "train", "--out", "O", "--synthetic", "5"])
    assert args.dataset is None
    assert args.steps == 800 and args.horizon == 1
    args = parser.parse_args(["latent-actions", "pyramid-demo", "ROOT", "--seed", "3"])
    assert args.root == "ROOT" and args.seed == 3 and callable(args.func)


def test_cli_synthetic_train_label(tmp_path, capsys):
    ds = tmp_path / "video"
    assert main(["latent-actions", "synthetic", str(ds), "--episodes", "6", "--length", "12",
                 "--drop-actions"]) == 0
    assert main(["latent-actions", "train", "--out", str(tmp_path / "lam"), "--synthetic", "10",
                 "--episode-length", "12", "--steps", "20", "--log-every", "0"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"recon_first", "recon_last", "probe_r2", "used_fraction"} <= set(metrics)
    assert main(["latent-actions", "label", str(ds), "--checkpoint", str(tmp_path / "lam")]) == 0
    root = sidecar.sidecar_dir(ds, "latent_actions")
    assert len(sidecar.read_manifest(root)["episodes"]) == 6
    assert main(["idm", "train", "--out", str(tmp_path / "idm"), "--synthetic", "10",
                 "--episode-length", "12", "--steps", "20", "--log-every", "0", "--use-state"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"mse_first", "mse_last", "mae_over_range"} <= set(metrics)
    assert checkpoint.load(tmp_path / "idm").cfg.state_dim == 2


def test_top_level_cli_on_lerobot_and_actionless_datasets(tmp_path, capsys):
    """`groot-jax latent-actions train|label DATASET` and `groot-jax idm train|label DATASET
    --embodiment TAG` on a LeRobot v2.1 dataset and action-less video, through groot_jax.data;
    the sidecars sit beside the datasets, which stay byte-identical."""
    import hashlib

    from groot_jax.cli import main as groot_main
    from groot_jax.data.mixture import SourceSpec, open_source
    from groot_jax.data.modality import DataConfig

    def digest(root):
        return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(root.rglob("*")) if p.is_file()}

    robot, video = tmp_path / "robot", tmp_path / "video"
    assert groot_main(["latent-actions", "synthetic", str(robot), "--format", "lerobot",
                       "--world", "goal", "--episodes", "5", "--length", "12"]) == 0
    assert groot_main(["latent-actions", "synthetic", str(video), "--format", "actionless",
                       "--world", "goal", "--episodes", "4", "--length", "10", "--seed", "1"]) == 0
    before = {**digest(robot), **digest(video)}
    assert groot_main(["latent-actions", "train", str(video), "--out", str(tmp_path / "lam"),
                       "--steps", "10", "--log-every", "0"]) == 0
    assert groot_main(["latent-actions", "label", str(video), "--checkpoint",
                       str(tmp_path / "lam")]) == 0
    assert groot_main(["idm", "train", str(robot), "--out", str(tmp_path / "idm"), "--steps", "10",
                       "--log-every", "0", "--video-key", "video.front"]) == 0
    metrics = json.loads([ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("{")][-1])
    assert "mae_over_range" in metrics  # held-out robot episode
    assert checkpoint.load_meta(tmp_path / "idm") == {"action_layout": [["move", 0, 2]]}
    assert groot_main(["idm", "label", str(video), "--checkpoint", str(tmp_path / "idm"),
                       "--embodiment", "new_embodiment"]) == 0
    assert {**digest(robot), **digest(video)} == before
    lat = sidecar.sidecar_dir(video, "latent_actions")
    idm = sidecar.sidecar_dir(video, "idm_actions.new_embodiment")
    assert lat.parent == idm.parent == tmp_path
    assert sidecar.read_manifest(idm)["action_layout"] == [["move", 0, 2]]
    ep = sidecar.load_episode(idm, 3)
    assert ep["actions"].shape == (10, 2) and ep["action_chunks"].shape == (10, 4, 2)
    assert sidecar.load_episode(lat, 0)["latent_actions"].shape == (10, 8)
    # the data layer reads the pseudo-actions under the robot's action key
    cfg = DataConfig(name="v", embodiment_tag="new_embodiment", video_keys=("video.ego_view",),
                     state_keys=(), action_keys=("action.move",), language_keys=())
    src = open_source(SourceSpec(str(video), cfg, kind="actionless", action_sidecar=str(idm)))
    # rows 6..9 had no frame t+4 (valid false): they repeat row 5, as does padding past the end
    assert ep["valid"].tolist() == [True] * 6 + [False] * 4
    np.testing.assert_array_equal(src.get(3, 0, cfg)["action.move"],
                                  ep["actions"][np.minimum(np.arange(16), 5)])
    # a robot dataset with actions can be labelled too; an unknown camera is named
    with pytest.raises(ValueError, match="no video key 'video.wrist'"):
        groot_main(["latent-actions", "label", str(robot), "--checkpoint", str(tmp_path / "lam"),
                    "--video-key", "video.wrist"])
