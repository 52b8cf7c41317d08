"""Test-wide settings: a persistent XLA compile cache and parsed absl flags (for Grain)."""
import os
from pathlib import Path

import jax
from absl import flags

flags.FLAGS.mark_as_parsed()  # Grain worker processes read absl flags (google/grain#1355)

_cache = os.environ.get("JAX_TEST_CACHE", str(Path(__file__).resolve().parents[1] / ".jax_cache"))
jax.config.update("jax_compilation_cache_dir", _cache)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
