"""Compressed-domain motion benchmark: cost of motion vectors and speed of the I-frame-only path.

    .venv/bin/python bench/motion.py [--out bench/out/motion.json] [--seconds 20] [--real DIR]

For 360p, 720p and 1080p in H.264 and MPEG-4 Part 2 (generated here, 25 fps, 2 s GOP, a slow pan
so the encoder produces real motion vectors), measured in this process on the same files:

- plain_decode: PyAV decode, no conversion;
- pass_no_mv: reelbeam's decode pass with its frame index only;
- pass_mv_stats: the same pass with motion vectors exported and per-frame statistics computed;
- pass_mv_maps: plus a CMD motion map for every P/B frame;
- iframes_only: keyframes-only decode (skip_frame=NONKEY) with JPEG I-frames; reported as video
  seconds covered per wall second ("x real time").

Each figure is measured twice: `one_thread` (one decoder thread per video: how pipeline workers
run, one video per core) and `all_cores` (one video decoded with every core). With vectors on,
H.264 decodes with slice threads instead of frame threads, because FFmpeg's frame threads export
B-frame vectors that change from run to run; on single-slice streams that is one thread, so the
`all_cores` ratio for H.264 includes the loss of frame threading, not only the cost of vectors.
Real H.264 clips of 720p and more from --real are added for speed.
"""

from __future__ import annotations

import json
import os
import sys

import av
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from common import bench_parser, best_of, report  # noqa: E402  (also puts tests/ and the repo on sys.path)

import synthetic  # noqa: E402

from reelbeam.schemas.records import VideoRef  # noqa: E402
from reelbeam.transforms.decode import DecodeConfig, FrameIndexConsumer, decode_video  # noqa: E402
from reelbeam.transforms.motion import IFrameConsumer, MotionMapConfig, MotionMapConsumer, MotionSampling, MotionStatsConsumer  # noqa: E402

SIZES = {"360p": (640, 360), "720p": (1280, 720), "1080p": (1920, 1080)}
CODECS = {"h264": ("libx264", {"preset": "veryfast", "g": "50", "keyint_min": "50", "sc_threshold": "0"}, ".mp4"),
          "mpeg4": ("mpeg4", {"g": "50", "qscale": "4"}, ".avi")}
FPS = 25


def pan_video(path, size, codec, seconds):
    w, h = size
    n = seconds * FPS
    rng = np.random.default_rng(1)
    tile = rng.integers(0, 256, (h // 16 + 2, (w + 3 * n) // 16 + 2, 3), dtype=np.uint8)
    big = np.kron(tile, np.ones((16, 16, 1), np.uint8))[:h]
    enc, opts, _ = CODECS[codec]

    def frames():
        for t in range(n):
            yield np.ascontiguousarray(big[:, 3 * t : 3 * t + w])

    synthetic.write_video(path, frames(), fps=FPS, codec=enc, gop=50, options=opts)
    return n


def plain(path, threads=0):
    def run():
        with av.open(path) as c:
            s = c.streams.video[0]
            s.thread_type = "AUTO"
            s.codec_context.thread_count = threads
            return sum(1 for _ in c.decode(s))
    return run


def reelbeam_pass(path, consumers, mv, config=DecodeConfig()):
    def run():
        n = 0
        for tag, value in decode_video(VideoRef("b", path, os.path.getsize(path)), [FrameIndexConsumer(), *[c() for c in consumers]], config, mv):
            if tag == "per_video" and value.kind == "meta":
                n = value.payload["frame_count"]
        return n
    return run


def main(argv=None) -> int:
    parser = bench_parser(__doc__, "motion")
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3, help="best of N timings per figure")
    parser.add_argument("--real", default=os.path.join(HERE, "..", "..", "shared", "corpus", "real"),
                        help="folder of real clips; H.264 ones of 720p and more are added (speed only)")
    args = parser.parse_args(argv)
    os.makedirs(args.workdir, exist_ok=True)
    rows = []
    jobs = []
    for res, size in SIZES.items():
        for codec in CODECS:
            path = os.path.join(args.workdir, f"pan_{res}_{codec}{CODECS[codec][2]}")
            jobs.append((path, pan_video(path, size, codec, args.seconds), args.seconds, "generated pan"))
    # Real footage decodes slower per frame than a synthetic pan (residuals, real texture) while
    # carrying as many vectors: H.264 clips of 720p and more from --real, speed only.
    if args.real and os.path.isdir(args.real):
        for name in sorted(os.listdir(args.real)):
            path = os.path.join(args.real, name)
            try:
                with av.open(path) as c:
                    s = c.streams.video[0]
                    if s.codec_context.name != "h264" or s.height < 720:
                        continue
                    n = sum(1 for _ in c.decode(s))
                    seconds = float(s.duration * s.time_base) if s.duration else n / float(s.average_rate)
            except (av.FFmpegError, IndexError, OSError):
                continue
            jobs.append((path, n, seconds, "real clip"))
    for path, frames, seconds, source in jobs:
        with av.open(path) as c:
            s = c.streams.video[0]
            res = f"{s.width}x{s.height}"
        row = {"file": os.path.basename(path), "source": source, "resolution": res, "frames": frames}
        # threads=1: one decoder thread per video, as workers run (one video per core), and the
        # MV pass's own setting for H.264 (slice threads, see DecodeConfig); threads=0: all cores.
        for label, threads in (("one_thread", 1), ("all_cores", 0)):
            cfg = DecodeConfig(threads=threads)
            fps = {}
            for name, fn in {
                "plain_decode": plain(path, threads),
                "pass_no_mv": reelbeam_pass(path, [], False, cfg),
                "pass_mv_stats": reelbeam_pass(path, [MotionStatsConsumer], True, cfg),
                "pass_mv_maps": reelbeam_pass(path, [MotionStatsConsumer, lambda: MotionMapConsumer(MotionMapConfig(MotionSampling("all")))], True, cfg),
            }.items():
                n, dt = best_of(fn, args.repeat)
                assert n == frames, (name, n, frames)
                fps[name] = n / dt
            row[label] = {
                "fps": {k: round(v, 1) for k, v in fps.items()},
                "mv_stats_time_vs_no_mv": round(fps["pass_no_mv"] / fps["pass_mv_stats"], 3),
                "mv_maps_time_vs_no_mv": round(fps["pass_no_mv"] / fps["pass_mv_maps"], 3),
                "pass_no_mv_vs_plain_decode": round(fps["pass_no_mv"] / fps["plain_decode"], 3),
            }
        _, dt = best_of(reelbeam_pass(path, [IFrameConsumer], False, DecodeConfig(keyframes_only=True)), args.repeat)
        row["iframes_only_x_realtime"] = round(seconds / dt, 1)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    summary = {"cpus": os.cpu_count(), "gop_seconds": 2, "files": rows}
    return report(summary, args.out)


if __name__ == "__main__":
    sys.exit(main())
