"""`groot-jax serve` and `convert import` from the command line: shutdown, a busy port, and the
missing tokenizer of a released checkpoint (one clear line, no traceback)."""
import argparse
import queue
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import zmq

from groot_jax.convert import checkpoint as ck
from groot_jax.serve.wire import pack, unpack
from tests.serve.conftest import TASKS, TOKEN_BUCKET, free_port, observation

ROOT = Path(__file__).resolve().parents[2]


def _parse(argv):
    from groot_jax.convert.cli import register as convert
    from groot_jax.serve.cli import register as serve

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(required=True)
    serve(sub)
    convert(sub)
    return parser.parse_args(argv)


class Serve:
    """`python -m groot_jax.cli serve ...` with its stdout read line by line."""

    def __init__(self, args, env, tmp_path):
        self.err = open(tmp_path / "stderr.txt", "w+")
        self.proc = subprocess.Popen([sys.executable, "-m", "groot_jax.cli", "serve", *args],
                                     cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=self.err,
                                     text=True)
        self.lines, self.out = queue.Queue(), []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.out.append(line)
            self.lines.put(line)

    def wait_for(self, text, timeout=120):
        while True:
            line = self.lines.get(timeout=timeout)
            if text in line:
                return line

    def finish(self, timeout=60):
        rc = self.proc.wait(timeout)
        self.err.seek(0)
        return rc, "".join(self.out), self.err.read()


def test_sigterm_answers_in_flight_requests_then_exits(served_model, tiny_policy, cache_env,
                                                       tmp_path):
    port = free_port()
    # --no-warmup: the first request compiles, so the signal also lands during that compile.
    srv = Serve(["--model", str(served_model[0]), "--data-config", "so100", "--port", str(port),
                 "--token-buckets", str(TOKEN_BUCKET), "--batch-buckets", "1", "--no-warmup"],
                cache_env, tmp_path)
    try:
        srv.wait_for("serving")
        rng = np.random.default_rng(5)
        obs = [observation(rng, TASKS[i % 8]) for i in range(12)]
        ctx = zmq.Context()
        sockets = []
        for i, o in enumerate(obs):
            s = ctx.socket(zmq.REQ)
            s.setsockopt(zmq.RCVTIMEO, 60_000)
            s.setsockopt(zmq.LINGER, 0)
            s.connect(f"tcp://127.0.0.1:{port}")
            s.send(pack({"method": "get_action", "payload": {"observation": o, "seed": i}}))
            sockets.append(s)
        srv.proc.send_signal(signal.SIGTERM)  # 12 requests sent, answered one by one
        replies = [unpack(s.recv()) for s in sockets]
        for s in sockets:
            s.close()
        ctx.term()
        rc, out, err = srv.finish()
    finally:
        if srv.proc.poll() is None:
            srv.proc.kill()
    print(out)
    assert rc == 0 and "Traceback" not in err, err
    for i, r in enumerate(replies):  # each the chunk of its own observation and seed
        expected = tiny_policy.get_action(obs[i], seed=i)
        for k in expected:
            assert r["result"][k].shape == expected[k].shape
            np.testing.assert_allclose(r["result"][k], expected[k], atol=1e-5, rtol=0)
    assert "SIGTERM: stopping after the current step" in out
    after = int(out.split("stopped: ")[1].split(" replies sent after the signal")[0])
    assert after >= 1, out  # some of the 12 were still waiting when the signal came


def test_ctrl_c_during_warmup_exits_cleanly(served_model, tiny_policy, cache_env, tmp_path):
    srv = Serve(["--model", str(served_model[0]), "--data-config", "so100",
                 "--port", str(free_port()), "--token-buckets", str(TOKEN_BUCKET),
                 "--batch-buckets", "1,2,4,8"], cache_env, tmp_path)
    try:
        srv.wait_for("compiling prompt length")
        srv.proc.send_signal(signal.SIGINT)
        rc, out, err = srv.finish()
    finally:
        if srv.proc.poll() is None:
            srv.proc.kill()
    print(out)
    assert rc == 0 and "Traceback" not in err and "KeyboardInterrupt" not in err, (rc, err)
    assert "SIGINT: stopping after the current step" in out
    assert "stopped before serving" in out or "stopped: " in out


def test_busy_port_is_one_clear_line(served_model, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        args = _parse(["serve", "--model", str(served_model[0]), "--data-config", "so100",
                       "--port", str(port)])
        with pytest.raises(SystemExit) as e:
            args.func(args)
    assert isinstance(e.value.code, str) and f"cannot listen on 127.0.0.1:{port}" in e.value.code
    assert "--port" in e.value.code and "serving" not in capsys.readouterr().out


def test_serve_without_tokenizer_says_what_to_pass(served_model, cache_env):
    bare = served_model[1]  # a model dir as `convert import` used to leave it: no tokenizer
    r = subprocess.run([sys.executable, "-m", "groot_jax.cli", "serve", "--model", str(bare),
                        "--data-config", "so100", "--port", str(free_port())], cwd=ROOT,
                       env=cache_env, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    assert f"{bare}: no tokenizer" in r.stderr and "--tokenizer DIR" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr

    from groot_jax.data.embodiments import so100
    from groot_jax.eval.policy import Policy

    with pytest.raises(ck.CheckpointFileError, match="pass --tokenizer DIR"):
        Policy(bare, so100())  # before any weight is read


@pytest.fixture(scope="module")
def released(served_model, tmp_path_factory):
    """An Isaac-GR00T checkpoint dir without a tokenizer, like the released one."""
    cfg, params, metadata = ck.load_model(served_model[1])
    return ck.export_gr00t(tmp_path_factory.mktemp("released") / "ckpt", cfg, params, metadata)


def test_import_stores_the_tokenizer_or_says_how(served_model, released, tmp_path, capsys):
    tok = served_model[2]
    args = _parse(["convert", "import", str(released), str(tmp_path / "with"),
                   "--tokenizer", str(tok)])
    assert args.func(args) == 0
    assert ck.has_tokenizer(tmp_path / "with") and "note:" not in capsys.readouterr().out

    args = _parse(["convert", "import", str(released), str(tmp_path / "without")])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "has no tokenizer" in out and "--tokenizer DIR" in out

    empty = tmp_path / "empty"
    empty.mkdir()
    args = _parse(["convert", "import", str(released), str(tmp_path / "never"),
                   "--tokenizer", str(empty)])
    with pytest.raises(SystemExit) as e:
        args.func(args)
    assert f"{empty}: no tokenizer" in e.value.code and "--tokenizer DIR" in e.value.code
    assert not (tmp_path / "never").exists()  # checked before the import started


def test_policy_derives_the_data_config_of_a_model_dir_without_one(served_model):
    """A model dir with metadata.json but no data_configs.json (an imported released
    checkpoint): the data config comes from the metadata's modalities, with a warning."""
    from groot_jax.data.embodiments import so100
    from groot_jax.eval.policy import Policy

    with pytest.warns(UserWarning, match="derived from metadata.json"):
        policy = Policy(served_model[0], token_buckets=(TOKEN_BUCKET,), batch_buckets=(1,))
    want, got = so100(), policy.data_config
    for field in ("embodiment_tag", "video_keys", "state_keys", "action_keys", "language_keys",
                  "state_normalization", "action_normalization", "action_indices"):
        assert getattr(got, field) == getattr(want, field), field
    assert policy.metadata()["actions"] == {"action.single_arm": [16, 5], "action.gripper": [16, 1]}
