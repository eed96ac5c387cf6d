"""MovieNet scene segmentation metrics exactly as BaSSL computes them, and MovieNet truth readers.

Source: kakaobrain/bassl `finetune/utils/metric.py` and `finetune_wrapper.py` (`validation_step`,
`validation_epoch_end`), as specified in reference/scene_seg.md section 7. Inputs per movie: the
probability that each shot ends a scene (`boundaries.p_boundary`, BaSSL's `softmax(logits)[:, 1]`)
and the truth label of each shot (MovieNet `label318`: 1 ends a scene; -1 is read as 1, as BaSSL's
`abs` and LGSS do). BaSSL's binary prediction is the argmax of the two classes, i.e.
`prob > 0.5` (a tie goes to class 0). A detector that gives only 0/1 decisions can pass them as
probabilities 1.0 / 0.0 (its AP is then that of a single threshold). All figures are fractions in
[0, 1]; BaSSL's table prints them x100.

- `ap`: sklearn's `average_precision_score` over all shots of all movies pooled (not a per-movie
  mean): the sum over score thresholds, highest first, of (recall step) x precision. NaN inputs
  are read as 0 (BaSSL's `nan_to_num`).
- `f1`: torchmetrics' (0.x) binary F1 of `prob >= 0.5`, pooled over all shots: 2TP / (2TP + FP + FN),
  0 when that is 0/0.
- `recall`: per movie `recall_score(gt, pred)` (0 for a movie without positives), mean over movies.
- `recall_at_3s`: per movie, a true boundary shot `s` is found if some shot `s'` in `s-5 .. s+5`
  that has a prediction is predicted 1 and `|end_frame(s') - end_frame(s)| / 24 < 3` (end frames
  from `shot_movie318`, 24 fps hard-coded as in BaSSL); hits / (positives + 1e-5) (so a movie
  whose boundaries are all found scores 0.99999..., as BaSSL's), mean over movies.
- `miou`: per movie, scenes are runs of shots (sorted shot ids, those with a prediction) closed by
  a label-1 shot, built separately from the truth and from the predictions; shots after the last
  positive are dropped. A scene's span is (start frame of its first shot, end frame of its last
  shot); the movie's score is `scene_boundaries.scene_miou` of the two lists; 0 when the
  prediction has no positive. BaSSL gives no value at all (None) when a movie's truth has no
  positive; here the whole mIoU is then NaN. Mean over movies.

Truth readers (`read_movienet_truth`), returning `{movie id: MovieTruth}`:

- `movienet`: MovieNet's annotation folders: a directory holding `label318/<imdb>.txt` (one line per
  shot: `<shot id> <label>`, e.g. `0042 1`) and `shot_movie318/<imdb>.txt` (line i is shot i:
  `start_frame end_frame keyframe1 keyframe2 keyframe3`, space-separated; only the first two are
  used). Movies are those with a `label318` file.
- `json`: `{"<movie>": {"labels": [0, 0, 1, ...], "shots": [[start_frame, end_frame], ...]}}`,
  one label and one span per shot, in shot id order (labels -1 read as 1).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence

import numpy as np

from reelbeam.metrics.scene_boundaries import scene_miou
from reelbeam.metrics.truth import (
    TruthFormatError,
    files_in,
    ints,
    read_json,
    require_path,
    strip_suffixes,
    text_lines,
)

MOVIENET_FORMATS = ("movienet", "json")
BASSL_FPS = 24.0  # hard-coded in BaSSL's Recall@3s
RECALL_SECONDS = 3.0
RECALL_NEIGHBOURS = 5


@dataclasses.dataclass(frozen=True)
class MovieTruth:
    """labels: {shot id: 0 or 1}; shots: [n, 2] (start_frame, end_frame) of shot i in row i."""

    labels: dict[int, int]
    shots: np.ndarray


def average_precision(labels, scores) -> float:
    """sklearn's binary `average_precision_score` (no interpolation); NaN when no label is 1."""
    y = np.nan_to_num(np.asarray(labels, np.float64)).ravel() > 0
    s = np.nan_to_num(np.asarray(scores, np.float64)).ravel()
    if len(y) != len(s):
        raise ValueError(f"labels and scores differ in length: {len(y)} vs {len(s)}")
    if not y.any():
        return float("nan")
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last index of each distinct score
    tps = np.cumsum(y)[last]
    precision = tps / (last + 1)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def _scenes(flags: Sequence[tuple[int, int]], shots: np.ndarray) -> list[tuple[int, int]]:
    """(shot id, 0/1) sorted by id -> spans of the runs closed by a 1 (BaSSL's get_pair_list)."""
    spans, first = [], None
    for sid, flag in flags:
        first = sid if first is None else first
        if flag == 1:
            spans.append((int(shots[first, 0]), int(shots[sid, 1])))
            first = None
    return spans


def movienet_metrics(probs: Mapping[str, Mapping[int, float] | Sequence[float]], truth: Mapping[str, MovieTruth]) -> dict:
    """BaSSL's MovieNet metrics (module doc) of per-shot boundary probabilities.

    probs: {movie id: {shot id: p} or a sequence indexed by shot id}; every movie must be in
    `truth`. The shots scored are those that have both a label and a probability.
    Returns {'ap', 'f1', 'recall', 'recall_at_3s', 'miou', 'movies', 'shots', 'unscored_shots'}.
    """
    all_gt, all_p = [], []
    recalls, recalls_3s, mious = [], [], []
    unscored = 0
    for vid, p in probs.items():
        if vid not in truth:
            raise KeyError(f"movie {vid!r} has predictions but no ground truth")
        t = truth[vid]
        p = dict(p) if isinstance(p, Mapping) else dict(enumerate(p))
        sids = sorted(s for s in t.labels if s in p)
        unscored += len(t.labels) - len(sids)
        gt = np.array([t.labels[s] for s in sids], np.int64)
        pr = np.nan_to_num(np.array([p[s] for s in sids], np.float64))
        pred = (pr > 0.5).astype(np.int64)
        all_gt.append(gt)
        all_p.append(pr)
        recalls.append(float((gt & pred).sum() / gt.sum()) if gt.sum() else 0.0)

        pred_by_sid = dict(zip(sids, pred.tolist()))
        ends = t.shots[:, 1].astype(np.float64)
        hits = 0
        for s in (s for s, g in zip(sids, gt) if g == 1):
            for n in range(s - RECALL_NEIGHBOURS, s + RECALL_NEIGHBOURS + 1):
                if 0 <= n < len(t.shots) and pred_by_sid.get(n) == 1 and abs(ends[n] - ends[s]) / BASSL_FPS < RECALL_SECONDS:
                    hits += 1
                    break
        recalls_3s.append(hits / (int(gt.sum()) + 1e-5))

        gt_scenes = _scenes(list(zip(sids, gt.tolist())), t.shots)
        pred_scenes = _scenes(list(zip(sids, pred.tolist())), t.shots)
        if not pred_scenes:
            mious.append(0.0)
        elif not gt_scenes:
            mious.append(float("nan"))
        else:
            mious.append(scene_miou(pred_scenes, gt_scenes))
    if not all_gt:
        raise ValueError("no movies to evaluate")
    gt, pr = np.concatenate(all_gt), np.concatenate(all_p)
    on = pr >= 0.5
    tp, fp, fn = int((on & (gt == 1)).sum()), int((on & (gt == 0)).sum()), int((~on & (gt == 1)).sum())
    return {
        "ap": average_precision(gt, pr),
        "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0,
        "recall": float(np.mean(recalls)),
        "recall_at_3s": float(np.mean(recalls_3s)),
        "miou": float(np.mean(mious)),
        "movies": len(recalls),
        "shots": len(gt),
        "unscored_shots": unscored,
    }


# ------------------------------------------------------------------------------------------------
# Ground-truth readers


def read_label318(path: str) -> dict[int, int]:
    """`<shot id> <label>` lines -> {shot id: 0 or 1} (-1 read as 1)."""
    out = {}
    for n, line in text_lines(path):
        sid, label = ints(path, n, line, 2)
        if label not in (-1, 0, 1):
            raise TruthFormatError(f"{path}:{n}: label must be 0, 1 or -1, got {label}")
        out[sid] = abs(label)
    return out


def read_shot_movie318(path: str) -> np.ndarray:
    """`start end keyf1 keyf2 keyf3` lines -> [n, 2] (start_frame, end_frame); line i is shot i."""
    rows = []
    for n, line in text_lines(path):
        v = ints(path, n, line)
        if len(v) < 2:
            raise TruthFormatError(f"{path}:{n}: expected 'start_frame end_frame ...', got {line!r}")
        rows.append(v[:2])
    return np.array(rows, np.int64).reshape(-1, 2)


def read_movienet_truth(path: str, fmt: str | None = None) -> dict[str, MovieTruth]:
    """MovieNet scene truth -> {movie id: MovieTruth} (formats in the module doc)."""
    require_path(path)
    fmt = fmt or ("movienet" if os.path.isdir(path) else "json" if path.endswith(".json") else None)
    out = {}
    if fmt == "movienet":
        label_dir, shot_dir = os.path.join(path, "label318"), os.path.join(path, "shot_movie318")
        for d in (label_dir, shot_dir):
            if not os.path.isdir(d):
                raise TruthFormatError(f"{path}: expected MovieNet's label318/ and shot_movie318/ directories in it")
        for f in files_in(label_dir, ".txt"):
            vid = strip_suffixes(os.path.basename(f), (".txt",))
            labels = read_label318(f)
            shots = read_shot_movie318(os.path.join(shot_dir, vid + ".txt"))
            if labels and max(labels) >= len(shots):
                raise TruthFormatError(f"{f}: shot {max(labels)} is not in shot_movie318/{vid}.txt ({len(shots)} shots)")
            out[vid] = MovieTruth(labels, shots)
        return out
    if fmt == "json":
        data = read_json(path)
        if not isinstance(data, dict):
            raise TruthFormatError(f"{path}: expected a JSON object {{movie: {{labels: [...], shots: [[s, e], ...]}}}}")
        for vid, v in data.items():
            try:
                labels = [abs(int(x)) for x in v["labels"]]
                shots = np.asarray(v["shots"], np.int64).reshape(-1, 2)
            except (KeyError, TypeError, ValueError):
                raise TruthFormatError(f"{path}: movie {vid!r} needs 'labels' (one per shot) and 'shots' ([start, end] per shot)") from None
            if len(labels) != len(shots) or not set(labels) <= {0, 1}:
                raise TruthFormatError(f"{path}: movie {vid!r}: {len(labels)} labels (0/1/-1) for {len(shots)} shots")
            out[str(vid)] = MovieTruth(dict(enumerate(labels)), shots)
        return out
    raise TruthFormatError(f"{path}: unknown MovieNet ground-truth format {fmt!r}; known: {', '.join(MOVIENET_FORMATS)}")
