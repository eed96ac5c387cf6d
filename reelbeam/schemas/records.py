"""In-flight record types passed between stages (not written as such)."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Optional

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
    size_bytes: Optional[int]


@dataclasses.dataclass(frozen=True)
class Failure:
    """A dead letter: one input that a stage could not process, with a stable `error_type`."""

    video_id: str
    uri: str
    stage: str
    error_type: str
    message: str
    time: datetime.datetime = dataclasses.field(
        default_factory=lambda: datetime.datetime.now(datetime.timezone.utc)
    )

    @classmethod
    def of(cls, ref: VideoRef, stage: str, error_type: str, message: str) -> "Failure":
        return cls(ref.video_id, ref.uri, stage, error_type, message)

    def to_row(self) -> dict:
        row = dataclasses.asdict(self)
        row["reelbeam_version"] = __version__
        return row
