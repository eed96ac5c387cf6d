"""In-flight record types passed between stages (not written as such)."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any, NamedTuple

from reelbeam import __version__


@dataclasses.dataclass(frozen=True)
class VideoRef:
    """One input video, as listed.

    video_id: deterministic id from the URI and size (see `listing.make_video_id`).
    uri: local path or fsspec URL, exactly as listed.
    size_bytes: file size in bytes, or None when the file system could not say.
    """

    video_id: str
    uri: str
    size_bytes: int | None


@dataclasses.dataclass(frozen=True)
class Failure:
    """A dead letter: one input that a stage could not process, with a stable `error_type`."""

    video_id: str
    uri: str
    stage: str
    error_type: str
    message: str
    time: datetime.datetime = dataclasses.field(
        default_factory=lambda: datetime.datetime.now(datetime.UTC)
    )

    @classmethod
    def of(cls, ref: VideoRef, stage: str, error_type: str, message: str) -> Failure:
        return cls(ref.video_id, ref.uri, stage, error_type, message)

    def to_row(self) -> dict:
        row = dataclasses.asdict(self)
        row["reelbeam_version"] = __version__
        return row


class VideoPart(NamedTuple):
    """A per-video piece made in the decode pass (or between it and the assembly), gathered per
    video and handed to the pass stage that declared `kind` (see `reelbeam.stages.base.PassStage`).

    kind: a part kind a pass stage declares in its `parts` (e.g. 'transnetv2_probs').
    payload: whatever that stage's `assemble` expects for the kind.
    """

    video_id: str
    kind: str
    payload: Any


class WindowKey(NamedTuple):
    """A TransNetV2 window of a video: window `index` covers frames 50*index - 25 .. 50*index + 74."""

    video_id: str
    index: int


class ShotKey(NamedTuple):
    """One shot of a video, as in `shots` (shot_idx, shot_id)."""

    video_id: str
    shot_idx: int
    shot_id: str


class CapturedFrame(NamedTuple):
    """A frame the decode pass JPEG-encoded because it may be a shot keyframe (in display
    orientation and aspect)."""

    video_id: str
    frame_idx: int
    pts_time: float | None
    width: int
    height: int
    jpeg: bytes


class SceneFrame(NamedTuple):
    """A frame the training-free scene grouping reads (a quarter in, the middle or a quarter from
    the end of a shot), captured in the decode pass or fetched by the seeking second pass.

    jpeg: the whole frame squashed to the embedding network's 224 x 224 input, in display
      orientation, as JPEG (quality 95, `scene_grouping.scene_frame`): these records wait between
      the decode pass and the embedding step, and as raw pixels (147 KB each, 3 per shot) they made
      a long video's peak memory grow with its length.
    hist: float32 [52], the hue/saturation histogram of the frame before compression
      (`scene_grouping.hs_histogram`), summing to 1.
    """

    video_id: str
    frame_idx: int
    jpeg: bytes
    hist: Any


@dataclasses.dataclass(frozen=True)
class KeyframePlan:
    """What one video's keyframe pass (a second, seeking read of the file) must fetch.

    targets: ((frame_idx, shot_idx, shot_id, keyframe_idx), ...) sorted by frame.
    pts: PTS per frame of the first pass (object array: None where unknown).
    is_keyframe: codec keyframe flag per frame.
    sample_aspect_ratio: the stream's pixel aspect 'num:den' (keyframes are stored with square pixels).
    """

    video_id: str
    uri: str
    size_bytes: int | None
    targets: tuple
    pts: Any
    is_keyframe: Any
    sample_aspect_ratio: str | None = None
