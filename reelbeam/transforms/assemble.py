"""AssembleVideos: per-video join of decode outputs and model scores into table rows.

Input: (video_id, (kind, payload)) records from the decode pass and from the models, flattened
and grouped per video. Kinds:
- 'meta': the `videos` row fields (only present when the whole video decoded);
- 'frames': frame-index chunks; 'lgss': LGSS deltas; 'motion_stats': motion-vector chunks;
- 'transnetv2_windows': how many windows were sent; 'transnetv2_probs': (window_idx, probs[50]);
- 'error': (stage, error_type, message) from a model stage's dead-letter output.

A video becomes a `videos` row (status ok) only when every piece is present; otherwise it
becomes a `failures` row, so count(inputs) = count(ok) + count(failed) holds across stages. A
group without 'meta' belongs to a video whose decode already wrote its failure: it is dropped
and counted (`orphan_groups`).
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any, Iterable, Optional

import apache_beam as beam
import numpy as np
import pyarrow as pa

from reelbeam.models.transnetv2 import stitch_window_predictions
from reelbeam.schemas import tables
from reelbeam.schemas.records import Failure, VideoRef
from reelbeam.transforms.scenes import SceneConfig, group_shots, shot_descriptors
from reelbeam.transforms.shots import (
    ShotConfig,
    enforce_min_length,
    lgss_cuts,
    shots_from_starts,
    transition_peak,
    transnetv2_shot_starts,
)

MOTION_COLUMNS = (
    "mv_count",
    "mv_mean_mag",
    "mv_max_mag",
    "mv_moving_fraction",
    "mv_mean_dx",
    "mv_mean_dy",
)


def make_span_id(video_id: str, start_frame: int, end_frame: int) -> str:
    """Deterministic id of a frame span of a video (shots, scenes)."""
    return hashlib.sha1(f"{video_id}:{start_frame}-{end_frame}".encode()).hexdigest()[:16]


def timecode(seconds: float) -> str:
    """HH:MM:SS.mmm, as ModelScope's shot and scene metadata."""
    ms = int(round(max(seconds, 0.0) * 1000))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def scene_rows(
    video_id: str, shots: list[dict], groups: list[tuple[int, int]], end_scores: list, method: str
) -> list[dict]:
    """`scenes` rows from inclusive (first_shot, last_shot) groups of a video's shot rows."""
    rows = []
    for idx, ((a, b), end_score) in enumerate(zip(groups, end_scores)):
        first, last = shots[a], shots[b]
        rows.append(
            {
                "video_id": video_id,
                "scene_idx": idx,
                "scene_id": make_span_id(video_id, first["start_frame"], last["end_frame"]),
                "first_shot_idx": a,
                "last_shot_idx": b,
                "start_frame": first["start_frame"],
                "end_frame": last["end_frame"],
                "start_time": first["start_time"],
                "end_time": last["end_time"],
                "num_shots": b - a + 1,
                "p_boundary_end": end_score,
                "method": method,
            }
        )
    return rows


def scene_meta_list(scenes: list[dict]) -> list[dict]:
    """ModelScope's `scene_meta_list` (shot indices, inclusive frame span, timecodes)."""
    return [
        {
            "shot": list(range(sc["first_shot_idx"], sc["last_shot_idx"] + 1)),
            "frame": [sc["start_frame"], sc["end_frame"]],
            "timestamps": [timecode(sc["start_time"]), timecode(sc["end_time"])],
        }
        for sc in scenes
    ]


class IncompleteVideo(Exception):
    def __init__(self, stage: str, error_type: str, message: str) -> None:
        super().__init__(message)
        self.stage = stage
        self.error_type = error_type


@dataclasses.dataclass
class _Parts:
    meta: Optional[dict] = None
    frames: list = dataclasses.field(default_factory=list)
    lgss: Optional[dict] = None
    motion: list = dataclasses.field(default_factory=list)
    color_hist: list = dataclasses.field(default_factory=list)
    windows_expected: Optional[int] = None
    window_probs: dict = dataclasses.field(default_factory=dict)
    shot_frames_captured: list = dataclasses.field(default_factory=list)
    errors: list = dataclasses.field(default_factory=list)

    @classmethod
    def collect(cls, records: Iterable[tuple[str, Any]]) -> "_Parts":
        parts = cls()
        for kind, payload in records:
            if kind == "meta":
                parts.meta = payload
            elif kind == "frames":
                parts.frames.append(payload)
            elif kind == "lgss":
                parts.lgss = payload
            elif kind == "motion_stats":
                parts.motion.append(payload)
            elif kind == "color_hist":
                parts.color_hist.append(payload)
            elif kind == "transnetv2_windows":
                parts.windows_expected = payload
            elif kind == "transnetv2_probs":
                idx, probs = payload
                parts.window_probs[idx] = probs
            elif kind == "shot_frames_captured":
                parts.shot_frames_captured = list(payload)
            elif kind == "error":
                parts.errors.append(payload)
            else:
                raise ValueError(f"unknown per-video record kind {kind!r}")
        return parts


def _concat_chunks(chunks: list[dict]) -> dict[str, Any]:
    chunks = sorted(chunks, key=lambda c: int(c["frame_idx"][0]) if len(c["frame_idx"]) else -1)
    out: dict[str, Any] = {}
    for key in chunks[0]:
        vals = [c[key] for c in chunks]
        if isinstance(vals[0], np.ndarray):
            out[key] = np.concatenate(vals)
        else:
            out[key] = [x for v in vals for x in v]
    return out


def assemble_video(
    video_id: str,
    records: Iterable[tuple[str, Any]],
    shot_config: ShotConfig,
    scene_config: Optional[SceneConfig] = None,
) -> Optional[dict[str, Any]]:
    """Pure per-video assembly. Returns None for an orphan group (no 'meta').

    Returns {'videos': row, 'frames': pa.Table, 'shots': [rows], 'scenes': [rows], 'json': dict}; raises
    IncompleteVideo when a piece is missing or a model stage failed.
    """
    parts = _Parts.collect(records)
    if parts.meta is None:
        return None
    meta = dict(parts.meta)
    if parts.errors:
        stage, error_type, message = parts.errors[0]
        raise IncompleteVideo(stage, error_type, message)
    frames = _concat_chunks(parts.frames)
    n = len(frames["frame_idx"])
    keyframes_only = bool(meta.get("keyframes_only"))
    if n != meta["frame_count"] or (not keyframes_only and not np.array_equal(frames["frame_idx"], np.arange(n))):
        raise IncompleteVideo(
            "assemble", "incomplete", f"frame index holds {n} frames, decode counted {meta['frame_count']}"
        )

    probs = None
    if shot_config.detector == "transnetv2" and not keyframes_only:
        expected = parts.windows_expected
        got = len(parts.window_probs)
        if expected is None or got != expected:
            raise IncompleteVideo(
                "transition_model", "incomplete", f"{got} of {expected} TransNetV2 windows scored"
            )
        probs = stitch_window_predictions([parts.window_probs[i] for i in range(expected)], n)

    deltas = None
    if shot_config.detector == "lgss" and not keyframes_only:
        if parts.lgss is None or len(parts.lgss["hsv"]) != n:
            raise IncompleteVideo("shot_detection", "incomplete", "LGSS deltas missing")
        deltas = parts.lgss

    # Shots.
    min_len = shot_config.effective_min_shot_frames
    if probs is not None:
        starts = transnetv2_shot_starts(probs, shot_config.transnetv2_threshold)
        if min_len > 1:
            starts = enforce_min_length(starts, n, min_len)
    elif shot_config.detector == "lgss" and deltas is not None:
        starts = lgss_cuts(
            deltas["hsv"],
            deltas["luv"],
            shot_config.lgss_threshold,
            shot_config.lgss_gap,
            shot_config.lgss_luv_threshold,
            shot_config.lgss_hsv_weight,
            min_len,
        )
    else:
        starts = []
    # Keyframes-only decodes see too few frames to cut shots.
    spans = [] if keyframes_only else shots_from_starts(starts, n)

    pts_time = frames["pts_time"]
    durations = frames["duration"]
    fps = meta.get("nominal_fps") or meta.get("avg_fps") or 25.0

    def end_time(end: int) -> float:
        if end + 1 < n:
            return float(pts_time[end + 1])
        d = durations[end]
        return float(pts_time[end] + (d if np.isfinite(d) and d > 0 else 1.0 / fps))

    motion = _motion_columns(parts.motion, frames["frame_idx"])
    mean_mag = None
    if motion:
        mean_mag = np.where(motion["_null"], np.nan, motion["mv_mean_mag"])

    shots = []
    for idx, (s, e) in enumerate(spans):
        motion_score = None
        if mean_mag is not None:
            seg = mean_mag[s : e + 1]
            seg = seg[~np.isnan(seg)]
            motion_score = float(seg.mean()) if len(seg) else None
        shots.append(
            {
                "video_id": video_id,
                "shot_idx": idx,
                "shot_id": make_span_id(video_id, s, e),
                "start_frame": s,
                "end_frame": e,
                "start_time": float(pts_time[s]),
                "end_time": end_time(e),
                "num_frames": e - s + 1,
                "detector": shot_config.detector if probs is not None or deltas is not None else "none",
                "max_transition_prob": (
                    transition_peak(probs, (s, e), shot_config.transnetv2_threshold)
                    if probs is not None
                    else None
                ),
                "motion_score": motion_score,
            }
        )

    columns: dict[str, Any] = {
        "video_id": pa.array([video_id] * n, pa.string()),
        "frame_idx": pa.array(frames["frame_idx"], pa.int32()),
        "pts": pa.array(frames["pts"], pa.int64()),
        "pts_time": pa.array(pts_time, pa.float64()),
        "is_keyframe": pa.array(frames["is_keyframe"], pa.bool_()),
        "pict_type": pa.array(frames["pict_type"], pa.string()),
        "transition_prob": pa.array(probs, pa.float32()) if probs is not None else pa.nulls(n, pa.float32()),
        "content_delta": (
            pa.array(deltas["hsv"], pa.float32()) if deltas is not None else pa.nulls(n, pa.float32())
        ),
    }
    schema = tables.FRAMES
    motion_mask = motion.get("_null") if motion else None
    for name in (*MOTION_COLUMNS, "mv_direction_hist"):
        type_ = schema.field(name).type
        if not motion:
            columns[name] = pa.nulls(n, type_)
        elif name == "mv_direction_hist":
            columns[name] = pa.FixedSizeListArray.from_arrays(
                pa.array(motion[name].reshape(-1), pa.int32()), type=type_, mask=pa.array(motion_mask)
            )
        else:
            values = motion[name]
            mask = motion_mask | np.isnan(values) if values.dtype.kind == "f" else motion_mask
            columns[name] = pa.array(values, type_, mask=mask)
    frames_table = pa.Table.from_pydict(columns, schema=schema)

    meta["shot_detector"] = "none" if keyframes_only else shot_config.detector
    meta["num_shots"] = len(shots)
    meta.setdefault("motion_vectors", "off")
    shot_meta = [
        {
            "frame": [sh["start_frame"], sh["end_frame"]],
            "timestamps": [timecode(sh["start_time"]), timecode(sh["end_time"])],
        }
        for sh in shots
    ]
    document = {
        "video_id": video_id,
        "uri": meta["uri"],
        "shot_num": len(shots),
        "shot_meta_list": shot_meta,
    }
    scenes = []
    if scene_config is not None and scene_config.method == "histogram" and parts.color_hist and shots:
        hists = _concat_chunks(parts.color_hist)["hist"]
        groups, scores = group_shots(shot_descriptors(hists, spans), scene_config.window, scene_config.threshold)
        ends = [float(1.0 - scores[b]) if b < len(shots) - 1 else None for _, b in groups]
        method = f"histogram(window={scene_config.window},threshold={scene_config.threshold:g})"
        scenes = scene_rows(video_id, shots, groups, ends, method)
        document["scene_num"] = len(scenes)
        document["scene_meta_list"] = scene_meta_list(scenes)
    meta["num_scenes"] = len(scenes) if scenes else None
    return {"videos": meta, "frames": frames_table, "shots": shots, "scenes": scenes, "json": document}


def _motion_columns(chunks: list[dict], frame_idx: np.ndarray) -> dict[str, np.ndarray]:
    """Motion stats chunks aligned to the frame index; `_null` marks frames without stats."""
    if not chunks:
        return {}
    cols = _concat_chunks(chunks)
    pos = np.searchsorted(frame_idx, cols["frame_idx"])
    n = len(frame_idx)
    out: dict[str, np.ndarray] = {"_null": np.ones(n, bool)}
    out["_null"][pos] = False
    for key, values in cols.items():
        if key == "frame_idx":
            continue
        values = np.asarray(values)
        full = np.zeros((n, *values.shape[1:]), values.dtype)
        full[pos] = values
        out[key] = full
    return out


class _AssembleVideoFn(beam.DoFn):
    def __init__(self, shot_config: ShotConfig, scene_config: Optional[SceneConfig], keyframe_plans: bool) -> None:
        self._config = shot_config
        self._scene_config = scene_config
        self._keyframe_plans = keyframe_plans
        self._orphans = beam.metrics.Metrics.counter("reelbeam", "orphan_groups")
        self._ok = beam.metrics.Metrics.counter("reelbeam", "videos_ok")
        self._shots = beam.metrics.Metrics.counter("reelbeam", "shots_detected")
        self._failed = beam.metrics.Metrics.counter("reelbeam", "assemble_failures")

    def process(self, element):
        video_id, records = element
        records = list(records)
        meta = next((p for k, p in records if k == "meta"), None)
        try:
            result = assemble_video(video_id, records, self._config, self._scene_config)
        except IncompleteVideo as e:
            self._failed.inc()
            ref = VideoRef(video_id, meta["uri"], meta.get("size_bytes"))
            yield beam.pvalue.TaggedOutput(
                "failures", Failure.of(ref, e.stage, e.error_type, str(e)).to_row()
            )
            return
        if result is None:
            self._orphans.inc()
            return
        self._ok.inc()
        self._shots.inc(len(result["shots"]))
        yield beam.pvalue.TaggedOutput("videos", result["videos"])
        yield beam.pvalue.TaggedOutput("frames", result["frames"])
        for row in result["shots"]:
            yield beam.pvalue.TaggedOutput("shots", row)
        for row in result["scenes"]:
            yield beam.pvalue.TaggedOutput("scenes", row)
        if self._keyframe_plans and result["shots"]:
            from reelbeam.transforms.keyframes import plan_for, shot_keyframe_targets

            # Frames the decode pass already encoded (inline TransNetV2) are accepted as they are;
            # the rest go to the seeking second pass.
            captured = set(next((p for k, p in records if k == "shot_frames_captured"), ()))
            targets = shot_keyframe_targets(result["shots"])
            accepted: dict[int, list] = {}
            for f, shot_idx, shot_id, k in targets:
                if f in captured:
                    accepted.setdefault(f, []).append((shot_idx, shot_id, k))
            for f, roles in accepted.items():
                yield beam.pvalue.TaggedOutput("keyframe_accepts", ((video_id, f), roles))
            remaining = [t for t in targets if t[0] not in captured]
            if remaining:
                yield beam.pvalue.TaggedOutput("keyframe_plans", plan_for(result["videos"], remaining, result["frames"]))
        yield beam.pvalue.TaggedOutput("json", (video_id, result["json"]))


class AssembleVideos(beam.PTransform):
    """PCollection[(video_id, (kind, payload))] -> tagged 'videos', 'frames', 'shots', 'scenes',
    'json', 'failures'."""

    def __init__(
        self, shot_config: ShotConfig, scene_config: Optional[SceneConfig] = None, keyframe_plans: bool = False
    ) -> None:
        """keyframe_plans: also emit, per video, the plan of the shot keyframes that the decode pass
        did not capture (tag 'keyframe_plans', for ExtractShotKeyframes) and the roles of those it
        did (tag 'keyframe_accepts': ((video_id, frame_idx), [(shot_idx, shot_id, keyframe_idx)]))."""
        super().__init__()
        self._config = shot_config
        self._scene_config = scene_config
        self._keyframe_plans = keyframe_plans

    def expand(self, records):
        return (
            records
            | "GroupPerVideo" >> beam.GroupByKey()
            | "AssembleVideo"
            >> beam.ParDo(_AssembleVideoFn(self._config, self._scene_config, self._keyframe_plans)).with_outputs(
                "videos", "frames", "shots", "scenes", "json", "failures", "keyframe_plans", "keyframe_accepts"
            )
        )


def _rows_of_ok_video(element):
    _video_id, groups = element
    if groups["ok"]:
        yield from groups["rows"]


class KeepRowsOfOkVideos(beam.PTransform):
    """Rows a consumer emitted during decode (motion maps, I-frames) are kept only for videos
    that ended with a `videos` row, so a video that failed half-way leaves no partial rows.

    expand((videos, rows)): videos are `videos` row dicts, rows any dicts with a video_id.
    """

    def expand(self, pcolls):
        videos, rows = pcolls
        return (
            {
                "ok": videos | "OkVideoIds" >> beam.Map(lambda v: (v["video_id"], True)),
                "rows": rows | "KeyRowsByVideo" >> beam.Map(lambda r: (r["video_id"], r)),
            }
            | "JoinRowsWithVideos" >> beam.CoGroupByKey()
            | "RowsOfOkVideos" >> beam.FlatMap(_rows_of_ok_video)
        )


def _fill_uri(element):
    _video_id, groups = element
    uri = next(iter(groups["uris"]), "")
    for row in groups["failures"]:
        yield {**row, "uri": row["uri"] or uri}


class FillFailureUris(beam.PTransform):
    """(videos rows, failures rows) -> the failures rows with an empty `uri` (model stages key
    their work by video_id only) given the uri of their video's `videos` row."""

    def expand(self, pcolls):
        videos, failures = pcolls
        return (
            {
                "uris": videos | "UriByVideo" >> beam.Map(lambda r: (r["video_id"], r["uri"])),
                "failures": failures | "FailureByVideo" >> beam.Map(lambda r: (r["video_id"], r)),
            }
            | "JoinUris" >> beam.CoGroupByKey()
            | "FillUris" >> beam.FlatMap(_fill_uri)
        )
