"""Data pipeline throughput vs the raw PyAV decode rate of the same videos.

    .venv/bin/python experiments/benchmarks/data_pipeline.py [--workers 2] [--episodes 8] [--frames 150]

Builds a LeRobot v2.1 dataset (one 256x256 camera, h264 yuv420p GOP 2 like lerobot's `vcodec="h264"`,
or --codec libx264rgb / libsvtav1), then measures, side by side:
  raw sequential   PyAV decoding every frame of every file, in `workers` processes (the physical
                   decode limit: no seeks, no transforms)
  raw random       PyAV seek + decode of one frame at a random timestamp, the pipeline's access pattern
  pipeline         the full training pipeline (shuffled mixture index, decode, crop 0.95, resize
                   224x224, colour jitter, normalization, prompt tokenization, batching) with
                   `workers` Grain worker processes; samples/s after a warm-up.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def _decode_all(paths):
    import av

    n = 0
    for p in paths:
        with av.open(str(p)) as c:
            s = c.streams.video[0]
            s.codec_context.thread_count = 1
            for f in c.decode(s):
                f.to_ndarray(format="rgb24")
                n += 1
    return n


def _decode_random(args):
    paths, lengths, fps, n, seed = args
    from groot_jax.data.video import VideoDecoder

    rng = np.random.default_rng(seed)
    dec = VideoDecoder()
    for _ in range(n):
        e = int(rng.integers(len(paths)))
        dec.frames(str(paths[e]), [int(rng.integers(lengths[e])) / fps])
    return n


def _parallel(fn, chunks, workers):
    t = time.perf_counter()
    with mp.get_context("spawn").Pool(workers) as pool:
        n = sum(pool.map(fn, chunks))
    return n, time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--episodes", type=int, default=8)
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--codec", default="h264", choices=["h264", "libx264rgb", "libsvtav1"])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--batches", type=int, default=60)
    ap.add_argument("--no-jitter", action="store_true")
    ap.add_argument("--threads", type=int, default=1, help="Grain read threads per process")
    args = ap.parse_args()

    from absl import flags

    flags.FLAGS.mark_as_parsed()
    import av

    from groot_jax.data.mixture import SourceSpec
    from groot_jax.data.modality import DataConfig
    from groot_jax.data.pipeline import PipelineConfig, build_pipeline
    from tests.data import synth
    from tests.data.fixtures import write_tokenizer, write_v2_dataset

    tmp = Path(tempfile.mkdtemp(prefix="groot_data_bench_"))
    root = tmp / "ds"
    import groot_jax.data.video as gv

    orig = gv.write_video

    def write(path, frames, fps, codec="libx264rgb", gop=2, crf=0):
        if args.codec == "libx264rgb":
            return orig(path, frames, fps, "libx264rgb", gop, 0)
        with av.open(str(path), "w") as c:
            s = c.add_stream(args.codec, rate=fps)
            s.width, s.height = frames.shape[2], frames.shape[1]
            s.pix_fmt = "yuv420p"
            s.options = {"g": "2", "crf": "23" if args.codec == "h264" else "30"}
            if args.codec == "h264":
                s.options["preset"] = "veryfast"
            for f in frames:
                for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                    c.mux(p)
            for p in s.encode():
                c.mux(p)

    import tests.data.fixtures as fx

    fx.write_video = write
    t0 = time.perf_counter()
    write_v2_dataset(
        root,
        lengths=(args.frames,) * args.episodes,
        cameras=("front",),
        hw=(args.size, args.size),
        fps=30,
    )
    print(
        f"dataset: {args.episodes} episodes x {args.frames} frames, {args.size}x{args.size}, "
        f"{args.codec} GOP 2, written in {time.perf_counter() - t0:.1f}s"
    )
    del synth
    tok = write_tokenizer(tmp / "tok")
    paths = sorted(root.glob("videos/chunk-000/*/episode_*.mp4"))
    lengths = [args.frames] * len(paths)

    w = args.workers
    chunks = [paths[i::w] for i in range(w)]
    n, dt = _parallel(_decode_all, chunks, w)
    raw_seq = n / dt
    nrand = 1500
    n, dt = _parallel(_decode_random, [(paths, lengths, 30, nrand // w, i) for i in range(w)], w)
    raw_rand = n / dt

    cfg = DataConfig(
        name="bench",
        embodiment_tag="new_embodiment",
        video_keys=("video.front",),
        state_keys=("state.arm", "state.gripper"),
        action_keys=("action.arm", "action.gripper"),
        language_keys=("annotation.human.task_description",),
        state_normalization={"state.arm": "min_max", "state.gripper": "min_max"},
        action_normalization={"action.arm": "min_max", "action.gripper": "min_max"},
        color_jitter=None if args.no_jitter else (0.3, 0.4, 0.5, 0.08),
    )
    p = build_pipeline(
        [SourceSpec(str(root), cfg)],
        PipelineConfig(
            batch_size=args.batch,
            seed=0,
            num_workers=w,
            read_threads=args.threads,
            per_worker_buffer_size=4,
        ),
        str(tok),
    )
    it = iter(p)
    t = time.perf_counter()
    for _ in range(2 * w):  # warm-up: worker start, first batches
        next(it)
    warm = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(args.batches):
        b = next(it)
    dt = time.perf_counter() - t
    pipe = args.batches * args.batch / dt
    assert b["pixel_values"].shape == (args.batch, 1, 224, 224, 3)

    print(f"{'':28s}{'frames or samples/s':>22s}{'pipeline / this':>18s}")
    print(f"{'raw PyAV sequential decode':28s}{raw_seq:22.1f}{pipe / raw_seq:18.1%}")
    print(f"{'raw PyAV random-access decode':28s}{raw_rand:22.1f}{pipe / raw_rand:18.1%}")
    print(f"{'full pipeline (' + str(w) + ' workers)':28s}{pipe:22.1f}")
    print(
        f"(pipeline warm-up {warm:.1f}s; {args.batches} batches of {args.batch}; jitter "
        f"{'off' if args.no_jitter else 'on'}; {w} processes in every row)"
    )


if __name__ == "__main__":
    main()
