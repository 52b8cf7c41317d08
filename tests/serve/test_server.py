"""The policy server under concurrent load and bad input, with a policy that echoes its input."""
import re
import threading

import msgpack
import numpy as np
import pytest

from groot_jax.eval.observation_spec import check_observation
from groot_jax.serve.client import PolicyClient, PolicyError
from groot_jax.serve.server import PolicyServer
from groot_jax.serve.wire import pack
from tests.serve.conftest import free_port

SPEC = {"state.arm": {"dtype": "float32", "shape": [1, 7]},
        "video.cam": {"dtype": "uint8", "shape": [1, "H", "W", 3]},
        "annotation.task": {"dtype": "str", "max_chars": 64, "frames": 1}}


class EchoPolicy:
    """action.arm = state.arm * 2 + mean(frame) + seed: any mix-up between requests shows."""

    def __init__(self):
        self.calls, self.lock = [], threading.Lock()

    def metadata(self):
        return {"embodiment": "new_embodiment", "action_horizon": 16, "observation": SPEC,
                "max_batch": 16}

    def validate(self, observation, *, batch, max_batch=None):
        return check_observation(observation, SPEC, batch=batch, max_batch=max_batch)

    def act(self, items, seeds):
        with self.lock:
            self.calls.append(len(items))
        return [{"action.arm": _expected(it, seed)} for it, seed in zip(items, seeds, strict=True)]


def _expected(obs, seed=0):
    with np.errstate(over="ignore"):  # the non-finite test overflows on purpose
        row = obs["state.arm"][0] * 2 + obs["video.cam"].mean() + seed
    return np.repeat(row[None], 16, axis=0).astype(np.float32)


@pytest.fixture
def server():
    policy = EchoPolicy()
    srv = PolicyServer(policy, f"tcp://127.0.0.1:{free_port()}", max_message_bytes=1 << 20,
                       batch_window_s=0.005)
    thread = srv.start()
    yield srv, policy
    srv.stop()
    thread.join(5)


def _obs(rng):
    return {"state.arm": rng.normal(size=(1, 7)).astype(np.float32),
            "video.cam": rng.integers(0, 255, (1, 16, 16, 3), dtype=np.uint8),
            "annotation.task": "pick the cube"}


def test_concurrent_clients_get_their_own_answers(server):
    srv, policy = server
    errors = []

    def client_loop(seed):
        rng = np.random.default_rng(seed)
        client = PolicyClient(srv.address, timeout_ms=20_000)
        try:
            for i in range(50):
                obs = _obs(rng)
                out = client.get_action(obs, seed=i)
                assert out["action.arm"].shape == (16, 7)
                np.testing.assert_allclose(out["action.arm"], _expected(obs, i), rtol=1e-6)
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)
        finally:
            client.close()

    threads = [threading.Thread(target=client_loop, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:3]
    assert sum(policy.calls) == 400
    assert max(policy.calls) > 1, "concurrent requests were never batched"
    assert srv.stats["requests"] == 400


def test_declared_batch_and_flat_form(server):
    srv, _ = server
    client = PolicyClient(srv.address, timeout_ms=10_000)
    rng = np.random.default_rng(1)
    rows = [_obs(rng) for _ in range(3)]
    batch = {k: (np.stack([r[k] for r in rows]) if k != "annotation.task" else
                 [r[k] for r in rows]) for k in rows[0]}
    out = client.get_action(batch, batch=True, seed=10)["action.arm"]
    assert out.shape == (3, 16, 7)
    for i, r in enumerate(rows):  # row i is seeded with seed + i
        np.testing.assert_allclose(out[i], _expected(r, 10 + i), rtol=1e-6)
    # The flat payload (no "observation" wrapper) is one observation.
    assert client.call("get_action", rows[0])["action.arm"].shape == (16, 7)
    client.close()


def test_bad_requests_get_errors_and_the_server_lives(server):
    srv, _ = server
    client = PolicyClient(srv.address, timeout_ms=10_000)
    rng = np.random.default_rng(0)
    good = _obs(rng)

    def action(obs, **fields):
        return pack({"method": "get_action", "payload": {"observation": obs, **fields}})

    cases = {
        b"\xc1\xc1 not msgpack": "not a valid msgpack message",
        pack({"method": "reboot"}): "a request is",
        pack({"method": "get_action", "payload": {}}): "non-empty observation",
        action({**good, "state.arm": np.zeros((1, 3), np.float32)}):
            "state.arm: expected float32 [1, 7] (any float dtype), got float32 [1, 3]",
        action({k: v[None] if k != "annotation.task" else [v] for k, v in good.items()}):
            "a batch is sent as {'observation': ..., 'batch': True}",
        msgpack.packb({"method": "get_action", "payload": {"state.arm": {
            "__nd__": True, "dtype": "<f4", "shape": [1, 7], "data": b"\x00" * 5}}}):
            "needs 28 bytes, got 5",
        msgpack.packb({"method": "get_action", "payload": {"state.arm": {
            "__nd__": True, "dtype": "<f4", "shape": [2**40, 2**40], "data": b""}}}):
            f"needs {2**80 * 4} bytes, got 0",
        msgpack.packb({"method": "get_action", "payload": {"x": {
            "__nd__": True, "dtype": "|O", "shape": [1], "data": b"\x00" * 8}}}):
            "refused array dtype",
        pack({"method": "get_action", "payload": {"blob": np.zeros(2 << 20, np.uint8)}}):
            "exceeds the server's limit",
        action(good, seed=-1): "seed: expected an int in [0, 2**32)",
        action(good, batch="yes"): "batch: expected a bool",
        action(good, priority=1): "unknown get_action fields ['priority']",
    }
    for message, expected in cases.items():
        with pytest.raises(PolicyError, match=re.escape(expected)):
            client.call_raw(message)
    # still serving, still correct
    np.testing.assert_allclose(client.get_action(good, seed=3)["action.arm"], _expected(good, 3),
                               rtol=1e-6)
    assert client.health()["status"] == "ok"
    client.close()


def test_non_finite_action_is_refused(server):
    srv, _ = server
    client = PolicyClient(srv.address, timeout_ms=10_000)
    obs = {**_obs(np.random.default_rng(2)), "state.arm": np.full((1, 7), 3e38, np.float32)}
    with pytest.raises(PolicyError, match=r"non-finite action\.arm; not sent"):
        client.get_action(obs, seed=0)  # finite input, 3e38 * 2 overflows to inf
    client.close()
