"""Summarize: per video, KTS segments on its CLIP frame features and, per query and scorer, the
0/1 knapsack's summary (CLIP-It's path: `reelbeam.transforms.summaries`), as `summaries` rows;
optionally each summary as a playable file (`summary_video`).

Inputs are table rows (`videos`, `frames`, `frame_embeddings`, `frame_scores`), from this job or an
earlier run: KTS runs once per video on its L2-normalised features; each (query, scorer)'s scores
over the sampled frames are spread to source frames as the reference does.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tempfile

import apache_beam as beam
import numpy as np

from reelbeam.transforms.failures import IncompleteVideo, failure_row
from reelbeam.transforms.video_files import remove_video_folder

METHOD = "kts+knapsack"
SEGMENTS = ("shots", "kts")
METHODS = {"kts": METHOD, "shots": "shots+knapsack"}


def summary_video_path(output: str, video_id: str, query_id: str, scorer: str) -> str:
    """OUTPUT/summaries/<video_id>/<query_id>-<scorer>.mp4 (the extension follows the container)."""
    return posixpath.join(output, "summaries", video_id, f"{query_id}-{scorer}.mp4")


def knapsack_values(scores: list[float], scorer: str) -> list[float]:
    """The frame scores the knapsack weighs: CLIP-It's importances (0, 1) as they are (the
    reference); the plain CLIP cosines, in [-1, 1], as (1 + cos) / 2, since a segment of negative
    value is never worth its frames to a knapsack (on weakly matching queries every cosine can be
    negative, and the summary was then empty). The order of the segments is unchanged."""
    if scorer != "clip":
        return scores
    return [(1.0 + float(x)) / 2.0 for x in scores]


def video_summaries(video: dict, frames_table, embeddings: list[dict], scores: list[dict], budget: float,
                    segments: str = "kts", shot_rows: list[dict] | None = None):
    """One video's `summaries` rows and, per (query_id, scorer), its selected spans:
    (rows, {(query_id, scorer): [(start, end), ...]}).

    segments: 'kts' (the reference's KTS segments of the CLIP features) or 'shots' (the video's
    `shots` rows, each longer than the budget split to fit it; KTS when the video has no shots)."""
    from reelbeam.transforms.summaries import (
        kts_change_points,
        shot_scores,
        shot_segments,
        shots_from_change_points,
        spread_scores,
        summarize,
    )

    if segments not in SEGMENTS:
        raise ValueError(f"summary segments must be one of {SEGMENTS}, got {segments!r}")
    embeddings = sorted(embeddings, key=lambda r: r["frame_idx"])
    picks = [int(r["frame_idx"]) for r in embeddings]
    n_frames = int(video["frame_count"])
    if segments == "shots" and shot_rows:
        shots = shot_segments([(r["start_frame"], r["end_frame"]) for r in shot_rows], n_frames, budget)
    else:
        segments = "kts"
        feats = np.stack([np.asarray(r["embedding"], np.float32) for r in embeddings])
        shots = shots_from_change_points(kts_change_points(feats), picks, n_frames)
    method = METHODS[segments]
    pts_time = np.asarray(frames_table.column("pts_time").to_pylist(), np.float64)
    fps = video.get("nominal_fps") or video.get("avg_fps") or 25.0

    def end_time(e: int) -> float:
        return float(pts_time[e + 1]) if e + 1 < len(pts_time) else float(pts_time[e]) + 1.0 / fps

    groups: dict[tuple, dict] = {}
    for r in scores:
        groups.setdefault((r["query_id"], r["scorer"]), {"query": r["query"], "scores": {}})["scores"][int(r["frame_idx"])] = r["score"]
    rows, spans = [], {}
    for (qid, scorer), g in sorted(groups.items()):
        missing = [f for f in picks if f not in g["scores"]]
        if missing:
            raise IncompleteVideo("summaries", "incomplete", f"query {qid} / {scorer}: no score for {len(missing)} sampled frames")
        raw = [g["scores"][f] for f in picks]
        summary = summarize(shots, knapsack_values(raw, scorer), picks, n_frames, budget)
        if scorer == "clip":  # the rows keep the mean cosine itself
            summary = summary._replace(shot_scores=shot_scores(spread_scores(raw, picks, n_frames), summary.shots))
        chosen = set(summary.selected)
        for i, (s, e) in enumerate(summary.shots):
            rows.append({
                "video_id": video["video_id"], "query_id": qid, "query": g["query"], "scorer": scorer,
                "segment_idx": i, "start_frame": int(s), "end_frame": int(e),
                "start_time": float(pts_time[s]), "end_time": end_time(int(e)),
                "score": float(summary.shot_scores[i]), "selected": i in chosen, "method": method, "budget": budget,
            })
        spans[(qid, scorer)] = _merge([(int(summary.shots[i][0]), int(summary.shots[i][1])) for i in sorted(chosen)])
    return rows, spans


def _merge(spans: list) -> list:
    out: list = []
    for s, e in spans:
        if out and s == out[-1][1] + 1:
            out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out


class _SummarizeFn(beam.DoFn):
    def __init__(self, budget: float, output: str | None, stage: str, segments: str = "kts") -> None:
        self._budget = budget
        self._segments = segments
        self._output = output  # write summary videos under it when set
        self._stage = stage
        self._count = beam.metrics.Metrics.counter("reelbeam", "summaries")

    def process(self, element):
        video_id, g = element
        embeddings, scores = list(g["embeddings"]), list(g["scores"])
        if not embeddings or not scores:
            return
        yield beam.pvalue.TaggedOutput("processed", video_id)
        videos, frames = list(g["videos"]), list(g["frames"])
        uri = videos[0]["uri"] if videos else ""
        try:
            if not videos or not frames:
                raise IncompleteVideo(self._stage, "incomplete", f"no `{'videos' if not videos else 'frames'}` rows for the video")
            rows, spans = video_summaries(videos[0], frames[0], embeddings, scores, self._budget, self._segments,
                                          list(g.get("shots") or []))
            files = self._videos(videos[0], frames[0], spans) if self._output else []
        except Exception as e:  # noqa: BLE001 - the video's failures row
            if self._output:
                remove_video_folder(self._output, "summaries", video_id)
            yield beam.pvalue.TaggedOutput("failures", failure_row(video_id, uri, self._stage, e))
            return
        self._count.inc(len(spans))
        yield from rows
        for path in files:
            yield beam.pvalue.TaggedOutput("written", path)

    def _videos(self, video: dict, frames_table, spans: dict) -> list[str]:
        import fsspec

        from reelbeam.transforms.summary_video import write_summary_video

        pts = frames_table.column("pts").to_pylist()
        keys = frames_table.column("is_keyframe").to_pylist()
        fs, _ = fsspec.core.url_to_fs(self._output)
        written = []
        with tempfile.TemporaryDirectory(prefix="reelbeam-summary-") as tmp:
            for (qid, scorer), video_spans in sorted(spans.items()):
                if not video_spans:
                    continue
                info = write_summary_video(video["uri"], video_spans, pts, keys, os.path.join(tmp, f"{qid}-{scorer}.mp4"))
                dest = summary_video_path(self._output, video["video_id"], qid, scorer)
                dest = posixpath.splitext(dest)[0] + os.path.splitext(info["path"])[1]
                _, dest_path = fsspec.core.url_to_fs(dest)
                fs.makedirs(posixpath.dirname(dest_path), exist_ok=True)
                if "://" not in self._output or self._output.startswith("file://"):
                    shutil.move(info["path"], dest_path)
                else:
                    fs.put_file(info["path"], dest_path)
                written.append(dest)
        return written


def _by_video(pcoll, label: str, table: bool = False):
    if table:
        return (
            pcoll
            | f"{label}NonEmpty" >> beam.Filter(lambda t: t.num_rows > 0)
            | f"{label}ByVideo" >> beam.Map(lambda t: (t.column("video_id")[0].as_py(), t))
        )
    return pcoll | f"{label}ByVideo" >> beam.Map(lambda r: (r["video_id"], r))


class Summarize(beam.PTransform):
    """{'videos', 'frames', 'frame_embeddings', 'frame_scores'[, 'shots']} -> {'summaries', 'failures',
    'processed', 'written' (summary video paths)}; `segments` as `video_summaries`."""

    def __init__(self, budget: float = 0.15, video_output: str | None = None, stage: str = "summaries",
                 segments: str = "kts") -> None:
        super().__init__()
        if segments not in SEGMENTS:
            raise ValueError(f"summary segments must be one of {SEGMENTS}, got {segments!r}")
        self._segments = segments
        self._fn = _SummarizeFn(budget, video_output, stage, segments)

    def expand(self, tables):
        from reelbeam.transforms.portable import split_outputs

        joined = {
            "videos": _by_video(tables["videos"], "Videos"),
            "frames": _by_video(tables["frames"], "Frames", table=True),
            "embeddings": _by_video(tables["frame_embeddings"], "Embeddings"),
            "scores": _by_video(tables["frame_scores"], "Scores"),
        }
        if self._segments == "shots" and "shots" in tables:
            joined["shots"] = _by_video(tables["shots"], "Shots")
        joined = joined | "JoinSummaryInputs" >> beam.CoGroupByKey()
        out = split_outputs(joined, self._fn, ["failures", "processed", "written"], "summaries", "Summarize")
        return {"summaries": out.summaries, "failures": out.failures, "processed": out.processed, "written": out.written}
