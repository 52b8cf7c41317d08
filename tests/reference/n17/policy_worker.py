"""Run lerobot 0.6.1's whole GR00T N1.7 policy model (`GR00TN17`, the tiny random config of
../shared/reference/n17/tiny_model.py: Qwen3-VL backbone cut at select_layer 3 + the N1.7 action
head) on a left-padded batch of two real-layout prompts with one 64x64 frame each, and dump
weights, inputs and outputs.

    $N17_REF/bin/python tests/reference/n17/policy_worker.py OUT_DIR [--seed N]

Writes OUT_DIR/state_dict.safetensors (GR00TN17's keys, `backbone.model.model.visual.*`,
`backbone.model.model.language_model.*`, `action_head.*`; the tied `backbone.model.lm_head.weight`
left out as `save_pretrained` does) and OUT_DIR/io.npz:
  frames uint8 [2, 64, 64, 3]; pixel_values [N, 1536] and image_grid_thw [2, 3] from
  transformers' Qwen2-VL image processor (mean = std = 0.5, no resize); input_ids / attention_mask
  [2, L] (row 1 left-padded with <|endoftext|>); position_ids [4, 2, L] (lerobot's legacy rows);
  state [2, 1, 8]; embodiment_id [2]; features (the hooked last kept layer's output, before the
  final norm), attention_mask_out / image_mask (the backbone's masks), vl_processed
  (vl_self_attention(vlln(features))); init_noise and action_pred (get_action); action,
  action_mask, noise, t, velocity, loss (training forward).

Everything in fp32, eval mode (no dropout), no autocast. Every parameter is perturbed by a seeded
randn so that no norm is left at ones / zeros. get_action's only random draw (the initial noise)
and the training forward's noise and time are injected by patching `torch.randn` / `sample_time`.
"""
import argparse
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from tiny_reference import (  # noqa: E402  (beside this script)
    HEAD,
    PATCH,
    QWEN,
    chat_ids,
    fixed_randn,
    left_padded,
    perturb_,
    pixel_rows,
)

SIZE, MERGE = 64, 2
TOKENS_PER_IMAGE = (SIZE // PATCH) ** 2 // MERGE ** 2                  # 4


def make_inputs(rng: np.random.Generator) -> dict[str, np.ndarray]:
    f32 = np.float32
    input_ids, attention_mask = left_padded(
        [chat_ids(rng.integers(0, 150000, n).tolist(), TOKENS_PER_IMAGE) for n in (6, 2)])
    b, horizon, a_dim = 2, HEAD["action_horizon"], HEAD["max_action_dim"]
    action_mask = np.ones((b, horizon, a_dim), f32)
    action_mask[1, :, 5:] = 0                                       # embodiment with 5 dims
    return dict(
        frames=rng.integers(0, 256, (b, SIZE, SIZE, 3), dtype=np.uint8),
        input_ids=input_ids, attention_mask=attention_mask,
        state=rng.normal(size=(b, 1, HEAD["max_state_dim"])).astype(f32),
        embodiment_id=np.array([3, 10], np.int64),
        init_noise=rng.normal(size=(b, horizon, a_dim)).astype(f32),
        action=(rng.normal(size=(b, horizon, a_dim)) * action_mask).astype(f32),
        action_mask=action_mask,
        noise=rng.normal(size=(b, horizon, a_dim)).astype(f32),
        t=np.array([0.3141, 0.7953], f32))                          # buckets 314, 795


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scale", type=float, default=0.05)
    args = ap.parse_args()
    from lerobot.policies.groot.groot_n1_7 import GR00TN17, GR00TN17Config
    from transformers import Qwen3VLConfig
    from transformers.feature_extraction_utils import BatchFeature

    args.out.mkdir(parents=True, exist_ok=True)
    backbone_dir = args.out / "tiny_qwen3vl"            # the local backbone "model_name"
    Qwen3VLConfig(**QWEN).save_pretrained(backbone_dir)
    torch.manual_seed(args.seed)
    model = GR00TN17(GR00TN17Config(model_name=str(backbone_dir), **HEAD),
                     load_backbone_weights=False).float().eval()
    assert len(model.backbone.language_model.layers) == HEAD["select_layer"]
    assert all(p.dtype == torch.float32 for p in model.parameters())
    perturb_(model, args.seed, args.scale)

    io = make_inputs(np.random.default_rng(args.seed))
    io.update(pixel_rows(io["frames"]))

    def inputs(with_action: bool) -> dict:
        keys = ["input_ids", "attention_mask", "pixel_values", "image_grid_thw", "state",
                "embodiment_id"] + (["action", "action_mask"] if with_action else [])
        return {k: torch.from_numpy(io[k].copy()) for k in keys}

    with torch.no_grad(), torch.autocast("cpu", enabled=False):
        bb_in, _ = model.prepare_input(inputs(False))
        bb = model.backbone(bb_in)
        # The 4-row position ids lerobot computed (text row + t/h/w).
        position_ids = model.backbone.model.model.compute_3d_position_ids(
            input_ids=bb_in["input_ids"], image_grid_thw=bb_in["image_grid_thw"],
            video_grid_thw=None, inputs_embeds=None, attention_mask=bb_in["attention_mask"],
            past_key_values=None,
            mm_token_type_ids=(bb_in["input_ids"] == QWEN["image_token_id"]).int())
        position_ids = torch.cat([position_ids[:1], position_ids], dim=0)
        features = bb["backbone_features"].clone()
        vl = model.action_head.process_backbone_output(BatchFeature(data=dict(bb)))
        vl_processed = vl["backbone_features"].clone()

        # Inference: the whole get_action, its initial noise injected.
        with fixed_randn(io["init_noise"]):
            action_pred = model.get_action(inputs(False))["action_pred"]

        # Training forward with injected noise and time; the velocity is the decoder's output.
        store = {}
        head = model.action_head
        head.sample_time = lambda batch_size, device, dtype: torch.from_numpy(io["t"]).to(dtype)
        hook = head.action_decoder.register_forward_hook(
            lambda m, i, o: store.__setitem__("decoder_out", o))
        with fixed_randn(io["noise"]):
            loss = model(inputs(True))["loss"]
        hook.remove()

    horizon = HEAD["action_horizon"]
    io.update(features=features.numpy(), vl_processed=vl_processed.numpy(),
              attention_mask_out=bb["backbone_attention_mask"].numpy(),
              image_mask=bb["image_mask"].numpy(), position_ids=position_ids.numpy(),
              action_pred=action_pred.numpy(),
              velocity=store["decoder_out"][:, -horizon:].numpy(), loss=np.float32(loss))
    state_dict = {k: v.contiguous() for k, v in model.state_dict().items()
                  if k != "backbone.model.lm_head.weight"}
    save_file(state_dict, str(args.out / "state_dict.safetensors"))
    np.savez(args.out / "io.npz", **io)
    valid = io["attention_mask"].astype(bool)
    print(f"ids {io['input_ids'].shape}; features |max| {np.abs(io['features'][valid]).max():.3f}"
          f"; vl |max| {np.abs(io['vl_processed']).max():.3f}; loss {float(loss):.6f}; "
          f"action_pred {tuple(action_pred.shape)} |max| {np.abs(io['action_pred']).max():.3f}; "
          f"{len(state_dict)} tensors")


if __name__ == "__main__":
    main()
