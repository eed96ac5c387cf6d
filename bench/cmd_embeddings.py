"""CMD video embedding costs: clip-frame fetching vs the decode pass, R(2+1)D-26 speed, end to end.

    .venv/bin/python bench/cmd_embeddings.py [--out bench/out/cmd.json] [--quick]

- fetch: on generated H.264 videos (25 fps, 2 B-frames, veryfast; a short GOP of 15 and a long
  one of 300 frames; 480p and 720p; 300 and 3000 frames) and the bundled sample (one GOP of 720
  frames), the time to get a video's 10 x 16 clip frames, resized to short side 128, as a fraction
  of one full decode pass of the same file (PyAV, all frames, no conversion, frame threads):
  - pyav_frame_index: PyAV seeks guided by the first pass's frame index (the `frames` table);
  - pyav_packet_index: the same, with the index built from the packets first (no frames table);
  - decord_per_clip: decord `get_batch`, 16 frames a call (one clip of full frames held);
  - decord_one_batch: decord `get_batch` of all 160 frames at once, as the reference does (holds
    160 full-resolution frames);
  and `resize_only`: the PIL resize of the 160 frames alone, included in every method above.
  Each method's frames are checked against a straight decode of the same indices.
- model: clips per second of R(2+1)D-26 (random full-size weights) on this CPU, batches of 8:
  `reference_layout` (the reference's fp32 forward: BatchNorm separate, contiguous tensors) and
  the handler's paths (BatchNorm folded, channels-last) in fp32 and bf16; plus `clip_tensor`
  (crop + normalise) per clip.
- shot_clips_pyav: the `shot` granularity's fetch on the same files: shots of 100 frames (4 s),
  one clip each (`shot_clip_indices`), through `iter_clips`.
- end_to_end: seconds of this machine per hour of video, from the parts measured here, for the
  `video` granularity (10 clips per 2-minute video: 300 clips an hour) and the `shot` granularity
  (4 s shots: 900 clips an hour).
"""

from __future__ import annotations

import os
import sys
import time

import av
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
for _path in (HERE, os.path.join(HERE, "..", "tests"), os.path.join(HERE, "..")):
    sys.path.insert(0, _path)

import synthetic
from common import bench_parser, best_of, report

from reelbeam.models.r2plus1d import (
    CMDEmbeddingHandler,
    R2Plus1D26,
    clip_tensor,
    resize_clip_frame,
    save_modelscope_layout,
    shot_clip_indices,
    video_clip_indices,
)
from reelbeam.transforms.cmd_clip_frames import FrameIndex, iter_clips, iter_frames, iter_frames_decord

FPS = 25
try:
    import decord  # noqa: F401

    HAVE_DECORD = True
except ImportError:
    HAVE_DECORD = False
SAMPLE = os.path.join(HERE, "..", "samples", "sintel_trailer_30s.mp4")


def panning_shots(n: int, width: int, height: int, shot: int = 125):
    """n frames: shots of `shot` frames, each a smooth random texture panning 3 px a frame with a
    moving block (real motion and residuals for the encoder; cheap to generate)."""
    import cv2

    rng = np.random.default_rng(0)
    for s in range(0, n, shot):
        low = rng.integers(0, 256, (height // 24 + 2, (width + 3 * shot) // 24 + 2, 3), dtype=np.uint8)
        big = cv2.resize(low, (low.shape[1] * 24, low.shape[0] * 24), interpolation=cv2.INTER_CUBIC)[:height]
        colour = rng.integers(0, 256, 3, dtype=np.uint8)
        for t in range(min(shot, n - s)):
            img = np.ascontiguousarray(big[:, 3 * t : 3 * t + width])
            x = (7 * t) % max(width - width // 5, 1)
            img[height // 3 : height // 3 + height // 5, x : x + width // 5] = colour
            yield img


def make_video(folder: str, name: str, n: int, size: tuple[int, int], gop: int) -> str:
    path = os.path.join(folder, f"{name}.mp4")
    if not os.path.exists(path):
        opts = {"preset": "veryfast", "g": str(gop), "keyint_min": str(gop), "sc_threshold": "0", "bf": "2"}
        synthetic.write_video(path + ".tmp.mp4", panning_shots(n, *size), fps=FPS, options=opts)
        os.replace(path + ".tmp.mp4", path)
    return path


def straight_decode(path: str):
    """One full decode pass: every frame, no conversion (the cost a second pass would have)."""
    with av.open(path) as c:
        stream = c.streams.video[0]
        stream.thread_type = "AUTO"
        n = 0
        for _ in c.decode(stream):
            n += 1
    return n


def frame_index(path: str) -> FrameIndex:
    with av.open(path) as c:
        frames = [(f.pts, bool(f.key_frame)) for f in c.decode(video=0)]
    return FrameIndex.of([p for p, _ in frames], [k for _, k in frames])


def reference_frames(path: str, wanted: set) -> dict:
    with av.open(path) as c:
        return {
            i: resize_clip_frame(f.to_ndarray(format="rgb24"))
            for i, f in enumerate(c.decode(video=0))
            if i in wanted
        }


def fetch_cost(path: str, repeat: int) -> dict:
    n, decode_s = best_of(lambda: straight_decode(path), repeat)
    index = frame_index(path)
    indices = video_clip_indices(n).reshape(-1)
    wanted = sorted(set(indices.tolist()))
    expected = reference_frames(path, set(wanted))

    def decord_one_batch():
        import decord

        reader = decord.VideoReader(path, ctx=decord.cpu(0))
        frames = reader.get_batch(indices.tolist()).asnumpy()
        return {int(i): resize_clip_frame(f) for i, f in zip(indices, frames)}

    methods = {
        "pyav_frame_index": lambda: dict(iter_frames(path, indices, index)),
        "pyav_packet_index": lambda: dict(iter_frames(path, indices)),
    }
    if HAVE_DECORD:  # an optional extra: pip install 'reelbeam[decord]'
        methods["decord_per_clip"] = lambda: dict(iter_frames_decord(path, indices, index))
        methods["decord_one_batch"] = decord_one_batch
    with av.open(path) as c:
        stream = c.streams.video[0]
        size = f"{stream.codec_context.width}x{stream.codec_context.height}"
    out = {
        "file": os.path.basename(path),
        "size": size,
        "frames": n,
        "codec_keyframes": int(index.is_keyframe.sum()),
        "distinct_clip_frames": len(wanted),
        "decode_pass_s": round(decode_s, 3),
    }
    for name, fetch in methods.items():
        got, seconds = best_of(fetch, repeat)
        same = all(np.array_equal(got[i], expected[i]) for i in wanted)
        out[name] = {
            "s": round(seconds, 3),
            "vs_decode_pass": round(seconds / decode_s, 3),
            "frames_equal_straight_decode": same,
        }
    # The shot granularity: shots of 100 frames (4 s), one clip each, fetched as whole clips.
    shots = [(a, min(a + 99, n - 1)) for a in range(0, n, 100)]
    clips = np.concatenate([shot_clip_indices(a, b) for a, b in shots])
    _, shot_s = best_of(lambda: sum(1 for _ in iter_clips(path, clips, index)), repeat)
    out["shot_clips_pyav"] = {
        "clips": len(clips),
        "s": round(shot_s, 3),
        "vs_decode_pass": round(shot_s / decode_s, 3),
    }
    # Resizing the 160 decoded frames (full-size input, as in the methods).
    with av.open(path) as c:
        full = next(iter(c.decode(video=0))).to_ndarray(format="rgb24")
    _, resize_s = best_of(lambda: [resize_clip_frame(full) for _ in wanted], repeat)
    out["resize_only"] = {"s": round(resize_s, 3), "vs_decode_pass": round(resize_s / decode_s, 3)}
    return out


def model_speed(workdir: str, batch: int, repeat: int) -> dict:
    torch.manual_seed(0)
    ckpt = os.path.join(workdir, "pytorch_model.pt")
    save_modelscope_layout(R2Plus1D26().eval(), ckpt)
    clips = np.random.default_rng(0).standard_normal((batch, 3, 16, 112, 112)).astype(np.float32)
    out = {"batch": batch, "torch_threads": torch.get_num_threads()}
    plain = R2Plus1D26().eval()
    plain.load_state_dict(torch.load(ckpt, weights_only=True))
    plain.embed(clips[:1])
    _, s = best_of(lambda: plain.embed(clips), repeat)
    out["reference_layout_fp32_clips_per_s"] = round(batch / s, 2)
    for precision in ("fp32", "bf16"):
        handler = CMDEmbeddingHandler(ckpt, device="cpu", precision=precision)
        model = handler.load_model()
        handler.run_inference(list(clips[:1]), model)
        _, s = best_of(lambda h=handler, m=model: h.run_inference(list(clips), m), repeat)
        out[f"{precision}_clips_per_s"] = round(batch / s, 2)
    frames = np.random.default_rng(1).integers(0, 256, (16, 128, 227, 3), dtype=np.uint8)
    _, s = best_of(lambda: clip_tensor(frames), 5)
    out["clip_tensor_ms_per_clip"] = round(1000 * s, 2)
    return out


def end_to_end(fetch: list, model: dict) -> dict:
    """Seconds of this machine per hour of 25 fps video, from the parts measured above: fetch +
    clip_tensor + the model, for the long generated videos."""
    out = {}
    for precision in ("fp32", "bf16"):
        clip_s = 1.0 / model[f"{precision}_clips_per_s"] + model["clip_tensor_ms_per_clip"] / 1000
        per_file = {}
        for f in (f for f in fetch if f["frames"] >= 3000):
            hours = f["frames"] / FPS / 3600
            video_s = (f["pyav_frame_index"]["s"] + 10 * clip_s) / hours
            shot = f["shot_clips_pyav"]
            shot_s = (shot["s"] + shot["clips"] * clip_s) / hours
            per_file[f["file"]] = {
                "video_granularity_s_per_hour": round(video_s, 1),
                "video_granularity_fetch_share": round(f["pyav_frame_index"]["s"] / hours / video_s, 3),
                "shot_granularity_s_per_hour": round(shot_s, 1),
                "shot_granularity_fetch_share": round(shot["s"] / hours / shot_s, 3),
            }
        out[precision] = per_file
    return out


def main(argv=None) -> int:
    parser = bench_parser(__doc__, "cmd")
    parser.add_argument(
        "--quick", action="store_true", help="small videos only (a check that the bench runs)"
    )
    args = parser.parse_args(argv)
    os.makedirs(args.workdir, exist_ok=True)
    repeat = 1 if args.quick else 3
    if args.quick:
        specs = [("480p_300f_gop300", 300, (854, 480), 300), ("480p_300f_gop15", 300, (854, 480), 15)]
    else:
        specs = [
            ("480p_3000f_gop300", 3000, (854, 480), 300),
            ("480p_3000f_gop15", 3000, (854, 480), 15),
            ("720p_3000f_gop300", 3000, (1280, 720), 300),
            ("720p_3000f_gop15", 3000, (1280, 720), 15),
            ("480p_300f_gop300", 300, (854, 480), 300),
            ("480p_300f_gop15", 300, (854, 480), 15),
        ]
    load_at_start = os.getloadavg()
    t0 = time.perf_counter()
    videos = [make_video(args.workdir, name, n, size, gop) for name, n, size, gop in specs] + [SAMPLE]
    generate_s = time.perf_counter() - t0
    fetch = [fetch_cost(v, repeat) for v in videos]
    model = model_speed(args.workdir, batch=2 if args.quick else 8, repeat=1 if args.quick else 2)
    summary = {
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in load_at_start],
        "generate_videos_s": round(generate_s, 1),
        "fetch": fetch,
        "model": model,
        "end_to_end": end_to_end(fetch, model) if not args.quick else None,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }
    return report(summary, args.out)


if __name__ == "__main__":
    sys.exit(main())
