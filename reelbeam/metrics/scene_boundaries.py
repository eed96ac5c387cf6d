"""Scenes against ground truth: boundary precision / recall / F1 within a tolerance, and mIoU.

For scene detectors that output scenes, not per-shot probabilities (reelbeam's training-free
`histogram` scenes; the MovieNet protocol for per-shot probabilities is in `movienet`).

- Boundaries: a scene boundary is the end of every scene but the last (its last frame, or its end
  time). A predicted boundary matches a true one within `tolerance` (same unit: frames, or seconds;
  bench/scenes.py and `reelbeam evaluate scenes` use 1 s). One-to-one: predicted boundaries are
  taken in time order, each paired with the earliest unpaired true boundary within the tolerance.
  Since every true boundary has a window of the same width, this greedy pairing is a maximum
  matching.
- mIoU: BaSSL's symmetric max-IoU (kakaobrain/bassl `finetune/utils/metric.py`, `_compute_mIoU`):
  the mean over true scenes of their best IoU with a predicted scene, and the mean over predicted
  scenes of their best IoU with a true one, averaged. IoU of spans `(s, e)`: intersection
  `max(0, min(e) - max(s))` over union `max(e) - min(s)`, with the span ends as given (for
  inclusive frame spans this is the reference's arithmetic, which does not add 1).

Readers (`read_scene_truth`), each returning `{video name: scene spans [n, 2]}` in frames:

- `json`: `{"<video>": {"scenes": [[start_frame, end_frame], ...]}, ...}` (inclusive frames).
- `csv`: header `video,start_frame,end_frame`, one scene per row.
- `bbc`: the BBC Planet Earth dataset's `annotations/scenes/annotator_<k>/<nn_Title>.txt` (its
  readme: "a comma separated list of shot indexes. Each index represents the starting shot of a new
  scene"; the list ends with the number of shots) with `annotations/shots/<nn_Title>.txt` for the
  frames of each shot. Frame numbers are shifted by `frame_offset` (default 1) as for the shots
  (`shot_boundaries`). Give the dataset root.
"""

from __future__ import annotations

import csv
import itertools
import os
from collections.abc import Sequence

import numpy as np

from reelbeam.metrics.counts import Counts
from reelbeam.metrics.shot_boundaries import BBC_FRAME_OFFSET, read_shot_list
from reelbeam.metrics.truth import (
    TruthFormatError,
    files_in,
    ints,
    read_json,
    require_path,
    strip_suffixes,
    text_lines,
)

SCENE_FORMATS = ("json", "csv", "bbc")


def scene_ends(spans) -> list:
    """Scene spans in time order -> the end of each scene but the last."""
    return [e for _, e in list(spans)[:-1]]


def match_boundaries(predicted: Sequence[float], truth: Sequence[float], tolerance: float) -> Counts:
    """tp / fp / fn of predicted boundaries against true ones, each true one matched at most once."""
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    truth = sorted(truth)
    used = [False] * len(truth)
    tp = 0
    for p in sorted(predicted):
        for i, t in enumerate(truth):
            if not used[i] and abs(p - t) <= tolerance:
                used[i] = True
                tp += 1
                break
    return Counts(tp, len(predicted) - tp, len(truth) - tp)


def iou_matrix(a, b) -> np.ndarray:
    """IoU `[len(a), len(b)]` of spans `(s, e)` with BaSSL's arithmetic (module doc)."""
    a, b = np.asarray(a, np.float64).reshape(-1, 2), np.asarray(b, np.float64).reshape(-1, 2)
    inter = np.minimum(a[:, None, 1], b[None, :, 1]) - np.maximum(a[:, None, 0], b[None, :, 0])
    union = np.maximum(a[:, None, 1], b[None, :, 1]) - np.minimum(a[:, None, 0], b[None, :, 0])
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(inter > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def scene_miou(predicted, truth) -> float:
    """Symmetric max-IoU of predicted and true scene spans (module doc)."""
    if len(predicted) == 0 or len(truth) == 0:
        raise ValueError("scene_miou needs at least one predicted and one true scene")
    m = iou_matrix(truth, predicted)
    return float((m.max(1).mean() + m.max(0).mean()) / 2)


# ------------------------------------------------------------------------------------------------
# Ground-truth readers


def read_bbc_scenes(root: str, annotator: int = 0, frame_offset: int = BBC_FRAME_OFFSET) -> dict[str, np.ndarray]:
    """BBC Planet Earth scenes of one annotator -> `{episode: scene spans [n, 2]}` in frames."""
    scenes_dir = os.path.join(root, "annotations", "scenes", f"annotator_{annotator}")
    shots_dir = os.path.join(root, "annotations", "shots")
    require_path(scenes_dir)
    out = {}
    for f in files_in(scenes_dir, ".txt"):
        name = strip_suffixes(os.path.basename(f), (".txt",))
        shots = read_shot_list(os.path.join(shots_dir, name + ".txt"), frame_offset)
        starts = [x for _, line in text_lines(f) for x in ints(f, 1, line, sep=",")]
        if not starts or starts[-1] != len(shots) or starts != sorted(set(starts)):
            raise TruthFormatError(
                f"{f}: expected increasing shot indices ending with the number of shots ({len(shots)})"
            )
        out[name] = np.array([(shots[a, 0], shots[b - 1, 1]) for a, b in itertools.pairwise(starts)], np.int64)
    return out


def read_scene_truth(path: str, fmt: str | None = None, annotator: int = 0, frame_offset: int | None = None) -> dict[str, np.ndarray]:
    """Scene ground truth -> `{video name: inclusive frame spans [n, 2]}` (formats in the module doc)."""
    require_path(path)
    if fmt is None:
        if os.path.isdir(os.path.join(path, "annotations", "scenes")):
            fmt = "bbc"
        elif path.endswith(".json"):
            fmt = "json"
        elif path.endswith(".csv"):
            fmt = "csv"
        else:
            raise TruthFormatError(f"{path}: cannot tell its scene ground-truth format; give one of {', '.join(SCENE_FORMATS)}")
    if fmt == "bbc":
        return read_bbc_scenes(path, annotator, BBC_FRAME_OFFSET if frame_offset is None else frame_offset)
    out: dict[str, list] = {}
    if fmt == "json":
        data = read_json(path)
        if not isinstance(data, dict):
            raise TruthFormatError(f"{path}: expected a JSON object {{video: {{scenes: [[start, end], ...]}}}}")
        for name, v in data.items():
            if not isinstance(v, dict) or "scenes" not in v:
                raise TruthFormatError(f"{path}: video {name!r} needs 'scenes': [[start_frame, end_frame], ...]")
            out[str(name)] = v["scenes"]
    elif fmt == "csv":
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if not {"video", "start_frame", "end_frame"} <= set(reader.fieldnames or ()):
                raise TruthFormatError(f"{path}: expected a header video,start_frame,end_frame, got {reader.fieldnames}")
            for n, row in enumerate(reader, 2):
                try:
                    out.setdefault(row["video"], []).append((int(row["start_frame"]), int(row["end_frame"])))
                except (TypeError, ValueError):
                    raise TruthFormatError(f"{path}:{n}: expected integer frame numbers, got {row}") from None
    else:
        raise TruthFormatError(f"unknown scene ground-truth format {fmt!r}; known: {', '.join(SCENE_FORMATS)}")
    result = {}
    for name, spans in out.items():
        try:
            a = np.asarray(spans, np.int64).reshape(-1, 2)
        except (ValueError, TypeError):
            raise TruthFormatError(f"{path}: video {name!r}: scenes must be [start_frame, end_frame] pairs") from None
        result[name] = a[np.argsort(a[:, 0], kind="stable")] + (frame_offset or 0)
    return result
