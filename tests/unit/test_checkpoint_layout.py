"""Shape-only builds of the real presets against the released checkpoint layout."""
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx

from groot_jax.config import GR00TConfig
from groot_jax.convert.keymap import gr00t_entries, ignorable_keys, torch_shape
from groot_jax.convert.state_dict import (
    StateDictError,
    _get,
    check_state_dict,
    from_torch_state_dict,
    to_torch_state_dict,
)
from groot_jax.models import groot

SHARED = Path(__file__).resolve().parents[3] / "shared"
KEYS_TSV = SHARED / "spec" / "n15_checkpoint_keys.tsv"


def released_n15_keys() -> dict[str, tuple[int, ...]]:
    if not KEYS_TSV.exists():
        pytest.fail(f"{KEYS_TSV} is missing: the repository expects ../shared beside it")
    out = {}
    for line in KEYS_TSV.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, shape = line.split("\t")
        out[key] = tuple(int(s) for s in shape.strip("()").split(",") if s.strip())
    return out


def torch_shapes(entries, pure: dict) -> dict[str, tuple[int, ...]]:
    """{torch key: the torch shape of our parameter} for keymap `entries` over `pure` params."""
    shapes = {}
    for e in entries:
        ours = tuple(_get(pure, e.path).shape)
        shapes[e.torch_key] = torch_shape(e.kind, ours[1:] if e.layer is not None else ours)
    return shapes


def our_torch_shapes(cfg):
    _, params = groot.abstract(cfg)
    return params, torch_shapes(gr00t_entries(cfg), nnx.to_pure_dict(params))


def test_n15_3b_layout_and_parameter_count():
    cfg = GR00TConfig.n1_5_3b()
    released = released_n15_keys()
    assert len(released) == 899
    params, shapes = our_torch_shapes(cfg)
    tied = ignorable_keys(cfg)
    assert set(released) - set(shapes) == tied  # only the tied lm_head is not ours
    assert set(shapes) - set(released) == set()
    for key, shape in shapes.items():
        assert released[key] == shape, key

    sizes = {k: int(np.prod(v)) for k, v in shapes.items()}
    assert sum(sizes.values()) == 2_413_522_880
    assert sum(v for k, v in sizes.items() if k.startswith("backbone.")) == 1_344_716_736
    assert sum(v for k, v in sizes.items() if k.startswith("action_head.")) == 1_068_806_144
    # Every parameter of the model is in the table exactly once (nothing unmapped).
    assert sum(x.size for x in jax.tree.leaves(params)) == 2_413_522_880
    # An abstract state passes the full key/shape check (what an import will do).
    check_state_dict(gr00t_entries(cfg), released, nnx.to_pure_dict(params), ignore=tied)


def test_n1_2b_dit_matches_published_count():
    """N1's DiT parameter count is printed by the N1 finetuning notebook (spec App. B)."""
    _, shapes = our_torch_shapes(GR00TConfig.n1_2b())
    dit = sum(int(np.prod(s)) for k, s in shapes.items() if k.startswith("action_head.model."))
    assert dit == 537_803_776


def _random_state_dict(cfg, seed=0):
    _, shapes = our_torch_shapes(cfg)
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}


@pytest.mark.parametrize("preset", ["tiny", "tiny_n1"])
def test_state_dict_round_trip_is_exact(preset):
    cfg = GR00TConfig.tiny() if preset == "tiny" else GR00TConfig.tiny_n1()
    sd = _random_state_dict(cfg)
    params = from_torch_state_dict(cfg, sd)
    back = to_torch_state_dict(cfg, params)
    assert list(back) == list(sd)
    for k in sd:
        np.testing.assert_array_equal(back[k], sd[k], err_msg=k)


def test_lerobot_prefix_and_tied_head_accepted():
    cfg = GR00TConfig.tiny()
    sd = _random_state_dict(cfg)
    emb = sd["backbone.eagle_model.language_model.model.embed_tokens.weight"]
    wrapped = {f"_groot_model.{k}": v for k, v in sd.items()}
    wrapped["_groot_model.backbone.eagle_model.language_model.lm_head.weight"] = emb
    back = to_torch_state_dict(cfg, from_torch_state_dict(cfg, wrapped))
    np.testing.assert_array_equal(back["action_head.vlln.bias"], sd["action_head.vlln.bias"])


def test_errors_name_missing_unexpected_and_misshaped_keys():
    cfg = GR00TConfig.tiny()
    sd = _random_state_dict(cfg)
    del sd["action_head.future_tokens.weight"]
    sd["action_head.extra.weight"] = np.zeros(3, np.float32)
    sd["action_head.vlln.weight"] = np.zeros(7, np.float32)
    with pytest.raises(StateDictError) as err:
        from_torch_state_dict(cfg, sd, source="my_ckpt/model.safetensors")
    msg = str(err.value)
    assert "my_ckpt/model.safetensors" in msg
    assert "missing" in msg and "action_head.future_tokens.weight" in msg
    assert "unexpected" in msg and "action_head.extra.weight" in msg
    assert "action_head.vlln.weight: expected (64,), found (7,)" in msg


def test_n1_checkpoint_refused_by_n15_config():
    sd = _random_state_dict(GR00TConfig.tiny_n1())
    with pytest.raises(StateDictError, match="backbone.model.mlp1.0.weight"):
        from_torch_state_dict(GR00TConfig.tiny(), sd)
