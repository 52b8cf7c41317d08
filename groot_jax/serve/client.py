"""Numpy-only policy client (no JAX import): robots and simulators call `get_action`.

    client = PolicyClient("tcp://127.0.0.1:5555")
    client.health()            # {"status": "ok", "observation": spec, buckets, ...metadata}
    action = client.get_action({"video.ego_view": frames_uint8,   # [T, H, W, 3]
                                "state.arm": q,                    # [T, d]
                                "annotation.human.task_description": "pick the cube"}, seed=7)
    action["action.arm"]       # [16, d]; with batch=True every input and output has axis B
"""
from __future__ import annotations

from typing import Any

import zmq

from groot_jax.serve.wire import pack, unpack


class PolicyError(RuntimeError):
    """The server answered with an error (the request was refused, the server is fine)."""


class PolicyClient:
    def __init__(self, address: str = "tcp://127.0.0.1:5555", timeout_ms: int = 60_000):
        self.address, self.timeout_ms = address, timeout_ms
        self._ctx = zmq.Context.instance()
        self._socket = None

    def _connect(self):
        socket = self._ctx.socket(zmq.REQ)
        socket.setsockopt(zmq.RCVTIMEO, self.timeout_ms)
        socket.setsockopt(zmq.SNDTIMEO, self.timeout_ms)
        socket.setsockopt(zmq.LINGER, 0)
        socket.connect(self.address)
        return socket

    def call(self, method: str, payload: Any = None) -> Any:
        return self.call_raw(pack({"method": method, "payload": payload}))

    def call_raw(self, message: bytes) -> Any:
        """Send pre-encoded bytes (for tests of malformed input) and decode the reply."""
        if self._socket is None:
            self._socket = self._connect()
        try:
            self._socket.send(message)
            reply = unpack(self._socket.recv())
        except zmq.Again as e:  # a REQ socket is unusable after a timeout: start over
            self._socket.close()
            self._socket = None
            raise TimeoutError(f"no reply from {self.address} in {self.timeout_ms} ms") from e
        if isinstance(reply, dict) and "error" in reply:
            raise PolicyError(reply["error"])
        return reply["result"]

    def health(self) -> dict:
        return self.call("health")

    def get_action(self, observation: dict, *, batch: bool = False,
                   seed: int | None = None) -> dict:
        """`batch=True`: a leading axis B on every array and a list of B texts. `seed` (an int
        in [0, 2**32)) fixes the initial noise: the same request gives the same chunk."""
        payload = {"observation": observation, "batch": batch}
        if seed is not None:
            payload["seed"] = seed
        return self.call("get_action", payload)

    def close(self):
        if self._socket is not None:
            self._socket.close()
            self._socket = None
