"""Data pipeline throughput vs the raw PyAV decode rate of the same videos.

    .venv/bin/python experiments/benchmarks/data_pipeline.py [--workers 2] [--mode both|host|device]

Builds a LeRobot v2.1 dataset (one 256x256 camera, h264 yuv420p GOP 2 like lerobot's `vcodec="h264"`,
or --codec libx264rgb / libsvtav1), then measures, side by side, each with `workers` processes:
  raw sequential   PyAV alone decoding every frame of every file to RGB (the physical decode limit:
                   no seeks, no transforms)
  raw random       PyAV alone: seek + decode + RGB of one frame at a random timestamp (the
                   pipeline's access pattern; containers kept open, no groot_jax code)
  pipeline         the full training pipeline (shuffled mixture index, decode, crop 0.95, resize
                   224x224, colour jitter, normalization, prompt tokenization, batching) with
                   `workers` Grain worker processes, each building whole batches (LoadBatch);
                   samples/s after a warm-up (--warmup s: every worker opens its files and
                   reads its episodes once, as the raw rows open theirs before timing)
  pipeline, device augment (--mode all/device)
                   the same with SampleTransform(device_augment=True): the host decodes and crops,
                   resize/jitter/normalization are left to groot_jax.data.device_augment inside
                   the train step (not timed here: it runs on the accelerator)
  pipeline, device augment + YUV (--mode all/yuv)
                   the same with PipelineConfig(device_yuv=True): the host ships the crop of the
                   decoded yuv420p planes; the RGB conversion (bit-exact to swscale's) also moves
                   to the accelerator
  raw random, no RGB
                   PyAV alone as in "raw random", stopping at the decoded yuv420p frame (planes
                   read, no conversion): the limit for the YUV row, printed so that its ratio
                   against a decode that skips the same work is visible too
The raw RGB rows convert with one kept swscale context per file (a fresh one per frame, as
`frame.to_ndarray(format="rgb24")` does after a seek, is slower and would flatter the ratios).
The machine is shared, so every row is a timed window of --seconds (all workers decode in the same
window), and the raw rates are measured before and after the pipeline rows and averaged (both are
printed): compare the ratios of one run rather than absolute rates across runs. Because other jobs
share the cores, the CPU cost per item (user+system seconds of every process involved, via psutil)
is also reported; raw-random CPU per frame / pipeline CPU per sample is the throughput ratio the
pipeline would reach on otherwise idle cores, where both are CPU bound.
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


def _wait(start_at: float):
    time.sleep(max(0.0, start_at - time.time()))


def _decode_all(args):
    import av
    from av.video.reformatter import VideoReformatter

    paths, start_at, seconds = args
    _wait(start_at)
    cpu = time.process_time()
    n, i = 0, 0
    while time.time() < start_at + seconds:  # files in turn, whole files, until the window ends
        with av.open(str(paths[i % len(paths)])) as c:
            s = c.streams.video[0]
            s.codec_context.thread_count = 1
            rgb = VideoReformatter()
            for f in c.decode(s):
                rgb.reformat(f, format="rgb24").to_ndarray()
                n += 1
        i += 1
    return n, time.time(), time.process_time() - cpu


def _decode_random(args):
    """PyAV alone: per access, seek to the keyframe before t, decode up to the frame at t, RGB."""
    import av
    from av.video.reformatter import VideoReformatter

    paths, lengths, fps, seconds, seed, start_at, to_rgb = args
    rng = np.random.default_rng(seed)
    open_ = []
    for p in paths:
        c = av.open(str(p))
        c.streams.video[0].codec_context.thread_count = 1
        open_.append((c, c.streams.video[0], VideoReformatter()))
    _wait(start_at)
    cpu = time.process_time()
    n = 0
    while time.time() < start_at + seconds:
        n += 1
        e = int(rng.integers(len(paths)))
        c, s, rgb = open_[e]
        t = int(rng.integers(lengths[e])) / fps
        c.seek(int(t / s.time_base), stream=s, backward=True, any_frame=False)
        for f in c.decode(s):
            if f.pts is not None and float(f.pts * s.time_base) >= t - 0.4 / fps:
                if to_rgb:
                    rgb.reformat(f, format="rgb24").to_ndarray()
                else:  # the planes as arrays, as VideoDecoder.frames_yuv420 reads them
                    [np.frombuffer(p, np.uint8) for p in f.planes]
                break
    end, cpu = time.time(), time.process_time() - cpu
    for c, _, _ in open_:
        c.close()
    return n, end, cpu


def _parallel(fn, chunks, workers, start_at):
    """Runs fn over chunks in `workers` spawned processes that all start decoding at `start_at`
    (after their imports and opens); -> (items, seconds until the last one finished, CPU seconds
    of all workers)."""
    with mp.get_context("spawn").Pool(workers) as pool:
        res = pool.map(fn, chunks, chunksize=1)
    return sum(r[0] for r in res), max(r[1] for r in res) - start_at, sum(r[2] for r in res)


def _cpu_tree() -> float:
    """CPU seconds (user + system) of this process and its live children (Grain workers)."""
    try:
        import psutil
    except ImportError:
        return float("nan")
    procs = [psutil.Process()]
    procs += procs[0].children(recursive=True)
    total = 0.0
    for pr in procs:
        try:
            c = pr.cpu_times()
            total += c.user + c.system
        except psutil.Error:
            pass
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--episodes", type=int, default=8)
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--codec", default="h264", choices=["h264", "libx264rgb", "libsvtav1"])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--batches", type=int, default=60, help="at least this many timed batches")
    ap.add_argument("--seconds", type=float, default=6.0, help="length of each timed window")
    ap.add_argument("--warmup", type=float, default=3.0,
                    help="seconds of pipeline batches before its timed window")
    ap.add_argument("--no-jitter", action="store_true")
    ap.add_argument("--threads", type=int, default=1,
                    help="threads per worker loading a batch's samples (PipelineConfig.read_threads)")
    ap.add_argument("--mode", default="all", choices=["host", "device", "yuv", "all"],
                    help="pipeline with host transforms, with device augmentation (host part), "
                         "with device augmentation and YUV transport, or all three")
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

    import groot_jax.data.writers as writers

    writers.write_video = write  # the fixture writes its videos through the project's writer
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

    def raw_rates():
        start = time.time() + 4  # after the workers' start-up
        n, dt, cpu = _parallel(_decode_all, [(c, start, args.seconds) for c in chunks], w, start)
        seq, seq_cpu = n / dt, cpu / n
        rand = []
        for to_rgb in (True, False):
            start = time.time() + 4
            jobs = [(paths, lengths, 30, args.seconds, i, start, to_rgb) for i in range(w)]
            n, dt, cpu = _parallel(_decode_random, jobs, w, start)
            rand.append((n / dt, cpu / n))
        return seq, rand[0][0], seq_cpu, rand[0][1], rand[1][0], rand[1][1]

    raw_before = raw_rates()

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
    def run_pipeline(device_augment: bool, device_yuv: bool = False):
        p = build_pipeline(
            [SourceSpec(str(root), cfg)],
            PipelineConfig(
                batch_size=args.batch,
                seed=0,
                num_workers=w,
                read_threads=args.threads,
                per_worker_buffer_size=4,
                device_augment=device_augment,
                device_yuv=device_yuv,
            ),
            str(tok),
        )
        it = iter(p)
        t = time.perf_counter()
        # Warm-up: worker start, then every worker's first visit of each episode (parquet read,
        # encoded tables, opening its video), which the raw rows also leave out of their windows
        # (they open every file before timing): at least 2 batches per worker and --warmup s.
        n = 0
        while n < 2 * w or time.perf_counter() - t < args.warmup:
            next(it)
            n += 1
        warm = time.perf_counter() - t
        t, cpu = time.perf_counter(), _cpu_tree()
        n = 0
        while n < args.batches or time.perf_counter() - t < args.seconds:
            b = next(it)
            n += 1
        dt, cpu = time.perf_counter() - t, _cpu_tree() - cpu
        if device_yuv:
            assert b["pixel_y"].shape[:2] == (args.batch, 1)
            assert b["augment"].shape == (args.batch, 1, 8)
        elif device_augment:
            assert b["pixel_u8"].shape[:2] == (args.batch, 1)
            assert b["augment"].shape == (args.batch, 1, 8)
        else:
            assert b["pixel_values"].shape == (args.batch, 1, 224, 224, 3)
        it.close()  # stop the Grain workers before the next measurement
        return args.batch * n / dt, warm, cpu / (args.batch * n)

    rows = []
    if args.mode in ("host", "all"):
        rows.append((f"full pipeline ({w} workers)", *run_pipeline(False)))
    if args.mode in ("device", "all"):
        rows.append(("pipeline, device augment", *run_pipeline(True)))
    if args.mode in ("yuv", "all"):
        rows.append(("pipeline, device aug. + YUV", *run_pipeline(True, True)))

    raw_after = raw_rates()
    raw_seq, raw_rand, seq_cpu, rand_cpu, raw_yuv, yuv_cpu = (
        (a + b) / 2 for a, b in zip(raw_before, raw_after, strict=True)
    )

    print(
        f"{'':30s}{'items/s':>9s}{'/ raw seq':>11s}{'/ raw rand':>11s}"
        f"{'CPU ms/item':>13s}{'CPU: raw rand / this':>22s}"
    )
    print(f"{'raw PyAV sequential decode':30s}{raw_seq:9.1f}{'':22s}{seq_cpu * 1e3:13.3f}")
    print(
        f"{'raw PyAV random-access decode':30s}{raw_rand:9.1f}{raw_rand / raw_seq:11.1%}{'':11s}"
        f"{rand_cpu * 1e3:13.3f}"
    )
    for name, rate, _, cpu in rows:
        print(
            f"{name:30s}{rate:9.1f}{rate / raw_seq:11.1%}{rate / raw_rand:11.1%}{cpu * 1e3:13.3f}"
            f"{rand_cpu / cpu:22.1%}"
        )
    print(f"{'raw random, no RGB (yuv420p)':30s}{raw_yuv:9.1f}{raw_yuv / raw_seq:11.1%}"
          f"{raw_yuv / raw_rand:11.1%}{yuv_cpu * 1e3:13.3f}")
    if args.mode in ("yuv", "all"):
        rate, cpu = rows[-1][1], rows[-1][3]
        print(f"YUV pipeline / raw random no RGB: {rate / raw_yuv:.1%} (CPU: {yuv_cpu / cpu:.1%})")
    print(
        f"(raw rates: mean of before / after the pipelines: sequential {raw_before[0]:.0f} / "
        f"{raw_after[0]:.0f}, random {raw_before[1]:.0f} / {raw_after[1]:.0f}, random no RGB "
        f"{raw_before[4]:.0f} / {raw_after[4]:.0f}; windows of "
        f">= {args.seconds:g}s; pipeline warm-up {', '.join(f'{r[2]:.1f}s' for r in rows)}; "
        f"batches of {args.batch}; jitter {'off' if args.no_jitter else 'on'}; {w} processes in "
        f"every row; CPU ms/item: user+system CPU of all processes involved (for the pipelines the "
        f"main process too) per frame or sample, insensitive to other jobs on the machine)"
    )


if __name__ == "__main__":
    main()
