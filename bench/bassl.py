"""BaSSL path costs: shot keyframe extraction vs the decode pass, shot encoding and CRN speed.

    .venv/bin/python bench/bassl.py [--out bench/out/bassl.json]

- keyframes: on the bundled sample and on a generated 720p H.264 video with a 2 s GOP, the cost of
  getting 3 keyframes per shot (as JPEG) as a fraction of the time of reelbeam's decode pass
  (frame index + TransNetV2 frames, no model), both ways:
  - in_pass (the CPU default): the decode pass with TransNetV2 inside it capturing the keyframes,
    minus the same pass without capture (TransNetV2's predictions are replayed, so the model's
    own time, the same wherever it runs, is left out), plus a second pass for frames it missed;
  - seeking_pass_only: the second, seeking pass fetching all of them (the GPU path);
- encoder: shots per second and images per second of the ResNet-50 shot encoder (JPEG decode and
  the reference transform included), batches of 16 shots, random full-size weights, this CPU;
- crn: 17-shot windows per second of the CRN + head.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from common import bench_parser, best_of, report  # noqa: E402

import synthetic  # noqa: E402
from reelbeam.models.bassl import BaSSL, ShotEncoderHandler, save_modelscope_layout  # noqa: E402
from reelbeam.models.transnetv2 import TransNetV2ModelHandler, load_transnetv2, stitch_window_predictions  # noqa: E402
from reelbeam.schemas.records import VideoRef  # noqa: E402
from reelbeam.transforms.decode import FrameIndexConsumer, decode_video  # noqa: E402
from reelbeam.transforms.inline_shots import InlineTransNetV2Consumer  # noqa: E402
from reelbeam.transforms.keyframes import KeyframePlan, extract_keyframes, shot_keyframe_indices  # noqa: E402
from reelbeam.transforms.shots import TransNetV2WindowConsumer, shots_from_starts, transnetv2_shot_starts  # noqa: E402


class ReplayHandler:
    """Returns the real model's window predictions, recorded beforehand, in window order: the
    in-pass timing then measures the capture, not TransNetV2 (which costs the same in either
    place)."""

    def __init__(self, window_probs):
        self._probs = window_probs
        self._next = 0

    def load_model(self):
        self._next = 0
        return object()

    def run_inference(self, batch, model, inference_args=None):
        from apache_beam.ml.inference.base import PredictionResult

        out = [PredictionResult(w, self._probs[(self._next + i) % len(self._probs)]) for i, w in enumerate(batch)]
        self._next += len(batch)
        return out


def keyframe_cost(path, model, handler):
    ref = VideoRef("b", path, os.path.getsize(path))
    outs, decode_s = best_of(lambda: list(decode_video(ref, [FrameIndexConsumer(), TransNetV2WindowConsumer()])), repeat=5)
    windows = [v[1] for tag, v in outs if tag == "windows"]
    chunks = [v.payload for tag, v in outs if tag == "per_video" and v.kind == "frames"]
    n = sum(len(c["frame_idx"]) for c in chunks)
    window_probs = [handler.run_inference([w], model)[0].inference for w in windows]
    probs = stitch_window_predictions(window_probs, n)
    spans = shots_from_starts(transnetv2_shot_starts(probs), n)
    targets = tuple(sorted((f, s, str(s), k) for s, sp in enumerate(spans) for k, f in enumerate(shot_keyframe_indices(*sp))))
    pts = np.asarray([p for c in chunks for p in c["pts"]], dtype=object)
    key = np.concatenate([c["is_keyframe"] for c in chunks])
    plan = KeyframePlan("b", path, os.path.getsize(path), targets, pts, key)
    rows, seek_s = best_of(lambda: list(extract_keyframes(plan)), repeat=5)

    def inline(capture):
        replay = ReplayHandler(window_probs)
        replay.load_model()
        consumer = InlineTransNetV2Consumer(replay, capture=capture)
        return list(decode_video(ref, [FrameIndexConsumer(), consumer]))

    _, plain_inline_s = best_of(lambda: inline(False), repeat=5)
    captured_outs, capture_inline_s = best_of(lambda: inline(True), repeat=5)
    captured = next(v[1] for tag, v in captured_outs if tag == "shot_frames_index")
    missing = [t for t in targets if t[0] not in set(captured)]
    second_s = 0.0
    if missing:
        _, second_s = best_of(lambda: list(extract_keyframes(dataclasses.replace(plan, targets=tuple(missing)))), repeat=5)
    in_pass_s = max(capture_inline_s - plain_inline_s, 0.0) + second_s
    return rows, {
        "file": os.path.basename(path), "frames": n, "shots": len(spans), "codec_keyframes": int(key.sum()),
        "keyframes": len(rows), "decode_pass_s": round(decode_s, 3),
        "in_pass": {
            "captured_frames": len(captured),
            "second_pass_frames": len(missing),
            "extraction_s": round(in_pass_s, 3),
            "extraction_vs_decode_pass": round(in_pass_s / decode_s, 3),
        },
        "seeking_pass_only": {"extraction_s": round(seek_s, 3), "extraction_vs_decode_pass": round(seek_s / decode_s, 3)},
    }


def main(argv=None) -> int:
    parser = bench_parser(__doc__, "bassl")
    args = parser.parse_args(argv)
    os.makedirs(args.workdir, exist_ok=True)
    model, handler = load_transnetv2(), TransNetV2ModelHandler(device="cpu")
    gop_video = os.path.join(args.workdir, "shots_720p_gop50.mp4")
    synthetic.make_shot_video(gop_video, (60, 45, 80, 50, 70, 55), width=1280, height=720, gop=50,
                              options={"preset": "veryfast", "sc_threshold": "0", "keyint_min": "50"})
    sample = os.path.join(HERE, "..", "samples", "sintel_trailer_30s.mp4")
    results = [keyframe_cost(p, model, handler) for p in (sample, gop_video)]
    keyframes = [r[1] for r in results]

    torch.manual_seed(0)
    ckpt = os.path.join(args.workdir, "pytorch_model.pt")
    save_modelscope_layout(BaSSL().eval(), ckpt)
    enc = ShotEncoderHandler(ckpt, device="cpu")
    bassl = enc.load_model()
    jpegs = [r["jpeg"] for r in results[0][0]]  # the sample's shot keyframes (854x480)
    batch = [[jpegs[(i * 3 + k) % len(jpegs)] for k in range(3)] for i in range(16)]
    enc.run_inference(batch[:2], bassl)
    t = time.perf_counter()
    enc.run_inference(batch, bassl)
    enc_s = time.perf_counter() - t
    windows = torch.randn(64, 17, 2048)
    bassl.score_windows(windows[:2])
    t = time.perf_counter()
    bassl.score_windows(windows)
    crn_s = time.perf_counter() - t
    summary = {
        "cpus": os.cpu_count(),
        "keyframes": keyframes,
        "encoder": {"shots_per_s": round(16 / enc_s, 2), "images_per_s": round(48 / enc_s, 2), "batch_shots": 16},
        "crn": {"windows_per_s": round(64 / crn_s, 1)},
    }
    return report(summary, args.out)


if __name__ == "__main__":
    sys.exit(main())
