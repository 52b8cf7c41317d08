"""The optimised host video kernels (groot_jax/data/image_transforms.py: planar layout, in-place
buffers, exact replacements of np.mod) and the memoised prompts return exactly the same values as
the straightforward formulation they replaced, which is kept below as the reference (`ref_*`).

That reference is independent of the code under test only where it computes differently: the
resampling passes, colour jitter, HSV conversion, uint8 cast and normalization below. Two inputs
are deliberately the production ones, because a copy would only compare the code with itself:
the antialiased taps (`aa_taps`, checked independently against torch's interpolate in
test_taps_resize_against_torch here and tests/data/test_sample.py) and the crop box (`crop_box`,
torchvision's CenterCrop / RandomCrop arithmetic, checked against an independent centre crop in
tests/data/test_sample.py).
"""

import numpy as np
import pytest

from groot_jax.data import image_transforms as T
from groot_jax.data.errors import DataError
from groot_jax.data.modality import DataConfig
from groot_jax.data.processor import SampleTransform


# ---------------------------------------------------------------- reference (previous implementation)
def ref_resample(x: np.ndarray, axis: int, out_size: int) -> np.ndarray:
    """One separable pass. Accumulation emulates torch's CPU kernel compiled with fused multiply-add:
    out = x0*w0 (float32), then out = fma(xk, wk, out) rounded to float32 once per tap (the float64
    product of two float32 values is exact)."""
    idx, wts = T.aa_taps(x.shape[axis], out_size)  # production taps (see the module docstring)
    shape = [1] * x.ndim
    shape[axis] = out_size
    acc = np.take(x, idx[:, 0], axis=axis) * wts[:, 0].reshape(shape)
    for k in range(1, idx.shape[1]):
        term = np.take(x, idx[:, k], axis=axis).astype(np.float64) * wts[:, k].astype(
            np.float64
        ).reshape(shape)
        acc = (acc + term).astype(np.float32)
    return acc


def ref_resize_aa(x: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """float32 [..., H, W, C] -> [..., out_h, out_w, C]; bilinear, antialias, align_corners=False
    (torchvision Resize on tensors): horizontal pass first, then vertical."""
    x = np.asarray(x, np.float32)
    h, w = x.shape[-3], x.shape[-2]
    if w != out_w:
        x = ref_resample(x, x.ndim - 2, out_w)
    if h != out_h:
        x = ref_resample(x, x.ndim - 3, out_h)
    return x


def ref_gray(x):
    return 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]


def ref_rgb_to_hsv(r, g, b):
    """torchvision's _rgb2hsv on float planes in [0, 1] -> (h, s, v) planes, h in [0, 1)."""
    maxc = np.maximum(np.maximum(r, g), b)
    minc = np.minimum(np.minimum(r, g), b)
    eqc = maxc == minc
    cr = maxc - minc
    one = np.float32(1)
    s = cr / np.where(eqc, one, maxc)
    crd = np.where(eqc, one, cr)
    rc, gc, bc = (maxc - r) / crd, (maxc - g) / crd, (maxc - b) / crd
    h = np.where(maxc == r, bc - gc, np.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = np.mod(h * np.float32(1 / 6) + one, one)
    return h, s, maxc


def ref_hsv_to_rgb(h, s, v):
    """Inverse of _rgb_to_hsv (the sector formula torchvision's _hsv2rgb implements) -> [..., 3]."""
    h6 = h * np.float32(6)
    vs = v * s
    out = []
    for n in (5.0, 3.0, 1.0):
        k = np.mod(np.float32(n) + h6, np.float32(6))
        out.append(v - vs * np.clip(np.minimum(k, np.float32(4) - k), 0, 1))
    return np.stack(out, -1)


def ref_color_jitter(
    x: np.ndarray,
    rng: np.random.Generator,
    brightness: float,
    contrast: float,
    saturation: float,
    hue: float,
) -> np.ndarray:
    """torchvision ColorJitter semantics on float [T, H, W, 3] in [0, 1]: random order of the four
    adjustments, factors uniform in [1-b, 1+b] etc., hue shift uniform in [-hue, hue]. One set of
    factors per call (the original applies one transform to the whole [T] stack of a view)."""
    fb = np.float32(rng.uniform(max(0, 1 - brightness), 1 + brightness))
    fc = np.float32(rng.uniform(max(0, 1 - contrast), 1 + contrast))
    fs = np.float32(rng.uniform(max(0, 1 - saturation), 1 + saturation))
    fh = np.float32(rng.uniform(-hue, hue))
    for op in rng.permutation(4):
        if op == 0:
            x = np.clip(x * fb, 0, 1)
        elif op == 1:
            mean = ref_gray(x).mean(axis=(-2, -1), keepdims=True, dtype=np.float32)[..., None]
            x = np.clip(fc * x + (1 - fc) * mean, 0, 1)
        elif op == 2:
            g = ref_gray(x)[..., None]
            x = np.clip(fs * x + (1 - fs) * g, 0, 1)
        else:
            r, g, b = (np.ascontiguousarray(x[..., c]) for c in range(3))
            h, sat, v = ref_rgb_to_hsv(r, g, b)
            x = ref_hsv_to_rgb(np.mod(h + fh, np.float32(1)), sat, v)
    return x.astype(np.float32, copy=False)


def ref_video_transform(
    frames: np.ndarray, cfg: DataConfig, rng: np.random.Generator | None, key: str = "video"
) -> np.ndarray:
    """uint8 [T, H, W, 3] -> uint8 [T, S, S, 3] (S = cfg.image_size). rng None = eval."""
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise DataError(f"{key}: expected uint8 [T,H,W,3], got {frames.dtype} {frames.shape}")
    x = frames.astype(np.float32) / 255.0
    h, w = x.shape[1:3]
    top, left, ch, cw = T.crop_box(h, w, cfg.crop_scale, rng)  # production crop (module docstring)
    x = x[:, top : top + ch, left : left + cw]
    x = ref_resize_aa(x, cfg.image_size, cfg.image_size)
    if rng is not None and cfg.color_jitter is not None:
        x = ref_color_jitter(x, rng, *cfg.color_jitter)
    return (x * 255).astype(np.uint8)


def ref_to_pixel_values(u8: np.ndarray) -> np.ndarray:
    return ((u8.astype(np.float32) / 255.0 - 0.5) / 0.5).astype(np.float32)


# ---------------------------------------------------------------- tests

CFG = DataConfig(
    name="t",
    embodiment_tag="new_embodiment",
    video_keys=("video.front",),
    state_keys=(),
    action_keys=(),
    language_keys=(),
)


def _frames(rng, t, h, w, flat=True):
    """Random uint8 frames with flat regions, grey pixels and saturated values (the cases where a
    1-ulp difference would flip the truncating uint8 cast or the HSV branches)."""
    x = rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8)
    if flat:
        x[:, : h // 3] = rng.integers(0, 256, (1, 1, 1, 3), dtype=np.uint8)  # flat colour band
        g = rng.integers(0, 256, (t, h // 4, w, 1), dtype=np.uint8)
        x[:, h // 3 : h // 3 + h // 4] = g  # grey pixels (r == g == b)
        x[:, -3:] = 255
        x[:, -5:-3] = 0
    return x


@pytest.mark.parametrize(
    "hw,out", [((256, 256), 224), ((60, 80), 224), ((480, 640), 224), ((243, 243), 224), ((100, 37), 64)]
)
def test_resize_equals_reference(hw, out):
    rng = np.random.default_rng(hw[0] * 1000 + hw[1])
    u8 = _frames(rng, 2, *hw)
    for x in (u8.astype(np.float32) / 255.0, rng.random((2, *hw, 3), dtype=np.float32)):
        got = T.resize_aa(x, out, out + 3)
        want = ref_resize_aa(x, out, out + 3)
        assert got.dtype == np.float32 and got.shape == want.shape
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    "hw,out", [((256, 256), 224), ((60, 80), 224), ((480, 640), 224), ((243, 243), 224), ((100, 37), 64)]
)
def test_taps_resize_against_torch(hw, out):
    """The independent check of the taps the reference above shares with the code: torch's own
    antialiased bilinear resize. Equal to float32 rounding (bit for bit on most shapes; torch's
    vectorised kernels round a few values of large downscales differently)."""
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(hw[0] + out).random((2, *hw, 3), dtype=np.float32)
    want = torch.nn.functional.interpolate(
        torch.from_numpy(x).permute(0, 3, 1, 2), size=(out, out + 3), mode="bilinear",
        antialias=True, align_corners=False,
    ).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(T.resize_aa(x, out, out + 3), want, rtol=0, atol=1e-6)


def test_color_jitter_equals_reference():
    for seed in range(40):
        rng = np.random.default_rng(seed)
        x = _frames(rng, 1 + seed % 2, 48, 40).astype(np.float32) / 255.0
        if seed % 3 == 0:  # resized (non-grid) values
            x = ref_resize_aa(x, 37, 41)
        params = (0.3, 0.4, 0.5, 0.08) if seed % 4 else (0.9, 0.9, 0.9, 0.5)
        got = T.color_jitter(x, np.random.default_rng(seed), *params)
        want = ref_color_jitter(x, np.random.default_rng(seed), *params)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, want)


def test_hsv_roundtrip_equals_reference_on_edge_values():
    v = np.array([0, 1e-8, 0.25, 0.5, 1 - 2**-24, 1], np.float32)
    r, g, b = (a.ravel() for a in np.meshgrid(v, v, v, indexing="ij"))
    h, s, m = T._rgb_to_hsv(r.copy(), g.copy(), b.copy())
    hr, sr, mr = ref_rgb_to_hsv(r, g, b)
    for a, e in ((h, hr), (s, sr), (m, mr)):
        np.testing.assert_array_equal(a, e)
    for fh in (-0.5, -0.08, 0.0, 0.08, 0.5):
        hh = h + np.float32(fh)
        np.add(hh, np.float32(1), out=hh, where=hh < 0)
        np.subtract(hh, np.float32(1), out=hh, where=hh >= 1)
        np.testing.assert_array_equal(hh, np.mod(hr + np.float32(fh), np.float32(1)))
        out = T._hsv_to_rgb_into(hh, s, m, np.empty((3, hh.size), np.float32))
        np.testing.assert_array_equal(np.moveaxis(out, 0, -1), ref_hsv_to_rgb(hh, sr, mr))


@pytest.mark.parametrize("hw", [(256, 256), (60, 80), (120, 160)])
@pytest.mark.parametrize("jitter", [None, (0.3, 0.4, 0.5, 0.08)])
def test_video_transform_equals_reference(hw, jitter):
    import dataclasses

    cfg = dataclasses.replace(CFG, color_jitter=jitter)
    for seed in range(6):
        frames = _frames(np.random.default_rng(seed), 1 + seed % 2, *hw)
        for rng_seed in (None, seed):
            r1, r2 = (
                (None, None)
                if rng_seed is None
                else (np.random.default_rng(rng_seed), np.random.default_rng(rng_seed))
            )
            got = T.video_transform(frames, cfg, r1)
            want = ref_video_transform(frames, cfg, r2)
            assert got.dtype == np.uint8 and got.shape == want.shape == (frames.shape[0], 224, 224, 3)
            np.testing.assert_array_equal(got, want)
            if r1 is not None:  # same number of draws: later samples see the same stream
                assert r1.integers(1 << 30) == r2.integers(1 << 30)
            np.testing.assert_array_equal(
                T.to_pixel_values(got), ref_to_pixel_values(want)
            )


def test_views_to_pixel_values_equals_reference_stack():
    """Several views: per-view transforms drawn in key order, images ordered (t v), as the previous
    SampleTransform did with np.stack(views, 1)."""
    import dataclasses

    cfg = dataclasses.replace(
        CFG, video_keys=("video.a", "video.b", "video.c"), color_jitter=(0.3, 0.4, 0.5, 0.08)
    )
    for seed in range(4):
        rng = np.random.default_rng(seed)
        views = [_frames(rng, 2, 120, 160) for _ in range(3)]
        for train in (False, True):
            r1, r2 = (
                (np.random.default_rng(seed), np.random.default_rng(seed)) if train else (None, None)
            )
            got = T.views_to_pixel_values(views, cfg, r1)
            want = [ref_video_transform(v, cfg, r2) for v in views]
            want = ref_to_pixel_values(np.stack(want, 1).reshape((-1, 224, 224, 3)))
            assert got.dtype == np.float32 and got.shape == (6, 224, 224, 3)
            np.testing.assert_array_equal(got, want)
    with pytest.raises(DataError):
        T.views_to_pixel_values([views[0], views[1][:1], views[2]], cfg, None)


def test_workspace_does_not_alias_results():
    frames = _frames(np.random.default_rng(0), 1, 64, 64)
    a = T.video_transform(frames, CFG, None)
    b = T.video_transform(255 - frames, CFG, None)
    np.testing.assert_array_equal(a, ref_video_transform(frames, CFG, None))
    assert not np.shares_memory(a, b)
    x = frames.astype(np.float32) / 255.0
    r1 = T.resize_aa(x, 32, 32)
    r2 = T.resize_aa(x[..., ::-1], 32, 32)
    assert not np.shares_memory(r1, r2)
    np.testing.assert_array_equal(r1, ref_resize_aa(x, 32, 32))
    x0 = x.copy()
    T.color_jitter(x, np.random.default_rng(0), 0.3, 0.4, 0.5, 0.08)
    np.testing.assert_array_equal(x, x0)  # input untouched


def test_large_inputs_are_not_kept_in_the_workspace():
    x = np.random.default_rng(0).random((40, 120, 160, 3), dtype=np.float32)  # ~9 MB, f64 > 16 MB
    np.testing.assert_array_equal(T.resize_aa(x, 60, 70), ref_resize_aa(x, 60, 70))
    assert all(b.nbytes <= T._WS_MAX_BYTES for b in T._WS.bufs.values())


def test_video_transform_rejects_bad_frames():
    with pytest.raises(DataError):
        T.video_transform(np.zeros((1, 8, 8, 3), np.float32), CFG, None)


def test_prompt_memo_returns_fresh_equal_arrays(tokenizer_dir):
    from groot_jax.data.prompt import PromptTokenizer

    tok = PromptTokenizer(str(tokenizer_dir))
    st = SampleTransform.__new__(SampleTransform)
    st.tokenizer = tok
    for n, text in [(1, "pick up the cube"), (2, "pick up the cube"), (1, "open the drawer")] * 2:
        ids = st._input_ids(n, text)
        np.testing.assert_array_equal(ids, tok(n, text))
        ids[:] = -1  # callers may modify the returned array without touching the cache
    assert len(st._prompt_cache) == 3
    import pickle

    assert pickle.loads(pickle.dumps(st))._prompt_cache == {}
