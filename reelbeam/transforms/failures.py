"""Failures as rows: the error types, and the transforms that keep every input accounted for.

Every per-video problem ends as one `failures` row (`Failure.to_row()`, schema `failures`) with the
stage that met it and a stable `error_type` (`classify_error`); nothing is dropped silently and one
bad video never stops the run. The transforms here are the shared plumbing of that rule:

- `KeepRowsOfOkVideos`: rows a consumer emitted during the decode pass are kept only for videos
  that ended with a `videos` row, so a video that failed half-way leaves no partial rows;
- `FillFailureUris`: model stages key their work by video_id only; their failures rows get the
  video's uri from `videos`;
- `OneFailurePerVideo`: RunInference dead letters (a failed batch may hold many elements of one
  video) -> one failures row per video.
"""

from __future__ import annotations

import apache_beam as beam

from reelbeam.schemas.records import Failure

# error_type -> meaning (docs/reliability.md lists them for users).
ERROR_TYPES = {
    "not_found": "the file (or a manifest entry) does not exist",
    "permission_denied": "the file exists but cannot be read",
    "empty_file": "0 bytes",
    "invalid_data": "not a media file FFmpeg understands, or its index is missing, or too many corrupt packets",
    "truncated": "the file ends inside its header/index",
    "no_video_stream": "audio only, or no streams",
    "not_a_video": "a still image with a video extension",
    "unsupported_codec": "no software decoder for the stream's codec in this FFmpeg build",
    "no_frames": "a video stream with no decodable frame",
    "decode_error": "FFmpeg failed in another way",
    "frame_too_large": "frames above --max-frame-pixels",
    "timeout": "decode pass longer than --video-timeout-s",
    "incomplete": "a stage did not get every piece it needs for the video",
    "inference_error": "a model raised on a batch holding the video",
    "io_error": "the worker's I/O failed for this video",
    "out_of_memory": "the worker ran out of memory on this video",
    "internal_error": "a reelbeam bug: the message has the exception; please report it",
}


class VideoError(Exception):
    """A problem with one input video: becomes a `failures` row with `error_type`."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


class IncompleteVideo(VideoError):
    """A per-video piece is missing or a model stage failed; `stage` names who is to blame."""

    def __init__(self, stage: str, error_type: str, message: str) -> None:
        super().__init__(error_type, message)
        self.stage = stage


def classify_error(exc: BaseException) -> str:
    """A stable error_type for a per-video exception (FFmpeg's own errors first: PyAV's
    av.error.PermissionError, for one, is FFmpeg's EPERM from the decoder, not a file mode)."""
    import av.error

    if isinstance(exc, VideoError):
        return exc.error_type
    if isinstance(exc, av.error.FFmpegError):
        if isinstance(exc, av.error.FileNotFoundError):
            return "not_found"
        if isinstance(exc, av.error.InvalidDataError):
            return "invalid_data"
        if isinstance(exc, av.error.EOFError):
            return "truncated"
        return "decode_error"
    if isinstance(exc, FileNotFoundError):
        return "not_found"
    if isinstance(exc, PermissionError):
        return "permission_denied"
    if isinstance(exc, MemoryError):
        return "out_of_memory"
    if isinstance(exc, OSError):
        return "io_error"
    return "internal_error"


def error_message(exc: BaseException) -> str:
    """The message of a failures row: the exception's text, with its class where that says more
    (internal errors, or an exception without text)."""
    text = str(exc)
    if text and classify_error(exc) != "internal_error":
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def failure_row(video_id: str, uri: str, stage: str, exc: BaseException) -> dict:
    """A `failures` row for `exc` met by `stage` on one video."""
    return Failure(video_id, uri or "", stage, classify_error(exc), error_message(exc)).to_row()


def _rows_of_ok_video(element):
    _video_id, groups = element
    if groups["ok"]:
        yield from groups["rows"]


class KeepRowsOfOkVideos(beam.PTransform):
    """(videos rows, rows) -> the rows whose video ended with a `videos` row.

    Rows are dicts with a `video_id`, objects with a `video_id` attribute, or (video_id, ...)."""

    def expand(self, pcolls):
        videos, rows = pcolls
        return (
            {
                "ok": videos | "OkVideoIds" >> beam.Map(lambda v: (v["video_id"], True)),
                "rows": rows | "KeyRowsByVideo" >> beam.Map(lambda r: (_video_id(r), r)),
            }
            | "JoinRowsWithVideos" >> beam.CoGroupByKey()
            | "RowsOfOkVideos" >> beam.FlatMap(_rows_of_ok_video)
        )


def _video_id(row) -> str:
    if isinstance(row, dict):
        return row["video_id"]
    return row.video_id if hasattr(row, "video_id") else row[0]  # a record, or (video_id, ...)


def _fill_uri(element):
    _video_id, groups = element
    uri = next(iter(groups["uris"]), "")
    for row in groups["failures"]:
        yield {**row, "uri": row["uri"] or uri}


class FillFailureUris(beam.PTransform):
    """(videos rows, failures rows) -> the failures rows, those with an empty `uri` given the uri
    of their video's `videos` row."""

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


def _failed_video(element):
    key, message = element
    return _key_video_id(key), message


def _key_video_id(key) -> str:
    return key.video_id if hasattr(key, "video_id") else key[0]


class OneFailurePerVideo(beam.PTransform):
    """Failed inferences (key, message) of a keyed handler (`portable.infer`; keys carry the
    video_id: a NamedTuple with a `video_id` field or a tuple starting with it) -> one failures row
    per video (empty uri: filled later from `videos`)."""

    def __init__(self, stage: str, error_type: str = "inference_error") -> None:
        super().__init__()
        self._stage = stage
        self._error_type = error_type

    def expand(self, failed):
        stage, error_type = self._stage, self._error_type
        return (
            failed
            | "FailedVideos" >> beam.Map(_failed_video)
            | "FirstMessage" >> beam.CombinePerKey(min)
            | "FailureRows" >> beam.Map(lambda kv: Failure(kv[0], "", stage, error_type, kv[1]).to_row())
        )
