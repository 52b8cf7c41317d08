"""Run lerobot 0.6.1's GR00T N1.7 action head (`GR00TN17ActionHead`, tiny config) on generated
inputs and dump weights, inputs and outputs.

    $N17_REF/bin/python tests/reference/n17/head_worker.py OUT_DIR [--seed N]

Writes OUT_DIR/state_dict.safetensors (keys as in the checkpoint, without the `action_head.`
prefix) and OUT_DIR/io.npz. The head is built alone (no backbone): its inputs are given
backbone features [B, L, 64] with a bool attention_mask (row 1 left-padded, as the N1.7
processor pads) and image_mask. Noise and flow time are injected by patching `torch.randn` and
`sample_time`; dropout is 0 and the module is in eval mode (no state dropout).
"""
import argparse
import contextlib
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from tiny_reference import perturb_  # noqa: E402  (beside this script)

# = ActionHeadConfig.tiny_n1_7() (../shared/reference/n17/tiny_model.py).
TINY = dict(
    backbone_embedding_dim=64, hidden_size=32, input_embedding_dim=48, max_state_dim=8,
    max_action_dim=7, action_horizon=4, max_num_embodiments=32, max_seq_len=64,
    num_inference_timesteps=4, state_dropout_prob=0.0,
    diffusion_model_cfg=dict(positional_embeddings=None, num_layers=4, num_attention_heads=2,
                             attention_head_dim=24, norm_type="ada_norm", dropout=0.0,
                             final_dropout=True, output_dim=32, interleave_self_attention=True),
    vl_self_attention_cfg=dict(positional_embeddings=None, num_layers=1, num_attention_heads=2,
                               attention_head_dim=32, dropout=0.0, final_dropout=True),
)


@contextlib.contextmanager
def fixed_randn(tensor: np.ndarray):
    original = torch.randn
    torch.randn = lambda *a, **k: torch.from_numpy(tensor.copy())
    try:
        yield
    finally:
        torch.randn = original


def make_inputs(rng: np.random.Generator) -> dict[str, np.ndarray]:
    f32 = np.float32
    b, length, horizon, a_dim = 2, 13, TINY["action_horizon"], TINY["max_action_dim"]
    attention_mask = np.ones((b, length), bool)
    attention_mask[1, :3] = False                       # row 1 left-padded by 3
    image_mask = np.zeros((b, length), bool)
    image_mask[0, 4:8] = True                           # text, <vision_start>, 4 image, ...
    image_mask[1, 6:10] = True
    action_mask = np.ones((b, horizon, a_dim), f32)
    action_mask[1, :, 5:] = 0                           # embodiment with 5 action dims
    return dict(
        features=rng.normal(size=(b, length, TINY["backbone_embedding_dim"])).astype(f32),
        attention_mask=attention_mask, image_mask=image_mask,
        state=rng.normal(size=(b, 1, TINY["max_state_dim"])).astype(f32),
        embodiment_id=np.array([3, 10], np.int64),
        action=(rng.normal(size=(b, horizon, a_dim)) * action_mask).astype(f32),
        action_mask=action_mask,
        noise=rng.normal(size=(b, horizon, a_dim)).astype(f32),
        t=np.array([0.2137, 0.8712], f32),              # buckets 213, 871
        init_noise=rng.normal(size=(b, horizon, a_dim)).astype(f32))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from lerobot.policies.groot.groot_n1_7 import GR00TN17ActionHead, GR00TN17Config
    from transformers.feature_extraction_utils import BatchFeature

    torch.manual_seed(args.seed)
    head = GR00TN17ActionHead(GR00TN17Config(**TINY)).eval()
    perturb_(head, args.seed, 0.1)
    io = make_inputs(np.random.default_rng(args.seed))

    def backbone_output(image_mask=None):
        image_mask = io["image_mask"] if image_mask is None else image_mask
        return BatchFeature(data=dict(
            backbone_features=torch.from_numpy(io["features"].copy()),
            backbone_attention_mask=torch.from_numpy(io["attention_mask"]),
            image_mask=torch.from_numpy(image_mask)))

    def action_input(with_action: bool):
        data = dict(state=torch.from_numpy(io["state"]),
                    embodiment_id=torch.from_numpy(io["embodiment_id"]))
        if with_action:
            data.update(action=torch.from_numpy(io["action"]),
                        action_mask=torch.from_numpy(io["action_mask"]))
        return BatchFeature(data=data)

    store = {}
    with torch.no_grad():
        vl = head.process_backbone_output(backbone_output())["backbone_features"]
        # Training forward with injected noise and time; the velocity is the decoder's output.
        head.sample_time = lambda batch_size, device, dtype: torch.from_numpy(io["t"]).to(dtype)
        hook = head.action_decoder.register_forward_hook(
            lambda m, i, o: store.__setitem__("decoder_out", o))
        with fixed_randn(io["noise"]):
            loss = head(backbone_output(), action_input(True))["loss"]
        hook.remove()
        with fixed_randn(io["init_noise"]):
            action_pred = head.get_action(backbone_output(), action_input(False))["action_pred"]
        # Row 1 without image tokens: its image blocks see no key at all (SDPA outputs zeros).
        io["image_mask_text_only"] = io["image_mask"].copy()
        io["image_mask_text_only"][1] = False
        with fixed_randn(io["init_noise"]):
            action_pred_text_only = head.get_action(backbone_output(io["image_mask_text_only"]),
                                                    action_input(False))["action_pred"]
    horizon = TINY["action_horizon"]
    io.update(vl_processed=vl.numpy(), velocity=store["decoder_out"][:, -horizon:].numpy(),
              loss=np.float32(loss), action_pred=action_pred.numpy(),
              action_pred_text_only=action_pred_text_only.numpy())
    args.out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in head.state_dict().items()},
              str(args.out / "state_dict.safetensors"))
    np.savez(args.out / "io.npz", **io)
    print(f"loss {float(loss):.6f}; action_pred {tuple(action_pred.shape)}; "
          f"{len(head.state_dict())} tensors")


if __name__ == "__main__":
    main()
