"""The real tiny-preset Policy behind the server (127.0.0.1 only, bounded loops): every client
gets the chunk of its own observation, malformed input is refused naming the key, buckets stop
recompilation, seeds reproduce chunks, and batching does not worsen the tail latency."""
import contextlib
import threading
import time

import msgpack
import numpy as np
import pytest

from groot_jax.serve.client import PolicyClient, PolicyError
from groot_jax.serve.server import PolicyServer, choose_batch_limit
from groot_jax.serve.wire import pack
from tests.serve.conftest import BATCH_BUCKETS, TASKS, TOKEN_BUCKET, free_port, observation

ATOL = 1e-5  # batch size changes float rounding only (the action range here is 4)
LANG = "annotation.human.task_description"


@contextlib.contextmanager
def serving(policy, **kw):
    server = PolicyServer(policy, f"tcp://127.0.0.1:{free_port()}", **kw)
    thread = server.start()
    try:
        yield server
        assert thread.is_alive(), "the server loop died"
    finally:
        server.stop()
        thread.join(10)


def _close(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        a[k].shape == b[k].shape and np.allclose(a[k], b[k], atol=ATOL, rtol=0) for k in a)


def _assert_chunk(out: dict, batch: tuple = ()):
    assert out["action.single_arm"].shape == (*batch, 16, 5)
    assert out["action.gripper"].shape == (*batch, 16, 1)


def test_eight_concurrent_clients_each_get_their_own_chunk(tiny_policy):
    rng = np.random.default_rng(0)
    obs = [observation(rng, TASKS[i]) for i in range(8)]
    # batch_limit=8: gather whatever arrives together, whatever the measured costs say, so the
    # split of batched replies is what is tested here.
    with serving(tiny_policy, max_batch=8, batch_limit=8, batch_window_s=0.005) as srv:
        client = PolicyClient(srv.address, timeout_ms=60_000)
        singles = [client.get_action(o, seed=100 + i) for i, o in enumerate(obs)]  # one at a time
        assert srv.stats["largest_batch"] == 1
        for i, s in enumerate(singles):
            _assert_chunk(s)
            direct = tiny_policy.get_action(obs[i], seed=100 + i)  # the same, in process
            assert all(np.array_equal(s[k], direct[k]) for k in s)
        assert not _close(singles[0], singles[1])  # distinct observations, distinct chunks

        replies, errors, barrier = [[] for _ in obs], [], threading.Barrier(8)

        def run(i):
            c = PolicyClient(srv.address, timeout_ms=60_000)
            try:
                for _ in range(3):
                    barrier.wait(30)
                    replies[i].append(c.get_action(obs[i], seed=100 + i))
            except Exception as e:  # noqa: BLE001 - asserted below
                errors.append(e)
            finally:
                c.close()

        threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors[:3]
        assert srv.stats["largest_batch"] > 1, "the concurrent requests were never batched"
        for i in range(8):
            for out in replies[i]:
                _assert_chunk(out)
                assert _close(out, singles[i]), f"client {i} got another observation's chunk"
        print(f"\n8 clients x 3 rounds: {sum(map(len, replies))} replies, 0 wrong, largest batch "
              f"{srv.stats['largest_batch']}")

        # A declared batch: row i is seeded with seed + i, so it equals single i.
        batch = {k: [o[k] for o in obs] if k == LANG else np.stack([o[k] for o in obs])
                 for k in obs[0]}
        out = client.get_action(batch, batch=True, seed=100)
        _assert_chunk(out, (8,))
        for i in range(8):
            assert _close({k: v[i] for k, v in out.items()}, singles[i])
        client.close()


def _malformed(good: dict) -> dict[str, tuple[bytes, str]]:
    """kind -> (raw request, what the error must say)."""

    def req(obs, **fields):
        return pack({"method": "get_action", "payload": {"observation": obs, **fields}})

    def with_(**kv):
        return req({**good, **{k.replace("__", "."): v for k, v in kv.items()}})

    arm = good["state.single_arm"]
    nan, inf = arm.copy(), good["state.gripper"].copy()
    nan[0, 2], inf[0, 0] = np.nan, np.inf
    huge_shape = msgpack.packb({"method": "get_action", "payload": {"observation": {
        "state.single_arm": {"__nd__": True, "dtype": "<f4", "shape": [2**40, 2**40],
                             "data": b""}}}})
    batch2 = {k: [v, v] if k == LANG else np.stack([v, v]) for k, v in good.items()}
    batch9 = {k: [v] * 9 if k == LANG else np.stack([v] * 9) for k, v in good.items()}
    video = "video.webcam: expected uint8 [1, H, W, 3], got"
    return {
        "nan state": (with_(state__single_arm=nan),
                      "state.single_arm: non-finite value nan at index [0, 2]"),
        "inf state": (with_(state__gripper=inf), "state.gripper: non-finite value inf"),
        "float64 overflowing float32": (with_(state__gripper=np.full((1, 1), 1e300)),
                                        "state.gripper: non-finite value inf"),
        "complex state": (with_(state__single_arm=arm.astype(np.complex64)),
                          "state.single_arm: expected float32 [1, 5] (any float dtype), got "
                          "complex64 [1, 5]"),
        "bool state": (with_(state__single_arm=arm > 0), "got bool [1, 5]"),
        "int state": (with_(state__single_arm=arm.astype(np.int32)), "got int32 [1, 5]"),
        "state as list": (with_(state__single_arm=arm.tolist()),
                          "state.single_arm: expected float32 [1, 5] (any float dtype), got list"),
        "int as task": (with_(**{LANG.replace(".", "__"): 7}),
                        f"{LANG}: expected a str (or a list of 1 str), got int"),
        "two tasks for one observation": (with_(**{LANG.replace(".", "__"): ["a", "b"]}),
                                          "got list"),
        "empty task, no default": (with_(**{LANG.replace(".", "__"): ""}),
                                   "no default_instruction"),
        "missing task key": (req({k: v for k, v in good.items() if k != LANG}),
                             f"observation lacks ['{LANG}']"),
        "extra key": (with_(state__extra=arm), "unexpected keys ['state.extra']"),
        "T=2 frames": (with_(video__webcam=np.repeat(good["video.webcam"], 2, 0)),
                       f"{video} uint8 [2, 48, 64, 3]"),
        "T=0 frames": (with_(state__single_arm=arm[:0]), "got float32 [0, 5]"),
        "0x0 image": (with_(video__webcam=np.zeros((1, 0, 0, 3), np.uint8)),
                      f"{video} uint8 [1, 0, 0, 3]; image sides must be within 8..4096"),
        "1x1 image": (with_(video__webcam=np.zeros((1, 1, 1, 3), np.uint8)),
                      f"{video} uint8 [1, 1, 1, 3]"),
        "float image": (with_(video__webcam=good["video.webcam"].astype(np.float32)),
                        f"{video} float32 [1, 48, 64, 3]"),
        "declared 2^40 x 2^40 shape": (huge_shape, f"needs {2**80 * 4} bytes, got 0"),
        "100k-character prompt": (with_(**{LANG.replace(".", "__"): "a" * 100_000}),
                                  "instruction of 100000 characters exceeds max_chars 512"),
        "prompt over the largest token bucket": (
            with_(**{LANG.replace(".", "__"): "\u00e9" * 300}),
            f"more than the largest token bucket {TOKEN_BUCKET}"),
        "batch axis without batch=True": (
            req({k: [v] if k == LANG else v[None] for k, v in good.items()}),
            "a batch is sent as {'observation': ..., 'batch': True}"),
        "batch=True without batch axis": (req(good, batch=True),
                                          "a declared batch needs a leading batch axis"),
        "batch texts of the wrong length": (req({**batch2, LANG: ["a"]}, batch=True),
                                            f"{LANG}: expected a list of 2 str"),
        "batch over max_batch": (req(batch9, batch=True),
                                 "batch of 9 exceeds this server's max_batch 8"),
        "seed out of range": (req(good, seed=2**32), "seed: expected an int in [0, 2**32)"),
        "seed as float": (req(good, seed=1.5), "seed: expected an int"),
    }


def test_malformed_requests_are_refused_naming_the_key(tiny_policy):
    good = observation(np.random.default_rng(1), TASKS[0])
    cases = _malformed(good)
    with serving(tiny_policy, max_batch=8) as srv:
        client = PolicyClient(srv.address, timeout_ms=60_000)
        for kind, (message, expected) in cases.items():
            try:
                client.call_raw(message)
            except PolicyError as e:
                assert expected in str(e), (kind, str(e))
            else:
                pytest.fail(f"{kind}: accepted")
        assert srv.stats["errors"] == len(cases) and srv.stats["batches"] == 0  # model untouched
        out = client.get_action(good, seed=1)  # still serving, still right
        assert _close(out, tiny_policy.get_action(good, seed=1))
        client.close()
    print(f"\nmalformed kinds sent: {len(cases)}, refused naming the key: {len(cases)}, "
          "crashes: 0")


def test_default_instruction_is_explicit_and_served(tiny_policy):
    good = observation(np.random.default_rng(2), "pick up the red cube")
    bare = {k: v for k, v in good.items() if k != LANG}
    tiny_policy.default_instruction = "pick up the red cube"
    try:
        with serving(tiny_policy, max_batch=8) as srv:
            client = PolicyClient(srv.address, timeout_ms=60_000)
            assert client.health()["default_instruction"] == "pick up the red cube"
            assert _close(client.get_action(bare, seed=4), client.get_action(good, seed=4))
            client.close()
    finally:
        tiny_policy.default_instruction = None


def test_seeds_reproduce_chunks(tiny_policy):
    obs = observation(np.random.default_rng(3), TASKS[1])
    with serving(tiny_policy, max_batch=8, seed=7) as a, serving(tiny_policy, seed=7) as b:
        ca, cb = PolicyClient(a.address), PolicyClient(b.address)
        s1, s2, s3 = (ca.get_action(obs, seed=s) for s in (5, 5, 6))
        assert all(np.array_equal(s1[k], s2[k]) for k in s1) and not _close(s1, s3)
        assert _close(s1, tiny_policy.get_action(obs, seed=5))
        # No seed: fresh noise per request, drawn from the server's default seed.
        u1, u2, v1 = ca.get_action(obs), ca.get_action(obs), cb.get_action(obs)
        assert not _close(u1, u2)
        assert all(np.array_equal(u1[k], v1[k]) for k in u1)  # same server seed, same sequence
        assert ca.health()["server"]["seed"] == 7
        ca.close()
        cb.close()


class CallLatency:
    """The policy plus a fixed delay per call: an accelerator, where a small batch costs about
    what one row does, so a call's time is mostly fixed and batching amortises it. On this
    2-core CPU the tiny model costs about the same per row at any batch size (printed below), so
    there batching can only regroup the queue, not shorten it."""

    def __init__(self, policy, delay_s: float):
        self.policy, self.delay_s = policy, delay_s

    def metadata(self):
        return self.policy.metadata()

    def validate(self, observation, **kw):
        return self.policy.validate(observation, **kw)

    def act(self, items, seeds):
        time.sleep(self.delay_s)
        return self.policy.act(items, seeds)

    def call_costs(self):
        return {b: c + self.delay_s for b, c in self.policy.call_costs().items()}


def test_choose_batch_limit_follows_measured_call_costs():
    assert choose_batch_limit({}, 8) == 8  # nothing measured: as configured
    assert choose_batch_limit({1: 0.01, 2: 0.02, 4: 0.04, 8: 0.08}, 8) == 1  # cost per row: no gain
    assert choose_batch_limit({1: 0.01, 8: 0.09}, 8) == 1  # a small gain is not worth the wait
    assert choose_batch_limit({1: 0.05, 2: 0.05, 4: 0.06, 8: 0.07, 16: 0.20}, 8) == 8  # fixed cost
    assert choose_batch_limit({1: 0.05, 2: 0.05, 4: 0.06, 8: 0.07, 16: 0.08}, 8) == 8  # <= max_batch
    assert choose_batch_limit({1: 0.05, 2: 0.055, 4: 0.2}, 8) == 2


def _load(policy, max_batch: int, jobs: list[list[tuple[dict, int]]], expected,
          batch_limit: int | None = None) -> dict:
    """Each client sends its (observation, seed) jobs in turn; latencies and wrong replies."""
    latencies, wrong, errors = [], [0], []
    with serving(policy, max_batch=max_batch, batch_limit=batch_limit,
                 batch_window_s=0.005) as srv:
        limit = srv.batch_limit
        def run(i):
            c = PolicyClient(srv.address, timeout_ms=60_000)
            try:
                for j, (obs, seed) in enumerate(jobs[i]):
                    t0 = time.perf_counter()
                    out = c.get_action(obs, seed=seed)
                    latencies.append(time.perf_counter() - t0)
                    wrong[0] += not _close(out, expected[i][j % len(expected[i])])
            except Exception as e:  # noqa: BLE001 - asserted below
                errors.append(e)
            finally:
                c.close()

        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        stats = dict(srv.stats)
    assert not errors, errors[:3]
    ms = 1000 * np.asarray(latencies)
    return {"requests": len(ms), "p50_ms": round(float(np.percentile(ms, 50)), 1),
            "p99_ms": round(float(np.percentile(ms, 99)), 1), "wrong": wrong[0],
            "largest_batch": stats["largest_batch"], "errors": stats["errors"],
            "batch_limit": limit}


def test_buckets_stop_recompiles_and_batching_keeps_p99(tiny_policy):
    rng = np.random.default_rng(4)
    # 8 clients x 4 observations with prompts of 8 different lengths, each with its own seed.
    pool = [[(observation(rng, TASKS[(i + j) % 8]), 1000 + 10 * i + j) for j in range(4)]
            for i in range(8)]
    expected = [[tiny_policy.get_action(o, seed=s) for o, s in row] for row in pool]
    jobs = [[row[j % 4] for j in range(15)] for row in pool]
    compiled, cache = set(tiny_policy.compiled), tiny_policy._sample._cache_size()
    assert compiled == {(TOKEN_BUCKET, b) for b in BATCH_BUCKETS} and cache == len(compiled)
    items = [tiny_policy.validate(o, batch=False)[0] for o, _ in pool[0]] * 2
    for size in (1, 8):  # what one call costs here (best of 3: the machine is shared)
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            tiny_policy.act(items[:size], list(range(size)))
            times.append(1000 * (time.perf_counter() - t0))
        print(f"\none call, batch {size}: {min(times):.1f} ms", end="")

    costs = tiny_policy.call_costs()
    print(f"\nmeasured at warm-up (s per call by batch size): {costs}", end="")
    delayed = CallLatency(tiny_policy, 0.05)
    runs: dict[tuple[str, str], list[dict]] = {}
    # Interleaved rounds (off, on, forced, off, on, forced, ...): the machine is shared, so the
    # CPU comparison is of medians over rounds run side by side.
    plan = [("cpu", "off", tiny_policy, 1, None), ("cpu", "on", tiny_policy, 8, None),
            ("cpu", "forced", tiny_policy, 8, 8)] * 3 + [
        ("+50 ms/call", "off", delayed, 1, None), ("+50 ms/call", "on", delayed, 8, None)]
    for regime, mode, policy, max_batch, limit in plan:
        r = _load(policy, max_batch, jobs, expected, batch_limit=limit)
        runs.setdefault((regime, mode), []).append(r)
        print(f"\n{regime:12s} batching {mode:6s} {r}", end="")
        assert r["wrong"] == r["errors"] == 0
        if mode == "off":
            assert r["largest_batch"] == 1
    # The server chose its gathering from the measured costs: on this CPU a call of 8 rows costs
    # about 8 calls of 1, so it serves one at a time; with a fixed cost per call it batches.
    assert runs["cpu", "on"][0]["batch_limit"] == choose_batch_limit(costs, 8)
    assert runs["+50 ms/call", "on"][0]["batch_limit"] == 8
    assert runs["+50 ms/call", "on"][0]["largest_batch"] > 1
    assert runs["cpu", "forced"][0]["largest_batch"] > 1
    print()
    assert tiny_policy._sample._cache_size() == cache, "a request shape compiled again"
    assert tiny_policy.compiled == compiled
    with serving(tiny_policy) as srv:
        health = PolicyClient(srv.address).health()
    assert health["token_buckets"] == [TOKEN_BUCKET] and health["batch_buckets"] == [1, 2, 4, 8]
    assert sorted(map(tuple, health["compiled"])) == sorted(compiled)
    # Batching on must not lengthen the tail. Where a call has a fixed cost it shortens it; on
    # the CPU the chosen schedule is the unbatched one, so the medians over the interleaved
    # rounds agree up to the machine's noise (10% + 2 ms allowed; forced batching is printed to
    # show what it would cost).
    p99 = {k: float(np.median([r["p99_ms"] for r in v])) for k, v in runs.items()}
    print(f"median p99 (ms): {p99}")
    assert p99["cpu", "on"] <= 1.1 * p99["cpu", "off"] + 2.0, p99
    assert p99["+50 ms/call", "on"] <= p99["+50 ms/call", "off"], p99
