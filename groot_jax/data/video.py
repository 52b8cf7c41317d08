"""PyAV decoding of frames at exact timestamps, with a decoder cache.

`VideoDecoder.frames(path, timestamps)` returns uint8 [T, H, W, 3] (RGB); `frames_yuv420` returns the
decoded YUV 4:2:0 planes themselves (no RGB conversion on the host; see
groot_jax/data/device_augment.py, which converts them on the accelerator). Each requested timestamp
must match a decoded frame's presentation time within `tolerance_s` (default: 0.4 / fps as in
lerobot's 1e-4 s check scaled to be robust to pts rounding); otherwise a DataError names the file and
timestamp. This rules out the "first frame forever" failure: a decoder never substitutes a frame.

The cache keeps up to `max_open` containers open (LRU) and, per file, the position of the last
decoded frame, so reading forward (the next frame, or a few frames later) continues decoding
without a seek; reading backward or far ahead seeks to the preceding keyframe. Only the requested
frame is converted to RGB, with a swscale context kept per open file.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
from fractions import Fraction

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from groot_jax.data.errors import DataError

# A forward gap (seconds) up to which we decode through instead of seeking, while the file's
# keyframe interval is unknown. Once two keyframes have been decoded in one run, the limit is half
# that interval plus a frame: a seek decodes on average half a GOP from its keyframe, so decoding
# through a longer gap costs more (with lerobot's GOP of 2, random reads then always seek, and
# sequential reads never do).
_FORWARD_DECODE_S = 0.5


@dataclasses.dataclass
class _Open:
    container: av.container.InputContainer
    stream: av.video.stream.VideoStream
    time_base: Fraction
    fps: float
    tb: float = 0.0  # time_base as a float: Fraction arithmetic per decoded frame costs ~5 us
    frames: object = None  # generator of decoded frames, positioned after `last_t`
    last_t: float = -1.0
    last_frame: av.VideoFrame | None = None  # the decoded frame at `last_t`
    last_rgb: np.ndarray | None = None  # its RGB conversion, once asked for
    last_key_t: float | None = None  # the latest keyframe decoded since the last seek
    key_interval: float | None = None  # the longest keyframe interval seen so far (seconds)
    # One reformatter per open file: `frame.to_ndarray(format="rgb24")` builds a new swscale
    # context for every frame that follows a seek (~0.4 ms of a ~1.2 ms random access at 256x256);
    # a kept reformatter reuses it (same conversion, same pixels).
    reformatter: VideoReformatter = dataclasses.field(default_factory=VideoReformatter)

    def rgb(self) -> np.ndarray:
        # Read-only: the array is kept as `last_rgb` and handed out again without a copy.
        if self.last_rgb is None:
            a = self.reformatter.reformat(self.last_frame, format="rgb24").to_ndarray()
            a.flags.writeable = False
            self.last_rgb = a
        return self.last_rgb


# The frame colour tags whose yuv420p -> RGB conversion the accelerator reproduces (tables in
# groot_jax/data/yuv_tables.py): index -> (AVColorSpace, AVColorRange) of a representative frame.
# BT.601 (SMPTE 170M / BT.470BG, and untagged frames, which swscale treats as BT.601) and BT.709,
# each in limited ("MPEG", and untagged) or full ("JPEG") range.
YUV_CONVERSIONS = ((6, 1), (1, 1), (6, 2), (1, 2))
_BT601_TAGS, _BT709_TAGS = (2, 5, 6), (1,)  # AVCOL_SPC_UNSPECIFIED / BT470BG / SMPTE170M, BT709
_LIMITED_TAGS, _FULL_TAGS = (0, 1), (2,)  # AVCOL_RANGE_UNSPECIFIED / MPEG, JPEG


def yuv_conversion(colorspace: int, color_range: int, path: str = "") -> int:
    """Index into YUV_CONVERSIONS of the conversion swscale applies to frames with these tags."""
    matrix = 0 if colorspace in _BT601_TAGS else 1 if colorspace in _BT709_TAGS else None
    full = False if color_range in _LIMITED_TAGS else True if color_range in _FULL_TAGS else None
    if matrix is None or full is None:
        raise DataError(
            f"{path}: YUV transport supports BT.601 / BT.709 frames in limited or full range; this "
            f"video is tagged colorspace={colorspace}, color_range={color_range} (use "
            "PipelineConfig(device_yuv=False) for this dataset)"
        )
    return matrix + 2 * full


@dataclasses.dataclass(frozen=True)
class Yuv420Frame:
    """One decoded yuv420p frame as zero-copy read-only views of its planes (they keep the frame
    alive): y uint8 [H, W], u and v uint8 [H/2, W/2]; `conversion`: index into YUV_CONVERSIONS of
    the RGB conversion swscale applies to it (from the frame's colour tags)."""

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray
    conversion: int


def _plane(p, h: int, w: int) -> np.ndarray:
    a = np.frombuffer(p, np.uint8).reshape(h, p.line_size)[:, :w]
    a.flags.writeable = False
    return a


def yuv420_planes(frame: av.VideoFrame, path: str) -> Yuv420Frame:
    if frame.format.name != "yuv420p" or frame.width % 2 or frame.height % 2:
        raise DataError(
            f"{path}: YUV transport needs yuv420p video of even size, got {frame.format.name} "
            f"{frame.width}x{frame.height} (use PipelineConfig(device_yuv=False) for this dataset)"
        )
    h, w = frame.height, frame.width
    y, u, v = frame.planes
    conversion = yuv_conversion(int(frame.colorspace), int(frame.color_range), path)
    return Yuv420Frame(_plane(y, h, w), _plane(u, h // 2, w // 2), _plane(v, h // 2, w // 2),
                       conversion)


class VideoDecoder:
    """Decoder cache, one set of open files per thread (Grain read threads) and per process
    (workers rebuild it after unpickling)."""

    def __init__(self, max_open: int = 16, tolerance_s: float | None = None, thread_count: int = 1):
        self.max_open = max_open
        self.tolerance_s = tolerance_s
        self.thread_count = thread_count
        self._local = threading.local()
        self.opens = 0  # number of container opens (tests check sequential reads do not reopen)
        self.seeks = 0

    @property
    def _open(self) -> collections.OrderedDict:
        o = getattr(self._local, "open", None)
        if o is None:
            o = self._local.open = collections.OrderedDict()
        return o

    def close(self):
        for o in self._open.values():
            o.container.close()
        self._open.clear()

    def __getstate__(self):  # pickled into Grain workers: open containers do not travel
        return {
            "max_open": self.max_open,
            "tolerance_s": self.tolerance_s,
            "thread_count": self.thread_count,
        }

    def __setstate__(self, s):
        self.__init__(**s)

    def _get(self, path: str) -> _Open:
        o = self._open.get(path)
        if o is not None:
            self._open.move_to_end(path)
            return o
        try:
            container = av.open(path)
        except (av.error.FFmpegError, FileNotFoundError, OSError) as e:
            raise DataError(f"{path}: cannot open video ({e})") from e
        if not container.streams.video:
            container.close()
            raise DataError(f"{path}: no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO" if self.thread_count != 1 else "SLICE"
        stream.codec_context.thread_count = self.thread_count
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else 30.0
        o = _Open(container, stream, stream.time_base, fps, float(stream.time_base))
        self.opens += 1
        self._open[path] = o
        while len(self._open) > self.max_open:
            _, old = self._open.popitem(last=False)
            old.container.close()
        return o

    @staticmethod
    def _forward_limit(o: _Open) -> float:
        if o.key_interval is None:
            return _FORWARD_DECODE_S
        return 0.5 * o.key_interval + 1.0 / o.fps

    def _restart(self, o: _Open, t: float):
        self.seeks += 1
        o.last_key_t = None
        # seek to the keyframe at or before t (offset in stream time base)
        o.container.seek(max(0, int(t / o.tb)), stream=o.stream, backward=True, any_frame=False)
        o.frames = o.container.decode(o.stream)
        o.last_t = -1.0
        o.last_frame = o.last_rgb = None

    def _frame_at(self, path: str, o: _Open, t: float) -> None:
        """Positions `o` on the frame at t (o.last_frame) or raises DataError."""
        tol = self.tolerance_s if self.tolerance_s is not None else 0.4 / o.fps
        if o.last_frame is not None and abs(o.last_t - t) <= tol:
            return
        if o.frames is None or t < o.last_t or t - o.last_t > self._forward_limit(o):
            self._restart(o, t)
        tb, lo = o.tb, t - tol
        try:
            for frame in o.frames:
                pts = frame.pts
                if pts is None:
                    continue
                ft = pts * tb
                if frame.key_frame:
                    if o.last_key_t is not None and ft > o.last_key_t:
                        o.key_interval = max(o.key_interval or 0.0, ft - o.last_key_t)
                    o.last_key_t = ft
                if ft < lo:
                    continue
                o.last_t = ft
                o.last_frame, o.last_rgb = frame, None
                if abs(ft - t) <= tol:
                    return
                break  # passed t without a matching frame
        except av.error.FFmpegError as e:
            o.frames = None
            raise DataError(f"{path}: decode error near t={t:.4f}s ({e})") from e
        o.frames = None
        o.last_frame = o.last_rgb = None
        raise DataError(
            f"{path}: no frame at t={t:.4f}s (tolerance {tol:.4f}s); the file is truncated or the "
            f"timestamps do not match the video (last decoded frame at {o.last_t:.4f}s)"
        )

    def frames(self, path: str, timestamps) -> np.ndarray:
        """uint8 [T, H, W, 3] for each timestamp (seconds, in the file's own time axis).
        Read-only: a single frame is returned without a copy (callers crop and copy anyway)."""
        out = [o.rgb() for o in self._positioned(str(path), timestamps)]
        return out[0][None] if len(out) == 1 else np.stack(out)

    def frames_yuv420(self, path: str, timestamps) -> list[Yuv420Frame]:
        """The decoded planes of the frame at each timestamp, without RGB conversion (the frames
        must be yuv420p, else DataError)."""
        path = str(path)
        return [yuv420_planes(o.last_frame, path) for o in self._positioned(path, timestamps)]

    def _positioned(self, path: str, timestamps):
        """The file's open state, positioned on the frame at each timestamp in turn."""
        o = self._get(path)
        for t in np.asarray(timestamps, np.float64).tolist():
            self._frame_at(path, o, t)
            yield o


def read_all_frames(path: str) -> np.ndarray:
    """Decode every frame of a file sequentially: uint8 [N, H, W, 3]. For tests and benchmarks."""
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def write_video(
    path: str, frames: np.ndarray, fps: int, codec: str = "libx264rgb", gop: int = 2, crf: int = 0
) -> None:
    """Write uint8 [N, H, W, 3] frames. The default (libx264rgb, rgb24, crf 0) is bit-exact."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise DataError(f"{path}: frames must be uint8 [N,H,W,3], got {frames.dtype} {frames.shape}")
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=fps)
        s.width, s.height = frames.shape[2], frames.shape[1]
        s.pix_fmt = "rgb24" if codec == "libx264rgb" else "yuv420p"
        s.options = {"crf": str(crf), "preset": "ultrafast", "g": str(gop)}
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
