"""GR00T N1.7 checkpoint directories through lerobot 0.6.1: load one we exported, or save one
for us to import.

    $N17_REF/bin/python tests/reference/n17/ckpt_worker.py OUT_DIR load CKPT_DIR [--inputs NPZ]
    $N17_REF/bin/python tests/reference/n17/ckpt_worker.py OUT_DIR save [--seed N]

load  `GR00TN17.from_pretrained(CKPT_DIR)` (what lerobot's GrootPolicy calls for a raw N1.7
      checkpoint, `base_model_path`), then get_action on the inputs below with injected initial
      noise. Also reads the processor sidecars the way lerobot's processor does
      (`_load_n1_7_checkpoint_processor_assets`: statistics flattened in modality-key order,
      the embodiment mapping) and builds a `GrootConfig` on the directory.
      OUT_DIR/state_dict.safetensors: the loaded model's tensors (tied lm_head left out);
      io.npz: inputs, action_pred, parameter dtypes, whether lm_head came untied out of
      from_pretrained and is tied after GrootPolicy's re-tie, the sidecar values lerobot derived.
save  lerobot's tiny GR00TN17 (../shared/reference/n17/tiny_model.py: a 4-layer Qwen3-VL text
      config in OUT_DIR/tiny_qwen3vl cut at select_layer 3), every parameter perturbed by a seeded
      randn, `save_pretrained(OUT_DIR/ckpt, max_shard_size="20MB")` (sharded, with the index),
      then get_action on the same inputs. state_dict.safetensors: its tensors as saved (no
      lm_head); io.npz: inputs and action_pred.

Inputs (`make_inputs`, or load's --inputs): a left-padded batch of two Qwen3-VL chat prompts
with one 64x64 uint8 frame each (4 image tokens), pixel rows from transformers' Qwen2-VL image
processor (mean = std = 0.5, no resize), state [2, 1, 8], embodiment ids [3, the checkpoint's
new_embodiment slot], initial noise [2, 4, 7].
Everything fp32, eval mode, no autocast.
"""
import argparse
import json
import os
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from tiny_reference import (  # noqa: E402  (beside this script)
    HEAD,
    LM_HEAD,
    QWEN,
    chat_ids,
    fixed_randn,
    left_padded,
    perturb_,
    pixel_rows,
)


def make_inputs(rng: np.random.Generator, *, size: int, tokens_per_image: int, state_dim: int,
                horizon: int, action_dim: int, slot: int) -> dict[str, np.ndarray]:
    input_ids, attention_mask = left_padded(
        [chat_ids(rng.integers(0, 150000, n).tolist(), tokens_per_image) for n in (6, 2)])
    return dict(frames=rng.integers(0, 256, (2, size, size, 3), dtype=np.uint8),
                input_ids=input_ids, attention_mask=attention_mask,
                state=rng.normal(size=(2, 1, state_dim)).astype(np.float32),
                embodiment_id=np.array([3, slot], np.int64),
                init_noise=rng.normal(size=(2, horizon, action_dim)).astype(np.float32))


def get_action(model, io: dict, size: int) -> np.ndarray:
    assert io["frames"].shape[1] == size
    io.update(pixel_rows(io["frames"]))
    keys = ["input_ids", "attention_mask", "pixel_values", "image_grid_thw", "state",
            "embodiment_id"]
    with torch.no_grad(), torch.autocast("cpu", enabled=False), fixed_randn(io["init_noise"]):
        return model.get_action({k: torch.from_numpy(io[k].copy()) for k in keys}
                                )["action_pred"].numpy()


def dump(out: Path, model, io: dict, digest: bool = False) -> None:
    """state_dict.safetensors (with `digest`: each tensor's first 16 values, for real-size
    models) and io.npz."""
    state_dict = {k: (v.detach().reshape(-1)[:16].clone() if digest else v.detach()).contiguous()
                  for k, v in model.state_dict().items() if k != LM_HEAD}
    save_file(state_dict, str(out / "state_dict.safetensors"))
    np.savez(out / "io.npz", **io)


def load(args) -> None:
    from lerobot.policies.groot.configuration_groot import (
        GrootConfig,
        is_raw_groot_n1_7_checkpoint,
    )
    from lerobot.policies.groot.groot_n1_7 import GR00TN17, _tie_unused_qwen_lm_head
    from lerobot.policies.groot.processor_groot import _load_n1_7_checkpoint_processor_assets

    ckpt = args.ckpt.resolve()
    # (GR00TN17.from_pretrained takes no output_loading_info: a tensor it had to initialise
    # shows as a difference in the dumped state dict.)
    # The file has no lm_head (lerobot's save_pretrained writes none either), so from_pretrained
    # reports it MISSING and leaves a fresh, untied one; GrootPolicy re-ties it right after
    # loading (modeling_groot.py), as done here. get_action never reads it.
    model = GR00TN17.from_pretrained(str(ckpt)).eval()
    qwen = model.backbone.model
    untied = qwen.lm_head.weight.data_ptr() != qwen.get_input_embeddings().weight.data_ptr()
    _tie_unused_qwen_lm_head(qwen)
    dtypes = sorted({str(p.dtype) for p in model.parameters()})
    cfg = model.config
    size = int(cfg.image_target_size[0])
    tokens = (size // QWEN['vision_config']['patch_size']) ** 2 // 4   # 2x2 merge
    assets = _load_n1_7_checkpoint_processor_assets(
        SimpleNamespace(base_model_path=str(ckpt), embodiment_tag=args.embodiment))
    slot = assets.embodiment_mapping[args.embodiment]
    policy_cfg = GrootConfig(base_model_path=str(ckpt), embodiment_tag=args.embodiment,
                             device="cpu", chunk_size=cfg.action_horizon,
                             n_action_steps=cfg.action_horizon, use_bf16=False)
    if args.inputs is not None:                         # the caller's (see make_inputs)
        io = dict(np.load(args.inputs))
    else:
        io = make_inputs(np.random.default_rng(args.seed), size=size, tokens_per_image=tokens,
                         state_dim=cfg.max_state_dim, horizon=cfg.action_horizon,
                         action_dim=cfg.max_action_dim, slot=slot)
    io["action_pred"] = get_action(model, io, int(io["frames"].shape[1]))
    io.update(
        lm_head_untied_after_load=np.bool_(untied),
        lm_head_tied=np.bool_(qwen.lm_head.weight.data_ptr()
                              == qwen.get_input_embeddings().weight.data_ptr()),
        param_dtypes=np.array(dtypes, dtype=str),
        is_raw_n17=np.bool_(is_raw_groot_n1_7_checkpoint(str(ckpt))),
        action_delta_indices=np.array(policy_cfg.action_delta_indices, np.int64),
        use_percentiles=np.bool_(assets.use_percentiles),
        embodiment_mapping=np.array(json.dumps(assets.embodiment_mapping, sort_keys=True)),
        image_target_size=np.array(assets.image_target_size or [], np.int64),
        video_modality_keys=np.array(assets.video_modality_keys or [], dtype=str),
        llm_layers=np.int64(len(model.backbone.language_model.layers)))
    for group, stats in assets.stats.items():          # "observation.state" / "action"
        for name, values in stats.items():
            io[f"stats/{group}/{name}"] = np.asarray(values, np.float32)
    dump(args.out, model, io, digest=args.digest)
    print(f"loaded {ckpt} ({dtypes}); action_pred {io['action_pred'].shape}")


def save(args) -> None:
    from lerobot.policies.groot.groot_n1_7 import GR00TN17, GR00TN17Config
    from transformers import Qwen3VLConfig

    backbone_dir = args.out / "tiny_qwen3vl"            # the local backbone "model_name"
    Qwen3VLConfig(**QWEN).save_pretrained(backbone_dir)
    torch.manual_seed(args.seed)
    model = GR00TN17(GR00TN17Config(model_name=str(backbone_dir.resolve()), **HEAD),
                     load_backbone_weights=False).float().eval()
    assert len(model.backbone.language_model.layers) == HEAD["select_layer"]
    perturb_(model, args.seed, 0.05)
    ckpt = args.out / "ckpt"
    model.save_pretrained(ckpt, max_shard_size="20MB")
    io = make_inputs(np.random.default_rng(args.seed), size=64, tokens_per_image=4,
                     state_dim=HEAD["max_state_dim"], horizon=HEAD["action_horizon"],
                     action_dim=HEAD["max_action_dim"], slot=10)
    io["action_pred"] = get_action(model, io, 64)
    io["files"] = np.array(sorted(p.name for p in ckpt.iterdir()), dtype=str)
    dump(args.out, model, io)
    print(f"saved {ckpt}: {list(io['files'])}; {len(model.state_dict())} tensors")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("case", choices=["load", "save"])
    ap.add_argument("ckpt", type=Path, nargs="?")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--embodiment", default="new_embodiment")
    ap.add_argument("--inputs", type=Path, default=None,
                    help="load: an npz of frames, input_ids, attention_mask, state, "
                         "embodiment_id, init_noise (default: make_inputs)")
    ap.add_argument("--digest", action="store_true",
                    help="load: dump 16 values per tensor, not the whole state dict")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.case == "load":
        if args.ckpt is None:
            ap.error("load needs CKPT_DIR")
        load(args)
    else:
        save(args)


if __name__ == "__main__":
    main()
