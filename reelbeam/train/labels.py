"""Scene labels for training: per video, which shots end a scene.

Formats (`--labels-format`, guessed when omitted; reference/scene_seg.md section 7):

- `movienet`: a folder with `label318/<imdb>.txt` (`<shot id> <label>`, 1 ends a scene, -1 read as
  1) and `shot_movie318/<imdb>.txt` (line i: `start_frame end_frame ...` of shot i).
- `movienet-json`: `{"<movie>": {"labels": [0, 1, ...], "shots": [[start, end], ...]}}` (what
  `reelbeam evaluate movienet` reads).
- `bassl`: BaSSL's anno ndjson (`anno.train.ndjson`): one `{"video_id", "shot_id": "0042",
  "num_shot", "boundary_label": 0|1|-1}` per line; label `abs(boundary_label)`.
- `modelscope`: ModelScope's toydata `anno/train.json`: a JSON list of the same objects.
- `scenes-json`, `scenes-csv`, `bbc`: scene spans in frames, the scene truth formats of
  `reelbeam evaluate scenes` (`{"<video>": {"scenes": [[s, e], ...]}}`, CSV
  `video,start_frame,end_frame`, the BBC Planet Earth root). Each scene end but the last becomes
  the label of the shot whose end frame is nearest to it (a scene boundary inside a shot is moved to
  the nearest shot boundary); every other shot is 0.

`SceneLabels` keeps what the source says about the shots (a count, frame spans) so that
`check_against_shots` can name the first mismatch with the output's `shots` table.
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np

from reelbeam.metrics.truth import TruthFormatError
from reelbeam.train import TrainError

SCENE_LABEL_FORMATS = ("movienet", "movienet-json", "bassl", "modelscope", "scenes-json", "scenes-csv", "bbc")


@dataclasses.dataclass
class SceneLabels:
    """One video's labels: {shot id: 0/1} (shots without a label are context only), or scene spans
    to be turned into labels with the output's shots. num_shots / shots: what the source says about
    the video's shots, for the check (None: it says nothing)."""

    labels: dict[int, int] | None = None
    scenes: np.ndarray | None = None
    num_shots: int | tuple[int, ...] | None = None
    shots: np.ndarray | None = None


def _guess(path: str) -> str:
    if os.path.isdir(path):
        if os.path.isdir(os.path.join(path, "label318")):
            return "movienet"
        if os.path.isdir(os.path.join(path, "annotations", "scenes")):
            return "bbc"
        raise TrainError(f"{path}: a folder, but neither MovieNet's (label318/) nor BBC's (annotations/scenes/)")
    if path.endswith((".ndjson", ".jsonl")):
        return "bassl"
    if path.endswith(".csv"):
        return "scenes-csv"
    if path.endswith(".json"):
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if isinstance(data, list):
            return "modelscope"
        first = next(iter(data.values()), {}) if isinstance(data, dict) else {}
        if isinstance(first, dict) and "labels" in first:
            return "movienet-json"
        if isinstance(first, dict) and "scenes" in first:
            return "scenes-json"
    raise TrainError(f"{path}: cannot tell its label format; give --labels-format (one of {', '.join(SCENE_LABEL_FORMATS)})")


def _from_rows(path: str, rows) -> dict[str, SceneLabels]:
    out: dict[str, SceneLabels] = {}
    for n, row in enumerate(rows, 1):
        try:
            vid, sid, label = str(row["video_id"]), int(row["shot_id"]), abs(int(row["boundary_label"]))
        except (KeyError, TypeError, ValueError):
            raise TrainError(f"{path}: entry {n}: expected video_id, shot_id, boundary_label, got {row!r}") from None
        if label not in (0, 1):
            raise TrainError(f"{path}: entry {n}: boundary_label must be 0, 1 or -1, got {row['boundary_label']!r}")
        entry = out.setdefault(vid, SceneLabels(labels={}))
        entry.labels[sid] = label
        if "num_shot" in row:
            # BaSSL clips windows to [0, num_shot]: num_shot is the shot count or the last index.
            k = int(row["num_shot"])
            entry.num_shots = (k, k + 1)
    return out


def read_scene_labels(path: str, fmt: str | None = None, annotator: int = 0) -> dict[str, SceneLabels]:
    """{video name: SceneLabels} from any of SCENE_LABEL_FORMATS (module doc)."""
    from reelbeam.metrics import movienet, scene_boundaries

    if not os.path.exists(path):
        raise TrainError(f"{path}: no such labels file or folder")
    fmt = fmt or _guess(path)
    try:
        if fmt in ("movienet", "movienet-json"):
            truth = movienet.read_movienet_truth(path, "movienet" if fmt == "movienet" else "json")
            return {v: SceneLabels(labels=dict(t.labels), num_shots=len(t.shots), shots=t.shots) for v, t in truth.items()}
        if fmt == "bassl":
            rows = []
            with open(path, encoding="utf-8") as f:
                for n, line in enumerate(f, 1):
                    if line.strip():
                        try:
                            rows.append(json.loads(line))
                        except json.JSONDecodeError:
                            raise TrainError(f"{path}:{n}: not a JSON object") from None
            return _from_rows(path, rows)
        if fmt == "modelscope":
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
            if not isinstance(data, list):
                raise TrainError(f"{path}: expected ModelScope's JSON list of {{video_id, shot_id, boundary_label}}")
            return _from_rows(path, data)
        if fmt in ("scenes-json", "scenes-csv", "bbc"):
            truth = scene_boundaries.read_scene_truth(path, {"scenes-json": "json", "scenes-csv": "csv"}.get(fmt, fmt), annotator)
            return {v: SceneLabels(scenes=s) for v, s in truth.items()}
    except TruthFormatError as e:
        raise TrainError(str(e)) from None
    raise TrainError(f"unknown label format {fmt!r}; known: {', '.join(SCENE_LABEL_FORMATS)}")


def check_against_shots(name: str, uri: str, labels: SceneLabels, frames: np.ndarray) -> dict[int, int]:
    """The video's {shot idx: 0/1} on the output's shots ([n, 2] frame spans); TrainError, one
    line naming the video and the first mismatch, when labels and shots disagree."""
    n = len(frames)
    where = f"labels of {name!r} do not match the shots of {uri}"
    if n == 0:
        raise TrainError(f"{where}: the output has no shots for it")
    if labels.scenes is not None:
        scenes = labels.scenes
        if len(scenes) and scenes[-1, 1] > frames[-1, 1] + 1:
            raise TrainError(f"{where}: a scene ends at frame {int(scenes[-1, 1])}, the last shot at frame {int(frames[-1, 1])}")
        out = dict.fromkeys(range(n), 0)
        ends = frames[:, 1]
        for _, e in scenes[:-1]:
            out[int(np.argmin(np.abs(ends - e)))] = 1
        return out
    counts = labels.num_shots if isinstance(labels.num_shots, tuple) else (labels.num_shots,)
    if labels.num_shots is not None and n not in counts:
        detail = f"the labels count {counts[0]} shots, the shots table {n}"
        if labels.shots is not None:
            m = min(len(labels.shots), n)
            diff = np.flatnonzero(np.any(labels.shots[:m] != frames[:m], axis=1))
            first = int(diff[0]) if len(diff) else m
            if first < m:
                a, b = labels.shots[first], frames[first]
                detail += f"; first mismatch: shot {first} is frames {a[0]}-{a[1]} in the labels, {b[0]}-{b[1]} in the table"
            else:
                detail += f"; first mismatch: shot {first} is only in the {'labels' if len(labels.shots) > n else 'table'}"
        raise TrainError(f"{where}: {detail}")
    beyond = sorted(s for s in labels.labels if s < 0 or s >= n)
    if beyond:
        raise TrainError(f"{where}: first mismatch: shot id {beyond[0]} is labelled, the shots table has shots 0..{n - 1} "
                         f"({len(beyond)} labelled ids beyond it)")
    return dict(labels.labels)
