"""Shot-boundary detection (SBD): precision / recall / F1 of detected transitions, and truth readers.

Convention (TransNetV2's evaluation, `training/metrics_utils.py` `evaluate_scenes`, itself adapted
from gyglim/shot-detection-evaluation). A transition is a pair `(a, b)`: `a` the last frame of the
outgoing shot, `b` the first frame of the incoming one, 0-based frame indices. A hard cut at frame
120 is `(119, 120)`; a dissolve whose mixed frames are 200..211 is `(199, 212)`. This is also how
ClipShots writes transitions, and what consecutive shots `[s0, e0], [s1, e1]` give: `(e0, s1)`.

Matching with a tolerance of `t` frames (TransNetV2's `n_frames_miss_tolerance`, default 2): each
transition becomes the interval `[a + 0.5 - t/2, b - 0.5 + t/2]`, for the truth and the detections
alike; a detection and a truth match when their intervals overlap. So a detected cut at frame `s`
hits a true cut at `c` when `|s - c| <= t`, and hits a true gradual transition `(a, b)` when
`a + 1 - t <= s <= b + t`: inside it, or within `t` frames of its ends.

One-to-one: the truth and the detections are walked together in time order (TransNetV2's two
pointers); at each step the earlier one that cannot overlap the other is counted as a miss (false
negative) or a false alarm (false positive), and overlapping ones are paired and both consumed.
Each true transition is matched at most once and so is each detection: two detected cuts inside
one dissolve give one true positive and one false positive. When the detections are cuts and no
true transition lies strictly inside another (true of transitions between consecutive shots), this
pairing is a maximum matching: the earliest detection taken by the earliest-ending truth it reaches
can always be swapped into an optimal pairing.

Counts pool over videos (sum of tp, fp, fn, then the ratios), as TransNetV2's `evaluate.py` does.

Readers (`read_shot_truth`), each returning `{video name: transitions [n, 2] int64}`:

- `json`: `{"<video>": {"cuts": [120, ...], "transitions": [[199, 212], ...],
  "shots": [[0, 119], ...]}, ...}`; any of the three keys, which are combined. ClipShots'
  annotation files (`{"<name>.mp4": {"frame_num": N, "transitions": [[a, b], ...]}}`) are this
  format; other keys are ignored.
- `csv`: a header row, then one transition per row: `video,frame` (a cut: `frame` is the first
  frame of the new shot) or `video,out_frame,in_frame` (`out_frame` = `a`, `in_frame` = `b`); both
  kinds may share one file (leave `frame` empty on gradual rows).
- `shots-txt`: one shot per line, `start end` (inclusive, whitespace-separated), one file per video:
  TransNetV2's `<video>.scenes.txt` output and its consolidated test sets. A directory of `.txt`
  files is read whole; the video name is the file name without `.txt` (and without `.scenes`).
- `rai`: the RAI dataset (Baraldi et al., unimore imagelab), `labels/<name>_gt.txt`: the same
  `start end` shot lines; the name drops `_gt`. Read as TransNetV2's `consolidate_datasets.py`
  reads it (no frame shift). Give the `labels` directory or one file.
- `bbc`: the BBC Planet Earth dataset (Baraldi et al., ACM MM 2015), `annotations/shots/<nn_Title>.txt`:
  tab-separated `start end` shot lines (its readme: "Each row contains the starting and ending
  frames of a shot"). TransNetV2's `consolidate_datasets.py` adds 1 to every frame number before
  evaluating on its decoded frames; `read_shot_truth(..., "bbc")` does the same by default
  (`frame_offset=1`; pass 0 for the files' own numbering). Give the dataset root, its
  `annotations/shots` directory, or one file. Video names are the file names (`01_From_Pole_to_Pole`).
"""

from __future__ import annotations

import csv
import dataclasses
import os
from collections.abc import Sequence

import numpy as np

from reelbeam.metrics.counts import Counts
from reelbeam.metrics.truth import (
    TruthFormatError,
    files_in,
    ints,
    read_json,
    require_path,
    strip_suffixes,
    text_lines,
)

DEFAULT_TOLERANCE = 2  # frames, TransNetV2's n_frames_miss_tolerance
SHOT_FORMATS = ("json", "csv", "shots-txt", "rai", "bbc")
BBC_FRAME_OFFSET = 1


# ------------------------------------------------------------------------------------------------
# Transitions


def _as_pairs(x, what: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.int64)
    if a.size == 0:
        return np.zeros((0, 2), np.int64)
    if a.ndim != 2 or a.shape[1] != 2:
        raise ValueError(f"{what} must be pairs [n, 2], got shape {a.shape}")
    return a


def transitions_from_shots(shots) -> np.ndarray:
    """Inclusive shot spans `[n, 2]` in time order -> transitions `[n - 1, 2]`: (end_i, start_i+1)."""
    s = _as_pairs(shots, "shots")
    return np.stack([s[:-1, 1], s[1:, 0]], 1) if len(s) > 1 else np.zeros((0, 2), np.int64)


def transitions_from_cuts(cuts: Sequence[int]) -> np.ndarray:
    """Cut frames (first frame of each new shot) -> transitions (c - 1, c), sorted."""
    c = np.unique(np.asarray(cuts, dtype=np.int64))
    return np.stack([c - 1, c], 1) if len(c) else np.zeros((0, 2), np.int64)


def scenes_from_predictions(predictions) -> np.ndarray:
    """Per-frame 0/1 transition predictions -> shots `[k, 2]`, as TransNetV2's evaluation builds them
    (`metrics_utils.predictions_to_scenes`): a shot ends at the first frame of a run of 1s and the
    next starts at the first 0 after it, so a run of several 1s becomes a gradual transition; all 1s
    give one shot."""
    p = np.asarray(predictions).astype(np.int64).ravel()
    scenes, start, prev, t = [], 0, 0, 0
    for i, t in enumerate(p.tolist()):
        if prev == 1 and t == 0:
            start = i
        if prev == 0 and t == 1 and i != 0:
            scenes.append((start, i))
        prev = t
    if len(p) and t == 0:
        scenes.append((start, len(p) - 1))
    if not scenes:
        return np.array([[0, max(len(p) - 1, 0)]], np.int64)
    return np.array(scenes, np.int64)


@dataclasses.dataclass(frozen=True)
class ShotMatch:
    """Result of `match_transitions`: counts, and which transitions paired or not (row indices
    into the truth and detection arrays as given)."""

    counts: Counts
    matched: list[tuple[int, int]]  # (truth row, detection row)
    missed: list[int]  # truth rows
    false_alarms: list[int]  # detection rows


def match_transitions(truth, detected, tolerance: int = DEFAULT_TOLERANCE) -> ShotMatch:
    """One-to-one matching of transitions `(a, b)` `[n, 2]` with a frame tolerance (module doc)."""
    if tolerance < 0 or int(tolerance) != tolerance:
        raise ValueError(f"tolerance must be a whole number of frames >= 0, got {tolerance}")
    g, d = _as_pairs(truth, "truth"), _as_pairs(detected, "detected")
    # Intervals in half-frame units, so that all bounds are integers: [2a + 1 - t, 2b - 1 + t].
    t = int(tolerance)
    g_lo, g_hi = 2 * g[:, 0] + 1 - t, 2 * g[:, 1] - 1 + t
    d_lo, d_hi = 2 * d[:, 0] + 1 - t, 2 * d[:, 1] - 1 + t
    g_order = np.lexsort((g[:, 1], g[:, 0]))
    d_order = np.lexsort((d[:, 1], d[:, 0]))
    i = j = 0
    matched, missed, false_alarms = [], [], []
    while i < len(g) or j < len(d):
        gi = g_order[i] if i < len(g) else None
        dj = d_order[j] if j < len(d) else None
        if dj is None:
            missed.append(int(gi))
            i += 1
        elif gi is None or d_hi[dj] < g_lo[gi]:
            false_alarms.append(int(dj))
            j += 1
        elif d_lo[dj] > g_hi[gi]:
            missed.append(int(gi))
            i += 1
        else:
            matched.append((int(gi), int(dj)))
            i += 1
            j += 1
    counts = Counts(len(matched), len(false_alarms), len(missed))
    return ShotMatch(counts, matched, missed, false_alarms)


def evaluate_transitions(truth, detected, tolerance: int = DEFAULT_TOLERANCE) -> Counts:
    """tp / fp / fn of detected transitions against true ones (both `[n, 2]`, module doc)."""
    return match_transitions(truth, detected, tolerance).counts


# ------------------------------------------------------------------------------------------------
# Ground-truth readers


def read_shot_list(path: str, frame_offset: int = 0) -> np.ndarray:
    """A `start end` per line shot file -> shots `[n, 2]` int64, each frame number + `frame_offset`."""
    rows = [ints(path, n, line, 2) for n, line in text_lines(path)]
    return np.array(rows, np.int64).reshape(-1, 2) + frame_offset


def _read_json(path: str) -> dict[str, np.ndarray]:
    data = read_json(path)
    if not isinstance(data, dict):
        raise TruthFormatError(f"{path}: expected a JSON object {{video: {{cuts|transitions|shots: ...}}}}")
    out = {}
    for name, v in data.items():
        if not isinstance(v, dict) or not {"cuts", "transitions", "shots"} & set(v):
            raise TruthFormatError(f"{path}: video {name!r} needs 'cuts', 'transitions' or 'shots'")
        try:
            parts = [transitions_from_cuts(v.get("cuts", [])), _as_pairs(v.get("transitions", []), "transitions")]
            if "shots" in v:
                parts.append(transitions_from_shots(v["shots"]))
        except (ValueError, TypeError) as e:
            raise TruthFormatError(f"{path}: video {name!r}: {e}") from None
        out[str(name)] = np.unique(np.concatenate(parts), axis=0).reshape(-1, 2)
    return out


def _read_csv(path: str) -> dict[str, np.ndarray]:
    require_path(path)
    out: dict[str, list] = {}
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        fields = set(reader.fieldnames or ())
        if "video" not in fields or not ({"frame"} <= fields or {"out_frame", "in_frame"} <= fields):
            raise TruthFormatError(
                f"{path}: expected a header with 'video' and 'frame' (cuts) or 'out_frame,in_frame' "
                f"(transitions), got {sorted(fields)}"
            )
        for n, row in enumerate(reader, 2):
            try:
                if (row.get("frame") or "").strip():
                    c = int(row["frame"])
                    pair = (c - 1, c)
                else:
                    pair = (int(row["out_frame"]), int(row["in_frame"]))
            except (TypeError, ValueError, KeyError):
                raise TruthFormatError(f"{path}:{n}: expected integer frame numbers, got {row}") from None
            out.setdefault(row["video"], []).append(pair)
    return {k: np.unique(np.array(v, np.int64), axis=0) for k, v in out.items()}


def _read_shot_files(path: str, suffixes: tuple[str, ...], frame_offset: int) -> dict[str, np.ndarray]:
    out = {}
    for f in files_in(path, ".txt"):
        name = strip_suffixes(strip_suffixes(os.path.basename(f), (".txt",)), suffixes)
        out[name] = transitions_from_shots(read_shot_list(f, frame_offset))
    return out


def detect_shot_format(path: str) -> str:
    """Guess the format of `path` from its name and layout; raises TruthFormatError if unsure."""
    require_path(path)
    if os.path.isdir(path):
        if os.path.isdir(os.path.join(path, "annotations", "shots")):
            return "bbc"
        names = [f for f in os.listdir(path) if f.endswith(".txt")]
        if names and all(f.endswith("_gt.txt") for f in names):
            return "rai"
        if names:
            return "shots-txt"
    else:
        name = os.path.basename(path)
        for ext, fmt in ((".json", "json"), (".csv", "csv"), ("_gt.txt", "rai"), (".txt", "shots-txt")):
            if name.endswith(ext):
                return fmt
    raise TruthFormatError(f"{path}: cannot tell its shot ground-truth format; give one of {', '.join(SHOT_FORMATS)}")


def read_shot_truth(path: str, fmt: str | None = None, frame_offset: int | None = None) -> dict[str, np.ndarray]:
    """Shot ground truth -> `{video name: transitions [n, 2]}` (formats in the module doc).

    fmt: one of SHOT_FORMATS, or None to guess from the path. frame_offset: added to every frame
    number (default 0, and 1 for `bbc` as TransNetV2 does)."""
    fmt = fmt or detect_shot_format(path)
    if fmt in ("json", "csv"):
        truth = _read_json(path) if fmt == "json" else _read_csv(path)
        return {name: np.asarray(t) + (frame_offset or 0) for name, t in truth.items()}
    if fmt == "shots-txt":
        return _read_shot_files(path, (".scenes",), frame_offset or 0)
    if fmt == "rai":
        return _read_shot_files(path, ("_gt",), frame_offset or 0)
    if fmt == "bbc":
        shots_dir = os.path.join(path, "annotations", "shots")
        offset = BBC_FRAME_OFFSET if frame_offset is None else frame_offset
        return _read_shot_files(shots_dir if os.path.isdir(shots_dir) else path, (), offset)
    raise TruthFormatError(f"unknown shot ground-truth format {fmt!r}; known: {', '.join(SHOT_FORMATS)}")
