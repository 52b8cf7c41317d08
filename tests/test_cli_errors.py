"""Bad input to `groot-jax` gives one or two clear lines on stderr and a non-zero exit, no
traceback (unless --debug). Most cases run in-process through main(handle_errors=True), which is
what the program does; two run the real program."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from groot_jax import cli

ROOT = Path(__file__).resolve().parents[1]

DATASET_CONFIG = """from groot_jax.train.config import TrainConfig
from groot_jax.train.data_spec import DatasetSpec, DataSpec


def get_config():
    return TrainConfig(model="tiny", steps=2, batch_size=2, data=DataSpec(
        source="datasets", datasets=(DatasetSpec({data!r}),), tokenizer={tok!r}))
"""


def _fails(capsys, argv: list[str], *names: str) -> str:
    rc = cli.main(argv, handle_errors=True)
    err = capsys.readouterr().err
    assert rc == 1, (rc, err)
    assert "Traceback" not in err and 1 <= len(err.strip().splitlines()) <= 2, err
    for name in names:
        assert name in err, (name, err)
    return err


def test_train_bad_input(tmp_path, capsys):
    _fails(capsys, ["train", "--config", "no_such_config"], "no_such_config")
    _fails(capsys, ["train", "--config", str(tmp_path / "missing.py")], "missing.py")
    _fails(capsys, ["train", "--config", "tiny_synthetic", "steps=ten"], "steps", "'ten'")
    _fails(capsys, ["train", "--config", "tiny_synthetic", "checkpoint.every=0"],
           "checkpoint.every")
    _fails(capsys, ["train", "--config", "tiny_synthetic", "stepz=3"], "stepz", "steps")
    cfg = tmp_path / "pyr.py"
    cfg.write_text(DATASET_CONFIG.format(data=str(tmp_path / "robot"),
                                         tok=str(tmp_path / "no_tokenizer")))
    _fails(capsys, ["train", "--config", str(cfg)], str(tmp_path / "no_tokenizer"), "tokenizer")


def test_stats_bad_input_and_no_overwrite(tmp_path, capsys):
    _fails(capsys, ["stats", str(tmp_path / "nowhere")], str(tmp_path / "nowhere"))
    ds = tmp_path / "ds"
    (ds / "meta").mkdir(parents=True)
    (ds / "meta" / "info.json").write_text('{"codebase_version": "v2.1",')   # truncated
    _fails(capsys, ["stats", str(ds)], str(ds / "meta" / "info.json"), "JSON")
    # An existing meta/stats.json (LeRobot ships one) is left alone without --overwrite.
    stats = ds / "meta" / "stats.json"
    stats.write_text('{"sentinel": 1}')
    before = stats.stat().st_mtime_ns
    _fails(capsys, ["stats", str(ds)], str(stats), "--overwrite")
    assert stats.read_text() == '{"sentinel": 1}' and stats.stat().st_mtime_ns == before


def test_stats_overwrite_replaces(tmp_path, capsys):
    from tests.data.fixtures import write_v2_dataset

    ds = write_v2_dataset(tmp_path / "ds", lengths=(4, 3), hw=(16, 16))
    stats = ds / "meta" / "stats.json"
    assert cli.main(["stats", str(ds)], handle_errors=True) == 0
    first = stats.read_text()
    stats.write_text('{"sentinel": 1}')
    assert cli.main(["stats", str(ds)], handle_errors=True) == 1
    assert stats.read_text() == '{"sentinel": 1}'
    assert cli.main(["stats", str(ds), "--overwrite"], handle_errors=True) == 0
    assert stats.read_text() == first
    capsys.readouterr()


@pytest.mark.parametrize("debug", [False, True])
def test_the_program_prints_one_line_or_with_debug_the_traceback(debug):
    argv = [sys.executable, "-m", "groot_jax.cli", "train", "--config", "tiny_synthetic",
            "checkpoint.every=0"] + (["--debug"] if debug else [])
    p = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 1, p.stderr[-3000:]
    assert "checkpoint.every" in p.stderr
    assert ("Traceback" in p.stderr) == debug, p.stderr[-3000:]
