"""Training-free scene grouping on generated videos whose scenes are known.

    .venv/bin/python bench/scenes.py [--videos 40] [--out bench/out/scenes.json]
    .venv/bin/python bench/scenes.py --hard-only    # the hard-case corpus: boundaries per class

Two corpora, each with known shots and scenes:
- the development corpus of natural photographs (bench/corpus.py: several camera set-ups per
  scene, per-shot colour and exposure changes, greyscale and low-contrast scenes, dissolves and
  fades, noise, compression; multi-scene videos, single-scene excerpts and compilations);
- the old synthetic corpus (below: each scene a textured image with saturated rectangles, 3-5
  crops of it; hard cuts), kept for comparison.

Methods, each on the true shots and on the shots detected by the default shot rule:
- `current`: `reelbeam.transforms.scenes.group_shots` on 64-bin RGB histograms of the 48x27
  frames (window 1, threshold 0.5, the defaults so far);
- `new`: `reelbeam.transforms.scene_grouping` (EfficientNet-Lite0 embeddings and hue/saturation
  histograms of 3 frames per shot, optimal sequential grouping with a per-video threshold), with
  ablations (histogram only, embedding only, the windowed-average rule) and sweeps of its
  threshold, weight and window;
- `every_shot`: every shot its own scene (a naive baseline).

Reports scene-boundary precision/recall/F1 (a predicted scene end within +-1 s of a true one, one
match each) and mIoU (BaSSL's symmetric max-IoU of scene frame intervals), and the cost of the
new features per hour of video.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from common import bench_parser, report  # noqa: E402

import synthetic  # noqa: E402
from reelbeam.metrics import Counts, match_boundaries, scene_ends, scene_miou  # noqa: E402
from reelbeam.models.transnetv2 import load_transnetv2  # noqa: E402
from reelbeam.transforms.scenes import SceneConfig, group_shots, shot_descriptors  # noqa: E402
from reelbeam.transforms.shots import shots_from_starts  # noqa: E402

import corpus  # noqa: E402
import signals  # noqa: E402
from reelbeam.models.efficientnet_lite import embed_images, load_efficientnet_lite0  # noqa: E402
from reelbeam.transforms import scene_grouping as sg  # noqa: E402
from reelbeam.transforms.shot_rule import ShotRuleConfig, improved_shot_starts, improved_transitions  # noqa: E402

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


# ------------------------------------------------------------------------------------------------
# New features and grouping (the evaluation functions above are unchanged)


def feature_frames(spans: list[tuple[int, int]], mode: str = "quarters") -> list[list[int]]:
    """Per shot, the frames its features are taken from: 'quarters' (default: a quarter in, the
    middle, a quarter from the end: inside the shot, away from transitions at its ends),
    'middle', or 'first_middle_last' (the keyframes the BaSSL path captures)."""
    if mode == "middle":
        return [[a + (b - a) // 2] for a, b in spans]
    if mode == "first_middle_last":
        return [sorted({a, a + (b - a) // 2, b}) for a, b in spans]
    return [sorted({a + (b - a) // 4, a + (b - a) // 2, b - (b - a) // 4}) for a, b in spans]


def small_frames(path: str, indices: set, size: int = 224) -> dict:
    """{frame index: uint8 RGB [size, size, 3]} for the requested frames (one decode)."""
    import av

    out = {}
    last = max(indices) if indices else -1
    with av.open(path) as c:
        st = c.streams.video[0]
        st.thread_type = "AUTO"
        for i, f in enumerate(c.decode(st)):
            if i in indices:
                out[i] = f.to_ndarray(format="rgb24", width=size, height=size, interpolation="AREA")
            if i >= last:
                break
    return out


class FeatureCache:
    """Per-frame EfficientNet-Lite0 embeddings and hue/saturation histograms, computed once per
    (video, frame), kept in memory and, with `cache_dir`, on disk beside the signals; times the
    work for the cost-per-hour figure (only what this run computed)."""

    def __init__(self, model, cache_dir: str = "") -> None:
        self.model = model
        self.cache_dir = cache_dir
        self.emb: dict = {}
        self.hs: dict = {}
        self.loaded: set = set()
        self.seconds = {"decode_and_resize": 0.0, "embedding": 0.0, "hs_histogram": 0.0}
        self.images = 0

    def _file(self, path: str) -> str:
        return os.path.join(self.cache_dir, f"{os.path.basename(path)}.{signals._key(path, 'features1')}.features.npz")

    def _load(self, path: str) -> None:
        self.loaded.add(path)
        if self.cache_dir and os.path.exists(self._file(path)):
            with np.load(self._file(path)) as z:
                for i, e, h in zip(z["idx"], z["emb"], z["hs"]):
                    self.emb[(path, int(i))] = e
                    self.hs[(path, int(i))] = h

    def _save(self, path: str) -> None:
        if not self.cache_dir:
            return
        keys = sorted(i for p, i in self.emb if p == path)
        np.savez(self._file(path), idx=np.asarray(keys), emb=np.stack([self.emb[(path, i)] for i in keys]),
                 hs=np.stack([self.hs[(path, i)] for i in keys]))

    def ensure(self, path: str, indices: set) -> None:
        if path not in self.loaded:
            self._load(path)
        todo = {i for i in indices if (path, i) not in self.emb}
        if not todo:
            return
        t = time.perf_counter()
        frames = small_frames(path, todo)
        self.seconds["decode_and_resize"] += time.perf_counter() - t
        keys = sorted(frames)
        t = time.perf_counter()
        e = embed_images(self.model, np.stack([frames[k] for k in keys]))
        self.seconds["embedding"] += time.perf_counter() - t
        t = time.perf_counter()
        for k, v in zip(keys, e):
            self.emb[(path, k)] = v
            self.hs[(path, k)] = sg.hs_histogram(frames[k])
        self.seconds["hs_histogram"] += time.perf_counter() - t
        self.images += len(keys)
        self._save(path)

    def shot_features(self, path: str, spans: list[tuple[int, int]], mode: str = "quarters"):
        frames = feature_frames(spans, mode)
        self.ensure(path, {i for f in frames for i in f})
        owner = [s for s, f in enumerate(frames) for _ in f]
        flat = [i for f in frames for i in f]
        emb = sg.mean_embeddings(np.stack([self.emb[(path, i)] for i in flat]), owner, len(spans))
        hs = sg.mean_histograms(np.stack([self.hs[(path, i)] for i in flat]), owner, len(spans))
        return emb, hs


def scenes_prf(items, predict, shots_key: str, report_key: str | None = None) -> dict:
    """P/R/F1 of scene ends within +-1 s and mIoU, pooled over videos; predict(item, spans) ->
    scene groups as (first_shot, last_shot). With `report_key`, the groups are made on
    `shots_key`'s shots but the scenes' frames come from `report_key`'s (the same shots with each
    start moved, e.g. to the middle of its transition)."""
    tp = fp = fn = 0
    ious = []
    predicted = 0
    for it in items:
        spans = it[shots_key]
        groups = predict(it, spans)
        shown = it[report_key] if report_key else spans
        scenes = [(shown[a][0], shown[b][1]) for a, b in groups]
        c = match_boundaries(scene_ends(scenes), scene_ends(it["scenes"]), round(it["fps"]))
        tp, fp, fn = tp + c.tp, fp + c.fp, fn + c.fn
        predicted += len(scenes) - 1
        ious.append(scene_miou(scenes, it["scenes"]))
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / (p + r) if p + r else 0.0, 4),
            "miou": round(float(np.mean(ious)), 4), "predicted_boundaries": predicted, "true_boundaries": tp + fn}


def boundaries_by_class(items, predict, shots_key: str, report_key: str | None = None) -> dict:
    """Per class of the transition at a true scene boundary (hard-case videos: the truth's
    'class', else its kind): how many true boundaries a predicted scene end matches within +-1 s
    (one each, nearest first), and how far the matched ones lie from the transition's middle
    (frames: median and max of |predicted end + 1 - middle|; the truth's scene boundary is that
    middle)."""
    out: dict = {}
    for it in items:
        spans = it[shots_key]
        groups = predict(it, spans)
        shown = it[report_key] if report_key else spans
        predicted = [shown[b][1] + 1 for _, b in groups[:-1]]  # first frame of each predicted scene
        tol = round(it["fps"])
        free = set(range(len(predicted)))
        for t in it["transitions"]:
            if not t["scene_change"]:
                continue
            middle = t["first"] + (t["last"] - t["first"] + 1) // 2 if t["kind"] in ("dissolve", "wipe") else None
            if middle is None:  # a cut (last is the first frame after it) or a fade (the first frame of the new shot)
                middle = t["last"] if t["kind"] == "cut" else next(a for a, _ in it["scenes"] if t["first"] <= a <= t["last"] + 1)
            d = out.setdefault(t.get("class", t["kind"]), {"found": 0, "total": 0, "offsets": []})
            d["total"] += 1
            near = sorted((abs(predicted[k] - middle), k) for k in free if abs(predicted[k] - middle) <= tol)
            if near:
                free.discard(near[0][1])
                d["found"] += 1
                d["offsets"].append(near[0][0])
    for d in out.values():
        offs = d.pop("offsets")
        d["recall"] = round(d["found"] / d["total"], 4) if d["total"] else None
        d["offset_frames_median"] = float(np.median(offs)) if offs else None
        d["offset_frames_max"] = int(max(offs)) if offs else None
    return out


def methods(cache: FeatureCache, config: sg.SceneGroupingConfig):
    """name -> predict(item, spans) for the compared methods."""
    default = SceneConfig()

    def current(it, spans):
        return group_shots(shot_descriptors(it["hist"], spans), default.window, default.threshold)[0]

    def new(cfg, features="both", rule="dp", frames="quarters"):
        def run(it, spans):
            emb, hs = cache.shot_features(it["path"], spans, frames)
            sim = sg.shot_similarity(emb if features != "hist" else None, hs if features != "embedding" else None, cfg.weight)
            if rule == "window":
                return sg.windowed_boundaries(sim, 2, sg.video_threshold(sim, cfg))
            return sg.group_scenes(sim, cfg)[0]
        return run

    return {
        "current_rgb_histogram_window1": current,
        "every_shot_a_scene": lambda it, spans: [(i, i) for i in range(len(spans))],
        "new": new(config),
        "new_absolute_threshold": new(dataclasses.replace(config, relative=False)),
        "new_hs_histogram_only": new(config, "hist"),
        "new_embedding_only": new(config, "embedding"),
        "new_features_windowed_average": new(config, rule="window"),
        "new_middle_frame_only": new(config, frames="middle"),
        "new_first_middle_last_frames": new(config, frames="first_middle_last"),
    }


def load_items(paths_truths, model, cache_dir, rule_config):
    """Per video: its signals, true shots and scenes, and the shots the default rule detects."""
    items = []
    for path, truth in paths_truths:
        sig = signals.video_signals(path, model, cache_dir)
        n = int(sig["frames"])
        starts = improved_shot_starts(sig["single"], sig["many_hot"], sig, rule_config)
        # The same shots with each start at the middle of its transition (a cut stays put): where
        # a scene boundary on a gradual transition belongs.
        middles = [t["start"] if t["kind"] == "cut" else (t["first"] + t["last"] + 1) // 2
                   for t in improved_transitions(sig["single"], sig["many_hot"], sig, rule_config)]
        items.append({
            "path": path, "fps": float(truth.get("fps", FPS)), "hist": sig["hist"],
            "true_shots": [tuple(x) for x in truth["shots"]], "scenes": [tuple(x) for x in truth["scenes"]],
            "detected_shots": shots_from_starts(starts, n), "kind": truth.get("kind", "scenes"),
            "transitions": truth.get("transitions", []),
            "detected_shots_middle": shots_from_starts(middles, n),
        })
    return items


def old_corpus(workdir: str, videos: int):
    out = []
    for v in range(videos):
        path = os.path.join(workdir, f"scenes_{v}.mp4")
        if not os.path.exists(path):
            shots, scenes = scene_video(path, seed=v + 1)
            with open(path + ".json", "w") as f:
                import json

                json.dump({"shots": shots, "scenes": scenes, "fps": FPS}, f)
        import json

        with open(path + ".json") as f:
            out.append((path, json.load(f)))
    return out


def main(argv=None) -> int:
    parser = bench_parser(__doc__, "scenes")
    parser.add_argument("--videos", type=int, default=corpus.CorpusConfig.videos, help="videos of the development corpus")
    parser.add_argument("--old-videos", type=int, default=6, help="videos of the old synthetic corpus")
    parser.add_argument("--seed", type=int, default=corpus.CorpusConfig.seed)
    parser.add_argument("--no-sweep", action="store_true")
    parser.add_argument("--cache-dir", default=os.path.join(HERE, "out"),
                        help="where the development corpus, the per-video signals and features are cached")
    parser.add_argument("--hard-videos", type=int, default=8, help="videos of the hard-case corpus (0: none)")
    parser.add_argument("--hard-seed", type=int, default=2027)
    parser.add_argument("--hard-only", action="store_true", help="only the hard-case corpus: boundaries per class")
    args = parser.parse_args(argv)
    os.makedirs(args.workdir, exist_ok=True)
    model = load_transnetv2()
    cache_dir = os.path.join(args.cache_dir, "signals_cache")
    rule = ShotRuleConfig()
    if args.hard_only:
        return report({"hard_cases": hard_section(args, model, cache_dir, rule)}, args.out)
    dev = corpus.build_corpus(os.path.join(args.cache_dir, "corpus"), corpus.CorpusConfig(seed=args.seed, videos=args.videos),
                              log=lambda m: print(m, file=sys.stderr))
    corpora = {
        "development": load_items([(it["path"], it) for it in dev], model, cache_dir, rule),
        "old_synthetic": load_items(old_corpus(args.workdir, args.old_videos), model, cache_dir, rule),
    }
    cache = FeatureCache(load_efficientnet_lite0(), cache_dir)
    config = sg.SceneGroupingConfig()
    summary = {"corpora": {"development": corpus.summary(dev), "old_synthetic": {"videos": args.old_videos}},
               "defaults": dataclasses.asdict(config), "shot_rule": "improved (defaults)", "results": {}}
    for cname, items in corpora.items():
        res = {}
        for shots_key in ("true_shots", "detected_shots"):
            res[shots_key] = {name: scenes_prf(items, fn, shots_key) for name, fn in methods(cache, config).items()}
            # per kind of video on the development corpus
            if cname == "development":
                for kind in sorted({it["kind"] for it in items}):
                    sub = [it for it in items if it["kind"] == kind]
                    res[shots_key][f"new_on_{kind}"] = scenes_prf(sub, methods(cache, config)["new"], shots_key)
                    res[shots_key][f"current_on_{kind}"] = scenes_prf(sub, methods(cache, config)["current_rgb_histogram_window1"], shots_key)
        if not args.no_sweep:
            sweep = []
            for threshold in (0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7):
                for weight in (0.5, 0.7, 0.75, 0.8, 0.9, 1.0):
                    for window in (2, 3, 4, 8):
                        cfg = dataclasses.replace(config, relative=False, threshold=threshold, weight=weight, window=window)
                        r = scenes_prf(items, methods(cache, cfg)["new"], "true_shots")
                        sweep.append({"relative": False, "threshold": threshold, "weight": weight, "window": window, **r})
            for lo in (0.35, 0.4, 0.45, 0.5):
                for hi in (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85):
                    for weight in (0.7, 0.75, 0.8, 0.9, 1.0):
                        if hi < lo:
                            continue
                        cfg = dataclasses.replace(config, min_threshold=lo, max_threshold=hi, weight=weight)
                        r = scenes_prf(items, methods(cache, cfg)["new"], "true_shots")
                        sweep.append({"relative": True, "min_threshold": lo, "max_threshold": hi, "weight": weight,
                                      "window": config.window, **r})
            res["sweep_on_true_shots"] = sweep
        summary["results"][cname] = res
        print(json.dumps({cname: {k: v for k, v in res.items() if k != "sweep_on_true_shots"}}, indent=1), file=sys.stderr)
    summary["cost"] = feature_cost(cache.model, dev)
    if args.hard_videos:
        summary["hard_cases"] = hard_section(args, model, cache_dir, rule, cache)
    return report(summary, args.out)


def hard_section(args, model, cache_dir, rule, cache=None) -> dict:
    """The hard-case corpus (bench/corpus.py `plan_hard_video`): scene boundaries per class of
    the transition they fall on (wipes, long dissolves, fades, dark cuts, ...), on true and on
    detected shots, for the default grouping and the histogram path."""
    hard = corpus.build_corpus(os.path.join(args.cache_dir, "corpus"), corpus.hard_config(args.hard_seed, args.hard_videos),
                               log=lambda m: print(m, file=sys.stderr))
    items = load_items([(it["path"], it) for it in hard], model, cache_dir, rule)
    cache = cache or FeatureCache(load_efficientnet_lite0(), cache_dir)
    ms = methods(cache, sg.SceneGroupingConfig())
    out = {"corpus": corpus.summary(hard), "seed": args.hard_seed}
    for shots_key in ("true_shots", "detected_shots"):
        out[shots_key] = {name: {**scenes_prf(items, ms[name], shots_key), "by_class": boundaries_by_class(items, ms[name], shots_key)}
                          for name in ("new", "current_rgb_histogram_window1")}
    # Detected shots, scene boundaries reported at the middle of the transition they fall on.
    out["detected_shots_boundary_at_transition_middle"] = {
        name: {**scenes_prf(items, ms[name], "detected_shots", "detected_shots_middle"),
               "by_class": boundaries_by_class(items, ms[name], "detected_shots", "detected_shots_middle")}
        for name in ("new", "current_rgb_histogram_window1")}
    return out


def feature_cost(model, items, images: int = 64, repeat: int = 3) -> dict:
    """CPU cost of the new shot features, per image and per hour of video: `images` frames of the
    corpus (already 224 x 224) embedded in one batch, and their hue/saturation histograms, best of
    `repeat` (process CPU time and wall time, torch's thread count as set); the frame capture (a
    224 x 224 area conversion of a decoded frame) is timed on the decoder's frames. Shots per hour
    are the development corpus's (its mean shot length)."""
    import av
    import torch

    path = items[0]["path"]
    frames, convert = [], []
    with av.open(path) as c:
        for f in c.decode(video=0):
            t = time.process_time()
            frames.append(f.to_ndarray(format="rgb24", width=224, height=224, interpolation="AREA"))
            convert.append(time.process_time() - t)
            if len(frames) == images:
                break
    batch = np.stack(frames)
    best = {"embed_cpu": float("inf"), "embed_wall": float("inf"), "hs_cpu": float("inf")}
    for _ in range(repeat):
        t, w = time.process_time(), time.perf_counter()
        embed_images(model, batch)
        best["embed_cpu"] = min(best["embed_cpu"], time.process_time() - t)
        best["embed_wall"] = min(best["embed_wall"], time.perf_counter() - w)
        t = time.process_time()
        for f in batch:
            sg.hs_histogram(f)
        best["hs_cpu"] = min(best["hs_cpu"], time.process_time() - t)
    per_image_ms = {k: round(1000 * v / len(batch), 2) for k, v in best.items()}
    per_image_ms["capture_cpu"] = round(1000 * float(np.median(convert)), 3)
    frames_total = sum(it["frames"] for it in items)
    shots_total = sum(len(it["shots"]) for it in items)
    fps = float(np.mean([it["fps"] for it in items]))
    shots_per_hour = shots_total / (frames_total / fps) * 3600
    cpu_ms = per_image_ms["embed_cpu"] + per_image_ms["hs_cpu"] + per_image_ms["capture_cpu"]
    return {
        "torch_threads": torch.get_num_threads(), "per_image_ms": per_image_ms,
        "shots_per_hour_of_video": round(shots_per_hour), "frames_per_shot": 3,
        "cpu_seconds_per_hour_of_video": round(shots_per_hour * 3 * cpu_ms / 1000, 1),
        "cpu_seconds_per_hour_of_video_middle_frame_only": round(shots_per_hour * cpu_ms / 1000, 1),
    }


if __name__ == "__main__":
    sys.exit(main())
