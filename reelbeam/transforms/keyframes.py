"""ExtractShotKeyframes: the 3 keyframes of every shot (first, middle, last frame), as JPEG.

On CPU workers TransNetV2 runs inside the decode pass and the keyframes are captured there
(`inline_shots`); `AcceptCapturedKeyframes` turns the accepted ones into rows. What it could not
hold (very long shots, or TransNetV2 scored by RunInference on a GPU) comes from a second, partial
pass over the file: frames are decoded forward up to the last keyframe needed, and
where the next needed frame lies past a codec keyframe the decoder seeks there instead of decoding
the frames in between (the frame index of the first pass says where keyframes are). A video with a
single GOP (the bundled sample) therefore costs one decode up to its last shot's last frame.

Keyframe indices follow LGSS/BaSSL: for a shot [s, e] (inclusive), s, s + (e - s) // 2 and e.
"""

from __future__ import annotations

import bisect
import dataclasses
from typing import Optional

import apache_beam as beam
import numpy as np

from reelbeam.schemas.records import Failure, VideoRef
from reelbeam.transforms.decode import _classify, opened_video
from reelbeam.transforms.inline_shots import frame_jpeg


def shot_keyframe_indices(start: int, end: int) -> tuple[int, int, int]:
    """First, middle and last frame of an inclusive span (LGSS `generate_images(num_images=3)`)."""
    return start, start + (end - start) // 2, end


@dataclasses.dataclass(frozen=True)
class KeyframePlan:
    """What one video's keyframe pass needs: where to read, which frames, where keyframes are."""

    video_id: str
    uri: str
    size_bytes: Optional[int]
    targets: tuple  # ((frame_idx, shot_idx, shot_id, keyframe_idx), ...) sorted by frame
    pts: np.ndarray  # int64 [N] PTS per frame of the first pass
    is_keyframe: np.ndarray  # bool [N]


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


def shot_keyframe_targets(shots: list[dict]) -> list[tuple]:
    """(frame_idx, shot_idx, shot_id, keyframe_idx) of every shot's 3 keyframes, by frame."""
    return sorted(
        (f, sh["shot_idx"], sh["shot_id"], k)
        for sh in shots
        for k, f in enumerate(shot_keyframe_indices(sh["start_frame"], sh["end_frame"]))
    )


def plan_for(meta: dict, targets: list[tuple], frames_table) -> KeyframePlan:
    """The second pass's plan for `targets` (see shot_keyframe_targets)."""
    return KeyframePlan(
        video_id=meta["video_id"],
        uri=meta["uri"],
        size_bytes=meta.get("size_bytes"),
        targets=tuple(sorted(targets)),
        pts=np.asarray(frames_table.column("pts").to_pylist(), dtype=object),
        is_keyframe=np.asarray(frames_table.column("is_keyframe").to_pylist(), bool),
    )


def extract_keyframes(plan: KeyframePlan, max_side: int = 0, quality: int = 90):
    """Yield keyframes rows for `plan` (raises on an unreadable file, like the decode pass)."""
    with opened_video(VideoRef(plan.video_id, plan.uri, plan.size_bytes)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        key_positions = np.flatnonzero(plan.is_keyframe).tolist()
        pts_to_index = {p: i for i, p in enumerate(plan.pts) if p is not None}
        wanted: dict[int, list] = {}
        for f, shot_idx, shot_id, k in plan.targets:
            wanted.setdefault(f, []).append((shot_idx, shot_id, k))
        order = sorted(wanted)
        pos = -1  # index of the last decoded frame
        frames = None
        i = 0
        while i < len(order):
            target = order[i]
            k = bisect.bisect_right(key_positions, target) - 1
            key = key_positions[k] if k >= 0 else 0
            if frames is None or (key > pos + 1 and plan.pts[key] is not None):
                if frames is not None or key > 0:
                    container.seek(int(plan.pts[key]), stream=stream, backward=True, any_frame=False)
                frames = container.decode(stream)
                pos = key - 1
            for frame in frames:
                idx = pts_to_index.get(frame.pts, pos + 1) if frame.pts is not None else pos + 1
                pos = idx
                if idx in wanted:
                    data, w, h = frame_jpeg(frame, max_side, quality)
                    record = {"pts_time": float(frame.time) if frame.time is not None else None, "width": w, "height": h, "jpeg": data}
                    yield from keyframe_rows(plan.video_id, idx, record, wanted[idx])
                    del wanted[idx]
                if idx >= target:
                    break
            else:
                break  # the stream ended before the target
            while i < len(order) and order[i] not in wanted:
                i += 1
        if wanted:
            raise ValueError(f"{len(wanted)} shot keyframes not found in the second pass (first missing: frame {min(wanted)})")


class _ExtractShotKeyframesFn(beam.DoFn):
    def __init__(self, max_side: int, quality: int) -> None:
        self._max_side = max_side
        self._quality = quality
        self._count = beam.metrics.Metrics.counter("reelbeam", "shot_keyframes")

    def process(self, plan: KeyframePlan):
        try:
            rows = list(extract_keyframes(plan, self._max_side, self._quality))
        except Exception as e:  # noqa: BLE001 - becomes a failures row for this video
            ref = VideoRef(plan.video_id, plan.uri, plan.size_bytes)
            yield beam.pvalue.TaggedOutput(
                "failures", Failure.of(ref, "shot_keyframes", _classify(e), f"{type(e).__name__}: {e}").to_row()
            )
            return
        self._count.inc(len(rows))
        yield from rows


class ExtractShotKeyframes(beam.PTransform):
    """PCollection[KeyframePlan] -> keyframes rows (kind 'shot'); tag 'failures' for videos whose
    second pass failed."""

    def __init__(self, max_side: int = 0, quality: int = 90) -> None:
        super().__init__()
        self._max_side = max_side
        self._quality = quality

    def expand(self, plans):
        return plans | "ExtractKeyframes" >> beam.ParDo(
            _ExtractShotKeyframesFn(self._max_side, self._quality)
        ).with_outputs("failures", main="keyframes")


def _accepted_rows(element):
    (video_id, frame_idx), groups = element
    records = list(groups["frames"])
    if records:
        for roles in groups["roles"]:
            yield from keyframe_rows(video_id, frame_idx, records[0], roles)


class AcceptCapturedKeyframes(beam.PTransform):
    """(keyframe_accepts, shot_frames) -> keyframes rows (kind 'shot') of the frames the decode
    pass captured and assembly accepted; captured frames that are no keyframe are dropped."""

    def expand(self, inputs):
        accepts, frames = inputs
        return (
            {"roles": accepts, "frames": frames}
            | "JoinCapturedFrames" >> beam.CoGroupByKey()
            | "CapturedKeyframeRows" >> beam.FlatMap(_accepted_rows)
        )
