"""End-to-end throughput of the served policy at robot-server batch sizes: groot-jax vs lerobot.

    flock /tmp/groot_heavy.lock .venv/bin/python experiments/benchmarks/throughput.py \
        [--preset n1_5_3b|tiny] [--sizes 1 4 16] [--rounds 3] [--repeats 2] [--threads 2] \
        [--with-stacked] [--strict] [--json F]

What a user measures: B raw observations (uint8 256x256 camera frames, a raw 5+1-dim so100 state,
a text instruction) in, un-normalised action chunks [B, 16, d] out, 4 Euler steps, fp32 CPU,
random weights (no download: the model directory and a locally trained tokenizer are written
once under CACHE).
  ours      `groot_jax.eval.policy.Policy.get_action(obs, batch=True)`: the observation check,
            centre crop + resize to 224, state normalisation, Eagle prompt + tokenization,
            left-padding to the token bucket, the jit-compiled sampler on the inference layout
            (`GR00TFunctions.inference_params`), un-normalisation; and the same through the
            ZeroMQ server (`PolicyServer` + `PolicyClient`, one request of B rows, msgpack
            encode / decode both ways, in one process over loopback TCP).
  stacked   (with --with-stacked) the same Policy on the stacked training layout.
  reference lerobot 0.5.1's `GR00TN15.get_action` (the call `GrootPolicy.predict_action_chunk`
            makes) wrapped in its pre/post-processing steps. lerobot's processor pipeline cannot
            run offline here: the Eagle processor's files come from the hub, its image processor
            needs torchvision (not in .venv-ref) and `lerobot.processor` needs pandas. So the
            steps of `GrootPackInputsStep`, `GrootEagleEncodeStep`, the Eagle processor and
            `GrootActionUnpackUnnormalizeStep` are written out with the ops they use: state
            min-max normalisation to [-1, 1] and padding, PIL frames, the chat template with
            `str([task])`, the <IMG_CONTEXT> expansion, tokenization with left padding through
            the same tokenizer, a bicubic antialiased resize to 224 (`F.interpolate`, what
            torchvision's tensor resize calls), rescale and normalise, then slicing and
            min-max un-normalisation of the actions.
The tokenizer is a small BPE (groot_jax.data.prompt.train_tiny_tokenizer) with the Eagle special
tokens; both models take its <IMG_CONTEXT> id as `image_token_index` (otherwise the n1_5_3b
architecture, vocabulary 151680), which changes no cost. Its text tokens differ from Qwen3's, so
the prompt lengths are printed: ours pads to its token bucket (a multiple of 64), lerobot to the
longest prompt of the batch.

Sides run interleaved, one fresh process per side per round, pinned by harness.py. Per batch
size: ms per call (median of --repeats after one warm-up, which compiles for groot-jax) and rows
per second; ratio ours / reference (< 1 = faster).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "experiments" / "benchmarks"))
import harness  # noqa: E402

CACHE = Path("/tmp/groot_jax_bench_throughput")
TASK = "pick up the red cube and place it in the bowl"
FRAME = 256            # camera frames FRAME x FRAME, resized to 224 by the preprocessing
STEPS = 4
ARM, GRIPPER = 5, 1
EMBODIMENT = 31        # new_embodiment (so100 finetunes), both sides
STATE_RANGE = {"single_arm": (-1.0, 1.0), "gripper": (0.0, 1.0)}
ACTION_RANGE = {"single_arm": (-2.0, 2.0), "gripper": (0.0, 1.0)}


def _stats(lo, hi, n):
    return {"min": [lo] * n, "max": [hi] * n, "mean": [0.0] * n, "std": [1.0] * n,
            "q01": [lo] * n, "q99": [hi] * n}


def metadata() -> dict:
    """so100 checkpoint metadata: one 256x256 camera, a 5-dim arm and a gripper, min-max."""
    dims = {"single_arm": ARM, "gripper": GRIPPER}
    key = lambda n: {"absolute": True, "rotation_type": None, "shape": [n],  # noqa: E731
                     "continuous": True}
    return {"new_embodiment": {
        "statistics": {"state": {k: _stats(*STATE_RANGE[k], n) for k, n in dims.items()},
                       "action": {k: _stats(*ACTION_RANGE[k], n) for k, n in dims.items()}},
        "modalities": {"video": {"webcam": {"resolution": [FRAME, FRAME], "channels": 3,
                                            "fps": 30}},
                       "state": {k: key(n) for k, n in dims.items()},
                       "action": {k: key(n) for k, n in dims.items()}},
        "embodiment_tag": "new_embodiment"}}


def observations(batch: int, seed: int = 0) -> dict:
    """B raw so100 observations (one frame each, T = 1)."""
    rng = np.random.default_rng(seed)
    return {"video.webcam": rng.integers(0, 256, (batch, 1, FRAME, FRAME, 3), dtype=np.uint8),
            "state.single_arm": rng.uniform(-1, 1, (batch, 1, ARM)).astype(np.float32),
            "state.gripper": rng.uniform(0, 1, (batch, 1, GRIPPER)).astype(np.float32),
            "annotation.human.task_description": [TASK] * batch}


# ---- the model directory and tokenizer (written once, outside any timing) -------------------
def tokenizer_dir() -> Path:
    return CACHE / "tokenizer"


def image_token_id() -> int:
    tokens = json.loads((tokenizer_dir() / "tokenizer.json").read_text())["added_tokens"]
    return next(t["id"] for t in tokens if t["content"] == "<IMG_CONTEXT>")


def model_dir(preset: str) -> Path:
    return CACHE / preset / "model"


def model_config(preset: str):
    from groot_jax.config import GR00TConfig

    cfg = GR00TConfig.n1_5_3b() if preset == "n1_5_3b" else GR00TConfig.tiny()
    return dataclasses.replace(cfg, backbone=dataclasses.replace(
        cfg.backbone, image_token_index=image_token_id()))


def prepare(preset: str) -> None:
    """Tokenizer and model directory under CACHE, unless already there (run in a child so the
    parent never holds the weights)."""
    from groot_jax.convert import checkpoint as ck
    from groot_jax.data.prompt import train_tiny_tokenizer
    from groot_jax.models import groot

    if not (tokenizer_dir() / "tokenizer.json").exists():
        train_tiny_tokenizer(tokenizer_dir(), [TASK])
    out = model_dir(preset)
    if (out / "done").exists():
        return
    cfg = model_config(preset)
    fns, params = (groot.init_host(cfg, seed=0) if preset == "n1_5_3b"
                   else groot.init(cfg, seed=0))
    tmp = out.with_name("model.partial")
    subprocess.run(["rm", "-rf", str(tmp), str(out)], check=True)
    ck.save_model(tmp, cfg, params, metadata())
    ck.store_tokenizer(tmp, tokenizer_dir())
    tmp.rename(out)
    (out / "done").write_text("ok\n")


# ---- ours -------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ours(repeats: int, preset: str, sizes: list[int], layout: str = "inference") -> dict:
    from groot_jax.data.embodiments import so100
    from groot_jax.eval.policy import Policy
    from groot_jax.serve.client import PolicyClient
    from groot_jax.serve.server import PolicyServer

    t0 = time.perf_counter()
    policy = Policy(model_dir(preset), so100(), num_steps=STEPS,
                    batch_buckets=tuple(sorted(set(sizes))))
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    if layout == "inference":
        # What Policy should do after loading (see /tmp notes): one layout, one copy in memory.
        policy.params = policy.fns.inference_params(policy.params, release=True)
    layout_s = time.perf_counter() - t0
    out = {"load_s": load_s, "layout_s": layout_s,
           "tokens": int(policy.prepare(observations(1), batch=True)[0]["input_ids"].shape[1])}
    for b in sizes:
        obs = observations(b)
        out[f"b{b}"] = harness.timed(lambda o=obs: policy.get_action(o, batch=True, seed=0),
                                     repeats)
    address = f"tcp://127.0.0.1:{free_port()}"
    server = PolicyServer(policy, address, batch_limit=max(sizes))
    thread = server.start()
    client = PolicyClient(address, timeout_ms=600_000)
    try:
        for b in sizes:
            obs = observations(b)
            out[f"server_b{b}"] = harness.timed(
                lambda o=obs: client.get_action(o, batch=True, seed=0), repeats)
    finally:
        client.close()
        server.stop()
        thread.join(timeout=60)  # a serving thread still alive at exit aborts the process
    return out


# ---- the reference ----------------------------------------------------------------------------
def lerobot_end_to_end(preset: str):
    """(get_action(obs) -> {action.<key>: [B, 16, d]}, prompt length of one observation):
    lerobot's GR00TN15.get_action inside its pre/post-processing steps (module docstring)."""
    import torch
    import torch.nn.functional as F  # noqa: N812
    from PIL import Image
    from transformers import AutoTokenizer

    sys.path.insert(0, str(ROOT / "tests" / "reference"))
    import lerobot_ref

    lerobot_ref.EAGLE["image_token_index"] = image_token_id()
    model = lerobot_ref.build_gr00t("real" if preset == "n1_5_3b" else "tiny")
    model.action_head.num_inference_timesteps = STEPS
    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir()))
    tok.padding_side = "left"  # as lerobot's _build_eagle_processor sets it
    block = "<img>" + "<IMG_CONTEXT>" * 256 + "</img>"
    lo = torch.tensor([STATE_RANGE["single_arm"][0]] * ARM + [STATE_RANGE["gripper"][0]])
    hi = torch.tensor([STATE_RANGE["single_arm"][1]] * ARM + [STATE_RANGE["gripper"][1]])
    a_lo = torch.tensor([ACTION_RANGE["single_arm"][0]] * ARM + [ACTION_RANGE["gripper"][0]])
    a_hi = torch.tensor([ACTION_RANGE["single_arm"][1]] * ARM + [ACTION_RANGE["gripper"][1]])

    def prompt(task: str) -> str:
        # GrootEagleEncodeStep: one image + str([task]); the processor expands the image.
        conv = [{"role": "user", "content": [{"type": "image"},
                                             {"type": "text", "text": str([task])}]}]
        text = tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)
        return text.replace("<image-1>", "<image 1>" + block)

    def pixels(frames: np.ndarray) -> torch.Tensor:
        # PIL frames, then the Eagle image processor: one 224 tile, bicubic, rescale, normalise.
        images = [torch.from_numpy(np.array(Image.fromarray(f))) for f in frames]
        x = torch.stack(images).permute(0, 3, 1, 2).float()
        x = F.interpolate(x, size=(224, 224), mode="bicubic", antialias=True, align_corners=False)
        return (x / 255.0 - 0.5) / 0.5

    def get_action(obs: dict) -> dict:
        state = torch.from_numpy(np.concatenate([obs["state.single_arm"][:, -1],
                                                 obs["state.gripper"][:, -1]], -1))
        b = state.shape[0]
        state = 2 * (state - lo) / (hi - lo) - 1                       # GrootPackInputsStep
        state = torch.cat([state, torch.zeros(b, 64 - state.shape[1])], 1)[:, None]
        task = obs["annotation.human.task_description"][0]            # lerobot takes lang[0]
        enc = tok([prompt(task)] * b, return_tensors="pt", padding=True)
        inputs = {"eagle_input_ids": enc["input_ids"],
                  "eagle_attention_mask": enc["attention_mask"],
                  "eagle_pixel_values": pixels(obs["video.webcam"][:, -1]),
                  "eagle_image_sizes": torch.tensor([[224, 224]] * b),
                  "state": state, "embodiment_id": torch.full((b,), EMBODIMENT)}
        with torch.no_grad():
            pred = model.get_action(inputs)["action_pred"][..., :ARM + GRIPPER]
        act = (pred + 1) / 2 * (a_hi - a_lo) + a_lo                    # un-normalise
        return {"action.single_arm": act[..., :ARM].numpy(),
                "action.gripper": act[..., ARM:].numpy()}

    return get_action, int(tok(prompt(TASK), return_tensors="pt")["input_ids"].shape[1])


def run_reference(repeats: int, preset: str, sizes: list[int]) -> dict:
    t0 = time.perf_counter()
    get_action, tokens = lerobot_end_to_end(preset)
    out = {"load_s": time.perf_counter() - t0, "tokens": tokens}
    for b in sizes:
        obs = observations(b)
        out[f"b{b}"] = harness.timed(lambda o=obs: get_action(o), repeats)
    return out


# ---- report -----------------------------------------------------------------------------------
def throughput_table(rounds: list[dict], sizes: list[int], names: list[str]) -> None:
    """Median ms per call and rows/s per batch size for each path; ratio to the reference."""
    ref = "reference"
    print(f"\n{'batch':>5s} {'path':22s} {'ms/call':>10s} {'rows/s':>8s} {'/ reference':>12s}")
    for b in sizes:
        base = float(np.median([rd[ref][f"b{b}"] for rd in rounds]))
        for side, key, label in names:
            t = float(np.median([rd[side][key.format(b=b)] for rd in rounds]))
            print(f"{b:5d} {label:22s} {1e3 * t:10.1f} {b / t:8.2f} {t / base:12.2f}")


def main():
    parser = argparse.ArgumentParser()
    harness.add_arguments(parser, rounds=3, repeats=2)
    parser.add_argument("--preset", default="n1_5_3b", choices=["n1_5_3b", "tiny"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--with-stacked", action="store_true",
                        help="also the Policy on the stacked (training) layout, side 'stacked'")
    parser.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prepare:
        prepare(args.preset)
        return
    if args.side:
        harness.child_main(args, {
            "ours": lambda r: run_ours(r, args.preset, args.sizes),
            "stacked": lambda r: run_ours(r, args.preset, args.sizes, "stacked"),
            "reference": lambda r: run_reference(r, args.preset, args.sizes)})
        return
    subprocess.run([sys.executable, __file__, "--prepare", "--preset", args.preset], check=True)
    extra = ["--repeats", str(args.repeats), "--preset", args.preset,
             "--sizes", *map(str, args.sizes)]
    sides, others = harness.sides_with_stacked(__file__, extra, args.with_stacked)
    rounds = harness.interleave(None, extra, args, sides=sides)
    keys = [f"b{b}" for b in args.sizes]
    harness.report(rounds, keys, args, unit="ms", others=others,
                   title=f"{args.preset}: Policy.get_action end to end (ms per call of B rows) vs "
                         f"lerobot end to end, {STEPS} Euler steps, fp32 CPU")
    paths = [("ours", "b{b}", "groot-jax Policy"), ("ours", "server_b{b}", "groot-jax server")]
    if args.with_stacked:
        paths += [("stacked", "b{b}", "Policy, stacked layout"),
                  ("stacked", "server_b{b}", "server, stacked layout")]
    paths.append(("reference", "b{b}", "lerobot end to end"))
    throughput_table(rounds, args.sizes, paths)
    med = lambda side, k: float(np.median([rd[side][k] for rd in rounds]))  # noqa: E731
    print(f"\nprompt tokens: groot-jax {med('ours', 'tokens'):.0f} (its bucket), lerobot "
          f"{med('reference', 'tokens'):.0f}; load s: groot-jax {med('ours', 'load_s'):.1f} "
          f"(+ inference layout {med('ours', 'layout_s'):.1f}), lerobot "
          f"{med('reference', 'load_s'):.1f}")


if __name__ == "__main__":
    main()
