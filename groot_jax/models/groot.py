"""GR00T = VLM backbone (models.backbone: Eagle for N1/N1.5, Qwen3-VL for N1.7) + flow-matching
action head, and its pure functions.

Batch / inputs (a dict of arrays; names follow the original's `eagle_*`, `state`, `action`):
  input_ids      int   [B, L]         prompt tokens with tokens_per_image <IMG_CONTEXT> per image
  attention_mask bool  [B, L]
  pixel_values   float [B, V, H, W, 3] in [-1, 1] ((uint8 / 255 - 0.5) / 0.5), H = W = 224
  state          float [B, 1, max_state_dim]   normalised, zero-padded
  embodiment_id  int   [B]
  action         float [B, H_a, max_action_dim] (training)   action_mask same shape (training)

`GR00TFunctions.loss(params, batch, rng)` and `.sample_actions(params, inputs, rng)` are pure:
params in, numbers out, safe under `jax.jit` / `jax.grad`.

For serving, `fns.inference_params(params)` lays the weights out once for the sampler
(`layers.unstack_for_inference`: one module per layer, [out, in] kernels, unrolled; faster on
XLA:CPU, same numbers) and returns an `InferenceParams` that `fns.sample_actions` (and
`fns.module`) accept in place of the parameters.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from groot_jax.config import GR00TConfig
from groot_jax.models import backbone as backbones
from groot_jax.models.action_head import FlowMatchingActionHead, pool_tokens
from groot_jax.models.backbone import BackboneOutput


class GR00T(nnx.Module):
    def __init__(self, cfg: GR00TConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        self.backbone = backbones.build(cfg.backbone, rngs=rngs)
        self.action_head = FlowMatchingActionHead(cfg.action_head, rngs=rngs)

    def backbone_output(self, inputs: dict[str, Any],
                        pixel_key: str = "pixel_values") -> BackboneOutput:
        ids, mask = inputs["input_ids"], inputs["attention_mask"]
        out = self.backbone(ids, mask, inputs[pixel_key])
        if isinstance(out, BackboneOutput):
            return out
        # Eagle returns the features alone; its masks follow from the prompt.
        return BackboneOutput(out, jnp.asarray(mask).astype(bool),
                              jnp.asarray(ids) == self.cfg.backbone.image_token_id)

    def backbone_features(self, inputs: dict[str, Any]):
        return self.backbone_output(inputs).features

    def vl_masks(self, out: BackboneOutput) -> dict[str, Any]:
        """The key masks the head's DiT takes: only the text/image-alternating DiT (N1.7) masks
        the VL tokens; N1/N1.5 attend every token, as the original."""
        if self.cfg.action_head.dit.attend_text_every_n_blocks is None:
            return {}
        return {"attention_mask": out.attention_mask, "image_mask": out.image_mask}

    def future_embeddings(self, batch: dict[str, Any]):
        """FLARE targets: `batch["future_embeddings"]` [B, M, D] from any frozen encoder, or by
        default our own VLM features of the future frames (`future_pixel_values`, same prompt),
        without gradient, pooled to the M future tokens."""
        if "future_embeddings" in batch:
            return batch["future_embeddings"]
        feats = self.backbone_output(batch, "future_pixel_values").features
        pooled = pool_tokens(feats, batch["attention_mask"], self.cfg.action_head.num_future_tokens)
        return jax.lax.stop_gradient(pooled)

    def compute_loss(self, batch: dict[str, Any], rng: jax.Array, *, train: bool = True,
                     return_terms: bool = False):
        """Flow-matching loss with noise ~ N(0, I) and t from the shifted Beta (spec 5), plus
        FLARE's alignment when enabled. `train` turns dropout on (the original's backbone has
        no dropout)."""
        r_noise, r_time, r_drop = jax.random.split(rng, 3)
        actions = batch["action"]
        head = self.action_head
        noise = jax.random.normal(r_noise, actions.shape, actions.dtype)
        t = head.sample_time(r_time, actions.shape[0]).astype(actions.dtype)
        flare = {}
        if head.flare_projector is not None:
            flare = {"future_embeddings": self.future_embeddings(batch),
                     "future_mask": batch.get("future_mask")}
        out = self.backbone_output(batch)
        return head.flow_matching_loss(out.features, batch["state"], actions,
                                       batch["action_mask"], batch["embodiment_id"], noise=noise,
                                       t=t, rng=r_drop if train else None,
                                       return_terms=return_terms, **flare, **self.vl_masks(out))

    def to_inference_layout(self, release: bool = False) -> None:
        """Backbone and action head in the inference layout (see `GR00TFunctions.
        inference_params`)."""
        self.backbone.to_inference_layout(release)
        self.action_head.to_inference_layout(release)

    def sample_actions(self, inputs: dict[str, Any], rng: jax.Array | None = None, *,
                       noise: jax.Array | None = None, num_steps: int | None = None):
        """Normalised action chunk [B, H_a, max_action_dim] by Euler integration (spec 6).
        Initial noise is drawn from `rng` unless given."""
        cfg = self.cfg.action_head
        if noise is None:
            b = inputs["input_ids"].shape[0]
            noise = jax.random.normal(rng, (b, cfg.action_horizon, cfg.action_dim), jnp.float32)
        out = self.backbone_output(inputs)
        return self.action_head.sample(out.features, inputs["state"], inputs["embodiment_id"],
                                       noise, num_steps=num_steps, **self.vl_masks(out))


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class InferenceParams:
    """Parameters in the inference layout and the module structure they fit (static: jit
    retraces only when the layout changes). Made by `GR00TFunctions.inference_params`."""

    state: nnx.State
    graphdef: Any = dataclasses.field(metadata=dict(static=True))


@dataclasses.dataclass(frozen=True)
class GR00TFunctions:
    """The model as pure functions of its parameters: an `nnx.State` of `nnx.Param`, or for
    inference the `InferenceParams` of `inference_params`."""

    graphdef: Any

    def module(self, params) -> GR00T:
        if isinstance(params, InferenceParams):
            return nnx.merge(params.graphdef, params.state, copy=True)
        return nnx.merge(self.graphdef, params, copy=True)

    def inference_params(self, params, *, release: bool = False) -> InferenceParams:
        """The weights laid out once (outside jit) for inference: every stack of layers (SigLIP,
        LLM, VL self-attention, DiT) as one module per layer applied unrolled, every Dense
        kernel [out, in] (`GR00T.to_inference_layout`). `sample_actions` gives the same actions
        from it, faster on XLA:CPU. For inference only (no training or checkpoint export).

        `release=True` consumes `params` to keep one copy of the weights in memory: each
        stacked array is emptied as soon as it is laid out, and the given state must not be
        used afterwards. Otherwise `params` is left untouched (the layout then is a second
        copy of the stacked weights)."""
        if isinstance(params, InferenceParams):
            return params
        # copy=False: the module's Variables are `params`' own, so `release` frees them.
        model = nnx.merge(self.graphdef, params, copy=not release)
        model.to_inference_layout(release)
        graphdef, state = nnx.split(model, nnx.Param)
        return InferenceParams(state, graphdef)

    def loss(self, params, batch, rng, *, train: bool = True, return_terms: bool = False):
        return self.module(params).compute_loss(batch, rng, train=train, return_terms=return_terms)

    def sample_actions(self, params, inputs, rng, num_steps: int = 4, noise=None):
        return self.module(params).sample_actions(inputs, rng, noise=noise, num_steps=num_steps)


def init(cfg: GR00TConfig, seed: int = 0) -> tuple[GR00TFunctions, nnx.State]:
    """Randomly initialised parameters and the pure functions that use them."""
    fns, _ = abstract(cfg)
    # One compiled program instead of one eager dispatch per initializer (12 s -> ~1 s on CPU).
    params = jax.jit(lambda: nnx.split(GR00T(cfg, rngs=nnx.Rngs(seed)), nnx.Param)[1])()
    return fns, params


def abstract(cfg: GR00TConfig) -> tuple[GR00TFunctions, nnx.State]:
    """Shapes only (`nnx.eval_shape`): no memory, for real-size checks and checkpoint targets."""
    model = nnx.eval_shape(lambda: GR00T(cfg, rngs=nnx.Rngs(0)))
    graphdef, params = nnx.split(model, nnx.Param)
    return GR00TFunctions(graphdef), params


def init_host(cfg: GR00TConfig, seed: int = 0) -> tuple[GR00TFunctions, nnx.State]:
    """Random parameters drawn leaf by leaf with numpy: peak memory is one copy of the model.

    `init` compiles one program that also holds the random bits of every initializer, which
    for the 2.4B-parameter presets exceeds a 24 GB host. This draws N(0, 0.02) for weights,
    ones for norm scales and zeros for biases (not the per-module initializers of `init`):
    for benchmarks, real-size checks and as a starting point that will be overwritten."""
    fns, abstract_params = abstract(cfg)
    return fns, random_params(abstract_params, seed)


def random_params(abstract_params: nnx.State, seed: int = 0) -> nnx.State:
    """`abstract_params` (shapes) filled leaf by leaf on the host: N(0, 0.02) weights, ones for
    norm scales, zeros for biases (`init_host`; the benchmarks' sub-modules use it too)."""
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        name = str(getattr(path[-1], "key", path[-1]))
        if name == "scale":
            return jnp.ones(leaf.shape, leaf.dtype)
        if name in ("bias", "b", "patch_bias"):
            return jnp.zeros(leaf.shape, leaf.dtype)
        return jnp.asarray((0.02 * rng.standard_normal(leaf.shape, np.float32)).astype(leaf.dtype))

    pure = jax.tree_util.tree_map_with_path(draw, nnx.to_pure_dict(abstract_params))
    params = jax.tree.map(lambda x: x, abstract_params)
    nnx.replace_by_pure_dict(params, pure)
    return params
