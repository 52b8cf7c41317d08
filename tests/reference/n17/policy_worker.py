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
import contextlib
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

# = GR00TConfig.tiny_n1_7() (../shared/reference/n17/tiny_model.py).
QWEN = dict(
    image_token_id=151655, video_token_id=151656, vision_start_token_id=151652,
    vision_end_token_id=151653, tie_word_embeddings=True,
    text_config=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                     num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                     vocab_size=151936, rms_norm_eps=1e-6, max_position_embeddings=4096,
                     tie_word_embeddings=True,
                     rope_scaling={"rope_type": "default", "mrope_section": [4, 2, 2],
                                   "mrope_interleaved": True},
                     rope_theta=5000000),
    vision_config=dict(depth=4, hidden_size=64, intermediate_size=128, num_heads=4,
                       out_hidden_size=64, patch_size=16, spatial_merge_size=2,
                       temporal_patch_size=2, in_channels=3, num_position_embeddings=2304,
                       deepstack_visual_indexes=[0, 1, 2], hidden_act="gelu_pytorch_tanh"),
)
HEAD = dict(
    backbone_model_type="qwen", select_layer=3, backbone_embedding_dim=64,
    hidden_size=32, input_embedding_dim=48, max_state_dim=8, max_action_dim=7, action_horizon=4,
    max_num_embodiments=32, max_seq_len=64, num_inference_timesteps=4, state_dropout_prob=0.0,
    load_bf16=False, use_flash_attention=False,
    diffusion_model_cfg=dict(positional_embeddings=None, num_layers=4, num_attention_heads=2,
                             attention_head_dim=24, norm_type="ada_norm", dropout=0.0,
                             final_dropout=True, output_dim=32, interleave_self_attention=True),
    vl_self_attention_cfg=dict(positional_embeddings=None, num_layers=1, num_attention_heads=2,
                               attention_head_dim=32, dropout=0.0, final_dropout=True),
)
SIZE, PATCH, MERGE, TEMPORAL = 64, 16, 2, 2
TOKENS_PER_IMAGE = (SIZE // PATCH) ** 2 // MERGE ** 2                  # 4

# Qwen special tokens (real ids) and a few ordinary ones ("user", "\n", "assistant").
IM_START, IM_END, PAD = 151644, 151645, 151643
VISION_START, VISION_END, IMAGE_PAD = 151652, 151653, 151655
USER, NEWLINE, ASSISTANT = 872, 198, 77091


def perturb_(model: torch.nn.Module, seed: int, scale: float) -> None:
    """No parameter keeps a trivial init (norm ones / zeros, zero biases)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))


@contextlib.contextmanager
def fixed_randn(tensor: np.ndarray):
    """torch.randn returns `tensor` (and must be asked for its shape)."""
    original = torch.randn

    def randn(*args, **kwargs):
        shape = tuple(kwargs.get("size", args[0] if len(args) == 1 else args))
        if tuple(shape) != tensor.shape:
            raise AssertionError(f"unexpected torch.randn{shape}; expected {tensor.shape}")
        return torch.from_numpy(tensor.copy())

    torch.randn = randn
    try:
        yield
    finally:
        torch.randn = original


def chat_ids(text_ids: list[int]) -> list[int]:
    """<|im_start|>user\\n<|vision_start|><|image_pad|>x4<|vision_end|>TEXT<|im_end|>\\n
    <|im_start|>assistant\\n (the Qwen3-VL chat layout with a generation prompt)."""
    return ([IM_START, USER, NEWLINE, VISION_START] + [IMAGE_PAD] * TOKENS_PER_IMAGE
            + [VISION_END] + text_ids + [IM_END, NEWLINE, IM_START, ASSISTANT, NEWLINE])


def make_inputs(rng: np.random.Generator) -> dict[str, np.ndarray]:
    f32 = np.float32
    rows = [chat_ids(rng.integers(0, 150000, 6).tolist()),
            chat_ids(rng.integers(0, 150000, 2).tolist())]
    length = max(map(len, rows))
    input_ids = np.full((2, length), PAD, np.int64)
    attention_mask = np.zeros((2, length), np.int64)
    for b, row in enumerate(rows):                                  # left padding
        input_ids[b, length - len(row):] = row
        attention_mask[b, length - len(row):] = 1
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
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

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
    proc = Qwen2VLImageProcessorPil(do_resize=False, image_mean=[0.5] * 3, image_std=[0.5] * 3,
                                    patch_size=PATCH, merge_size=MERGE,
                                    temporal_patch_size=TEMPORAL)
    vis = proc(images=list(io["frames"]), return_tensors="np")
    assert vis["image_grid_thw"].tolist() == [[1, SIZE // PATCH, SIZE // PATCH]] * 2
    io.update(pixel_values=vis["pixel_values"].astype(np.float32),
              image_grid_thw=vis["image_grid_thw"].astype(np.int64))

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
