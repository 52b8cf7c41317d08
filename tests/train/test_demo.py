"""`make demo` (groot_jax/demo.py): the user path at CPU size through the real commands:
LeRobot v3.0 dataset -> `groot-jax train` -> `eval open-loop` -> `convert export` -> `serve`."""
from __future__ import annotations

import json

import numpy as np
import pytest

from groot_jax import demo


# `make slow`: ~2-4 min, and the same chain (train -> eval -> export -> serve) runs in the default
# suite at test size (tests/train/test_user_path_train.py); `make demo` itself is the job.
@pytest.mark.slow
def test_demo_runs_the_user_path(tmp_path, capsys):
    """The whole demo job as `make demo` runs it (1500 steps; ~2-4 min on 2 cores): the loss
    falls, the policy beats the mean action on the held-out episodes (measured 0.022 vs 0.060;
    600 steps stopped while the loss still sat at the observation-blind level, see the README),
    the export carries the dataset's statistics at its widths, and the served action has the
    dataset's width."""
    r = demo.run_demo(tmp_path)
    out = capsys.readouterr().out
    assert "=== what to look at ===" in out and "plots:" in out and "served action" in out
    assert r["loss_last"] < 0.6 * r["loss_first"], r
    ol = r["open_loop"]
    assert ol["episodes"] == 8 and ol["mse"] > 0 and ol["mean_action"]["mse"] > 0, ol
    assert ol["mse"] < 0.7 * ol["mean_action"]["mse"], ol
    assert "mean-action baseline" in out
    run = tmp_path / "run"
    assert (run / "processor" / "metadata.json").exists() and (run / "run_config.json").exists()
    assert len(list((tmp_path / "eval" / "plots").glob("*.png"))) == 8
    meta = json.loads((tmp_path / "export" / "experiment_cfg" / "metadata.json").read_text())
    stats = meta["new_embodiment"]["statistics"]
    assert [len(v["max"]) for v in stats["state"].values()] == [4]
    action = np.asarray(r["served_action"]["action.action"])
    assert action.shape == (16, 2) and np.isfinite(action).all()
    # Un-normalisation itself is checked against a hand computation in tests/eval/test_run_dir.py
    # (min_max is inverted without clipping, as the original does, so no range is asserted).
