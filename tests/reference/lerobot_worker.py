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


def _eagle_repo(size: str, overrides: dict | None = None) -> str:
    """Write the Eagle config of `size` (with optional `image_token_index` / `vocab_size`
    overrides, for models paired with a small test tokenizer) where lerobot's EagleBackbone
    looks for it (offline there is no hub copy); returns the repo name."""
    import json

    from lerobot.policies.groot import groot_n1

    eagle = lerobot_ref.configs(size)[0]
    overrides = overrides or {}
    if "image_token_index" in overrides:
        eagle["image_token_index"] = overrides["image_token_index"]
    if "vocab_size" in overrides:
        eagle["text_config"]["vocab_size"] = overrides["vocab_size"]
    repo = f"local/groot-jax-eagle-{size}-" + "-".join(f"{k}{v}" for k, v in sorted(overrides.items()))
    home = Path(groot_n1.HF_LEROBOT_HOME) / repo
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.json").write_text(json.dumps(eagle, indent=2))
    return repo


def _from_pretrained(ckpt: Path, size: str, overrides: dict | None = None):
    """lerobot's own loading path: GR00TN15.from_pretrained on a local directory."""
    lerobot_ref._sdpa_instead_of_flash_attention()
    # transformers 5 builds the model on the meta device; torch 2.13 (newer than lerobot's
    # pinned < 2.11) then fails validating Beta(1.5, 1)'s constant arguments with
    # "Tensor.item() cannot be called on meta tensors". Skipping argument validation changes no
    # number (the Beta is only sampled in training, with the same arguments).
    torch.distributions.Distribution.set_default_validate_args(False)
    # lerobot 0.5.1's GR00TN15.__init__ never calls `post_init()`, which transformers >= 5
    # requires (it registers the tied-weight map that `from_pretrained` reads, else
    # AttributeError 'all_tied_weights_keys'). Call it, as every transformers model does.
    model_cls = lerobot_ref.GR00TN15
    if not getattr(model_cls.__init__, "groot_jax_post_init", False):
        original_init = model_cls.__init__

        def init_then_post_init(self, *args, **kwargs):
            original_init(self, *args, **kwargs)
            self.post_init()

        init_then_post_init.groot_jax_post_init = True
        model_cls.__init__ = init_then_post_init
    cfg = lerobot_ref.GR00TN15Config.from_pretrained(str(ckpt))
    # The Eagle sizes are not in config.json: point the backbone at the Eagle config of `size`.
    cfg.backbone_cfg = dict(cfg.backbone_cfg, tokenizer_assets_repo=_eagle_repo(size, overrides))
    return lerobot_ref.GR00TN15.from_pretrained(str(ckpt), config=cfg,
                                                torch_dtype=torch.float32).eval()


def _repair_reinitialised(model, ckpt: Path) -> list[str]:
    """Parameters that `from_pretrained` left different from the files, restored from them.

    With transformers 5.3, lerobot 0.5.1's Eagle `_init_weights` re-initialises `mlp1` with
    `weight.data.normal_()` after the weights were loaded (it bypasses the loaded-parameter
    guard of transformers' own init functions), so the connector comes out random. We list
    every such parameter (the test asserts the list is exactly that) and copy the file's
    values back; everything else stays as lerobot loaded it."""
    import json

    from safetensors.numpy import load_file

    files = sorted(ckpt.glob("*.safetensors"))
    if (ckpt / "model.safetensors.index.json").exists():
        files = sorted({ckpt / f for f in json.loads(
            (ckpt / "model.safetensors.index.json").read_text())["weight_map"].values()})
    params = dict(model.named_parameters())
    changed = []
    for f in files:
        for key, value in load_file(str(f)).items():
            mine = params[key].detach()
            if not torch.equal(mine, torch.from_numpy(np.asarray(value, np.float32)).to(mine.dtype)):
                changed.append(key)
                with torch.no_grad():
                    params[key].copy_(torch.from_numpy(np.asarray(value, np.float32)))
    return changed


def run_consume(out: Path, seed: int, size: str = "tiny") -> None:
    """Load the checkpoint in out/ckpt (written by groot-jax) and run get_action on
    out/inputs.npz with its initial noise; write out/outputs.npz."""
    import json

    overrides_file = out / "eagle_overrides.json"
    overrides = json.loads(overrides_file.read_text()) if overrides_file.exists() else None
    model = _from_pretrained(out / "ckpt", size, overrides)
    reinitialised = _repair_reinitialised(model, out / "ckpt")
    io = dict(np.load(out / "inputs.npz"))
    batch = io["input_ids"].shape[0]
    inputs = dict(eagle_input_ids=io["input_ids"], eagle_attention_mask=io["attention_mask"],
                  eagle_pixel_values=io["pixel_values"],
                  eagle_image_sizes=np.array([[224, 224]] * batch),
                  state=io["state"], embodiment_id=io["embodiment_id"])
    inputs = {k: torch.from_numpy(np.asarray(v)) for k, v in inputs.items()}
    with torch.no_grad(), fixed_randn(io["init_noise"]):
        action = model.get_action(inputs)["action_pred"].numpy()
    np.savez(out / "outputs.npz", action_pred=action, reinitialised=np.array(reinitialised, str))


def run_save_pretrained(out: Path, seed: int) -> None:
    """The PyTorch side writing checkpoints: `save_pretrained` of a randomised tiny GR00TN15,
    sharded, in fp32 (out/fp32) and bf16 (out/bf16); out/state_dict.safetensors is the fp32
    truth for comparison."""
    torch.manual_seed(seed)
    model = lerobot_ref.build_gr00t("tiny")
    perturb_(model, seed)
    state = {k: v.contiguous().clone() for k, v in model.state_dict().items()}
    save_file(state, str(out / "state_dict.safetensors"))
    model.save_pretrained(str(out / "fp32"), max_shard_size="2MB", safe_serialization=True)
    model.to(torch.bfloat16).save_pretrained(str(out / "bf16"), max_shard_size="2MB",
                                             safe_serialization=True)


if __name__ == "__main__":
    cases = {"action_head": run_action_head, "gr00t": run_gr00t, "consume": run_consume,
             "save_pretrained": run_save_pretrained}
    parser = argparse.ArgumentParser()
    parser.add_argument("case", choices=sorted(cases))
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", default="tiny", choices=["tiny", "real"])
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.case == "consume":
        run_consume(args.out, args.seed, args.size)
    else:
        cases[args.case](args.out, args.seed)
    print(f"wrote {args.out}")
