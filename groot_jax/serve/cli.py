"""`groot-jax serve`: a Policy behind the ZeroMQ server.

`--model` is a training run (its latest checkpoint, or --step), a groot-jax model dir or an
Isaac-GR00T dir; the data config, statistics and tokenizer stored with it are used unless
--data-config / --embodiment-tag / --tokenizer override them, so `get_action` answers in the
widths and units of the dataset the model was trained on. Cheap checks run first (port free,
model path a model, data config known, tokenizer present), then the model loads and every
(token bucket, batch bucket) compiles before "serving" is printed. SIGTERM or Ctrl-C never
interrupts a compile or a batch: the server answers every request it has received, then exits
0; a second signal quits at once.
"""
from __future__ import annotations

import os
import signal
import socket
import threading


def _check_port(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as libzmq binds
        try:
            s.bind(("" if host in ("*", "0.0.0.0") else host, port))
        except OSError as e:
            raise SystemExit(f"cannot listen on {host}:{port} ({e.strerror}); is another server "
                             "running there? Choose another --port") from None


def _ints(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(sorted(int(x) for x in text.split(",")))
    except ValueError:
        raise SystemExit(f"expected comma-separated integers, got {text!r}") from None


def _serve(args) -> int:
    from pathlib import Path

    from groot_jax.convert.checkpoint import CheckpointFileError, check_tokenizer
    from groot_jax.convert.processor_files import PROCESSOR_DIR
    from groot_jax.convert.run_dir import is_run_dir
    from groot_jax.eval.cli import check_model_path, data_config_override

    _check_port(args.host, args.port)
    check_model_path(args.model)
    data_config = data_config_override(args.data_config)
    try:  # a run keeps its tokenizer in processor/, a model dir at its top level
        check_tokenizer(args.tokenizer or (Path(args.model) / PROCESSOR_DIR
                                           if is_run_dir(args.model) else args.model))
    except CheckpointFileError as e:
        raise SystemExit(str(e)) from None

    # Signals only set a flag: raising KeyboardInterrupt inside a compile or a batch is what
    # crashed the process before. A second signal is an impatient user: exit now.
    stopping, servers = threading.Event(), []

    def on_signal(signum, frame):
        if stopping.is_set():
            os._exit(130)
        stopping.set()
        print(f"{signal.Signals(signum).name}: stopping after the current step, once the "
              "requests already received are answered (again to quit now)", flush=True)
        for server in servers:
            server.stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    from groot_jax.eval.policy import BATCH_BUCKETS, Policy
    from groot_jax.serve.server import PolicyServer

    try:
        policy = Policy(args.model, data_config, embodiment=args.embodiment_tag,
                        tokenizer_dir=args.tokenizer, step=args.step,
                        num_steps=args.steps, seed=args.seed, max_seq_len=args.max_seq_len,
                        token_buckets=_ints(args.token_buckets),
                        batch_buckets=_ints(args.batch_buckets) or BATCH_BUCKETS,
                        max_prompt_chars=args.max_prompt_chars,
                        default_instruction=args.default_instruction)
    except ValueError as e:  # checkpoint, metadata or bucket problems: one line, no traceback
        raise SystemExit(str(e)) from None
    if not args.no_warmup:
        def before(length, size):
            if not stopping.is_set():
                print(f"compiling prompt length {length}, batch {size}", flush=True)
            return not stopping.is_set()

        policy.warmup(before=before)
    if stopping.is_set():
        print("stopped before serving", flush=True)
        return 0
    try:
        server = PolicyServer(policy, f"tcp://{args.host}:{args.port}",
                              max_batch=args.max_batch, seed=args.seed)
        servers.append(server)
        server.bind()
    except (OSError, ValueError) as e:
        raise SystemExit(str(e)) from None
    meta = policy.metadata()
    print(f"serving {args.model} ({policy.data_config.name}) on tcp://{args.host}:{args.port}; token "
          f"buckets {meta['token_buckets']}, batch buckets {meta['batch_buckets']}, gathering "
          f"up to {server.batch_limit} request rows per call", flush=True)
    if stopping.is_set():
        server.stop()
    server.serve_forever()
    print(f"stopped: {server.stats['replies_after_stop']} replies sent after the signal, "
          f"{server.stats['replies']} in all", flush=True)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("serve", help="serve a policy over ZeroMQ (msgpack numpy)")
    p.add_argument("--model", required=True,
                   help="training run dir, groot-jax model dir or GR00T checkpoint dir")
    p.add_argument("--step", type=int, default=None, help="a training run's checkpoint step "
                   "(default: the latest)")
    p.add_argument("--data-config", default=None,
                   help="data config preset (default: the one stored with the model)")
    p.add_argument("--embodiment-tag", default=None,
                   help="which stored embodiment (needed when the model has several)")
    p.add_argument("--tokenizer", default=None, metavar="DIR",
                   help="tokenizer files (default: the ones stored with the model)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5555)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--seed", type=int, default=0,
                   help="seeds the noise of requests that carry no seed")
    p.add_argument("--max-batch", type=int, default=None,
                   help="most observations per policy call (default: the largest batch bucket)")
    p.add_argument("--batch-buckets", default=None, help="e.g. 1,2,4,8,16 (the default)")
    p.add_argument("--token-buckets", default=None,
                   help="padded prompt lengths, e.g. 320,384 (default: multiples of 64 from "
                        "the shortest prompt to --max-seq-len)")
    p.add_argument("--max-seq-len", type=int, default=None,
                   help="the largest token bucket (default: one step of 64 above the first)")
    p.add_argument("--max-prompt-chars", type=int, default=512)
    p.add_argument("--default-instruction", default=None,
                   help="task text for observations without one (default: refuse them)")
    p.add_argument("--no-warmup", action="store_true",
                   help="compile each bucket on first use instead of at start-up")
    p.set_defaults(func=_serve)
