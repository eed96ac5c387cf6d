"""Training-free scene grouping on generated videos whose scenes are known.

    .venv/bin/python bench/scenes.py [--out bench/out/scenes.json]

Each generated scene is one synthetic "location" (a large textured image) filmed from 3-5 "camera
angles": each shot is a different crop and zoom of that image, slowly panning; shots of a scene
may alternate (A B A B). Scene changes switch the image. Hard cuts between all shots.

Reports, for a sweep of (window, threshold) of `group_shots` on the true shots, and for the chosen
defaults on shots detected by reelbeam's TransNetV2: scene-boundary precision/recall/F1 (a
predicted scene end within +-1 s of a true one, one match each) and mIoU (BaSSL's symmetric
max-IoU of scene frame intervals).
"""

from __future__ import annotations

import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from common import bench_parser, report  # noqa: E402

import synthetic  # noqa: E402
from reelbeam.metrics import Counts, match_boundaries, scene_ends, scene_miou  # noqa: E402
from reelbeam.models.transnetv2 import TransNetV2ModelHandler, load_transnetv2, stitch_window_predictions  # noqa: E402
from reelbeam.schemas.records import VideoRef  # noqa: E402
from reelbeam.transforms.decode import FrameIndexConsumer, decode_video  # noqa: E402
from reelbeam.transforms.scenes import ColorHistogramConsumer, SceneConfig, group_shots, shot_descriptors  # noqa: E402
from reelbeam.transforms.shots import TransNetV2WindowConsumer, shots_from_starts, transnetv2_shot_starts  # noqa: E402

FPS = 25
W, H = 320, 180


def location(seed: int) -> np.ndarray:
    """A 2x-size textured image with its own palette."""
    return synthetic.scene_frame(seed, 0, W * 2, H * 2)


def scene_video(path: str, seed: int, num_scenes: int = 5):
    rng = np.random.default_rng(seed)
    frames, shot_spans, scene_spans = [], [], []
    for sc in range(num_scenes):
        img = location(seed * 100 + sc)
        angles = []
        for _ in range(int(rng.integers(2, 4))):
            zoom = rng.uniform(1.0, 1.8)
            cw, ch = int(W * 2 / zoom), int(H * 2 / zoom)
            angles.append((int(rng.integers(0, W * 2 - cw + 1)), int(rng.integers(0, H * 2 - ch + 1)), cw, ch))
        scene_start = len(frames)
        order = [int(a) for a in rng.integers(0, len(angles), int(rng.integers(3, 6)))]
        order = [a for i, a in enumerate(order) if i == 0 or a != order[i - 1]] or [0]
        for a in order:
            x, y, cw, ch = angles[a]
            start = len(frames)
            for t in range(int(rng.integers(30, 70))):
                dx = min(x + t, W * 2 - cw)
                crop = img[y : y + ch, dx : dx + cw]
                import av

                frames.append(av.VideoFrame.from_ndarray(np.ascontiguousarray(crop), format="rgb24").reformat(W, H, "rgb24").to_ndarray())
            shot_spans.append((start, len(frames) - 1))
        scene_spans.append((scene_start, len(frames) - 1))
    synthetic.write_video(path, frames, fps=FPS)
    return shot_spans, scene_spans


def evaluate(items, window, threshold, shots_key):
    """Boundaries within 1 s (FPS frames) and mIoU, by reelbeam.metrics.scene_boundaries."""
    counts = Counts()
    ious = []
    for it in items:
        spans = it[shots_key]
        desc = shot_descriptors(it["hists"], spans)
        groups, _ = group_shots(desc, window, threshold)
        scenes = [(spans[a][0], spans[b][1]) for a, b in groups]
        counts += match_boundaries(scene_ends(scenes), scene_ends(it["scenes"]), FPS)
        ious.append(scene_miou(scenes, it["scenes"]))
    c = counts.as_dict()
    return {"window": window, "threshold": threshold, "precision": c["precision"], "recall": c["recall"],
            "f1": c["f1"], "miou": round(float(np.mean(ious)), 4)}


def main(argv=None) -> int:
    parser = bench_parser(__doc__, "scenes")
    parser.add_argument("--videos", type=int, default=6)
    args = parser.parse_args(argv)
    os.makedirs(args.workdir, exist_ok=True)
    model = load_transnetv2()
    handler = TransNetV2ModelHandler(device="cpu")
    items = []
    for v in range(args.videos):
        path = os.path.join(args.workdir, f"scenes_{v}.mp4")
        shots, scenes = scene_video(path, seed=v + 1)
        hists, probs, n = [], [], 0
        ref = VideoRef("b", path, os.path.getsize(path))
        for tag, value in decode_video(ref, [FrameIndexConsumer(), ColorHistogramConsumer(), TransNetV2WindowConsumer()]):
            if tag == "windows":
                probs.append(handler.run_inference([value[1]], model)[0].inference)
            elif tag == "per_video" and value[1][0] == "color_hist":
                hists.append(value[1][1]["hist"])
            elif tag == "per_video" and value[1][0] == "meta":
                n = value[1][1]["frame_count"]
        detected = shots_from_starts(transnetv2_shot_starts(stitch_window_predictions(probs, n)), n)
        items.append({"hists": np.concatenate(hists), "true_shots": shots, "detected_shots": detected, "scenes": scenes})
        print(f"{path}: {len(shots)} shots ({len(detected)} detected), {len(scenes)} scenes", file=sys.stderr)
    sweep = [evaluate(items, w, t, "true_shots") for w in (1, 2, 3) for t in (0.3, 0.4, 0.5, 0.6, 0.7)]
    default = SceneConfig()
    summary = {
        "videos": len(items),
        "true_scene_boundaries": sum(len(it["scenes"]) - 1 for it in items),
        "sweep_on_true_shots": sweep,
        "sweep_on_transnetv2_shots": [evaluate(items, w, t, "detected_shots") for w in (1, 2, 3) for t in (0.3, 0.4, 0.5, 0.6, 0.7)],
        "defaults": {"window": default.window, "threshold": default.threshold},
        "defaults_on_true_shots": evaluate(items, default.window, default.threshold, "true_shots"),
        "defaults_on_transnetv2_shots": evaluate(items, default.window, default.threshold, "detected_shots"),
    }
    return report(summary, args.out)


if __name__ == "__main__":
    sys.exit(main())
