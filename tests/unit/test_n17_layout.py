"""Shape-only build of `n1_7_3b` against the released GR00T N1.7 checkpoint layout
(../shared/spec/n17_checkpoint_keys.txt, a meta-device build of lerobot 0.6.1's GR00TN17) and
its parameter counts (N1.7 spec 1.6), plus an exact state-dict round trip at the tiny size."""
import re
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx

from groot_jax.config import GR00TConfig
from groot_jax.convert.keymap import gr00t_entries, ignorable_keys
from groot_jax.convert.state_dict import check_state_dict, from_torch_state_dict, to_torch_state_dict
from tests.unit.test_checkpoint_layout import our_torch_shapes

KEYS = Path(__file__).resolve().parents[3] / "shared" / "spec" / "n17_checkpoint_keys.txt"
LINE = re.compile(r"^(\S+)\s+\(([\d,\s]*)\)")


def released_n17_keys() -> dict[str, tuple[int, ...]]:
    if not KEYS.exists():
        pytest.fail(f"{KEYS} is missing: the repository expects ../shared beside it")
    out = {}
    for line in KEYS.read_text().splitlines():
        m = LINE.match(line.strip())
        if m:
            out[m.group(1)] = tuple(int(s) for s in m.group(2).split(",") if s.strip())
    return out


def test_n1_7_3b_layout_and_parameter_count():
    cfg = GR00TConfig.n1_7_3b()
    released = released_n17_keys()
    assert len(released) == 1031
    params, shapes = our_torch_shapes(cfg)
    tied = ignorable_keys(cfg)
    assert tied <= set(released) | {"backbone.model.lm_head.weight"}
    assert set(released) - set(shapes) <= tied   # only the tied lm_head may be missing
    assert set(shapes) - set(released) == set()
    for key, shape in shapes.items():
        assert released[key] == shape, key

    sizes = {k: int(np.prod(v)) for k, v in shapes.items()}
    part = lambda prefix: sum(v for k, v in sizes.items() if k.startswith(prefix))  # noqa: E731
    assert part("backbone.model.model.visual.") == 406_957_056
    assert part("backbone.model.model.language_model.") == 1_116_542_976
    assert part("action_head.") == 1_620_515_968
    assert sum(sizes.values()) == 3_144_016_000
    # Every parameter of the model is in the table exactly once (nothing unmapped).
    assert sum(x.size for x in jax.tree.leaves(params)) == 3_144_016_000
    check_state_dict(gr00t_entries(cfg), {k: v for k, v in released.items() if k not in tied},
                     nnx.to_pure_dict(params), ignore=tied)


def test_tiny_n1_7_state_dict_round_trip_is_exact_and_tied_head_dropped():
    cfg = GR00TConfig.tiny_n1_7()
    _, shapes = our_torch_shapes(cfg)
    rng = np.random.default_rng(0)
    sd = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
    with_head = dict(sd)
    with_head["backbone.model.lm_head.weight"] = sd[
        "backbone.model.model.language_model.embed_tokens.weight"]
    back = to_torch_state_dict(cfg, from_torch_state_dict(cfg, with_head))
    assert list(back) == list(sd)
    for k in sd:
        np.testing.assert_array_equal(back[k], sd[k], err_msg=k)
