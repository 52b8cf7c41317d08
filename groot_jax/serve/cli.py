"""`groot-jax serve`: a Policy behind the ZeroMQ server."""
from __future__ import annotations


def _serve(args) -> int:
    from groot_jax.data.embodiments import PRESETS
    from groot_jax.eval.policy import Policy
    from groot_jax.serve.server import PolicyServer

    if args.data_config not in PRESETS:
        raise SystemExit(f"unknown data config {args.data_config!r}; known: {sorted(PRESETS)}")
    data_config = PRESETS[args.data_config]()
    if args.embodiment_tag:
        data_config = data_config.replace(embodiment_tag=args.embodiment_tag)
    policy = Policy(args.model, data_config, tokenizer_dir=args.tokenizer,
                    num_steps=args.steps)
    server = PolicyServer(policy, f"tcp://{args.host}:{args.port}",
                          max_batch=args.max_batch)
    print(f"serving {args.model} ({data_config.name}) on tcp://{args.host}:{args.port}")
    server.serve_forever()
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("serve", help="serve a policy over ZeroMQ (msgpack numpy)")
    p.add_argument("--model", required=True, help="groot-jax model dir or GR00T checkpoint dir")
    p.add_argument("--data-config", required=True, help="embodiment data config preset")
    p.add_argument("--embodiment-tag", default=None)
    p.add_argument("--tokenizer", default=None, help="tokenizer dir (default: the model dir)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5555)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--max-batch", type=int, default=16)
    p.set_defaults(func=_serve)
