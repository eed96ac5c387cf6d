"""AssembleVideos: the per-video join of the decode pass's parts into table rows.

Input: (video_id, VideoPart) records from the decode pass and from the stages between it and the
assembly (e.g. TransNetV2 scores from RunInference), grouped per video. The decode pass itself
emits the part kinds in `BASE_PARTS`:
- 'meta': the `videos` row fields (emitted only when the whole video decoded);
- 'frames': frame-index chunks;
- 'error': (stage, error_type, message) from a model step's dead-letter output.
Every other kind belongs to the pass stage that declared it in its `parts`; the stages' `assemble`
run in registry order on a `VideoAssembly` and add rows, `frames` columns and `videos` fields.

A video becomes a `videos` row (status ok) only when every piece is present and every stage
assembled it; any exception while assembling one video (a missing piece, a stage's bug, a part kind
no stage declared) becomes that video's `failures` row, never a crashed job. A group without 'meta'
belongs to a video whose decode already wrote its failure: it is dropped and counted
(`orphan_groups`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow as pa

from reelbeam.schemas import tables
from reelbeam.schemas.records import VideoPart
from reelbeam.schemas.rows import concat_chunks
from reelbeam.stages.base import ConfigError, PassStage, VideoAssembly
from reelbeam.transforms.failures import IncompleteVideo, failure_row

BASE_PARTS = ("meta", "frames", "error")
INDEX_COLUMNS = ("frame_idx", "pts", "pts_time", "is_keyframe", "pict_type")


def check_parts(stages: Sequence[PassStage]) -> dict[str, PassStage]:
    """part kind -> the stage that declared it; raises ConfigError (when the pipeline is built) for a
    kind declared twice or a consumer emitting a kind or tag its stage did not declare."""
    owner: dict[str, PassStage] = {}
    for stage in stages:
        for kind in stage.parts:
            if kind in BASE_PARTS or kind in owner:
                other = owner[kind].name if kind in owner else "the decode pass"
                raise ConfigError(f"stage {stage.name!r} declares part kind {kind!r}, which {other} already declares")
            owner[kind] = stage
        for factory in stage.frame_consumers():
            cls = getattr(factory, "func", factory)
            undeclared = set(getattr(cls, "parts", ())) - set(stage.parts)
            if undeclared:
                raise ConfigError(
                    f"stage {stage.name!r}: its consumer {cls.__name__} emits part kinds "
                    f"{sorted(undeclared)} that the stage does not declare in `parts`"
                )
            tags = set(getattr(cls, "tags", ())) - set(stage.streams)
            if tags:
                raise ConfigError(
                    f"stage {stage.name!r}: its consumer {cls.__name__} emits tags {sorted(tags)} "
                    "that the stage does not declare in `streams`"
                )
    return owner


class AssemblyFailed(Exception):
    """A video that could not be assembled: `stage` is to blame, `cause` says why."""

    def __init__(self, stage: str, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.stage = stage
        self.cause = cause


def assemble_video(
    video_id: str, parts: Iterable[VideoPart], stages: Sequence[PassStage], clock=None
) -> dict[str, Any] | None:
    """Pure per-video assembly. Returns None for an orphan group (no 'meta'); else
    {'videos': row, 'frames': pa.Table, <table>: [rows] for each table a stage assembled}.

    Raises `AssemblyFailed(stage, cause)` when a piece is missing or a stage raised.
    clock: a `reelbeam.transforms.timing.StageClock` that each stage's `assemble` counts toward.
    """
    owners = {kind: s for s in stages for kind in s.parts}
    by_kind: dict[str, list] = {}
    for part in parts:
        by_kind.setdefault(part.kind, []).append(part.payload)
    if "meta" not in by_kind:
        return None
    undeclared = sorted(set(by_kind) - set(owners) - set(BASE_PARTS))
    if undeclared:
        raise AssemblyFailed("assemble", IncompleteVideo("assemble", "internal_error", f"part kinds no stage declared: {undeclared}"))
    meta = dict(by_kind["meta"][0])
    if by_kind.get("error"):
        stage, error_type, message = min(by_kind["error"])
        raise AssemblyFailed(stage, IncompleteVideo(stage, error_type, message))
    index = concat_chunks(by_kind.get("frames", []) or [_empty_index()])
    n = len(index["frame_idx"])
    if n != meta["frame_count"] or (
        not meta.get("keyframes_only") and not np.array_equal(index["frame_idx"], np.arange(n))
    ):
        raise AssemblyFailed(
            "assemble",
            IncompleteVideo("assemble", "incomplete", f"frame index holds {n} frames, decode counted {meta['frame_count']}"),
        )
    video = VideoAssembly(video_id, meta, index)
    for stage in stages:
        mine = {kind: by_kind.get(kind, []) for kind in stage.parts}
        try:
            if clock is not None:
                clock.call(stage.name, stage.assemble, video, mine)
            else:
                stage.assemble(video, mine)
        except Exception as e:
            raise AssemblyFailed(getattr(e, "stage", stage.name), e) from e
    meta.setdefault("shot_detector", "none")
    meta["num_shots"] = len(video.rows.get("shots", []))
    meta.setdefault("num_scenes", None)
    meta.setdefault("motion_vectors", "off")
    out: dict[str, Any] = {"videos": meta, "frames": frames_table(video)}
    out.update(video.rows)
    return out


def _empty_index() -> dict:
    return {
        "frame_idx": np.zeros(0, np.int32), "pts": [], "pts_time": np.zeros(0), "is_keyframe": np.zeros(0, bool),
        "pict_type": [], "duration": np.zeros(0),
    }


def frames_table(video: VideoAssembly) -> pa.Table:
    """The video's `frames` rows: the index columns, the columns pass stages filled, nulls elsewhere."""
    n = video.num_frames
    idx = video.index
    columns: dict[str, Any] = {
        "video_id": pa.array([video.video_id] * n, pa.string()),
        "frame_idx": pa.array(idx["frame_idx"], pa.int32()),
        "pts": pa.array(idx["pts"], pa.int64()),
        "pts_time": pa.array(idx["pts_time"], pa.float64()),
        "is_keyframe": pa.array(idx["is_keyframe"], pa.bool_()),
        "pict_type": pa.array(idx["pict_type"], pa.string()),
    }
    for field in tables.FRAMES:
        if field.name not in columns:
            columns[field.name] = video.columns.get(field.name, pa.nulls(n, field.type))
    return pa.Table.from_pydict(columns, schema=tables.FRAMES)


class _AssembleVideoFn(beam.DoFn):
    def __init__(self, stages: Sequence[PassStage]) -> None:
        from reelbeam.transforms.timing import StageClock

        self._stages = list(stages)
        self._clock = StageClock()  # each stage's `assemble` counts toward that stage
        self._orphans = beam.metrics.Metrics.counter("reelbeam", "orphan_groups")
        self._ok = beam.metrics.Metrics.counter("reelbeam", "videos_ok")
        self._shots = beam.metrics.Metrics.counter("reelbeam", "shots_detected")
        self._failed = beam.metrics.Metrics.counter("reelbeam", "assemble_failures")

    def process(self, element):
        video_id, parts = element
        parts = list(parts)
        meta = next((p.payload for p in parts if p.kind == "meta"), None)
        try:
            result = assemble_video(video_id, parts, self._stages, self._clock)
        except Exception as e:  # noqa: BLE001 - any error of one video becomes its failures row
            self._clock.flush()
            stage, cause = (e.stage, e.cause) if isinstance(e, AssemblyFailed) else ("assemble", e)
            self._failed.inc()
            uri = meta["uri"] if meta else ""
            yield beam.pvalue.TaggedOutput("failures", failure_row(video_id, uri, stage, cause))
            return
        self._clock.flush()
        if result is None:
            self._orphans.inc()
            return
        self._ok.inc()
        self._shots.inc(len(result.get("shots", ())))
        for table, value in result.items():
            if table in ("videos", "frames"):
                yield beam.pvalue.TaggedOutput(table, value)
            else:
                for row in value:
                    yield beam.pvalue.TaggedOutput(table, row)


class AssembleVideos(beam.PTransform):
    """PCollection[(video_id, VideoPart)] -> tagged 'videos', 'frames' (one pyarrow Table per video),
    'failures' and every table the pass stages assemble."""

    def __init__(self, stages: Sequence[PassStage]) -> None:
        super().__init__()
        check_parts(stages)
        self._stages = list(stages)
        self._tables = sorted({t for s in stages for t in s.assembled})

    def expand(self, parts):
        from reelbeam.transforms.portable import split_outputs

        grouped = parts | "GroupPerVideo" >> beam.GroupByKey()
        return split_outputs(grouped, _AssembleVideoFn(self._stages), ["frames", "failures", *self._tables], "videos", "AssembleVideo")
