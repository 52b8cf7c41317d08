"""What the N1.7 reference workers share (run by the n17 python, imported from beside them): the
tiny random lerobot 0.6.1 GR00TN17 config (= GR00TConfig.tiny_n1_7(), after
../shared/reference/n17/tiny_model.py), the Qwen3-VL token ids and chat layout, weight
perturbation, injected noise and the image processor's patch rows."""
import contextlib

import numpy as np
import torch

# = GR00TConfig.tiny_n1_7() (text: 4 layers in the config, 3 kept by select_layer).
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
PATCH, MERGE, TEMPORAL = 16, 2, 2
LM_HEAD = "backbone.model.lm_head.weight"

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


def chat_ids(text_ids: list[int], tokens_per_image: int) -> list[int]:
    """<|im_start|>user\\n<|vision_start|><|image_pad|>xN<|vision_end|>TEXT<|im_end|>\\n
    <|im_start|>assistant\\n (the Qwen3-VL chat layout with a generation prompt)."""
    return ([IM_START, USER, NEWLINE, VISION_START] + [IMAGE_PAD] * tokens_per_image
            + [VISION_END] + text_ids + [IM_END, NEWLINE, IM_START, ASSISTANT, NEWLINE])


def left_padded(rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids, attention_mask) int64 [B, L], padded on the left with <|endoftext|>."""
    length = max(map(len, rows))
    input_ids = np.full((len(rows), length), PAD, np.int64)
    attention_mask = np.zeros((len(rows), length), np.int64)
    for b, row in enumerate(rows):
        input_ids[b, length - len(row):] = row
        attention_mask[b, length - len(row):] = 1
    return input_ids, attention_mask


def pixel_rows(frames: np.ndarray) -> dict[str, np.ndarray]:
    """uint8 [N, H, W, 3] -> transformers' Qwen2-VL image processor output (mean = std = 0.5,
    no resize): pixel_values float32 [N*h*w, 1536], image_grid_thw int64 [N, 3]."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    proc = Qwen2VLImageProcessorPil(do_resize=False, image_mean=[0.5] * 3, image_std=[0.5] * 3,
                                    patch_size=PATCH, merge_size=MERGE,
                                    temporal_patch_size=TEMPORAL)
    vis = proc(images=list(frames), return_tensors="np")
    size = frames.shape[1]
    assert vis["image_grid_thw"].tolist() == [[1, size // PATCH, size // PATCH]] * len(frames)
    return dict(pixel_values=vis["pixel_values"].astype(np.float32),
                image_grid_thw=vis["image_grid_thw"].astype(np.int64))
