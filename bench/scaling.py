"""The measured inputs of docs/scaling.md's cost model, as JSON.

    .venv/bin/python bench/scaling.py            # ~10 min on 2 cores; bench/out/scaling.json

Per core (process CPU time, one torch thread, so the figures do not depend on how busy the
machine's other cores are):
- decode: frames/s of the decode pass's base (PyAV decode + frame index) at 360p/720p/1080p H.264,
  and with TransNetV2's 48x27 window frames made in the pass;
- TransNetV2: frames/s in fp32, bf16 and int8 (one window of 100 frames scores 50 new frames);
- model cost on paper: FLOPs per input of TransNetV2 (per frame), BaSSL's ResNet-50 shot encoder
  (per keyframe), BaSSL's CRN (per shot), CLIP ViT-B/32 (per frame) and CMD's R(2+1)D-26 (per
  clip), counted by torch's FlopCounterMode on randomly initialised models (FLOPs do not depend on
  the weights); GPU throughput follows from these and a GPU's published peak (docs/scaling.md);
- output and shuffle: one default run of `reelbeam run` (with --shot-keyframes) on the bundled
  sample: each table's rows, Parquet bytes and pickled row bytes (what its rows weigh when they
  cross a shuffle) per hour of video, and keyframe JPEG bytes per shot.
"""

import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from common import bench_parser, report  # noqa: E402  (also puts tests/ and the repo on sys.path)
from shots import SIZES, generated_video  # noqa: E402

from reelbeam.schemas.records import VideoRef  # noqa: E402
from reelbeam.transforms.decode import FrameIndexConsumer, decode_video  # noqa: E402
from reelbeam.transforms.shots import TransNetV2WindowConsumer  # noqa: E402

ROOT = os.path.dirname(HERE)
SAMPLE = os.path.join(ROOT, "samples", "sintel_trailer_30s.mp4")


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def per_core(fn, repeat: int = 3) -> tuple[float, object]:
    """(least CPU seconds of `repeat` calls, fn's result)."""
    best, out = None, None
    for _ in range(repeat):
        t = cpu_seconds()
        out = fn()
        dt = cpu_seconds() - t
        best = dt if best is None or dt < best else best
    return best, out


def decode_figures(workdir: str) -> dict:
    out = {}
    for res, size in SIZES.items():
        path = os.path.join(workdir, f"decode_{res}.mp4")
        if not os.path.exists(path):
            generated_video(path, size, "h264", seed=7, num_shots=5)
        ref = VideoRef("bench", path, os.path.getsize(path))

        def run(consumers, ref=ref):
            n = 0
            for tag, value in decode_video(ref, [f() for f in consumers]):
                if tag == "per_video" and value.kind == "meta":
                    n = value.payload["frame_count"]
            return n

        base_s, frames = per_core(lambda run=run: run([FrameIndexConsumer]))
        windows_s, _ = per_core(lambda run=run: run([FrameIndexConsumer, lambda: TransNetV2WindowConsumer("AREA")]))
        out[res] = {
            "frames": frames,
            "decode_frames_per_core_s": round(frames / base_s, 1),
            "decode_with_transnetv2_frames_per_core_s": round(frames / windows_s, 1),
        }
    return out


def transnetv2_figures() -> dict:
    """Through the pipeline's own handler (batch of 1 window, as on CPU workers)."""
    from reelbeam.models.transnetv2 import TransNetV2ModelHandler, int8_available, onednn_bf16

    window = np.random.default_rng(0).integers(0, 256, (100, 27, 48, 3), dtype=np.uint8)
    out = {}
    for precision in ("fp32", "bf16", "int8"):
        if precision == "int8" and int8_available():
            out[precision] = {"unavailable": int8_available()}
            continue
        handler = TransNetV2ModelHandler(device="cpu", precision=precision, max_batch_size=1)
        model = handler.load_model()

        def score(handler=handler, model=model):
            for _ in range(4):
                list(handler.run_inference([window], model))

        score()  # warm-up (oneDNN primitive creation)
        s, _ = per_core(score)
        out[precision] = {"frames_per_core_s": round(4 * 50 / s, 1)}
    out["bf16_native"] = bool(onednn_bf16())
    return out


def flops(model, *inputs) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(*inputs)
    return int(counter.get_total_flops())


def model_flops() -> dict:
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from reelbeam.models.bassl import BaSSL
    from reelbeam.models.r2plus1d import R2Plus1D26
    from reelbeam.models.transnetv2 import TransNetV2

    torch.manual_seed(0)
    out = {}
    tn = TransNetV2().eval()
    out["transnetv2_per_frame"] = flops(tn, torch.zeros(1, 100, 27, 48, 3, dtype=torch.uint8)) // 50
    bassl = BaSSL().eval()
    out["bassl_resnet50_per_keyframe"] = flops(bassl.shot_encoder, torch.zeros(3, 3, 224, 224)) // 3
    # The CRN scores one window of 17 shots per shot (its centre).
    out["bassl_crn_per_shot"] = flops(bassl.score_windows, torch.zeros(1, 17, 2048))
    clip = CLIPVisionModelWithProjection(CLIPVisionConfig(image_size=224, patch_size=32, projection_dim=512)).eval()
    out["clip_vit_b32_per_frame"] = flops(lambda x: clip(pixel_values=x), torch.zeros(1, 3, 224, 224))
    cmd = R2Plus1D26().eval()
    out["cmd_r2plus1d26_per_clip"] = flops(cmd, torch.zeros(1, 3, 16, 112, 112))  # 16 frames at 112x112
    return out


def table_figures(workdir: str) -> dict:
    import pickle

    import pyarrow.parquet as pq

    from reelbeam.pipelines.outputs import committed_parts
    from reelbeam.schemas.tables import TABLES

    out_dir = os.path.join(workdir, "sample_tables")
    cmd = [sys.executable, "-m", "reelbeam", "run", "--input", SAMPLE, "--output", out_dir, "--overwrite", "--shot-keyframes"]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    duration = float(pq.read_table(committed_parts(out_dir, "videos")[0].path)["duration_s"][0].as_py())
    hours = duration / 3600
    tables = {}
    for table in TABLES:
        parts = committed_parts(out_dir, table)
        if not parts:
            continue
        rows = pickled = stored = 0
        for part in parts:
            stored += os.path.getsize(part.path)
            t = pq.read_table(part.path)
            rows += t.num_rows
            pickled += sum(len(pickle.dumps(r, protocol=5)) for r in t.to_pylist())
        tables[table] = {
            "rows_per_hour": round(rows / hours),
            "parquet_mb_per_hour": round(stored / hours / 1e6, 2),
            "row_mb_per_hour": round(pickled / hours / 1e6, 2),
        }
    keyframes = [p.path for p in committed_parts(out_dir, "keyframes")]
    kf = pq.read_table(keyframes[0]) if keyframes else None
    per_shot = None
    if kf is not None:
        shot_rows = [r for r in kf.to_pylist() if r.get("kind") == "shot"]
        shots = {r["shot_idx"] for r in shot_rows}
        per_shot = round(sum(len(r["jpeg"]) for r in shot_rows) / max(1, len(shots)))
    shots_per_hour = tables.get("shots", {}).get("rows_per_hour")
    return {"sample_seconds": round(duration, 2), "tables": tables, "keyframe_jpeg_bytes_per_shot": per_shot,
            "shots_per_hour": shots_per_hour}


def main(argv=None) -> int:
    parser = bench_parser(__doc__, "scaling")
    parser.add_argument("--skip-tables", action="store_true", help="leave out the sample run")
    parser.add_argument("--only-tables", action="store_true", help="only the sample run (its figures merged into --out)")
    args = parser.parse_args(argv)
    os.makedirs(args.workdir, exist_ok=True)
    torch.set_num_threads(1)
    t0 = time.time()
    if args.only_tables:
        import json

        with open(args.out) as f:
            summary = json.load(f)
        with tempfile.TemporaryDirectory() as tmp:
            summary["output"] = table_figures(tmp)
        return report(summary, args.out)
    summary = {
        "machine": {"cores": os.cpu_count(), "torch": torch.__version__, "torch_threads": 1},
        "decode": decode_figures(args.workdir),
        "transnetv2": transnetv2_figures(),
        "flops": model_flops(),
    }
    if not args.skip_tables:
        with tempfile.TemporaryDirectory() as tmp:
            summary["output"] = table_figures(tmp)
    summary["seconds"] = round(time.time() - t0, 1)
    return report(summary, args.out)


if __name__ == "__main__":
    sys.exit(main())
