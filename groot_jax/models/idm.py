"""Inverse dynamics model (GR00T N1 paper, section 2.3): frames x_t and x_{t+H}, optionally the
state s_t, -> the action chunk a_{t:t+H} float[B, H, A] between them.

Images are float[B, S, S, 3] in [-1, 1]; actions are in the dataset's (normalised) units.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from groot_jax.models.latent_action import ConvStack, feature_size
from groot_jax.models.layers import Dense

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class IDMConfig:
    image_size: int = 32
    horizon: int = 4  # H: frames apart, and the chunk length
    action_dim: int = 2  # A
    state_dim: int = 0  # S; 0 = frames only
    patch_size: int = 4
    channels: tuple[int, ...] = (32, 64)
    hidden: int = 256

    def __post_init__(self):
        if self.image_size % (self.patch_size * 2 ** (len(self.channels) - 1)):
            raise ValueError(f"image_size={self.image_size} not divisible by patch_size * "
                             f"2**{len(self.channels) - 1}")
        for name in ("image_size", "horizon", "action_dim", "hidden"):
            if getattr(self, name) <= 0:
                raise ValueError(f"IDMConfig.{name} must be positive")
        if self.state_dim < 0:
            raise ValueError("IDMConfig.state_dim must be >= 0")

    @classmethod
    def tiny(cls, **kw) -> "IDMConfig":
        return cls(**{"image_size": 32, "channels": (16, 32), "hidden": 128, **kw})

    @classmethod
    def small(cls, **kw) -> "IDMConfig":
        return cls(**{"image_size": 64, "horizon": 16, "channels": (32, 64, 128), "hidden": 512, **kw})


class InverseDynamicsModel(nnx.Module):
    def __init__(self, cfg: IDMConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        feat = feature_size(cfg.image_size, cfg.patch_size, cfg.channels)
        self.encoder = ConvStack(9, cfg.patch_size, cfg.channels, rngs=rngs)
        self.fc1 = Dense(feat * feat * cfg.channels[-1] + cfg.state_dim, cfg.hidden, rngs=rngs)
        self.fc2 = Dense(cfg.hidden, cfg.hidden, rngs=rngs)
        self.head = Dense(cfg.hidden, cfg.horizon * cfg.action_dim, rngs=rngs)

    def __call__(self, x0: Array, x1: Array, state: Array | None = None) -> Array:
        """x0, x1: float[B, S, S, 3]; state: float[B, S_dim] | None -> float[B, H, A]."""
        h = self.encoder(jnp.concatenate([x0, x1, x1 - x0], -1))
        h = h.reshape(h.shape[0], -1)
        if self.cfg.state_dim:
            if state is None:
                raise ValueError("this IDM was configured with state_dim > 0; pass state")
            h = jnp.concatenate([h, state], -1)
        h = jax.nn.gelu(self.fc2(jax.nn.gelu(self.fc1(h))))
        return self.head(h).reshape(-1, self.cfg.horizon, self.cfg.action_dim)
