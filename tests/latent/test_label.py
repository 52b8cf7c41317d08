"""Labelling: sidecars beside the dataset, atomic writes, resumable after a crash."""
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from flax import nnx

from groot_jax.data import sidecar
from groot_jax.data.episodes import open_episodes, write_npz_dir
from groot_jax.latent import checkpoint, label
from groot_jax.latent import sidecar as sidecar_writer
from groot_jax.latent.synthetic_world import make_episodes
from groot_jax.models.idm import IDMConfig, InverseDynamicsModel
from groot_jax.models.latent_action import LatentActionConfig, LatentActionModel

REPO = Path(__file__).resolve().parents[2]


def _tree_digest(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def lam_model():
    return LatentActionModel(LatentActionConfig.tiny(horizon=2), rngs=nnx.Rngs(0))


@pytest.fixture
def dataset(tmp_path):
    eps = make_episodes(range(6), 20)
    eps[3] = make_episodes([99], 13)[0]  # episodes of different lengths
    eps[5]["actions"] = None  # action-less video is fine for labelling
    return write_npz_dir(eps, tmp_path / "ds")


def _files(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir())


def test_label_writes_beside_dataset_and_leaves_it_untouched(dataset, lam_model):
    before = _tree_digest(dataset)
    root, done = label.label_dataset(lam_model, open_episodes(dataset), dataset, log=lambda s: None)
    assert root == dataset.parent / "ds.latent_actions"
    assert done == list(range(6))
    assert _tree_digest(dataset) == before
    ep = sidecar.load_episode(root, 3)
    assert ep["latent_actions"].shape == (13, lam_model.cfg.action_dim)
    assert ep["codes"].shape == (13, 1)
    np.testing.assert_array_equal(ep["valid"], np.arange(13) + 2 <= 12)
    manifest = sidecar.read_manifest(root)
    assert manifest["kind"] == "latent_actions"
    assert set(manifest["episodes"]) == {str(i) for i in range(6)}
    # a rerun has nothing left to do
    assert label.label_dataset(lam_model, open_episodes(dataset), dataset, log=lambda s: None)[1] == []


def test_crash_in_loop_leaves_no_partial_sidecar_and_rerun_finishes(dataset, lam_model, tmp_path,
                                                                     monkeypatch):
    clean_root, _ = label.label_dataset(lam_model, open_episodes(dataset), dataset,
                                        out=tmp_path / "clean", log=lambda s: None)
    calls, orig = [], label.latent_action_labels

    def crashing(model, episode):
        calls.append(1)
        if len(calls) == 4:
            raise RuntimeError("simulated crash")
        return orig(model, episode)

    monkeypatch.setattr(label, "latent_action_labels", crashing)
    with pytest.raises(RuntimeError, match="simulated crash"):
        label.label_dataset(lam_model, open_episodes(dataset), dataset, log=lambda s: None)
    monkeypatch.setattr(label, "latent_action_labels", orig)
    root = sidecar.sidecar_dir(dataset, "latent_actions")
    assert _files(root) == ["episode_000000.npz", "episode_000001.npz", "episode_000002.npz",
                            "manifest.json"]
    assert set(sidecar.read_manifest(root)["episodes"]) == {"0", "1", "2"}
    _, done = label.label_dataset(lam_model, open_episodes(dataset), dataset, log=lambda s: None)
    assert done == [3, 4, 5]
    for i in range(6):  # the resumed sidecar equals an uninterrupted one
        a, b = sidecar.load_episode(root, i), sidecar.load_episode(clean_root, i)
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])


def test_crash_while_writing_a_file_leaves_nothing_partial(dataset, lam_model, monkeypatch):
    real_savez = np.savez
    n = []

    def half_savez(f, **arrays):
        n.append(1)
        if len(n) == 2:
            f.write(b"PK\x03\x04 partial")
            raise OSError("disk full")
        real_savez(f, **arrays)

    monkeypatch.setattr(sidecar_writer.np, "savez", half_savez)
    with pytest.raises(OSError, match="disk full"):
        label.label_dataset(lam_model, open_episodes(dataset), dataset, log=lambda s: None)
    root = sidecar.sidecar_dir(dataset, "latent_actions")
    assert _files(root) == ["episode_000000.npz", "manifest.json"]
    monkeypatch.setattr(sidecar_writer.np, "savez", real_savez)
    _, done = label.label_dataset(lam_model, open_episodes(dataset), dataset, log=lambda s: None)
    assert done == [1, 2, 3, 4, 5]


def test_corrupted_or_unlisted_files_are_relabelled(dataset, lam_model):
    root, _ = label.label_dataset(lam_model, open_episodes(dataset), dataset, log=lambda s: None)
    (root / "episode_000002.npz").write_bytes(b"garbage")
    manifest = json.loads((root / "manifest.json").read_text())
    del manifest["episodes"]["4"]
    (root / "manifest.json").write_text(json.dumps(manifest))
    done = label.label_dataset(lam_model, open_episodes(dataset), dataset, log=lambda s: None)[1]
    assert done == [2, 4]
    sidecar.load_episode(root, 2)  # verifies the sha256


def test_other_producer_is_refused(dataset, lam_model):
    label.label_dataset(lam_model, open_episodes(dataset), dataset, log=lambda s: None)
    other = LatentActionModel(LatentActionConfig.tiny(horizon=3), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="different 'producer'"):
        label.label_dataset(other, open_episodes(dataset), dataset, log=lambda s: None)
    _, done = label.label_dataset(other, open_episodes(dataset), dataset, overwrite=True,
                                  log=lambda s: None)
    assert done == list(range(6))


def test_idm_labels(dataset):
    model = InverseDynamicsModel(IDMConfig.tiny(horizon=4, state_dim=2), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="embodiment"):
        label.label_dataset(model, open_episodes(dataset), dataset, log=lambda s: None)
    root, done = label.label_dataset(model, open_episodes(dataset), dataset, embodiment="new_embodiment",
                                     log=lambda s: None)
    assert root.name == "ds.idm_actions.new_embodiment" and done == list(range(6))
    ep = sidecar.load_episode(root, 3)
    assert ep["action_chunks"].shape == (13, 4, 2)
    np.testing.assert_array_equal(ep["actions"], ep["action_chunks"][:, 0])


def test_killed_subprocess_then_resume(tmp_path):
    """SIGKILL a real `idm label` run part-way; the sidecar holds only complete episodes, and the
    rerun labels exactly the rest."""
    n_eps = 150
    ds = write_npz_dir(make_episodes(range(n_eps), 12), tmp_path / "big")
    ckpt = checkpoint.save(InverseDynamicsModel(IDMConfig.tiny(horizon=2), rngs=nnx.Rngs(0)),
                           tmp_path / "idm_ckpt")
    cmd = [sys.executable, "-m", "groot_jax.cli", "idm", "label", str(ds),
           "--checkpoint", str(ckpt), "--embodiment", "tag"]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    root = sidecar.sidecar_dir(ds, "idm_actions.tag")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if len(list(root.glob("episode_*.npz"))) >= 5:
            break
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    listed = sidecar.read_manifest(root)["episodes"]
    assert 0 < len(listed) < n_eps
    for i in listed:  # every listed episode is complete and verified
        assert sidecar.load_episode(root, int(i))["action_chunks"].shape == (12, 2, 2)
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"labelled {n_eps - len(listed)} episode(s) this run" in out.stdout
    assert len(sidecar.read_manifest(root)["episodes"]) == n_eps
    assert not list(root.glob(".tmp-*"))
