"""Shared building blocks: dense layers with logical axis names, norms, attention, dropout,
scanning over stacked layers, and the inference layout of those layers.

Einsum letters (openpi / big_vision convention): B batch, T query tokens, S key/value tokens,
N query heads, K kv heads, G = N/K, H head dim, D width, F MLP hidden.

Dropout is functional: every `__call__` takes `rng` (a PRNG key, or None for deterministic
inference), so the model stays a pure function at the jit boundary.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import nnx

Array = jax.Array

default_kernel_init = nnx.initializers.lecun_normal()
small_normal = nnx.initializers.normal(0.02)


def param(rngs: nnx.Rngs, init: Callable, shape: tuple[int, ...], axes: tuple[str | None, ...],
          dtype=jnp.float32) -> nnx.Param:
    """A parameter carrying logical axis names (resolved to mesh axes by `sharding` rules)."""
    assert len(axes) == len(shape), (axes, shape)
    # Names only: placement happens in the trainer (a mesh may not exist when a model is built).
    return nnx.Param(init(rngs.params(), shape, dtype), out_sharding=axes, eager_sharding=False)


class Dense(nnx.Module):
    """y = x @ kernel + bias, kernel stored (in, out) like Flax (torch Linear is (out, in)).

    `transposed` (static): the kernel is held [out, in] instead, as `transpose_dense` lays it
    out for inference (XLA:CPU runs the dot faster that way; same values, same numerics)."""

    def __init__(self, in_dim: int, out_dim: int, *, rngs: nnx.Rngs, use_bias: bool = True,
                 axes: tuple[str | None, str | None] = (None, None),
                 kernel_init: Callable = default_kernel_init):
        self.kernel = param(rngs, kernel_init, (in_dim, out_dim), axes)
        self.bias = param(rngs, nnx.initializers.zeros, (out_dim,), (axes[1],)) if use_bias else None
        self.transposed = False

    def __call__(self, x: Array) -> Array:
        spec = "...i,oi->...o" if self.transposed else "...i,io->...o"
        y = jnp.einsum(spec, x, self.kernel[...].astype(x.dtype))
        if self.bias is not None:
            y = y + self.bias[...].astype(x.dtype)
        return y


class LayerNorm(nnx.Module):
    """torch.nn.LayerNorm semantics (biased variance), statistics in float32."""

    def __init__(self, dim: int, *, eps: float, rngs: nnx.Rngs | None = None, affine: bool = True,
                 axis_name: str | None = "embed"):
        self.eps = eps
        if affine:
            self.scale = param(rngs, nnx.initializers.ones, (dim,), (axis_name,))
            self.bias = param(rngs, nnx.initializers.zeros, (dim,), (axis_name,))
        else:
            self.scale = self.bias = None

    def __call__(self, x: Array) -> Array:
        h = x.astype(jnp.float32)
        mean = h.mean(-1, keepdims=True)
        var = jnp.square(h - mean).mean(-1, keepdims=True)
        h = (h - mean) * jax.lax.rsqrt(var + self.eps)
        if self.scale is not None:
            h = h * self.scale[...] + self.bias[...]
        return h.astype(x.dtype)


class RMSNorm(nnx.Module):
    """HF Llama/Qwen3 RMSNorm: normalise in float32, cast back, then multiply by the weight."""

    def __init__(self, dim: int, *, eps: float, rngs: nnx.Rngs, axis_name: str | None = "embed"):
        self.eps = eps
        self.scale = param(rngs, nnx.initializers.ones, (dim,), (axis_name,))

    def __call__(self, x: Array) -> Array:
        h = x.astype(jnp.float32)
        h = h * jax.lax.rsqrt(jnp.mean(jnp.square(h), -1, keepdims=True) + self.eps)
        return self.scale[...].astype(x.dtype) * h.astype(x.dtype)


def dropout(x: Array, rate: float, rng: Array | None) -> Array:
    """Inverted dropout; identity when `rng` is None (inference) or rate == 0."""
    if rng is None or rate == 0.0:
        return x
    keep = jax.random.bernoulli(rng, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), jnp.zeros_like(x))


def split_or_none(rng: Array | None, n: int) -> list[Array | None]:
    return [None] * n if rng is None else list(jax.random.split(rng, n))


def attention(q: Array, k: Array, v: Array, *, scale: float, mask: Array | None = None) -> Array:
    """Softmax attention with grouped KV heads.

    q: [B, T, N, H]; k, v: [B, S, K, H] with N a multiple of K; mask: bool [B, T, S] (True =
    attend) or None. Logits and softmax in float32. A query with no key to attend to (a left-pad
    position under the causal mask) outputs zeros, as flash attention (the original's LLM
    backend) and torch >= 2.5 SDPA (lerobot's) do. Padded positions' LLM outputs reach the action
    head, which attends to every VL token without a mask (spec 14.2), so this choice is visible.
    """
    b, t, n, h = q.shape
    kv_heads = k.shape[2]
    q = q.reshape(b, t, kv_heads, n // kv_heads, h)
    logits = jnp.einsum("BTKGH,BSKH->BKGTS", q, k).astype(jnp.float32) * scale
    if mask is not None:
        logits = jnp.where(mask[:, None, None], logits, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(logits, axis=-1)
    if mask is not None:
        probs = probs * jnp.any(mask, axis=-1)[:, None, None, :, None]
    probs = probs.astype(v.dtype)
    out = jnp.einsum("BKGTS,BSKH->BTKGH", probs, v)
    return out.reshape(b, t, n, h)


def stack_layers(make: Callable[[nnx.Rngs], nnx.Module], num: int, rngs: nnx.Rngs) -> nnx.Module:
    """Build `num` layers as one module whose parameters carry a leading 'layers' axis."""

    @nnx.split_rngs(splits=num)
    @nnx.vmap(in_axes=(0,), out_axes=0, transform_metadata={nnx.PARTITION_NAME: "layers"})
    def create(r: nnx.Rngs):
        return make(r)

    return create(rngs)


# The model configs' `remat` names (groot_jax.config.REMAT) -> jax.checkpoint policies.
REMAT_POLICIES: dict[str, Callable | None] = {
    "none": None,
    "full": jax.checkpoint_policies.nothing_saveable,
    "dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


def scan_layers(layers: nnx.Module, carry: Any, body: Callable[[nnx.Module, Any, Any], Any],
                xs: Any = None, *, collect: bool = False, remat: str = "none"):
    """Run `carry = body(layer, carry, x)` over stacked layers with `lax.scan`.

    Compile time stays flat in depth. With `collect=True` also returns every layer's output
    stacked on a leading axis (for hidden-state inspection and parity bisection). `remat`: the
    owning config's rematerialisation policy name (see `remat_scan_body`).
    """
    graphdef, state = nnx.split(layers)

    def step(c, inputs):
        layer_state, x = inputs
        out = body(nnx.merge(graphdef, layer_state), c, x)
        return out, (out if collect else None)

    return jax.lax.scan(remat_scan_body(step, remat), carry, (state, xs))


def remat_scan_body(body: Callable, remat: str = "none") -> Callable:
    """`body` under jax.checkpoint with the policy named `remat` (REMAT_POLICIES; a model config
    field, e.g. `LlmConfig.remat`, set for all towers by `GR00TConfig.with_remat`); unchanged for
    "none". Scanned layers then recompute activations in the backward pass; numerics are
    unchanged. Every `lax.scan` over stacked layers passes its body through here."""
    if remat not in REMAT_POLICIES:
        raise ValueError(f"unknown remat policy {remat!r}; known: {sorted(REMAT_POLICIES)}")
    policy = REMAT_POLICIES[remat]
    if policy is None:
        return body
    return jax.checkpoint(body, policy=policy, prevent_cse=False)


# --- Inference layout ----------------------------------------------------------------------------
#
# Measured on XLA:CPU (whose dots go through YNNPACK): a dot with an [in, out] kernel runs ~1.6x
# slower than with [out, in], and a `lax.scan` over stacked layers copies each layer's weights out
# of the stack (a dynamic-slice fusion) on every call -- in the sampler, on every Euler step.
# Transposing or slicing inside the jitted program costs the same copies, so the layout is made
# once, outside jit, after loading: every Dense kernel transposed to [out, in] and every stack of
# layers split into one module per layer, applied unrolled. Values are unchanged (slices and
# transposes), so are the numerics up to the dots' summation order.


def transpose_dense(module: nnx.Module) -> nnx.Module:
    """Every `Dense` in `module` (in place) switched to an [out, in] kernel; returns `module`."""
    for _, m in nnx.iter_modules(module):
        if isinstance(m, Dense) and not m.transposed:
            kernel = m.kernel
            axes = kernel.get_metadata().get("out_sharding")
            kernel.set_value(jnp.asarray(kernel[...]).T)
            if axes is not None:
                kernel.set_metadata(out_sharding=tuple(reversed(axes)))
            m.transposed = True
    return module


def unstack_for_inference(stacked: nnx.Module, *, release: bool = False) -> nnx.List:
    """A module built by `stack_layers` ([L, ...] parameters) as L modules with their own
    arrays, Dense kernels [out, in] (`transpose_dense`); `run_layers` applies them unrolled.

    `release`: empty each stacked array (in place, so also in any state sharing these
    Variables) as soon as it is sliced, so peak memory is one copy of the model plus one
    stacked array."""
    graphdef, state = nnx.split(stacked)
    flat = list(nnx.to_flat_state(state))
    num = flat[0][1].shape[0]
    per_layer: list[list] = [[] for _ in range(num)]
    for path, var in flat:
        value = var[...]
        axes = var.get_metadata().get("out_sharding")
        for i in range(num):
            layer_var = var.replace(value[i])
            if axes is not None:
                layer_var.set_metadata(out_sharding=tuple(axes[1:]))  # drop the 'layers' axis
            per_layer[i].append((path, layer_var))
        if release:
            var.set_value(jnp.zeros((0,), value.dtype))
        del value
    return nnx.List([transpose_dense(nnx.merge(graphdef, nnx.from_flat_state(items)))
                     for items in per_layer])


def is_unrolled(layers: nnx.Module | nnx.List) -> bool:
    """Whether `layers` is in the inference layout (`unstack_for_inference`) or a stack."""
    return isinstance(layers, nnx.List)


def run_layers(layers: nnx.Module | nnx.List, carry: Any,
               body: Callable[[nnx.Module, Any, Any], Any], xs: Any = None, *,
               collect: bool = False, remat: str = "none"):
    """`scan_layers` for either layout: a stack is scanned; the inference layout (a list of
    layers) is applied in a Python loop, `xs` sliced per layer. Same (carry, collected); a
    pytree carry is collected leaf by leaf, as `lax.scan` does."""
    if not is_unrolled(layers):
        return scan_layers(layers, carry, body, xs, collect=collect, remat=remat)
    outs = []
    for i, layer in enumerate(layers):
        x = None if xs is None else jax.tree.map(lambda a, i=i: a[i], xs)
        carry = body(layer, carry, x)
        if collect:
            outs.append(carry)
    return carry, (jax.tree.map(lambda *a: jnp.stack(a), *outs) if collect else None)
