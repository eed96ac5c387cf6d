"""ExtractShotKeyframes: the 3 keyframes of every shot (first, middle, last frame), as JPEG.

Inputs are tables (`videos`, `frames`, `shots`), from this job or an earlier run. On CPU workers
TransNetV2 runs inside the decode pass and the keyframes are captured there (`inline_shots`): in the
same job those frames become rows as they are. What the pass could not hold (very long shots, or
TransNetV2 scored by RunInference on a GPU, or shots read from an earlier run) comes from a second,
partial pass over the file: frames are decoded forward up to the last keyframe needed, and
where the next needed frame lies past a codec keyframe the decoder seeks there instead of decoding
the frames in between (the frame index of the first pass says where keyframes are). A video with a
single GOP (the bundled sample) therefore costs one decode up to its last shot's last frame.

Keyframe indices follow LGSS/BaSSL: for a shot [s, e] (inclusive), s, s + (e - s) // 2 and e, of
the shot's span without the frames of the gradual transitions into and out of it (`clean_span`:
the shots table's transition columns; cuts and `--keep-transition-frames` leave [s, e] as it is).
"""

from __future__ import annotations

import apache_beam as beam
import numpy as np

from reelbeam.schemas.records import KeyframePlan
from reelbeam.transforms.failures import IncompleteVideo, failure_row
from reelbeam.transforms.media import frame_jpeg, opened_video, seek_frames
from reelbeam.transforms.portable import split_outputs


def shot_keyframe_indices(start: int, end: int) -> tuple[int, int, int]:
    """First, middle and last frame of an inclusive span (LGSS `generate_images(num_images=3)`)."""
    return start, start + (end - start) // 2, end


def clean_span(shot: dict, next_shot: dict | None = None) -> tuple[int, int]:
    """A shot row's [start_frame, end_frame] without the frames of the gradual transition into it
    (its own transition columns) and out of it (`next_shot`'s): from the frame after the incoming
    transition's last frame to the frame before the outgoing one's first, clamped inside the shot.
    Cuts (kind 'cut'), null transitions and a shot that is all transition keep the full span."""
    s, e = int(shot["start_frame"]), int(shot["end_frame"])
    a, b = s, e
    if shot.get("transition_kind") not in (None, "cut") and shot.get("transition_last_frame") is not None:
        a = max(s, int(shot["transition_last_frame"]) + 1)
    if (next_shot is not None and next_shot.get("transition_kind") not in (None, "cut")
            and next_shot.get("transition_first_frame") is not None):
        b = min(e, int(next_shot["transition_first_frame"]) - 1)
    return (a, b) if a <= b else (s, e)


def clean_spans(shots: list[dict], keep_transition_frames: bool = False) -> list[tuple[int, int]]:
    """`clean_span` of each of a video's shot rows (sorted by shot_idx, all of them); with
    `keep_transition_frames`, the full spans."""
    if keep_transition_frames:
        return [(int(sh["start_frame"]), int(sh["end_frame"])) for sh in shots]
    return [clean_span(sh, shots[i + 1] if i + 1 < len(shots) else None) for i, sh in enumerate(shots)]


def keyframe_rows(video_id: str, frame_idx: int, record: dict, roles) -> list[dict]:
    """`keyframes` rows (kind 'shot') of one encoded frame, one per (shot_idx, shot_id,
    keyframe_idx) role it plays (a 1- or 2-frame shot uses a frame twice)."""
    return [
        {
            "video_id": video_id,
            "kind": "shot",
            "frame_idx": frame_idx,
            "pts_time": record["pts_time"],
            "shot_id": shot_id,
            "shot_idx": shot_idx,
            "keyframe_idx": kf,
            "width": record["width"],
            "height": record["height"],
            "jpeg": record["jpeg"],
        }
        for shot_idx, shot_id, kf in roles
    ]


def shot_keyframe_targets(shots: list[dict], keep_transition_frames: bool = False) -> list[tuple]:
    """(frame_idx, shot_idx, shot_id, keyframe_idx) of every shot's 3 keyframes, by frame; the
    shots are a video's rows sorted by shot_idx, their keyframes taken from `clean_spans`."""
    return sorted(
        (f, sh["shot_idx"], sh["shot_id"], k)
        for sh, (s, e) in zip(shots, clean_spans(shots, keep_transition_frames))
        for k, f in enumerate(shot_keyframe_indices(s, e))
    )


def plan_for(meta: dict, targets: list[tuple], frames_table) -> KeyframePlan:
    """The second pass's plan for `targets` (see shot_keyframe_targets) of the video whose `videos`
    row is `meta` and whose `frames` rows are `frames_table` (a pyarrow Table)."""
    return KeyframePlan(
        video_id=meta["video_id"],
        uri=meta["uri"],
        size_bytes=meta.get("size_bytes"),
        targets=tuple(sorted(targets)),
        pts=np.asarray(frames_table.column("pts").to_pylist(), dtype=object),
        is_keyframe=np.asarray(frames_table.column("is_keyframe").to_pylist(), bool),
        sample_aspect_ratio=meta.get("sample_aspect_ratio"),
    )


def frames_at(plan: KeyframePlan, what: str = "frames"):
    """Yield (frame_idx, decoded frame) for every frame `plan.targets` names, in frame order, each
    once: decoded forward, seeking to a codec keyframe where the next target lies past one (module
    docstring). Raises on an unreadable file, and ValueError when the stream ends before a target."""
    with opened_video(plan.uri) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        wanted = {t[0] for t in plan.targets}
        yield from seek_frames(container, stream, plan.pts, plan.is_keyframe, wanted)
        if wanted:
            raise ValueError(f"{len(wanted)} {what} not found in the second pass (first missing: frame {min(wanted)})")


def extract_keyframes(plan: KeyframePlan, max_side: int = 0, quality: int = 90):
    """Yield keyframes rows for `plan` (raises on an unreadable file, like the decode pass)."""
    roles: dict[int, list] = {}
    for f, shot_idx, shot_id, k in plan.targets:
        roles.setdefault(f, []).append((shot_idx, shot_id, k))
    for idx, frame in frames_at(plan, "shot keyframes"):
        data, w, h = frame_jpeg(frame, max_side, quality, plan.sample_aspect_ratio)
        record = {"pts_time": float(frame.time) if frame.time is not None else None, "width": w, "height": h, "jpeg": data}
        yield from keyframe_rows(plan.video_id, idx, record, roles[idx])


class _ExtractShotKeyframesFn(beam.DoFn):
    def __init__(self, max_side: int, quality: int) -> None:
        self._max_side = max_side
        self._quality = quality
        self._count = beam.metrics.Metrics.counter("reelbeam", "shot_keyframes_second_pass")

    def process(self, plan: KeyframePlan):
        try:
            rows = list(extract_keyframes(plan, self._max_side, self._quality))
        except Exception as e:  # noqa: BLE001 - becomes a failures row for this video
            yield beam.pvalue.TaggedOutput("failures", failure_row(plan.video_id, plan.uri, "shot_keyframes", e))
            return
        self._count.inc(len(rows))
        yield from rows


def frames_by_video(table):
    """A `frames` table of one video -> (video_id, table), to join with other rows by video."""
    return table.column("video_id")[0].as_py(), table


def join_shot_inputs(tables: dict, captured: str):
    """Inside a transform's expand: its `videos`, `frames` and `shots` tables and the decode pass's
    index of captured frames (stream `captured`, when this job has it) joined by video ->
    (shots keyed by video, the joined PCollection); see `shots_with_their_video`."""
    p = tables["shots"].pipeline
    captured_index = tables.get(captured)
    if captured_index is None:
        captured_index = p | "NoCapturedIndex" >> beam.Create([])
    shots = tables["shots"] | "ShotsByVideo" >> beam.Map(lambda r: (r["video_id"], r))
    joined = {
        "videos": tables["videos"] | "VideosByVideo" >> beam.Map(lambda r: (r["video_id"], r)),
        "frames": tables["frames"] | "FramesByVideo" >> beam.Filter(lambda t: t.num_rows > 0) | "KeyFrames" >> beam.Map(frames_by_video),
        "shots": shots,
        "captured": captured_index,
    } | "JoinShotInputs" >> beam.CoGroupByKey()
    return shots, joined


def shots_with_their_video(video_id: str, g: dict, stage: str):
    """A video's joined `shots`, `videos` and `frames` inputs -> (shots sorted by index, videos
    rows, frames tables, None), or (shots, ..., failures row) when the shots came without their
    video's rows; None when the video has no shots (not the caller's video)."""

    shots = sorted(g["shots"], key=lambda r: r["shot_idx"])
    if not shots:
        return None
    videos, frames = list(g["videos"]), list(g["frames"])
    failure = None
    if not videos or not frames:
        missing = "videos" if not videos else "frames"
        failure = failure_row(video_id, "", stage, IncompleteVideo(stage, "incomplete", f"no `{missing}` rows for the video's shots"))
    return shots, videos, frames, failure


class _PlanVideoFn(beam.DoFn):
    """A video's `videos` row, `frames` rows, shots and the indices the decode pass captured ->
    the roles of captured frames (tag 'accepts'), the second pass's plan (main) for the rest, and
    the video_id (tag 'processed')."""

    def __init__(self, keep_transition_frames: bool = False) -> None:
        self._keep = keep_transition_frames

    def process(self, element):
        video_id, g = element
        inputs = shots_with_their_video(video_id, g, "shot_keyframes")
        if inputs is None:
            return
        shots, videos, frames, failure = inputs
        yield beam.pvalue.TaggedOutput("processed", video_id)
        if failure is not None:
            yield beam.pvalue.TaggedOutput("failures", failure)
            return
        captured = set(next(iter(g["captured"]), ()))
        targets = shot_keyframe_targets(shots, self._keep)
        accepted: dict[int, list] = {}
        for f, shot_idx, shot_id, k in targets:
            if f in captured:
                accepted.setdefault(f, []).append((shot_idx, shot_id, k))
        for f, roles in accepted.items():
            yield beam.pvalue.TaggedOutput("accepts", ((video_id, f), roles))
        remaining = [t for t in targets if t[0] not in captured]
        if remaining:
            yield plan_for(videos[0], remaining, frames[0])


def _accepted_rows(element):
    (video_id, frame_idx), groups = element
    records = list(groups["frames"])
    if records:
        record = records[0]
        fields = {"pts_time": record.pts_time, "width": record.width, "height": record.height, "jpeg": record.jpeg}
        for roles in groups["roles"]:
            yield from keyframe_rows(video_id, frame_idx, fields, roles)


class ExtractShotKeyframes(beam.PTransform):
    """{'videos', 'frames', 'shots'} tables (and, when the decode pass captured frames in this job,
    the 'shot_frames' and 'shot_frames_index' streams) -> {'keyframes': rows of kind 'shot',
    'failures', 'processed': video_ids}.

    Captured frames that are keyframes of the final shots become rows as they are; the rest come
    from the seeking second pass (`extract_keyframes`)."""

    def __init__(self, max_side: int = 0, quality: int = 90, keep_transition_frames: bool = False) -> None:
        super().__init__()
        self._max_side = max_side
        self._quality = quality
        self._keep = keep_transition_frames

    def expand(self, tables):
        _, joined = join_shot_inputs(tables, "shot_frames_index")
        planned = split_outputs(joined, _PlanVideoFn(self._keep), ["accepts", "failures", "processed"], "plans", "PlanKeyframes")
        second = split_outputs(
            planned.plans, _ExtractShotKeyframesFn(self._max_side, self._quality), ["failures"], "keyframes", "SecondPass"
        )
        parts = [second.keyframes]
        if tables.get("shot_frames") is not None:
            captured = tables["shot_frames"] | "KeyCapturedFrames" >> beam.Map(lambda c: ((c.video_id, c.frame_idx), c))
            parts.append(
                {"roles": planned.accepts, "frames": captured}
                | "JoinCapturedFrames" >> beam.CoGroupByKey()
                | "CapturedKeyframeRows" >> beam.FlatMap(_accepted_rows)
            )
        return {
            "keyframes": parts | "FlattenShotKeyframes" >> beam.Flatten(),
            "failures": (planned.failures, second.failures) | "FlattenFailures" >> beam.Flatten(),
            "processed": planned.processed,
        }
