"""Rotation conversions in numpy, following pytorch3d's conventions (the original uses pytorch3d).

Representations: matrix [..., 3, 3]; quaternion [..., 4] (w, x, y, z, real part >= 0 after
conversion from a matrix); axis_angle [..., 3]; rotation_6d [..., 6] (the first two ROWS of the
matrix); euler_angles_<abc> [..., 3] with r->X, p->Y, y->Z and R = R_a @ R_b @ R_c.
"""

from __future__ import annotations

import numpy as np

from groot_jax.data.errors import DataError

DIMS = {"matrix": 9, "quaternion": 4, "axis_angle": 3, "rotation_6d": 6}


def rotation_dim(rep: str) -> int:
    return 3 if rep.startswith("euler_angles") else DIMS[rep]


def _convention(rep: str) -> str:
    conv = rep.split("_")[-1]
    if len(conv) != 3 or set(conv) - set("rpy"):
        raise DataError(f"bad euler convention {rep!r}")
    return conv.translate(str.maketrans("rpy", "XYZ"))


def quaternion_to_matrix(q):
    q = np.asarray(q, np.float64)
    r, i, j, k = np.moveaxis(q, -1, 0)
    two_s = 2.0 / (q * q).sum(-1)
    o = np.stack(
        [
            1 - two_s * (j * j + k * k),
            two_s * (i * j - k * r),
            two_s * (i * k + j * r),
            two_s * (i * j + k * r),
            1 - two_s * (i * i + k * k),
            two_s * (j * k - i * r),
            two_s * (i * k - j * r),
            two_s * (j * k + i * r),
            1 - two_s * (i * i + j * j),
        ],
        -1,
    )
    return o.reshape(q.shape[:-1] + (3, 3))


def matrix_to_quaternion(m):
    m = np.asarray(m, np.float64)
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    q_abs = np.sqrt(
        np.maximum(
            0.0,
            np.stack(
                [1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1
            ),
        )
    )
    cands = np.stack(
        [
            np.stack([q_abs[..., 0] ** 2, m21 - m12, m02 - m20, m10 - m01], -1),
            np.stack([m21 - m12, q_abs[..., 1] ** 2, m10 + m01, m02 + m20], -1),
            np.stack([m02 - m20, m10 + m01, q_abs[..., 2] ** 2, m12 + m21], -1),
            np.stack([m10 - m01, m20 + m02, m21 + m12, q_abs[..., 3] ** 2], -1),
        ],
        -2,
    )
    cands = cands / (2.0 * np.maximum(q_abs[..., None], 0.1))
    best = np.argmax(q_abs, -1)
    q = np.take_along_axis(cands, best[..., None, None], -2)[..., 0, :]
    return np.where(q[..., :1] < 0, -q, q)


def axis_angle_to_quaternion(a):
    a = np.asarray(a, np.float64)
    angle = np.linalg.norm(a, axis=-1, keepdims=True)
    half = angle * 0.5
    small = np.abs(angle) < 1e-6
    safe = np.where(small, 1.0, angle)
    s = np.where(small, 0.5 - angle * angle / 48, np.sin(half) / safe)
    return np.concatenate([np.cos(half), a * s], -1)


def quaternion_to_axis_angle(q):
    q = np.asarray(q, np.float64)
    norms = np.linalg.norm(q[..., 1:], axis=-1, keepdims=True)
    half = np.arctan2(norms, q[..., :1])
    angle = 2 * half
    small = np.abs(angle) < 1e-6
    safe = np.where(small, 1.0, angle)
    s = np.where(small, 0.5 - angle * angle / 48, np.sin(half) / safe)
    return q[..., 1:] / s


def _axis_rotation(axis: str, angle):
    c, s = np.cos(angle), np.sin(angle)
    one, zero = np.ones_like(angle), np.zeros_like(angle)
    if axis == "X":
        f = (one, zero, zero, zero, c, -s, zero, s, c)
    elif axis == "Y":
        f = (c, zero, s, zero, one, zero, -s, zero, c)
    else:
        f = (c, -s, zero, s, c, zero, zero, zero, one)
    return np.stack(f, -1).reshape(angle.shape + (3, 3))


def euler_to_matrix(e, convention: str):
    e = np.asarray(e, np.float64)
    m = [_axis_rotation(c, e[..., i]) for i, c in enumerate(convention)]
    return m[0] @ m[1] @ m[2]


def _angle_from_tan(axis, other, data, horizontal, tait_bryan):
    i1, i2 = {"X": (2, 1), "Y": (0, 2), "Z": (1, 0)}[axis]
    if horizontal:
        i2, i1 = i1, i2
    even = (axis + other) in ("XY", "YZ", "ZX")
    if horizontal == even:
        return np.arctan2(data[..., i1], data[..., i2])
    if tait_bryan:
        return np.arctan2(-data[..., i2], data[..., i1])
    return np.arctan2(data[..., i2], -data[..., i1])


def matrix_to_euler(m, convention: str):
    m = np.asarray(m, np.float64)
    i0, i2 = "XYZ".index(convention[0]), "XYZ".index(convention[2])
    tait_bryan = i0 != i2
    if tait_bryan:
        central = np.arcsin(np.clip(m[..., i0, i2] * (-1.0 if i0 - i2 in (-1, 2) else 1.0), -1, 1))
    else:
        central = np.arccos(np.clip(m[..., i0, i0], -1, 1))
    return np.stack(
        [
            _angle_from_tan(convention[0], convention[1], m[..., i2], False, tait_bryan),
            central,
            _angle_from_tan(convention[2], convention[1], m[..., i0, :], True, tait_bryan),
        ],
        -1,
    )


def rotation_6d_to_matrix(d6):
    d6 = np.asarray(d6, np.float64)
    a1, a2 = d6[..., :3], d6[..., 3:]
    b1 = a1 / np.maximum(np.linalg.norm(a1, axis=-1, keepdims=True), 1e-12)
    b2 = a2 - (b1 * a2).sum(-1, keepdims=True) * b1
    b2 = b2 / np.maximum(np.linalg.norm(b2, axis=-1, keepdims=True), 1e-12)
    b3 = np.cross(b1, b2)
    return np.stack([b1, b2, b3], -2)


def matrix_to_rotation_6d(m):
    m = np.asarray(m, np.float64)
    return m[..., :2, :].reshape(m.shape[:-2] + (6,))


def to_matrix(x, rep: str):
    if rep == "matrix":
        return np.asarray(x, np.float64).reshape(np.shape(x)[:-1] + (3, 3))
    if rep == "quaternion":
        return quaternion_to_matrix(x)
    if rep == "axis_angle":
        return quaternion_to_matrix(axis_angle_to_quaternion(x))
    if rep == "rotation_6d":
        return rotation_6d_to_matrix(x)
    if rep.startswith("euler_angles"):
        return euler_to_matrix(x, _convention(rep))
    raise DataError(f"unknown rotation representation {rep!r}")


def from_matrix(m, rep: str):
    if rep == "matrix":
        return np.asarray(m).reshape(np.shape(m)[:-2] + (9,))
    if rep == "quaternion":
        return matrix_to_quaternion(m)
    if rep == "axis_angle":
        return quaternion_to_axis_angle(matrix_to_quaternion(m))
    if rep == "rotation_6d":
        return matrix_to_rotation_6d(m)
    if rep.startswith("euler_angles"):
        return matrix_to_euler(m, _convention(rep))
    raise DataError(f"unknown rotation representation {rep!r}")


def convert(x, src: str, dst: str) -> np.ndarray:
    """[..., dim(src)] -> [..., dim(dst)] as float32 (computed in float64)."""
    x = np.asarray(x)
    if x.shape[-1] != rotation_dim(src):
        raise DataError(f"rotation {src} needs last dim {rotation_dim(src)}, got shape {x.shape}")
    if src == dst:
        return x.astype(np.float32)
    return from_matrix(to_matrix(x, src), dst).astype(np.float32)


# min_max bounds used for converted absolute rotations (spec 9.2)
ROTATION_BOUNDS = {"rotation_6d": 1.0, "quaternion": 1.0, "matrix": 1.0, "axis_angle": np.pi}


def rotation_bounds(rep: str) -> float:
    return np.pi if rep.startswith("euler_angles") else ROTATION_BOUNDS[rep]
