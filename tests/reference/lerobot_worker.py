"""Run lerobot 0.5.1's GR00T N1.5 on generated inputs and dump weights, inputs and outputs.

    .venv-ref/bin/python tests/reference/lerobot_worker.py CASE OUT_DIR [--seed N]

CASE is `action_head` or `gr00t`. Writes OUT_DIR/state_dict.safetensors (torch key names) and
OUT_DIR/io.npz. The tests replay io.npz through groot-jax with the same weights (dump and
replay, as lerobot's own GR00T parity test does). Initial noise and flow time are injected by
patching `torch.randn` and `sample_time`, so both sides start from identical numbers.
"""
import argparse
import contextlib
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lerobot_ref  # noqa: E402

IMG_CONTEXT, IMG_START, IMG_END, IM_START, IM_END = 151669, 151670, 151671, 151644, 151645


def perturb_(model: torch.nn.Module, seed: int, scale: float = 0.05) -> None:
    """No parameter keeps a trivial init (LayerNorm ones/zeros would hide mapping errors)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))


@contextlib.contextmanager
def fixed_randn(tensor: np.ndarray):
    original = torch.randn
    torch.randn = lambda *a, **k: torch.from_numpy(tensor.copy())
    try:
        yield
    finally:
        torch.randn = original


def capture_output(module: torch.nn.Module, store: dict, key: str, pick=lambda o: o):
    return module.register_forward_hook(lambda m, i, o: store.__setitem__(key, pick(o)))


def head_inputs(rng, batch, vl_len, vl_dim):
    f32 = np.float32
    dims = rng.integers(3, 33, batch)
    mask = np.zeros((batch, 16, 32), f32)
    for b, d in enumerate(dims):
        mask[b, :, :d] = 1
    action = rng.normal(size=(batch, 16, 32)).astype(f32) * mask
    # Flow times across the range, including the Beta tail beyond noise_s (t slightly < 0).
    t = np.linspace(-0.0009, 0.9995, batch).astype(f32)
    return dict(
        features=rng.normal(size=(batch, vl_len, vl_dim)).astype(f32),
        state=rng.normal(size=(batch, 1, 64)).astype(f32),
        embodiment_id=np.array([24, 31, 0, 17, 26][:batch], np.int64),
        action=action, action_mask=mask,
        noise=rng.normal(size=(batch, 16, 32)).astype(f32), t=t,
        init_noise=rng.normal(size=(batch, 16, 32)).astype(f32))


def training_velocity(head, backbone_output, action_input, io, store):
    """Loss and predicted velocity of the training forward, with injected noise and time."""
    head.sample_time = lambda batch_size, device, dtype: torch.from_numpy(io["t"]).to(dtype)
    hook = capture_output(head.action_decoder, store, "decoder_out")
    with fixed_randn(io["noise"]):
        loss = head(backbone_output, action_input)["loss"]
    hook.remove()
    return float(loss), store["decoder_out"][:, -16:].numpy()


def run_action_head(out: Path, seed: int) -> None:
    from transformers.feature_extraction_utils import BatchFeature

    torch.manual_seed(seed)
    head = lerobot_ref.build_action_head("tiny")
    perturb_(head, seed)
    io = head_inputs(np.random.default_rng(seed), batch=4, vl_len=21, vl_dim=64)
    t = {k: torch.from_numpy(v) for k, v in io.items()}
    action_input = BatchFeature(data=dict(state=t["state"], embodiment_id=t["embodiment_id"],
                                          action=t["action"], action_mask=t["action_mask"]))
    store = {}
    with torch.no_grad():
        processed = head.process_backbone_output(BatchFeature(data={
            "backbone_features": t["features"].clone(),
            "backbone_attention_mask": torch.ones(t["features"].shape[:2], dtype=torch.bool)}))
        io["vl_processed"] = processed["backbone_features"].numpy()
        backbone_output = lambda: BatchFeature(data={  # noqa: E731  fresh: the head mutates it
            "backbone_features": t["features"].clone(),
            "backbone_attention_mask": torch.ones(t["features"].shape[:2], dtype=torch.bool)})
        io["loss"], io["velocity"] = training_velocity(head, backbone_output(), action_input, io,
                                                       store)
        with fixed_randn(io["init_noise"]):
            io["action_pred"] = head.get_action(backbone_output(), action_input)[
                "action_pred"].numpy()
    save_file({k: v.contiguous() for k, v in head.state_dict().items()},
              str(out / "state_dict.safetensors"))
    np.savez(out / "io.npz", **io)


def prompt_ids(rng, text_len: int) -> np.ndarray:
    """Token layout of the Eagle chat template with one 224x224 image (spec 3.5); text tokens
    are random ids, as no tokenizer ships offline."""
    text = lambda n: list(rng.integers(0, 151000, n))  # noqa: E731
    ids = ([IM_START] + text(5) + [IM_END] + text(1) + [IM_START] + text(2) + text(3) +
           [IMG_START] + [IMG_CONTEXT] * 256 + [IMG_END] + text(text_len) + [IM_END] + text(1) +
           [IM_START] + text(2))
    return np.array(ids, np.int64)


def run_gr00t(out: Path, seed: int) -> None:
    torch.manual_seed(seed)
    model = lerobot_ref.build_gr00t("tiny")
    perturb_(model, seed)
    rng = np.random.default_rng(seed)
    batch = 2
    io = head_inputs(rng, batch=batch, vl_len=1, vl_dim=1)
    del io["features"]
    io["input_ids"] = np.stack([prompt_ids(rng, 9) for _ in range(batch)])
    io["attention_mask"] = np.ones(io["input_ids"].shape, np.int64)
    io["pixel_values"] = rng.uniform(-1, 1, (batch, 3, 224, 224)).astype(np.float32)

    def inputs(with_action: bool):
        d = dict(eagle_input_ids=io["input_ids"], eagle_attention_mask=io["attention_mask"],
                 eagle_pixel_values=io["pixel_values"],
                 eagle_image_sizes=np.array([[224, 224]] * batch),
                 state=io["state"], embodiment_id=io["embodiment_id"])
        if with_action:
            d.update(action=io["action"], action_mask=io["action_mask"])
        return {k: torch.from_numpy(np.asarray(v)) for k, v in d.items()}

    store = {}
    with torch.no_grad():
        hook = capture_output(model.backbone, store, "features", lambda o: o["backbone_features"])
        with fixed_randn(io["init_noise"]):
            io["action_pred"] = model.get_action(inputs(False))["action_pred"].numpy()
        hook.remove()
        io["backbone_features"] = store["features"].numpy()
        head = model.action_head
        head.sample_time = lambda batch_size, device, dtype: torch.from_numpy(io["t"]).to(dtype)
        hook = capture_output(head.action_decoder, store, "decoder_out")
        with fixed_randn(io["noise"]):
            io["loss"] = float(model(inputs(True))["loss"])
        hook.remove()
        io["velocity"] = store["decoder_out"][:, -16:].numpy()
    state = {k: v.contiguous().clone() for k, v in model.state_dict().items()}
    save_file(state, str(out / "state_dict.safetensors"))
    np.savez(out / "io.npz", **io)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("case", choices=["action_head", "gr00t"])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    {"action_head": run_action_head, "gr00t": run_gr00t}[args.case](args.out, args.seed)
    print(f"wrote {args.out}")
