"""CLIP frame scoring and summary costs: CLIP image encoding speed per precision, the sampled-frame
resize, CLIP-It scoring, and KTS time against sequence length.

    .venv/bin/python bench/clip.py [--quick] [--out bench/out/clip.json]

- clip_image: frames per second of a ViT-B/32-shaped CLIPModel (openai/clip-vit-base-patch32's
  configuration, random weights: no download) on this CPU, batches of 32, per precision: fp32
  (the CPU default) and bf16 autocast. `model_fps`: the model alone on prepared pixels;
  `with_pixels_fps`: plus `clip_pixels` (crop, scale, normalise) from already resized frames.
- resize: milliseconds per frame of `resize_for_clip` (PIL bicubic, the reference's resampler) for
  common source sizes: the work the decode pass adds per sampled frame (1 in 15 by default).
- clipit: seconds to score one video of N sampled frames with the full-size CLIP-It scorer (fp32).
- kts: seconds of `kts_change_points` (ncp = min(N - 1, 120)) against N sampled frames, its peak
  numpy memory, the literal ModelScope implementation's time where it is quick enough to run
  (speedup = reference / ours in CPU time, same features, same result), and the ratio of KTS's
  CPU time to CLIP fp32 encoding of the same N frames on this CPU (where KTS stops being
  negligible).
"""

from __future__ import annotations

import os
import sys
import time
import tracemalloc

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from common import bench_parser, report  # puts tests/ and the repo on sys.path

# isort: split
import reference_clipit as ref
from tiny_clip import vit_b32_config

from reelbeam.models.clip import clip_pixels, image_features, resize_for_clip
from reelbeam.models.clipit import ClipIt, score_frames, text_block
from reelbeam.transforms.summaries import kts_change_points


def timed(fn, repeat: int = 3):
    """(fn()'s result, best wall seconds, best process CPU seconds) over `repeat` calls. CPU time
    (all threads) moves less than wall time when other jobs share the machine: ratios use it."""
    best_wall = best_cpu = out = None
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        w, c = time.perf_counter() - w, time.process_time() - c
        best_wall = w if best_wall is None else min(best_wall, w)
        best_cpu = c if best_cpu is None else min(best_cpu, c)
    return out, best_wall, best_cpu


def clip_image(batch: int, repeat: int) -> dict:
    from transformers import CLIPModel

    torch.manual_seed(0)
    model = CLIPModel(vit_b32_config()).eval()
    rng = np.random.default_rng(0)
    frames = [resize_for_clip(rng.integers(0, 256, (360, 640, 3), dtype=np.uint8)) for _ in range(batch)]
    pixels = torch.from_numpy(np.stack([clip_pixels(f) for f in frames]))
    out = {"batch": batch}
    for precision in ("fp32", "bf16"):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            image_features(model, pixels[:2])  # warm-up
            _, model_s, model_cpu = timed(lambda: image_features(model, pixels), repeat)

            def with_pixels():
                return image_features(model, torch.from_numpy(np.stack([clip_pixels(f) for f in frames])))

            _, full_s, _ = timed(with_pixels, repeat)
        out[precision] = {
            "model_fps": round(batch / model_s, 1),
            "with_pixels_fps": round(batch / full_s, 1),
            "cpu_ms_per_frame": round(model_cpu / batch * 1000, 1),
        }
    out["bf16_vs_fp32"] = round(out["bf16"]["model_fps"] / out["fp32"]["model_fps"], 2)
    return out


def resize_cost(repeat: int) -> list[dict]:
    rng = np.random.default_rng(1)
    rows = []
    for h, w in ((360, 640), (720, 1280), (1080, 1920), (2160, 3840)):
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        _, s, _ = timed(lambda img=img: resize_for_clip(img), repeat)
        rows.append({"source": f"{w}x{h}", "ms_per_frame": round(s * 1000, 2)})
    return rows


def clipit_cost(sizes: list[int]) -> list[dict]:
    torch.manual_seed(0)
    model = ClipIt().eval()
    model.decoder = None  # as load_clipit leaves it
    rng = np.random.default_rng(2)
    text = text_block(rng.normal(size=(7, 512)).astype(np.float32))
    rows = []
    for n in sizes:
        frames = rng.normal(size=(n, 512)).astype(np.float32)
        _, s, _ = timed(lambda frames=frames: score_frames(model, frames, text), 2)
        rows.append({"sampled_frames": n, "seconds": round(s, 3)})
    return rows


def kts_cost(sizes: list[int], reference_up_to: int, clip_cpu_ms: float) -> list[dict]:
    rng = np.random.default_rng(3)
    rows = []
    for n in sizes:
        # a made-up video: 20-frame segments around random means in CLIP's 512 dimensions, with
        # frame-to-frame noise that keeps a segment's frames at cosine ~0.9, as CLIP features of a shot
        means = np.repeat(rng.normal(size=(n // 20 + 1, 512)), 20, axis=0)[:n]
        x = (means + 0.3 * rng.normal(size=(n, 512))).astype(np.float32)
        cps, s, cpu = timed(lambda x=x: kts_change_points(x), 1 if n > 1000 else 3)
        tracemalloc.start()
        kts_change_points(x)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        row = {
            "sampled_frames": n,
            "minutes_at_30fps": round(n * 15 / 30 / 60, 1),
            "change_points": len(cps),
            "seconds": round(s, 3),
            "cpu_seconds": round(cpu, 3),
            "peak_mb": round(peak / 2**20, 1),
            "vs_clip_fp32_encoding": round(cpu / (n * clip_cpu_ms / 1000), 4),
        }
        if n <= reference_up_to:
            xn = ref.norm_feature(x.copy())

            def reference(xn=xn):
                return ref.cpd_auto(np.dot(xn, xn.T), ncp=min(len(xn) - 1, 120), vmax=0.55, lmin=1)[0]

            want, ref_s, ref_cpu = timed(reference, 1)
            assert np.array_equal(want, cps), f"KTS differs from the reference at N={n}"
            row.update({"reference_seconds": round(ref_s, 3), "speedup": round(ref_cpu / cpu, 1)})
        rows.append(row)
    return rows


def default_pass_consumers(path: str) -> list:
    """The consumer factories of the default run's decode pass (TransNetV2 inside it on a CPU)."""
    from apache_beam.options.pipeline_options import PipelineOptions

    from reelbeam.pipelines.plan import build_plan

    plan = build_plan(PipelineOptions(["--input", path, "--output", "/tmp/unused"]), check_paths=False)
    decode = plan.stage("decode")
    decode.connect(plan)
    return [f for s in decode.pass_stages for f in s.frame_consumers()]


def sampling_cost(paths: dict[str, str], repeat: int) -> dict:
    """CPU time of the decode pass with and without the default CLIP frame sampling (every 15th
    frame resized for CLIP), per video: against the bare decode (frame index only) and against the
    default run's pass (TransNetV2 in fp32 inside it, histograms, motion statistics)."""
    from scaling import per_core

    from reelbeam.schemas.records import VideoRef
    from reelbeam.transforms.clip_scoring import ClipFrameConsumer, ClipSampling
    from reelbeam.transforms.decode import FrameIndexConsumer, decode_video

    out = {}
    for name, path in paths.items():
        ref = VideoRef("bench", path, os.path.getsize(path))

        def run(factories, ref=ref):
            for _ in decode_video(ref, [f() for f in factories]):
                pass

        sampler = [lambda: ClipFrameConsumer(ClipSampling.parse("every:15"))]
        default = [FrameIndexConsumer, *default_pass_consumers(path)]
        base, _ = per_core(lambda run=run: run([FrameIndexConsumer]), repeat)
        sampled, _ = per_core(lambda run=run, s=sampler: run([FrameIndexConsumer, *s]), repeat)
        full, _ = per_core(lambda run=run, d=default: run(d), 1)
        out[name] = {"bare_decode_cpu_s": round(base, 3), "bare_decode_with_sampling_cpu_s": round(sampled, 3),
                     "added_to_bare_decode": round(sampled / base - 1, 3),
                     "default_pass_cpu_s": round(full, 3),
                     "added_to_default_pass": round((sampled - base) / full, 3)}
    return out


def main(argv=None) -> int:
    parser = bench_parser(__doc__, "clip")
    parser.add_argument("--quick", action="store_true", help="small sizes: checks that the bench runs")
    parser.add_argument("--sampling-only", action="store_true", help="only the decode-pass sampling cost")
    args = parser.parse_args(argv)
    sample = os.path.join(HERE, "..", "samples", "sintel_trailer_30s.mp4")
    videos = {"sample_480p": sample}
    e2e_720 = os.path.join(HERE, "out", "e2e_corpus", "sample720.mp4")  # made by bench/e2e.py
    if os.path.exists(e2e_720):
        videos["sample_720p"] = e2e_720
    if args.sampling_only:
        return report({"sampling": sampling_cost(videos, 3)}, args.out.replace(".json", "_sampling.json"))
    quick = args.quick
    clip = clip_image(batch=4 if quick else 32, repeat=1 if quick else 3)
    summary = {
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "note": "shared machine: absolute speeds vary between runs; ratios are of CPU times in one run",
        "clip_image": clip,
        "sampling": sampling_cost(videos, 1 if quick else 3),
        "resize": resize_cost(1 if quick else 5),
        "clipit": clipit_cost([50] if quick else [250, 1000, 4000]),
        "kts": kts_cost(
            [50, 200] if quick else [100, 250, 500, 1000, 2000, 4000, 8000],
            reference_up_to=200 if quick else 1000,
            clip_cpu_ms=clip["fp32"]["cpu_ms_per_frame"],
        ),
    }
    return report(summary, args.out)


if __name__ == "__main__":
    sys.exit(main())
