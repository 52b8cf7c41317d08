"""The policy server under concurrent load and bad input."""
import re
import socket
import threading

import msgpack
import numpy as np
import pytest

from groot_jax.serve.client import PolicyClient, PolicyError
from groot_jax.serve.server import PolicyServer
from groot_jax.serve.wire import pack


class EchoPolicy:
    """action.arm = state.arm * 2 + mean(frame): any mix-up between requests shows."""

    def __init__(self):
        self.calls, self.lock = [], threading.Lock()

    def metadata(self):
        return {"embodiment": "new_embodiment", "action_horizon": 16}

    def get_action(self, obs):
        state, video = obs["state.arm"], obs["video.cam"]
        if state.ndim != 2 or state.shape[-1] != 7:
            raise ValueError(f"state.arm must be [B, 7], got {list(state.shape)}")
        if video.ndim != 4 or video.dtype != np.uint8:
            raise ValueError(f"video.cam must be uint8 [B, H, W, 3], got {video.dtype} "
                             f"{list(video.shape)}")
        with self.lock:
            self.calls.append(len(state))
        bias = video.reshape(len(video), -1).mean(1, keepdims=True)
        arm = np.repeat((state * 2 + bias)[:, None], 16, axis=1)
        return {"action.arm": arm.astype(np.float32)}


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server():
    policy = EchoPolicy()
    srv = PolicyServer(policy, f"tcp://127.0.0.1:{_free_port()}", max_message_bytes=1 << 20,
                       batch_window_s=0.005)
    thread = srv.start()
    yield srv, policy
    srv.stop()
    thread.join(5)


def _obs(rng):
    return {"state.arm": rng.normal(size=(1, 7)).astype(np.float32),
            "video.cam": rng.integers(0, 255, (1, 16, 16, 3), dtype=np.uint8),
            "annotation.task": ["pick the cube"]}


def _expected(obs):
    bias = obs["video.cam"].reshape(1, -1).mean(1, keepdims=True)
    return np.repeat((obs["state.arm"] * 2 + bias)[:, None], 16, axis=1).astype(np.float32)


def test_concurrent_clients_get_their_own_answers(server):
    srv, policy = server
    errors = []

    def client_loop(seed):
        rng = np.random.default_rng(seed)
        client = PolicyClient(srv.address, timeout_ms=20_000)
        try:
            for _ in range(50):
                obs = _obs(rng)
                out = client.get_action(obs)
                np.testing.assert_allclose(out["action.arm"], _expected(obs), rtol=1e-6)
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


def test_bad_requests_get_errors_and_the_server_lives(server):
    srv, _ = server
    client = PolicyClient(srv.address, timeout_ms=10_000)
    rng = np.random.default_rng(0)
    cases = {
        b"\xc1\xc1 not msgpack": "not a valid msgpack message",
        pack({"method": "reboot"}): "a request is",
        pack({"method": "get_action", "payload": {}}): "non-empty observation",
        pack({"method": "get_action", "payload": {"state.arm": np.zeros((1, 3), np.float32),
                                                  "video.cam": np.zeros((1, 4, 4, 3), np.uint8)}}):
            "state.arm must be [B, 7], got [1, 3]",
        msgpack.packb({"method": "get_action", "payload": {"state.arm": {
            "__nd__": True, "dtype": "<f4", "shape": [1, 7], "data": b"\x00" * 5}}}):
            "needs 28 bytes, got 5",
        msgpack.packb({"method": "get_action", "payload": {"x": {
            "__nd__": True, "dtype": "|O", "shape": [1], "data": b"\x00" * 8}}}):
            "refused array dtype",
        pack({"method": "get_action", "payload": {"blob": np.zeros(2 << 20, np.uint8)}}):
            "exceeds the server's limit",
    }
    for message, expected in cases.items():
        with pytest.raises(PolicyError, match=re.escape(expected)):
            client.call_raw(message)
    # still serving, still correct
    obs = _obs(rng)
    np.testing.assert_allclose(client.get_action(obs)["action.arm"], _expected(obs), rtol=1e-6)
    assert client.health()["status"] == "ok"
    client.close()
