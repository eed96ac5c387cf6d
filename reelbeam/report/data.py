"""What the report shows, read from the tables alone.

Memory stays bounded on large corpora: the per-shot and per-scene tables are held as Arrow tables
sorted by video and sliced per page; the per-frame tables (`frames`, `frame_scores`) are streamed
once and reduced to a fixed number of time buckets per video (`PLOT_BUCKETS`: max and mean per
bucket, about 16 KB per video), which keeps the one-frame peaks of a transition curve visible
where plain subsampling would drop them; keyframes are streamed, resampled and written as files.
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import logging
import posixpath
from collections.abc import Callable, Iterable
from typing import Any

import cv2
import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from reelbeam import api
from reelbeam.report.images import display_aspect, resample_jpeg
from reelbeam.schemas.tables import TABLES

LOG = logging.getLogger("reelbeam.report")

PLOT_BUCKETS = 1000
THUMB_HEIGHT = 144  # pixels; shown at 72 CSS pixels high, so sharp on 2x displays

_OPTIONAL_COLUMNS = {
    "shots": ["video_id", "shot_idx", "start_frame", "end_frame", "start_time", "end_time", "num_frames",
              "detector", "max_transition_prob", "motion_score"],
    "scenes": ["video_id", "scene_idx", "first_shot_idx", "last_shot_idx", "start_frame", "end_frame",
               "start_time", "end_time", "num_shots", "p_boundary_end", "method"],
    "boundaries": ["video_id", "shot_idx", "p_boundary", "model"],
    "summaries": ["video_id", "query_id", "query", "scorer", "segment_idx", "start_frame", "end_frame", "start_time",
                  "end_time", "score", "selected", "method", "budget"],
    "scene_clips": ["video_id", "scene_idx", "uri", "mode", "num_frames", "size_bytes", "start_frame", "end_frame",
                    "actual_start_frame"],
    "video_embeddings": ["video_id", "granularity", "model", "num_clips", "embedding"],
}
_SORT_KEYS = {
    "shots": "shot_idx",
    "scenes": "scene_idx",
    "boundaries": "shot_idx",
    "summaries": "segment_idx",
    "scene_clips": "scene_idx",
    "video_embeddings": "model",
}


class Grouped:
    """An Arrow table sorted by video, sliced per video on demand."""

    def __init__(self, table: pa.Table, order: str) -> None:
        self.table = table.sort_by([("video_id", "ascending"), (order, "ascending")])
        ids = self.table.column("video_id").to_pylist()
        self._spans: dict[str, tuple[int, int]] = {}
        start = 0
        for i in range(1, len(ids) + 1):
            if i == len(ids) or ids[i] != ids[start]:
                self._spans[ids[start]] = (start, i - start)
                start = i

    def rows(self, video_id: str) -> list[dict]:
        span = self._spans.get(video_id)
        return self.table.slice(*span).to_pylist() if span else []

    def count(self, video_id: str) -> int:
        span = self._spans.get(video_id)
        return span[1] if span else 0

    def __len__(self) -> int:
        return self.table.num_rows


@dataclasses.dataclass
class Series:
    """A per-frame column reduced to time buckets over [t0, t0 + duration)."""

    duration: float
    max: np.ndarray  # float32 [B]; NaN: no frame in the bucket
    mean: np.ndarray

    @property
    def empty(self) -> bool:
        return bool(np.all(np.isnan(self.max)))


class _Reducer:
    """Per-key bucketed max and mean, accumulated over streamed batches."""

    def __init__(self) -> None:
        self._acc: dict[Any, list[np.ndarray]] = {}

    def add(self, key: Any, buckets: int, bucket: np.ndarray, values: np.ndarray) -> None:
        ok = ~np.isnan(values)
        bucket, values = bucket[ok], values[ok]
        if not len(values):
            return
        acc = self._acc.get(key)
        if acc is None:
            acc = self._acc[key] = [
                np.full(buckets, -np.inf, np.float32),
                np.zeros(buckets, np.float64),
                np.zeros(buckets, np.int64),
            ]
        np.maximum.at(acc[0], bucket, values)
        np.add.at(acc[1], bucket, values)
        np.add.at(acc[2], bucket, 1)

    def result(self, key: Any, duration: float) -> Series | None:
        acc = self._acc.get(key)
        if acc is None:
            return None
        mx, total, count = acc
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(count > 0, total / np.maximum(count, 1), np.nan).astype(np.float32)
        mx = np.where(count > 0, mx, np.nan).astype(np.float32)
        return Series(duration, mx, mean)


@dataclasses.dataclass(frozen=True)
class _Timing:
    t0: float  # PTS of the first frame, seconds
    duration: float
    buckets: int  # PLOT_BUCKETS, or one per frame for shorter videos

    @classmethod
    def of(cls, video: dict, buckets: int) -> _Timing:
        frames = video.get("frame_count") or buckets
        return cls(video.get("start_time_s") or 0.0, video.get("duration_s") or 0.0, max(1, min(buckets, frames)))

    def bucket_of(self, times: np.ndarray) -> np.ndarray:
        rel = (times - self.t0) / self.duration if self.duration > 0 else np.zeros_like(times)
        # the epsilon keeps frame i of a constant-rate video in bucket i despite rounding
        return np.clip(np.floor(rel * self.buckets + 1e-6).astype(np.int64), 0, self.buckets - 1)


def _batches_by_video(batch: pa.RecordBatch) -> Iterable[tuple[str, np.ndarray]]:
    """(video_id, row indices) per video in a record batch."""
    encoded = pc.dictionary_encode(batch.column("video_id"))
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    for code, vid in enumerate(encoded.dictionary.to_pylist()):
        yield vid, np.flatnonzero(codes == code)


def _float_column(batch: pa.RecordBatch, name: str) -> np.ndarray:
    return batch.column(name).to_numpy(zero_copy_only=False).astype(np.float64)


@dataclasses.dataclass
class Corpus:
    """Everything the pages need, loaded from one reelbeam output."""

    output: str
    present: list[str]
    row_counts: dict[str, int]
    videos: list[dict]
    failures: list[dict]
    groups: dict[str, Grouped]
    plots: dict[str, dict[str, Series]]  # plot name -> video_id -> series
    score_plots: dict[str, list[tuple[str, Series]]]  # video_id -> [(query, series)]
    iframe_counts: dict[str, int]
    manifests: list[dict]

    def rows(self, table: str, video_id: str) -> list[dict]:
        group = self.groups.get(table)
        return group.rows(video_id) if group is not None else []

    @property
    def video_ids(self) -> set[str]:
        return {v["video_id"] for v in self.videos}

    def stage_failures(self) -> list[dict]:
        """Failures of a stage of a video that still has its `videos` row."""
        ok = self.video_ids
        return [f for f in self.failures if f["video_id"] in ok]

    def failed_videos(self) -> list[dict]:
        """Failures of videos with no `videos` row: one entry per such video (its first failure)."""
        ok = self.video_ids
        seen: dict[str, dict] = {}
        for f in self.failures:
            if f["video_id"] not in ok and f["video_id"] not in seen:
                seen[f["video_id"]] = f
        return list(seen.values())


def row_counts(output: str) -> dict[str, int]:
    """Rows per table present (committed), from the tables' logs (no data read)."""
    from reelbeam.store.tables import row_counts as committed_rows

    return committed_rows(str(output))


def read_manifests(output: str) -> list[dict]:
    """Run manifests under OUTPUT/_runs/*.json, oldest first; unreadable ones are logged and skipped."""
    fs, root = fsspec.core.url_to_fs(str(output))
    out = []
    for path in sorted(fs.glob(posixpath.join(root.rstrip("/"), "_runs", "*.json"))):
        try:
            with fs.open(path, "r") as f:
                doc = json.load(f)
        except (OSError, ValueError) as e:
            LOG.warning("skipping run manifest %s: %s", path, e)
            continue
        if isinstance(doc, dict):
            doc.setdefault("_file", posixpath.basename(path))
            out.append(doc)
    return out


def load(output: str, buckets: int = PLOT_BUCKETS) -> Corpus:
    """Read the tables of `output` that the report shows (all optional but `videos`/`failures`)."""
    counts = row_counts(output)
    present = [t for t in TABLES if t in counts]
    if not present:
        raise api.TableNotFound(f"no reelbeam tables under {output!r} (expected OUTPUT/<table>/ Delta tables)")

    def read(table: str, columns: list[str] | None = None) -> pa.Table | None:
        return api.read(output, table, columns=columns) if table in counts else None

    videos_t = read("videos")
    videos = sorted(videos_t.to_pylist(), key=lambda v: (v["uri"], v["video_id"])) if videos_t else []
    failures_t = read("failures")
    failures = sorted(failures_t.to_pylist(), key=lambda f: (f["uri"], f["stage"])) if failures_t else []
    groups = {}
    for table, columns in _OPTIONAL_COLUMNS.items():
        t = read(table, columns)
        if t is not None:
            groups[table] = Grouped(t, _SORT_KEYS[table])

    timing = {v["video_id"]: _Timing.of(v, buckets) for v in videos}
    plots: dict[str, dict[str, Series]] = {}
    if "frames" in counts and timing:
        plots = _frame_plots(output, timing)
    score_plots = _score_plots(output, timing) if "frame_scores" in counts and timing else {}
    iframe_counts: dict[str, int] = {}
    if "keyframes" in counts:
        kinds = read("keyframes", ["video_id", "kind"])
        iframes = kinds.filter(pc.equal(kinds.column("kind"), "iframe"))
        for row in iframes.group_by("video_id").aggregate([("kind", "count")]).to_pylist():
            iframe_counts[row["video_id"]] = row["kind_count"]
    return Corpus(
        output=str(output),
        present=present,
        row_counts=counts,
        videos=videos,
        failures=failures,
        groups=groups,
        plots=plots,
        score_plots=score_plots,
        iframe_counts=iframe_counts,
        manifests=read_manifests(output),
    )


# frames column -> plot name
FRAME_PLOTS = {"transition_prob": "transition", "content_delta": "content_delta", "mv_mean_mag": "motion"}


def _frame_plots(output: str, timing: dict[str, _Timing]) -> dict[str, dict[str, Series]]:
    reducers = {name: _Reducer() for name in FRAME_PLOTS}
    data = api.dataset(output, "frames")
    # one file at a time: the scan's memory stays bounded whatever the number of files
    columns = ["video_id", "pts_time", *FRAME_PLOTS]
    for batch in data.to_batches(columns=columns, batch_size=65536, fragment_readahead=1, batch_readahead=4):
        times = _float_column(batch, "pts_time")
        for vid, idx in _batches_by_video(batch):
            if vid not in timing:
                continue  # frames of a video that later failed: no page for it
            tm = timing[vid]
            bucket = tm.bucket_of(times[idx])
            for column, reducer in reducers.items():
                reducer.add(vid, tm.buckets, bucket, _float_column(batch, column)[idx])
    out: dict[str, dict[str, Series]] = {}
    for column, reducer in reducers.items():
        series = {vid: reducer.result(vid, tm.duration) for vid, tm in timing.items()}
        series = {vid: s for vid, s in series.items() if s is not None and not s.empty}
        if series:
            out[FRAME_PLOTS[column]] = series
    return out


def _score_plots(output: str, timing: dict[str, _Timing]) -> dict[str, list]:
    reducer = _Reducer()
    queries: dict[str, str] = {}
    data = api.dataset(output, "frame_scores")
    for batch in data.to_batches(columns=["video_id", "pts_time", "query_id", "query", "score"]):
        times = _float_column(batch, "pts_time")
        scores = _float_column(batch, "score")
        qids = batch.column("query_id").to_pylist()
        texts = batch.column("query").to_pylist()
        for vid, idx in _batches_by_video(batch):
            if vid not in timing:
                continue
            by_query: dict[str, list[int]] = {}
            for i in idx:
                by_query.setdefault(qids[i] or texts[i] or "", []).append(i)
                queries.setdefault(qids[i] or texts[i] or "", texts[i] or qids[i] or "")
            for qid, rows in by_query.items():
                rows_a = np.asarray(rows)
                tm = timing[vid]
                reducer.add((vid, qid), tm.buckets, tm.bucket_of(times[rows_a]), scores[rows_a])
    out: dict[str, list] = {}
    for vid, tm in timing.items():
        for qid in sorted(queries, key=lambda q: queries[q]):
            s = reducer.result((vid, qid), tm.duration)
            if s is not None:
                out.setdefault(vid, []).append((queries[qid], s))
    return out


BLANK_CONTRAST = 6.0  # grey levels: a frame this flat (one colour, a fade's middle) shows nothing
BLANK_LIT = 0.1  # a frame with under 10% of its pixels above BLANK_LEVEL is black (or a title card on black)
BLANK_LEVEL = 32


@dataclasses.dataclass(frozen=True)
class Thumb:
    path: str  # relative to the report folder, '/'-separated
    width: int
    height: int
    brightness: float = 128.0  # mean pixel value 0..255
    contrast: float = 64.0  # standard deviation of the grey levels
    lit: float = 1.0  # fraction of pixels brighter than BLANK_LEVEL
    sharpness: float = 0.0  # variance of the Laplacian of the grey image (higher: more detail in focus)
    frame_idx: int | None = None

    @property
    def blank(self) -> bool:
        """Black, near-black (a title card: a little text on black) or one flat colour."""
        return self.contrast < BLANK_CONTRAST or self.lit < BLANK_LIT

    @classmethod
    def measure(cls, path: str, jpeg: bytes, width: int, height: int, frame_idx: int | None = None) -> Thumb:
        """A thumbnail with the measures `informative` ranks by, taken on its grey image."""
        grey = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)
        if grey is None or not grey.size:
            return cls(path, width, height, frame_idx=frame_idx)
        return cls(
            path, width, height,
            brightness=float(grey.mean()),
            contrast=float(grey.std()),
            lit=float((grey > BLANK_LEVEL).mean()),
            sharpness=float(cv2.Laplacian(grey, cv2.CV_64F).var()),
            frame_idx=frame_idx,
        )


def informative(thumbs: Iterable[Thumb | None]) -> Thumb | None:
    """The keyframe to show for a shot: the sharpest that is not blank; when all are blank, the one
    with the most lit pixels and contrast (a title card's text over plain black); None if none."""
    present = [t for t in thumbs if t is not None]
    if not present:
        return None
    shown = [t for t in present if not t.blank]
    if shown:
        return max(shown, key=lambda t: t.sharpness)
    return max(present, key=lambda t: (t.lit, t.contrast))


def write_thumbnails(
    corpus: Corpus,
    write: Callable[[str, bytes], None],
    height: int = THUMB_HEIGHT,
) -> dict[tuple[str, int, int], Thumb]:
    """Write a thumbnail per shot keyframe as `img/<video_id>/shot-<idx>-<k>.jpg`, at the video's
    display aspect ratio; returns (video_id, shot_idx, keyframe_idx) -> Thumb.

    Videos without shot keyframes but with I-frames (`--iframes`) get, per shot, the I-frame
    nearest to the shot's middle as its middle keyframe (k=1). One streamed pass over the JPEGs.
    """
    if "keyframes" not in corpus.row_counts:
        return {}
    aspects = {v["video_id"]: display_aspect(v) for v in corpus.videos}
    kinds = api.read(corpus.output, "keyframes", ["video_id", "kind"])
    with_shot_kf = set(kinds.filter(pc.equal(kinds.column("kind"), "shot")).column("video_id").to_pylist())
    # I-frame fallback: shot starts per video, and the best I-frame distance so far per shot.
    starts: dict[str, list[int]] = {}
    middles: dict[str, list[float]] = {}
    for vid in aspects:
        if vid not in with_shot_kf:
            shots = corpus.rows("shots", vid)
            starts[vid] = [s["start_frame"] for s in shots]
            middles[vid] = [(s["start_frame"] + s["end_frame"]) / 2 for s in shots]
    best: dict[tuple[str, int], float] = {}

    thumbs: dict[tuple[str, int, int], Thumb] = {}
    columns = ["video_id", "kind", "frame_idx", "shot_idx", "keyframe_idx", "jpeg"]
    for batch in api.dataset(corpus.output, "keyframes").to_batches(columns=columns, batch_size=256):
        for row in batch.to_pylist():
            vid = row["video_id"]
            if vid not in aspects or row["jpeg"] is None:
                continue
            if row["kind"] == "shot" and row["shot_idx"] is not None:
                key = (vid, row["shot_idx"], row["keyframe_idx"] if row["keyframe_idx"] is not None else 1)
            elif row["kind"] == "iframe" and vid in starts and starts[vid]:
                shot = bisect.bisect_right(starts[vid], row["frame_idx"]) - 1
                distance = abs(row["frame_idx"] - middles[vid][shot])
                if distance >= best.get((vid, shot), np.inf):
                    continue
                best[(vid, shot)] = distance
                key = (vid, shot, 1)
            else:
                continue
            try:
                jpeg, w, h = resample_jpeg(row["jpeg"], aspects[vid], height=height, quality=85)
            except ValueError as e:
                LOG.warning("keyframe %s of video %s: %s", row["frame_idx"], vid, e)
                continue
            path = f"img/{vid}/shot-{key[1]:05d}-{key[2]}.jpg"
            write(path, jpeg)
            thumbs[key] = Thumb.measure(path, jpeg, w, h, row["frame_idx"])
    return thumbs
