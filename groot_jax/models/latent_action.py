"""Latent action model: a VQ-VAE over frame pairs (x_t, x_{t+H}) (GR00T N1 paper, section 2.3).

Encoder over both frames (and their difference) -> continuous embedding z_e (the *latent action*,
float[B, N, D]) -> vector quantizer (straight-through estimator, codebook + commitment loss, usage
EMA and dead-code restart) -> decoder that predicts x_{t+H} as x_t plus a residual computed from
x_t features and the quantized latent z_q.

Images are float[B, S, S, 3] in [-1, 1]. Letters: B batch, N latent tokens, D latent width,
K codes.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from groot_jax.models.layers import Dense

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class LatentActionConfig:
    image_size: int = 32
    horizon: int = 1
    patch_size: int = 4  # the first conv is a patchify conv (kernel = stride = patch_size)
    channels: tuple[int, ...] = (32, 64)  # widths: patchify conv, then stride-2 3x3 convs
    hidden: int = 256
    num_tokens: int = 1  # N
    latent_dim: int = 8  # D
    num_codes: int = 32  # K
    commitment: float = 0.25
    usage_decay: float = 0.95  # EMA of the per-code assignment frequency
    dead_fraction: float = 0.03  # a code is dead when its usage EMA < dead_fraction / K

    def __post_init__(self):
        if self.image_size % (self.patch_size * 2 ** (len(self.channels) - 1)):
            raise ValueError(f"image_size={self.image_size} not divisible by patch_size * "
                             f"2**{len(self.channels) - 1}")
        for name in ("image_size", "horizon", "hidden", "num_tokens", "latent_dim", "num_codes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"LatentActionConfig.{name} must be positive")

    @classmethod
    def tiny(cls, **kw) -> "LatentActionConfig":
        """Tests and the synthetic world: 32x32 frames, 16 codes of width 8."""
        return cls(**{"image_size": 32, "channels": (16, 32), "hidden": 128, "num_codes": 16, **kw})

    @classmethod
    def small(cls, **kw) -> "LatentActionConfig":
        """64x64 frames, 4 tokens of width 32, 64 codes."""
        return cls(**{"image_size": 64, "channels": (32, 64, 128), "hidden": 512, "num_tokens": 4,
                      "latent_dim": 32, "num_codes": 64, **kw})

    @property
    def action_dim(self) -> int:
        """Width of the flattened latent action (N * D): the flow-matching target dimension."""
        return self.num_tokens * self.latent_dim


class CodeUsage(nnx.Variable):
    """Non-trainable EMA of how often each code is picked."""


def feature_size(image_size: int, patch_size: int, channels: tuple[int, ...]) -> int:
    return image_size // (patch_size * 2 ** (len(channels) - 1))


class ConvStack(nnx.Module):
    """Patchify conv, then stride-2 3x3 convs, GELU after each:
    float[B, S, S, C_in] -> float[B, F, F, C_L] with F = S / (patch * 2^(L-1))."""

    def __init__(self, in_ch: int, patch: int, channels: tuple[int, ...], *, rngs: nnx.Rngs):
        self.patch = nnx.Conv(in_ch, channels[0], (patch, patch), strides=patch, padding="VALID",
                              rngs=rngs)
        self.convs = nnx.List([nnx.Conv(a, b, (3, 3), strides=2, rngs=rngs)
                               for a, b in zip(channels[:-1], channels[1:], strict=True)])

    def __call__(self, x: Array) -> Array:
        x = jax.nn.gelu(self.patch(x))
        for conv in self.convs:
            x = jax.nn.gelu(conv(x))
        return x


class VectorQuantizer(nnx.Module):
    """Nearest-code quantization with a straight-through gradient (van den Oord et al., 2017)."""

    def __init__(self, num_codes: int, dim: int, *, rngs: nnx.Rngs):
        self.codebook = nnx.Param(jax.random.normal(rngs.params(), (num_codes, dim)) * 0.5)
        # Zero usage: every code is "dead" at the first training step, so the codebook is
        # initialised from encoder outputs (data-dependent init through the restart path).
        self.usage = CodeUsage(jnp.zeros((num_codes,)))

    def __call__(self, z_e: Array) -> dict[str, Array]:
        """z_e: float[..., D] -> z_q (straight-through), codes int[...], one-hot float[..., K]."""
        cb = self.codebook[...]
        d2 = (jnp.sum(z_e ** 2, -1, keepdims=True) - 2 * z_e @ cb.T + jnp.sum(cb ** 2, -1))
        codes = jnp.argmin(d2, -1)
        e = cb[codes]
        return {"z_q": z_e + jax.lax.stop_gradient(e - z_e), "codes": codes,
                "one_hot": jax.nn.one_hot(codes, cb.shape[0]),
                "codebook_loss": jnp.mean((jax.lax.stop_gradient(z_e) - e) ** 2),
                "commit_loss": jnp.mean((z_e - jax.lax.stop_gradient(e)) ** 2)}


def update_usage(usage: Array, one_hot: Array, decay: float) -> Array:
    """usage float[K], one_hot float[..., K] -> EMA of the batch assignment frequency."""
    freq = one_hot.reshape(-1, one_hot.shape[-1]).mean(0)
    return decay * usage + (1 - decay) * freq


def restart_dead_codes(codebook: Array, usage: Array, z_e: Array, key: Array,
                       dead_fraction: float) -> tuple[Array, Array]:
    """Replace every code whose usage EMA is below dead_fraction/K by a random encoder output.

    codebook float[K, D], usage float[K], z_e float[M, D] (this batch) -> (codebook, usage).
    Pure and jittable; restarted codes get usage 1/K so they are not restarted again at once.
    """
    k = codebook.shape[0]
    dead = usage < dead_fraction / k
    pick = jax.random.randint(key, (k,), 0, z_e.shape[0])
    noise = 0.01 * jax.random.normal(jax.random.fold_in(key, 1), codebook.shape)
    new_cb = jnp.where(dead[:, None], jax.lax.stop_gradient(z_e[pick]) + noise, codebook)
    return new_cb, jnp.where(dead, 1.0 / k, usage)


class LatentActionModel(nnx.Module):
    def __init__(self, cfg: LatentActionConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        feat = feature_size(cfg.image_size, cfg.patch_size, cfg.channels)
        flat = feat * feat * cfg.channels[-1]
        self.encoder = ConvStack(9, cfg.patch_size, cfg.channels, rngs=rngs)
        self.enc_fc1 = Dense(flat, cfg.hidden, rngs=rngs)
        self.enc_fc2 = Dense(cfg.hidden, cfg.action_dim, rngs=rngs)
        self.vq = VectorQuantizer(cfg.num_codes, cfg.latent_dim, rngs=rngs)
        c, p = cfg.channels[0], cfg.patch_size
        self.context = ConvStack(3, p, (c,), rngs=rngs)
        self.latent_proj = Dense(cfg.action_dim, cfg.hidden, rngs=rngs)
        self.film = Dense(cfg.hidden, 2 * c, rngs=rngs)
        self.dec_convs = nnx.List([nnx.Conv(c, c, (3, 3), rngs=rngs) for _ in range(2)])
        self.out = Dense(c, p * p * 3, rngs=rngs, kernel_init=nnx.initializers.zeros)

    def encode(self, x0: Array, x1: Array) -> Array:
        """x0, x1: float[B, S, S, 3] -> latent action z_e float[B, N, D] (pre-quantization)."""
        h = self.encoder(jnp.concatenate([x0, x1, x1 - x0], -1))
        h = jax.nn.gelu(self.enc_fc1(h.reshape(h.shape[0], -1)))
        return self.enc_fc2(h).reshape(-1, self.cfg.num_tokens, self.cfg.latent_dim)

    def decode(self, x0: Array, z_q: Array) -> Array:
        """x0 float[B, S, S, 3], z_q float[B, N, D] -> predicted x1 float[B, S, S, 3]."""
        h = self.context(x0)  # [B, S/p, S/p, C]
        z = jax.nn.gelu(self.latent_proj(z_q.reshape(z_q.shape[0], -1)))
        scale, shift = jnp.split(self.film(z), 2, -1)
        h = h * (1 + scale[:, None, None]) + shift[:, None, None]
        for conv in self.dec_convs:
            h = h + jax.nn.gelu(conv(h))
        b, f, _, _ = h.shape
        p = self.cfg.patch_size
        r = self.out(h).reshape(b, f, f, p, p, 3).transpose(0, 1, 3, 2, 4, 5)  # depth-to-space
        return x0 + r.reshape(b, f * p, f * p, 3)

    def __call__(self, x0: Array, x1: Array) -> dict[str, Array]:
        """Returns named intermediates: z_e, z_q, codes, one_hot, x1_hat and the loss terms."""
        z_e = self.encode(x0, x1)
        out = self.vq(z_e)
        out["z_e"] = z_e
        out["x1_hat"] = self.decode(x0, out["z_q"])
        out["recon_loss"] = jnp.mean((out["x1_hat"] - x1) ** 2)
        out["loss"] = (out["recon_loss"] + out["codebook_loss"]
                       + self.cfg.commitment * out["commit_loss"])
        return out
