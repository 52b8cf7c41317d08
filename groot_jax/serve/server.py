"""Policy server: ZeroMQ ROUTER socket, msgpack numpy messages, batching, survives bad input.

Protocol: a request is `{"method": "health" | "get_action", "payload": ...}`; a reply is
`{"result": ...}` or `{"error": "<what was wrong>"}`. `get_action` payloads are observation
dicts of numpy arrays / strings with a leading batch axis or none (a single observation).

Concurrent `get_action` requests that arrive within `batch_window_s` and have the same keys and
shapes are stacked and run as one batched call, then split back. If a batched call fails, each
request is retried alone so one bad request cannot fail its neighbours. No request, however
malformed or oversized, stops the server.
"""
from __future__ import annotations

import threading
import time
import traceback
from typing import Any, Protocol

import numpy as np
import zmq

from groot_jax.serve.wire import WireError, pack, unpack


class BatchPolicy(Protocol):
    def get_action(self, observation: dict[str, Any]) -> dict[str, np.ndarray]: ...

    def metadata(self) -> dict[str, Any]: ...


def _signature(obs: dict) -> tuple:
    return tuple(sorted((k, v.shape, v.dtype.str) if isinstance(v, np.ndarray) else (k, type(v))
                        for k, v in obs.items()))


def _is_batched(obs: dict) -> bool:
    return all(not isinstance(v, np.ndarray) or v.ndim >= 1 for v in obs.values())


class PolicyServer:
    def __init__(self, policy: BatchPolicy, address: str = "tcp://127.0.0.1:5555", *,
                 max_message_bytes: int = 64 << 20, max_batch: int = 16,
                 batch_window_s: float = 0.002):
        self.policy, self.address = policy, address
        self.max_message_bytes, self.max_batch = max_message_bytes, max_batch
        self.batch_window_s = batch_window_s
        self._stop = threading.Event()
        self.stats = {"requests": 0, "errors": 0, "batches": 0}

    # ---- request handling -------------------------------------------------------------------
    def _parse(self, message: bytes) -> tuple[str, Any]:
        if len(message) > self.max_message_bytes:
            raise WireError(f"message of {len(message)} bytes exceeds the server's limit of "
                            f"{self.max_message_bytes}")
        request = unpack(message)
        if not isinstance(request, dict) or request.get("method") not in ("health", "get_action"):
            raise WireError("a request is {'method': 'health'|'get_action', 'payload': ...}")
        payload = request.get("payload")
        if request["method"] == "get_action":
            if not isinstance(payload, dict) or not payload:
                raise WireError("get_action needs a non-empty observation dict")
            if not all(isinstance(k, str) for k in payload):
                raise WireError("observation keys must be strings")
        return request["method"], payload

    def _run_batch(self, observations: list[dict]) -> list[dict]:
        """One policy call for several same-shaped observations (each batched or single)."""
        if len(observations) == 1:
            return [self.policy.get_action(observations[0])]
        batched = [_is_batched(o) for o in observations]
        stacked = {}
        for key in observations[0]:
            values = [o[key] for o in observations]
            if isinstance(values[0], np.ndarray):
                stacked[key] = np.concatenate(values) if all(batched) else np.stack(values)
            else:
                stacked[key] = np.array(values) if not all(batched) else sum(values, [])
        result = self.policy.get_action(stacked)
        sizes = [len(o[next(iter(o))]) if all(batched) else 1 for o in observations]
        out, start = [], 0
        for n in sizes:
            piece = {k: v[start:start + n] for k, v in result.items()}
            out.append(piece if all(batched) else {k: v[0] for k, v in piece.items()})
            start += n
        return out

    def _answer(self, pending: list[tuple[list[bytes], dict]]) -> list[tuple[list[bytes], bytes]]:
        groups: dict[tuple, list[tuple[list[bytes], dict]]] = {}
        for envelope, obs in pending:
            groups.setdefault(_signature(obs), []).append((envelope, obs))
        replies = []
        for group in groups.values():
            for i in range(0, len(group), self.max_batch):
                chunk = group[i:i + self.max_batch]
                try:
                    results = self._run_batch([obs for _, obs in chunk])
                    self.stats["batches"] += 1
                    replies += [(env, pack({"result": r})) for (env, _), r in zip(chunk, results,
                                                                                  strict=True)]
                except Exception:
                    for env, obs in chunk:  # isolate the failing request(s)
                        replies.append((env, self._single(obs)))
        return replies

    def _single(self, obs: dict) -> bytes:
        try:
            self.stats["batches"] += 1
            return pack({"result": self.policy.get_action(obs)})
        except Exception as e:
            self.stats["errors"] += 1
            return pack({"error": f"{type(e).__name__}: {e}"})

    # ---- the loop ---------------------------------------------------------------------------
    def serve_forever(self, ready: threading.Event | None = None) -> None:
        ctx = zmq.Context.instance()
        socket = ctx.socket(zmq.ROUTER)
        socket.setsockopt(zmq.LINGER, 0)
        # Up to 4x the limit a request is read and answered with an error; beyond that libzmq
        # drops the connection before buffering it, so no message can exhaust memory.
        socket.setsockopt(zmq.MAXMSGSIZE, self.max_message_bytes * 4)
        socket.bind(self.address)
        if ready is not None:
            ready.set()
        poller = zmq.Poller()
        poller.register(socket, zmq.POLLIN)
        try:
            while not self._stop.is_set():
                if not poller.poll(100):
                    continue
                pending, deadline = [], time.monotonic() + self.batch_window_s
                while len(pending) < 4 * self.max_batch:
                    try:
                        frames = socket.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        if time.monotonic() >= deadline:
                            break
                        time.sleep(0.0002)
                        continue
                    self.stats["requests"] += 1
                    envelope, message = frames[:-1], frames[-1]
                    try:
                        method, payload = self._parse(message)
                    except Exception as e:
                        self.stats["errors"] += 1
                        socket.send_multipart([*envelope, pack({"error": str(e)})])
                        continue
                    if method == "health":
                        meta = {"status": "ok", **self.policy.metadata()}
                        socket.send_multipart([*envelope, pack({"result": meta})])
                    else:
                        pending.append((envelope, payload))
                for envelope, reply in self._answer(pending):
                    socket.send_multipart([*envelope, reply])
        except Exception:  # the loop itself must not die silently
            traceback.print_exc()
            raise
        finally:
            socket.close()

    def start(self) -> threading.Thread:
        """Serve in a background thread; returns once the socket is bound."""
        ready = threading.Event()
        thread = threading.Thread(target=self.serve_forever, args=(ready,), daemon=True)
        thread.start()
        if not ready.wait(10):
            raise RuntimeError(f"server did not bind {self.address}")
        return thread

    def stop(self) -> None:
        self._stop.set()
