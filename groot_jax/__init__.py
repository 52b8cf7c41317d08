"""groot-jax: GR00T N1.5 / N1 in JAX + Flax NNX."""
from groot_jax.config import (
                              ActionHeadConfig,
                              DiTConfig,
                              EagleConfig,
                              GR00TConfig,
                              LlmConfig,
                              SiglipConfig,
                              VLSelfAttentionConfig,
                              preset,
)

__all__ = ["ActionHeadConfig", "DiTConfig", "EagleConfig", "GR00TConfig", "LlmConfig",
           "SiglipConfig", "VLSelfAttentionConfig", "preset"]
