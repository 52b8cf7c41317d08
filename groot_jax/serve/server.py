"""Policy server: ZeroMQ ROUTER, msgpack numpy messages, explicit batching, survives bad input.

Protocol: a request is `{"method": "health" | "get_action", "payload": ...}`; a reply is
`{"result": ...}` or `{"error": "<what was wrong>"}`. A `get_action` payload is

    {"observation": {...}, "batch": False, "seed": None}     (batch and seed optional)

or, the older flat form, the observation dict itself (= one observation, no seed). One
observation has no batch axis: video uint8 [T, H, W, 3], state [T, d], the task a str. With
`"batch": True` every array has a leading axis B and the task is a list of B str; the reply then
has a leading axis B too. `health` returns the policy's metadata, including the observation spec
(`groot_jax.eval.observation_spec`), the token/batch buckets and what is compiled.

Every request is checked against the spec before it is batched; a bad one gets an error naming
the key and the expected dtype/shape and never reaches the model. The checked single
observations of requests that arrive until none has come for `batch_window_s` are run as one
policy call of at most `batch_limit` rows (`choose_batch_limit()`: > 1 only where the policy's
measured call costs show that batching serves more rows per second), and each reply is exactly
its own rows. Each row's
initial noise comes from its own seed (the request's `seed`, row i of a batch using seed + i;
otherwise one drawn from the server's generator, seeded by `seed`), so a seeded request gives
the same chunk however it was batched.
A non-finite action is refused, not sent. `stop()` (SIGTERM/SIGINT in the CLI) answers every
request already received, then closes.
"""
from __future__ import annotations

import dataclasses
import threading
import time
import traceback
from typing import Any, Protocol

import numpy as np
import zmq

from groot_jax.serve.wire import WireError, pack, unpack

SEED_LIMIT = 2**32


class BatchPolicy(Protocol):
    def metadata(self) -> dict[str, Any]: ...

    def validate(self, observation: dict, *, batch: bool,
                 max_batch: int | None = None) -> list[Any]:
        """The checked single observations (ValueError naming the key otherwise)."""

    def act(self, items: list[Any], seeds: list[int]) -> list[dict[str, np.ndarray]]:
        """One action chunk {action.<key>: [H, d]} per checked observation."""


def _request(payload: Any) -> tuple[dict, bool, int | None]:
    """(observation, batch, seed) of a get_action payload."""
    if not isinstance(payload, dict) or not payload:
        raise WireError("get_action needs a non-empty observation dict")
    if "observation" not in payload:  # the flat form: one observation
        payload = {"observation": payload}
    extra = sorted(str(k) for k in payload if k not in ("observation", "batch", "seed"))
    if extra:
        raise WireError(f"unknown get_action fields {extra}; expected observation, batch, seed")
    batch, seed = payload.get("batch", False), payload.get("seed")
    if not isinstance(batch, bool):
        raise WireError(f"batch: expected a bool, got {type(batch).__name__}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)
                             or not 0 <= seed < SEED_LIMIT):
        raise WireError(f"seed: expected an int in [0, 2**32), got {seed!r}")
    obs = payload["observation"]
    if not isinstance(obs, dict) or not obs or not all(isinstance(k, str) for k in obs):
        raise WireError("observation: expected a non-empty dict with string keys")
    return obs, batch, seed


BATCH_GAIN = 1.25  # batch only where it serves at least this many times the rows per second


def choose_batch_limit(costs: dict[int, float], max_batch: int) -> int:
    """The most rows the server gathers into one call, from measured seconds per call by batch
    size: the size of highest throughput (rows per second), if it beats one row per call by
    BATCH_GAIN, else 1. Where a call's cost grows with its rows (a CPU), gathering only adds
    waiting, so the tail latency would suffer; where it is mostly fixed (an accelerator),
    batching amortises it. Without measurements, `max_batch`."""
    sizes = {b: c for b, c in costs.items() if b <= max_batch and c > 0}
    if not sizes or 1 not in sizes:
        return max_batch
    best = max(sizes, key=lambda b: (b / sizes[b], -b))
    return best if best / sizes[best] >= BATCH_GAIN / sizes[1] else 1


@dataclasses.dataclass
class _Pending:
    envelope: list[bytes]
    items: list[Any]  # the checked single observations
    seeds: list[int]  # one per item
    batch: bool


class PolicyServer:
    def __init__(self, policy: BatchPolicy, address: str = "tcp://127.0.0.1:5555", *,
                 max_message_bytes: int = 64 << 20, max_batch: int | None = None,
                 batch_window_s: float = 0.002, seed: int = 0, drain_timeout_s: float = 10.0,
                 batch_limit: int | None = None):
        """`batch_limit`: the most rows gathered into one call; default chosen from the
        policy's measured call costs (`choose_batch_limit`)."""
        limit = policy.metadata().get("max_batch")
        max_batch = max_batch or limit or 16  # default: the policy's largest batch bucket
        if limit is not None and max_batch > limit:
            raise ValueError(f"max_batch {max_batch} exceeds the policy's largest batch bucket "
                             f"{limit}")
        self.policy, self.address = policy, address
        self.max_message_bytes, self.max_batch = max_message_bytes, max_batch
        costs = policy.call_costs() if hasattr(policy, "call_costs") else {}
        self.batch_limit = min(batch_limit or choose_batch_limit(costs, max_batch), max_batch)
        self.batch_window_s, self.drain_timeout_s = batch_window_s, drain_timeout_s
        self.seed, self._rng = seed, np.random.default_rng(seed)
        self._stop = threading.Event()
        self._socket = None
        self.stats = {"requests": 0, "replies": 0, "errors": 0, "batches": 0,
                      "largest_batch": 0, "replies_after_stop": 0}
        self._replies_at_stop = None

    # ---- request handling -------------------------------------------------------------------
    def _parse(self, envelope: list[bytes], message: bytes) -> _Pending | None:
        """A checked get_action request, or None for health (answered here)."""
        if len(message) > self.max_message_bytes:
            raise WireError(f"message of {len(message)} bytes exceeds the server's limit of "
                            f"{self.max_message_bytes}")
        request = unpack(message)
        if not isinstance(request, dict) or request.get("method") not in ("health", "get_action"):
            raise WireError("a request is {'method': 'health'|'get_action', 'payload': ...}")
        if request["method"] == "health":
            self._send(envelope, pack({"result": self.health()}))
            return None
        obs, batch, seed = _request(request.get("payload"))
        items = self.policy.validate(obs, batch=batch, max_batch=self.max_batch)
        if seed is None:
            seeds = [int(s) for s in self._rng.integers(0, SEED_LIMIT, len(items))]
        else:
            seeds = [(seed + i) % SEED_LIMIT for i in range(len(items))]
        return _Pending(envelope, items, seeds, batch)

    def health(self) -> dict:
        return {"status": "ok", **self.policy.metadata(),
                "server": {"max_batch": self.max_batch, "batch_limit": self.batch_limit,
                           "batch_window_s": self.batch_window_s,
                           "seed": self.seed, "max_message_bytes": self.max_message_bytes}}

    def _reply(self, request: _Pending, results: list[dict]) -> bytes:
        for row in results:
            for k, v in row.items():
                if not np.isfinite(v).all():
                    self.stats["errors"] += 1
                    return pack({"error": f"the policy produced a non-finite {k}; not sent"})
        if request.batch:
            return pack({"result": {k: np.stack([r[k] for r in results]) for k in results[0]}})
        return pack({"result": results[0]})

    def _run(self, requests: list[_Pending]) -> list[tuple[list[bytes], bytes]]:
        """One policy call for the rows of several requests; isolates a failing request."""
        items = [it for r in requests for it in r.items]
        try:
            results = self.policy.act(items, [s for r in requests for s in r.seeds])
        except Exception as e:
            if len(requests) > 1:  # retry alone so one bad request cannot fail its neighbours
                return [reply for r in requests for reply in self._run([r])]
            self.stats["errors"] += 1
            return [(requests[0].envelope, pack({"error": f"{type(e).__name__}: {e}"}))]
        self.stats["batches"] += 1
        self.stats["largest_batch"] = max(self.stats["largest_batch"], len(items))
        replies, start = [], 0
        for r in requests:
            replies.append((r.envelope, self._reply(r, results[start:start + len(r.items)])))
            start += len(r.items)
        return replies

    def _answer(self, pending: list[_Pending]) -> list[tuple[list[bytes], bytes]]:
        """Requests packed in arrival order into calls of at most batch_limit rows (a declared
        batch larger than that runs as one call of its own)."""
        replies, call, rows = [], [], 0
        for r in pending:
            if call and rows + len(r.items) > self.batch_limit:
                replies += self._run(call)
                call, rows = [], 0
            call.append(r)
            rows += len(r.items)
        return replies + (self._run(call) if call else [])

    # ---- the loop ---------------------------------------------------------------------------
    def _send(self, envelope: list[bytes], reply: bytes) -> None:
        self._socket.send_multipart([*envelope, reply])
        self.stats["replies"] += 1
        if self._replies_at_stop is not None:
            self.stats["replies_after_stop"] = self.stats["replies"] - self._replies_at_stop

    def bind(self) -> None:
        """Open the socket (a clear OSError if the address is taken)."""
        if self._socket is not None:
            return
        socket = zmq.Context.instance().socket(zmq.ROUTER)
        socket.setsockopt(zmq.LINGER, 0)
        # Up to 4x the limit a request is read and answered with an error; beyond that libzmq
        # drops the connection before buffering it, so no message can exhaust memory.
        socket.setsockopt(zmq.MAXMSGSIZE, self.max_message_bytes * 4)
        try:
            socket.bind(self.address)
        except zmq.ZMQError as e:
            socket.close()
            raise OSError(f"cannot listen on {self.address}: {e}") from None
        self._socket = socket

    def _collect(self) -> list[_Pending]:
        """Checked requests (health answered on the way) until none has arrived for
        `batch_window_s`, or batch_limit rows, or 4 windows in all. The window restarts after each
        request because checking one takes time: a wave of clients lands in one call."""
        pending, rows, reads = [], 0, 0
        start = last = time.monotonic()
        while rows < self.batch_limit and reads < 4 * self.max_batch:
            try:
                frames = self._socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                now = time.monotonic()
                if now - last >= self.batch_window_s or now - start >= 4 * self.batch_window_s:
                    break
                time.sleep(0.0002)
                continue
            reads += 1  # bounded, so a stream of bad requests cannot starve the batch
            self.stats["requests"] += 1
            envelope, message = frames[:-1], frames[-1]
            try:
                request = self._parse(envelope, message)
            except Exception as e:
                self.stats["errors"] += 1
                text = str(e) if isinstance(e, ValueError) else f"{type(e).__name__}: {e}"
                self._send(envelope, pack({"error": text}))
                request = None
            if request is not None:
                pending.append(request)
                rows += len(request.items)
            last = time.monotonic()
        return pending

    def serve_forever(self, ready: threading.Event | None = None) -> None:
        self.bind()
        if ready is not None:
            ready.set()
        poller = zmq.Poller()
        poller.register(self._socket, zmq.POLLIN)
        drain_until = None
        try:
            while True:
                if self._stop.is_set() and drain_until is None:
                    drain_until = time.monotonic() + self.drain_timeout_s
                if not poller.poll(100 if drain_until is None else 50):
                    if drain_until is not None:
                        break  # stopping, and nothing more has arrived: drained
                    continue
                if drain_until is not None and time.monotonic() > drain_until:
                    break
                for envelope, reply in self._answer(self._collect()):
                    self._send(envelope, reply)
        except Exception:  # the loop itself must not die silently
            traceback.print_exc()
            raise
        finally:
            self._socket.close(linger=2000)  # let the last replies leave before closing
            self._socket = None

    def start(self) -> threading.Thread:
        """Serve in a background thread; returns once the socket is bound."""
        self.bind()
        thread = threading.Thread(target=self.serve_forever, daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        """Answer the requests already received, then close (serve_forever returns)."""
        if self._replies_at_stop is None:
            self._replies_at_stop = self.stats["replies"]
        self._stop.set()
