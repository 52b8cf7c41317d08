"""Memory on a TPU, measured without one: `groot-jax train --dry-run --tpu SLICE` compiles the
n1_5_3b train step with libtpu's TPU compiler ahead of time (no chip) and reports its memory
analysis. These are the issue's memory claims: the default fine-tune fits one 16 GiB v5e chip at
the configured batch, the full model fits 8 such chips with FSDP, and a step that cannot fit is
refused (so the "fits" check can fail).

libtpu comes from `make tpu-aot` (.tpu-aot/, installed by `make test`); without it these fail.
Each case runs the CLI in its own process so libtpu never loads into the test process."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from groot_jax.train import tpu_aot

GiB = 2**30


def _dry_run(config: str, tpu: str, *overrides: str) -> tuple[int, str]:
    tpu_aot.library_path()   # fails here, loudly, when libtpu is not installed
    cmd = [sys.executable, "-m", "groot_jax.cli", "train", "--config", config, "--dry-run",
           "--json", "--tpu", tpu, *overrides]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    return p.returncode, p.stdout + p.stderr


def _report(out: str) -> dict:
    return json.loads([ln for ln in out.splitlines() if ln.startswith("{")][-1])


@pytest.mark.slow  # ~4 min of TPU compile; `make slow` runs it
def test_default_finetune_fits_one_v5e_chip():
    rc, out = _dry_run("finetune_n15", "v5e:1x1")
    assert rc == 0, out
    r = _report(out)
    assert r["target"].startswith("TPU v5 lite") and r["devices"] == 1
    assert r["batch_size"] == 8
    # VLM frozen (bf16), action head trained: fp32 master + bf16 Adam moments = 8 bytes a weight.
    assert r["trainable"] == 1_068_806_144 and r["frozen"] == 1_344_716_736
    assert r["state_bytes"] == 8 * r["trainable"] + 2 * r["frozen"] + 3 * 4
    assert r["state_bytes"] < r["peak_bytes"] <= 16 * GiB, r
    print(f"\ndefault fine-tune on v5e:1x1, batch 8: peak {r['peak_bytes'] / GiB:.2f} GiB")


def test_fp32_moments_refused_on_one_v5e_chip():
    # fp32 Adam moments: the train state alone is 14.45 GiB; the TPU compiler refuses the step.
    rc, out = _dry_run("finetune_n15", "v5e:1x1", "optim.moments_dtype=float32",
                       "grad_dtype=float32")
    assert rc == 1, out
    assert "does NOT fit on v5e:1x1" in out and "HBM" in out


@pytest.mark.slow  # ~2.5 min of TPU compile; `make slow` runs it
def test_full_model_fsdp_fits_eight_v5e_chips():
    rc, out = _dry_run("full_n15_fsdp8", "v5e:2x4")
    assert rc == 0, out
    r = _report(out)
    assert r["devices"] == 8 and r["mesh"]["fsdp"] == 8 and r["frozen"] == 0
    assert r["trainable"] == 2_413_522_880
    # fp32 params + two fp32 moments, sharded 8 ways (small arrays replicated): >= 12 B / 8.
    assert r["state_bytes"] >= 12 * r["trainable"] / 8
    assert r["peak_bytes"] <= 16 * GiB, r


def test_topology_names_are_checked():
    with pytest.raises(ValueError, match="GEN:AxB"):
        tpu_aot.parse("v5e-8")
    assert tpu_aot.parse("v5e:2x4") == ("v5e", (2, 4, 1))
    assert tpu_aot.parse("v4:2x2x2") == ("v4", (2, 2, 2))
