"""Where the N1.5 backbone's time goes: its parts timed separately, groot-jax vs lerobot 0.5.1.

    flock /tmp/groot_heavy.lock .venv/bin/python experiments/benchmarks/backbone_profile.py \
        [--rounds 3] [--repeats 3] [--threads 2] [--strict] [--no-stacked] [--preset tiny]

The Eagle 2.5 backbone alone (`n1_5_3b` sizes, random fp32 weights), batch 1, the inputs of
inference.py (one 224x224 image = 256 image tokens + 40 text tokens). Parts (each jit-compiled on
its own for groot-jax; torch under no_grad):
  vision     SigLIP: patch embedding + 27 encoder layers + post-layernorm        [1, 256, 1152]
  connector  mlp1: Linear(1152 -> 2048) of the image tokens
  merge      token embedding + the image tokens written into the <IMG_CONTEXT> slots
  llm        the 12 kept Qwen3 layers + final norm from the merged embeddings   [1, 296, 2048]
             (lerobot runs its CausalLM, so its `llm` includes the LM head's logits over the
             151680-token vocabulary, which GR00T discards; `llm_body` is without them)
  backbone   the whole backbone call (`backbone_features` / `model.backbone`)
Sides: `ours` (the inference layout, `EagleBackbone.to_inference_layout`), `stacked` (groot-jax
on the stacked, scanned training layout: before the layout), `reference` (lerobot); each side a
fresh process per round, interleaved and pinned by harness.py. `--preset tiny` (the tiny sizes,
same inputs) is a quick check of the script, not a measurement.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "experiments" / "benchmarks"))
import harness  # noqa: E402
from inference import make_inputs  # noqa: E402

PARTS = ("vision", "connector", "merge", "llm", "backbone")


def run_ours(repeats: int, preset: str, layout: str = "inference") -> dict:
    import jax
    from flax import nnx

    from groot_jax.config import GR00TConfig
    from groot_jax.models.eagle import EagleBackbone

    cfg = (GR00TConfig.n1_5_3b() if preset == "n1_5_3b" else GR00TConfig.tiny()).backbone
    graphdef, params = harness.random_module(lambda r: EagleBackbone(cfg, rngs=r))
    if layout == "inference":
        module = nnx.merge(graphdef, params, copy=False)
        module.to_inference_layout(release=True)
        graphdef, params = nnx.split(module, nnx.Param)
    io = make_inputs()
    ids = io["input_ids"].astype(np.int32)
    mask = io["attention_mask"].astype(bool)
    pixels = io["pixel_values"].transpose(0, 2, 3, 1)               # [1, 224, 224, 3]
    bb = lambda p: nnx.merge(graphdef, p, copy=True)  # noqa: E731
    vision = jax.jit(lambda p: bb(p).vision(pixels))
    connector = jax.jit(lambda p, x: bb(p).mlp1(x))
    merge = jax.jit(lambda p, img: bb(p).merge_image_tokens(ids, img))
    llm = jax.jit(lambda p, e: bb(p).llm(e, mask))
    backbone = jax.jit(lambda p: bb(p)(ids, mask, pixels[:, None]))
    vis = vision(params)
    img = connector(params, vis)
    emb = merge(params, img)
    block = jax.block_until_ready
    return {"vision": harness.timed(lambda: block(vision(params)), repeats),
            "connector": harness.timed(lambda: block(connector(params, vis)), repeats),
            "merge": harness.timed(lambda: block(merge(params, img)), repeats),
            "llm": harness.timed(lambda: block(llm(params, emb)), repeats),
            "backbone": harness.timed(lambda: block(backbone(params)), repeats)}


def run_reference(repeats: int, preset: str) -> dict:
    import torch

    sys.path.insert(0, str(ROOT / "tests" / "reference"))
    import lerobot_ref

    model = lerobot_ref.build_gr00t("real" if preset == "n1_5_3b" else "tiny")
    del model.action_head
    eagle = model.backbone.eagle_model
    io = make_inputs()
    ids = torch.from_numpy(io["input_ids"])
    mask = torch.from_numpy(io["attention_mask"])
    pixels = torch.from_numpy(io["pixel_values"])
    backbone_in = {"eagle_input_ids": ids, "eagle_attention_mask": mask,
                   "eagle_pixel_values": pixels,
                   "eagle_image_sizes": torch.tensor([[224, 224]])}

    def merge(vit):
        # Eagle25VLForConditionalGeneration.forward's embedding + image-token write.
        emb = eagle.language_model.get_input_embeddings()(ids)
        b, n, c = emb.shape
        emb = emb.reshape(b * n, c)
        selected = ids.reshape(-1) == eagle.image_token_index
        emb[selected] = emb[selected] * 0.0 + vit.reshape(-1, c)
        return emb.reshape(b, n, c)

    with torch.no_grad():
        vis = eagle.vision_model(pixel_values=pixels, return_dict=True).last_hidden_state
        img = eagle.mlp1(vis)
        emb = merge(img)
        return {
            "vision": harness.timed(lambda: eagle.vision_model(pixel_values=pixels,
                                                               return_dict=True), repeats),
            "connector": harness.timed(lambda: eagle.mlp1(vis), repeats),
            "merge": harness.timed(lambda: merge(img), repeats),
            "llm": harness.timed(lambda: eagle.language_model(
                inputs_embeds=emb, attention_mask=mask, output_hidden_states=True), repeats),
            "llm_body": harness.timed(lambda: eagle.language_model.model(
                inputs_embeds=emb, attention_mask=mask, output_hidden_states=True), repeats),
            "backbone": harness.timed(lambda: model.backbone(backbone_in), repeats)}


def main():
    parser = argparse.ArgumentParser()
    harness.add_arguments(parser, rounds=3, repeats=3)
    parser.add_argument("--no-stacked", action="store_true",
                        help="skip the groot-jax side on the stacked (training) layout")
    parser.add_argument("--preset", default="n1_5_3b", choices=["n1_5_3b", "tiny"])
    args = parser.parse_args()
    if args.side:
        harness.child_main(args, {"ours": lambda r: run_ours(r, args.preset),
                                  "stacked": lambda r: run_ours(r, args.preset, "stacked"),
                                  "reference": lambda r: run_reference(r, args.preset)})
        return
    extra = ["--repeats", str(args.repeats), "--preset", args.preset]
    sides, others = harness.sides_with_stacked(__file__, extra, not args.no_stacked)
    rounds = harness.interleave(None, extra, args, sides=sides)
    harness.report(rounds, PARTS, args, unit="ms", others=others,
                   title=f"{args.preset} backbone alone, batch 1, one 224x224 image + 40 text "
                         "tokens, fp32")
    body = [rd["reference"]["llm_body"] for rd in rounds]
    print(f"lerobot llm without the LM head (median): {1e3 * float(np.median(body)):.1f} ms")


if __name__ == "__main__":
    main()
