"""DecodeVideo: one streaming PyAV pass per video, feeding pluggable per-frame consumers.

The decode pass is the one place where pixels exist. Every stage that needs frames (the frame
index, TransNetV2's 48x27 frames, the LGSS content detector, motion vectors, I-frame keyframes)
plugs in as a `FrameConsumer`; they share one decode and one set of cached pixel conversions
(`FrameView`), and nothing holds the whole video: consumers keep bounded state and emit as they go.

Outputs (tags of `DecodeVideo`'s result):
- `per_video`: (video_id, VideoPart) records grouped per video downstream: the stream metadata
  (kind 'meta', emitted only after the whole video decoded), frame-index chunks (kind 'frames'),
  and the parts of the pass stages' consumers;
- the consumers' other tags (e.g. `windows`: TransNetV2 inputs, `motion`, `keyframes`: table rows);
- `failures`: failures rows. A failed video emits no 'meta', so downstream assembly drops anything
  it had already emitted (see `reelbeam.stages.assembly`).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from fractions import Fraction
from typing import Any, ClassVar, Protocol

import apache_beam as beam
import av
import av.error
import numpy as np
from av.video.frame import PictureType
from av.video.reformatter import VideoReformatter

from reelbeam import __version__, progress
from reelbeam.schemas.records import VideoPart, VideoRef
from reelbeam.transforms.failures import VideoError, failure_row
from reelbeam.transforms.media import SWS_THREADS, open_container, parse_ratio
from reelbeam.transforms.sidedata import MV_CODECS

LOG = logging.getLogger(__name__)
PROGRESS_FRAMES = 250  # a video being decoded tells the progress display its frames this often,
PROGRESS_S = 0.5  # or after this many seconds, whichever comes first (a bar that moves on slow videos)

# Containers that hold a still image rather than a video (ffmpeg's image demuxers).
_IMAGE_CONTAINER_SUFFIX = "_pipe"
_IMAGE_CONTAINERS = frozenset({"image2", "png_pipe", "jpeg_pipe", "bmp_pipe", "webp_pipe", "tiff_pipe"})


# Picture type names by value ('NONE' is what the decoder reports when it does not know).
_PICT_TYPES = {int(t): t.name for t in PictureType}


def pict_type_name(frame: av.VideoFrame) -> str | None:
    return _PICT_TYPES.get(int(frame.pict_type)) if frame.pict_type is not None else None


@dataclasses.dataclass(frozen=True)
class DecodeConfig:
    """Knobs of the decode pass.

    timeout_s: wall-clock budget per video; past it the video becomes a `timeout` failure
      instead of holding a worker (default one hour of decode, generous on purpose).
    max_frame_pixels: frames larger than this (width x height) are refused as `frame_too_large`
      before decoding, so one 16K file cannot exhaust a worker's memory. Default 8K UHD.
    max_corrupt_packets: packets that fail to decode are skipped with a warning (as ffmpeg
      does); past this many the video fails as `invalid_data`.
    threads: decoder threads (0 = one per core).
    keyframes_only: decode only keyframes (the decoder skips the others: CMD's cheap context
      stream). Frame indices are then estimated from PTS and the nominal frame rate.
    """

    timeout_s: float = 3600.0
    max_frame_pixels: int = 7680 * 4320
    max_corrupt_packets: int = 100
    threads: int = 0
    keyframes_only: bool = False

    def __post_init__(self) -> None:
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}")
        if self.max_frame_pixels <= 0:
            raise ValueError(f"max_frame_pixels must be > 0, got {self.max_frame_pixels}")


@dataclasses.dataclass
class StreamInfo:
    """What a consumer knows about the stream before the first frame."""

    video_id: str
    width: int
    height: int
    time_base: Fraction
    nominal_fps: float
    codec: str
    motion_vectors_requested: bool = False
    sample_aspect_ratio: Fraction | None = None  # pixel aspect (None: square pixels)


class FrameView:
    """One decoded frame plus cached conversions shared by all consumers.

    `rgb(48, 27)` uses a persistent swscale context: building one per frame costs more than
    decoding a 480p frame.
    """

    __slots__ = ("_cache", "_reformatter", "frame", "index", "pts", "time")

    def __init__(self, reformatter: VideoReformatter) -> None:
        self._reformatter = reformatter
        self._cache: dict = {}
        self.frame = None
        self.index = -1
        self.pts: int | None = None
        self.time = 0.0

    def reset(self, frame: av.VideoFrame, index: int, pts: int | None, t: float) -> None:
        self.frame, self.index, self.pts, self.time = frame, index, pts, t
        self._cache.clear()

    def rgb(self, width: int, height: int, interpolation: str = "AREA") -> np.ndarray:
        key = ("rgb24", width, height, interpolation)
        out = self._cache.get(key)
        if out is None:
            out = self._reformatter.reformat(
                self.frame, width, height, "rgb24", interpolation=interpolation, threads=SWS_THREADS
            ).to_ndarray()
            self._cache[key] = out
        return out

    def bgr_full(self) -> np.ndarray:
        out = self._cache.get("bgr24")
        if out is None:
            out = self.frame.to_ndarray(format="bgr24", threads=SWS_THREADS)
            self._cache["bgr24"] = out
        return out


class FrameConsumer(Protocol):
    """A per-frame piece of work inside the decode pass.

    `start` is called once per video before the first frame, `consume` once per frame, `finish`
    once after the last. Each returns an iterable of (tag, value) outputs, which DecodeVideo
    forwards: ('per_video', VideoPart(...)) for a per-video part (its kind listed in `parts`), or
    (tag, value) for a stream (tag listed in `tags`). The stage that adds the consumer declares the
    same kinds and tags (checked when the pipeline is built). A consumer must keep bounded state
    (never all frames).
    """

    parts: ClassVar[tuple[str, ...]]
    tags: ClassVar[tuple[str, ...]]

    def start(self, info: StreamInfo) -> Iterable[tuple[str, Any]]: ...

    def consume(self, view: FrameView) -> Iterable[tuple[str, Any]]: ...

    def finish(self) -> Iterable[tuple[str, Any]]: ...


class ChunkedConsumer:
    """Base of the decode-pass consumers that measure something per frame and send it on as one
    per-video part (`part`) in chunks of `chunk` frames, so that memory stays bounded on any video
    length. A subclass sets `part`, measures a frame in `measure(view)` (its value, or None to skip
    the frame) and turns a chunk's values into columns in `columns(values)`; `begin(info)` prepares
    a video. Every chunk has a `frame_idx` column."""

    part: ClassVar[str]
    tags: ClassVar[tuple[str, ...]] = ()

    def __init__(self, chunk: int = 8192) -> None:
        self._chunk = chunk

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "part" in cls.__dict__:
            cls.parts = (cls.part,)

    def begin(self, info: StreamInfo) -> None:
        """Prepare for the frames of the video `info` describes."""

    def measure(self, view: FrameView) -> Any:
        raise NotImplementedError

    def columns(self, values: list) -> dict[str, Any]:
        raise NotImplementedError

    def start(self, info: StreamInfo):
        self._vid = info.video_id
        self._idx: list[int] = []
        self._values: list = []
        self.begin(info)
        return ()

    def consume(self, view: FrameView):
        value = self.measure(view)
        if value is None:
            return
        self._idx.append(view.index)
        self._values.append(value)
        if len(self._idx) >= self._chunk:
            yield self._emit()

    def _emit(self):
        chunk = {"frame_idx": np.asarray(self._idx, np.int32), **self.columns(self._values)}
        self._idx, self._values = [], []
        return "per_video", VideoPart(self._vid, self.part, chunk)

    def finish(self):
        if self._idx:
            yield self._emit()


class FrameIndexConsumer(ChunkedConsumer):
    """Per-frame index columns (pts, keyframe flag, picture type), in chunks of `chunk` frames."""

    part = "frames"

    def begin(self, info: StreamInfo) -> None:
        self._tb = info.time_base

    def measure(self, view: FrameView):
        f = view.frame
        duration = float(f.duration * self._tb) if f.duration else float("nan")
        return view.pts, view.time, bool(f.key_frame), pict_type_name(f), duration

    def columns(self, values: list) -> dict[str, Any]:
        pts, time, key, pict, duration = zip(*values)
        return {
            "pts": list(pts),
            "pts_time": np.asarray(time, np.float64),
            "is_keyframe": np.asarray(key, bool),
            "pict_type": list(pict),
            "duration": np.asarray(duration, np.float64),
        }


def _ratio_str(r: Fraction | None) -> str | None:
    if r is None or r == 0:
        return None
    return f"{r.numerator}:{r.denominator}"


def _bit_depth(pix_fmt: str | None) -> int | None:
    if not pix_fmt:
        return None
    try:
        return int(av.VideoFormat(pix_fmt).components[0].bits)
    except (ValueError, IndexError, av.error.FFmpegError):
        return None


def expected_frames(container, stream, fps: float) -> int | None:
    """The frames a stream's header promises, for the progress bar: its declared frame count, else
    its duration (the stream's, else the container's) times `fps`; None where neither is known."""
    if stream.frames:
        return int(stream.frames)
    seconds = (float(stream.duration * stream.time_base) if stream.duration and stream.time_base
               else (container.duration / av.time_base if container.duration else 0.0))
    return round(seconds * fps) if seconds > 0 and fps > 0 else None


def _flush(stream) -> list:
    """Frames still buffered in the decoder (after the demuxer stopped early)."""
    try:
        return stream.codec_context.decode(None)
    except av.error.FFmpegError:
        return []


def _video_stream(container, config: DecodeConfig, motion_vectors: bool):
    """The container's first video stream, checked (a still image, no video stream, no decoder,
    frames over the size limit: VideoError) and set up for the pass (motion vectors, keyframes
    only, threads); with its header's (width, height)."""
    fmt = container.format.name if container.format else None
    if fmt in _IMAGE_CONTAINERS or (fmt or "").endswith(_IMAGE_CONTAINER_SUFFIX):
        raise VideoError("not_a_video", f"the file is a still image ({fmt}), not a video")
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams})
        raise VideoError(
            "no_video_stream",
            f"no video stream (streams: {', '.join(kinds) if kinds else 'none'})",
        )
    stream = container.streams.video[0]
    cc = stream.codec_context
    if cc is None:
        codec_name = getattr(getattr(stream, "codec", None), "name", None) or "unknown"
        raise VideoError("unsupported_codec", f"no decoder for this video stream's codec ({codec_name})")
    width, height = int(cc.width or 0), int(cc.height or 0)
    _check_size(width, height, config)
    if motion_vectors:
        # Must be set before the codec opens (first decode); codecs without MVs ignore it.
        cc.options = {**dict(cc.options or {}), "flags2": "+export_mvs"}
    if config.keyframes_only:
        cc.skip_frame = "NONKEY"
    # With frame threading, FFmpeg's H.264 decoder exports motion vectors that differ from run
    # to run on B-frames (the pixels do not); slice threading keeps them deterministic. Other
    # codecs' vectors were found stable under frame threading.
    stream.thread_type = "SLICE" if motion_vectors and cc.name == "h264" else "AUTO"
    cc.thread_count = config.threads
    return stream, width, height


def _check_size(width: int, height: int, config: DecodeConfig) -> None:
    if width * height > config.max_frame_pixels:
        raise VideoError(
            "frame_too_large",
            f"{width}x{height} frames exceed --max-frame-pixels={config.max_frame_pixels}",
        )


@dataclasses.dataclass
class _Tally:
    """What one decode pass has seen so far: frame counts, times, and what went wrong on the way
    (for the `videos` row and its warnings)."""

    index: int = 0  # the next frame's index
    decoded: int = 0
    first_time: float | None = None
    last_time: float = 0.0
    last_duration: float = 0.0
    last_pts: int | None = None
    rotation: int | None = None
    pix_fmt: str | None = None
    corrupt: int = 0
    pts_missing: int = 0
    non_monotonic: int = 0
    truncated: list[str] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)

    def frame_time(self, pts: int | None, tb: Fraction, fps_guess: float) -> float:
        """The frame's presentation time in seconds (estimated from the rate where it has no PTS)."""
        if pts is None:
            self.pts_missing += 1
            return (self.last_time + (1.0 / fps_guess)) if self.index else 0.0
        if self.last_pts is not None and pts <= self.last_pts:
            self.non_monotonic += 1
        self.last_pts = pts
        return float(pts * tb)


def _frames(container, stream, config: DecodeConfig, tally: _Tally) -> Iterator[av.VideoFrame]:
    """The stream's frames; a file cut short keeps what decoded (said in `tally.truncated`) and
    damaged packets are skipped as ffmpeg does, up to `config.max_corrupt_packets`."""
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except (av.error.InvalidDataError, av.error.EOFError, OSError) as e:
            # A file cut short (or damaged past some point): keep what decoded, say so.
            if not tally.decoded:
                raise
            tally.truncated.append(f"stream ends early after {tally.decoded} frames: {e}")
            packet = None
        try:
            decoded_frames = packet.decode() if packet is not None else _flush(stream)
        except av.error.FFmpegError as e:  # a damaged packet: skip it, as ffmpeg does
            tally.corrupt += 1
            if tally.corrupt > config.max_corrupt_packets:
                raise VideoError(
                    "invalid_data", f"more than {config.max_corrupt_packets} corrupt packets; last: {e}"
                ) from e
            continue
        yield from decoded_frames
        if packet is None:
            return


def decode_video(
    ref: VideoRef,
    consumers: Sequence[FrameConsumer],
    config: DecodeConfig = DecodeConfig(),
    motion_vectors: bool = False,
) -> Iterator[tuple[str, Any]]:
    """Decode `ref` once, feeding every frame to `consumers`; yield their (tag, value) outputs.

    The last output is ('per_video', (video_id, ('meta', row))) with the `videos` row fields that
    the stream gives. Raises VideoError (or an av/OS error) for a video that cannot be processed;
    outputs yielded before the error belong to a failed video and are dropped at assembly.
    """
    t0 = time.monotonic()
    if ref.size_bytes == 0:
        raise VideoError("empty_file", "the file is empty (0 bytes)")
    container, handle = open_container(ref.uri)
    try:
        stream, width, height = _video_stream(container, config, motion_vectors)
        cc = stream.codec_context
        tb = stream.time_base or Fraction(1, 90000)
        nominal = stream.base_rate or stream.guessed_rate or stream.average_rate
        fps_guess = float(nominal) if nominal else 25.0
        view = FrameView(VideoReformatter())
        tally = _Tally()
        info = None
        reported = 0  # frames told to the progress display so far
        reported_at = time.monotonic()
        progress.video_started(ref.uri, None if config.keyframes_only else expected_frames(container, stream, fps_guess))

        for frame in _frames(container, stream, config, tally):
            if time.monotonic() - t0 > config.timeout_s:
                raise VideoError(
                    "timeout",
                    f"decoding took longer than --video-timeout-s={config.timeout_s:g} s "
                    f"({tally.index} frames decoded)",
                )
            pts = frame.pts
            t = tally.frame_time(pts, tb, fps_guess)
            if info is None:
                tally.first_time = t
                tally.rotation = round(frame.rotation or 0) % 360
                tally.pix_fmt = frame.format.name
                # Consumers start on the first frame: its size is the truth when a damaged
                # header says 0x0 or lies about the size.
                if (frame.width, frame.height) != (width, height):
                    tally.warnings.append(f"header says {width}x{height}, frames are {frame.width}x{frame.height}")
                    width, height = frame.width, frame.height
                    _check_size(width, height, config)
                info = StreamInfo(
                    video_id=ref.video_id,
                    width=width,
                    height=height,
                    time_base=tb,
                    nominal_fps=float(nominal) if nominal else 0.0,
                    codec=cc.name,
                    motion_vectors_requested=motion_vectors,
                    sample_aspect_ratio=parse_ratio(cc.sample_aspect_ratio),
                )
                for c in consumers:
                    yield from c.start(info)
            if config.keyframes_only:
                tally.index = round((t - tally.first_time) * fps_guess)
            view.reset(frame, tally.index, pts, t)
            for c in consumers:
                yield from c.consume(view)
            tally.last_time = t
            tally.last_duration = float(frame.duration * tb) if frame.duration else 0.0
            tally.index += 1
            tally.decoded += 1
            if tally.decoded - reported >= PROGRESS_FRAMES or time.monotonic() - reported_at >= PROGRESS_S:
                progress.frames_decoded(ref.uri, tally.decoded - reported)
                reported, reported_at = tally.decoded, time.monotonic()

        if tally.decoded == 0:
            raise VideoError("no_frames", "the video stream holds no decodable frame")
        for c in consumers:
            yield from c.finish()
        meta = _videos_row(ref, container, stream, (width, height), info, tally, config, motion_vectors, fps_guess)
        meta["decode_seconds"] = time.monotonic() - t0
        yield "per_video", VideoPart(ref.video_id, "meta", meta)
    finally:
        container.close()
        if handle is not None:
            handle.close()


def _videos_row(ref: VideoRef, container, stream, size: tuple[int, int], info: StreamInfo, tally: _Tally,
                config: DecodeConfig, motion_vectors: bool, fps_guess: float) -> dict[str, Any]:
    """The `videos` row fields the finished pass gives: the stream's header, what was decoded
    (frames, duration, rate), and warnings for everything the pass had to work around."""
    cc = stream.codec_context
    tb = stream.time_base or Fraction(1, 90000)
    index = tally.index
    last_duration = tally.last_duration or 1.0 / fps_guess
    duration = (tally.last_time - tally.first_time) + last_duration
    avg_fps = (index / duration) if duration > 0 else None
    declared = int(stream.frames or 0)
    if config.keyframes_only:
        # The decoded keyframes span first-to-last keyframe (one keyframe: one frame), not the
        # video: take the duration from the stream header (else the container's), and the
        # rate from libavformat's average over the whole stream (else declared frames /
        # duration); the keyframe span stays where no header says more.
        header = (
            float(stream.duration * tb)
            if stream.duration
            else (container.duration / av.time_base if container.duration else 0.0)
        )
        duration = max(duration, header)
        rate = stream.average_rate
        avg_fps = float(rate) if rate else (declared / duration if declared and duration > 0 else None)
    warnings = [*tally.warnings, *tally.truncated]
    if tally.corrupt:
        warnings.append(f"{tally.corrupt} corrupt packets skipped")
    if tally.pts_missing:
        warnings.append(f"{tally.pts_missing} frames without PTS; times estimated from {fps_guess:g} fps")
    if tally.non_monotonic:
        warnings.append(f"{tally.non_monotonic} frames with non-increasing PTS")
    if config.keyframes_only:
        warnings.append(f"keyframes only: {tally.decoded} keyframes decoded; frame indices estimated from PTS")
        index = tally.decoded
    elif declared and declared != index:
        warnings.append(f"container declares {declared} frames, {index} decoded")
    pix_fmt = tally.pix_fmt or cc.pix_fmt
    width, height = size
    return {
        "video_id": ref.video_id,
        "uri": ref.uri,
        "size_bytes": ref.size_bytes,
        "container": container.format.name if container.format else None,
        "codec": cc.name,
        "profile": cc.profile,
        "pix_fmt": pix_fmt,
        "bit_depth": _bit_depth(pix_fmt),
        "width": width,
        "height": height,
        "rotation": tally.rotation,
        "sample_aspect_ratio": _ratio_str(cc.sample_aspect_ratio),
        "display_aspect_ratio": _ratio_str(cc.display_aspect_ratio),
        "avg_fps": avg_fps,
        "nominal_fps": info.nominal_fps or None,
        "frame_count": index,
        "declared_frame_count": declared,
        "duration_s": duration,
        "start_time_s": tally.first_time,
        "bitrate": int(container.bit_rate or cc.bit_rate or 0) or None,
        "has_audio": bool(container.streams.audio),
        "motion_vectors": (
            ("available" if cc.name in MV_CODECS else "unavailable")
            if motion_vectors
            else "off"
        ),
        "keyframes_only": config.keyframes_only,
        "status": "ok",
        "warnings": warnings,
        "decode_seconds": None,
        "reelbeam_version": __version__,
    }


class _DecodeVideoFn(beam.DoFn):
    """VideoRef -> consumer outputs; any error of one video becomes its `failures` row.

    owners: the stage of each consumer factory (None: the decode pass's own); a pass stage's
    consumers count as its time inside the pass (`reelbeam.transforms.timing`)."""

    def __init__(self, consumer_factories: Sequence, config: DecodeConfig, motion_vectors: bool,
                 owners: Sequence[str | None] = ()) -> None:
        from reelbeam.transforms.timing import StageClock

        self._factories = list(consumer_factories)
        self._owners = list(owners) or [None] * len(self._factories)
        if len(self._owners) != len(self._factories):
            raise ValueError(f"{len(self._owners)} owners for {len(self._factories)} consumer factories")
        self._config = config
        self._motion_vectors = motion_vectors
        self._clock = StageClock()
        self._decoded = beam.metrics.Metrics.counter("reelbeam", "videos_decoded")
        self._frames = beam.metrics.Metrics.counter("reelbeam", "frames_decoded")
        self._failed = beam.metrics.Metrics.counter("reelbeam", "decode_failures")

    def _consumers(self) -> list:
        from reelbeam.transforms.timing import TimedConsumer

        return [f() if owner is None else TimedConsumer(f(), owner, self._clock)
                for f, owner in zip(self._factories, self._owners)]

    def process(self, ref: VideoRef):
        from reelbeam.store.tables import fault_point

        fault_point("decode")
        consumers = self._consumers()
        try:
            for tag, value in decode_video(ref, consumers, self._config, self._motion_vectors):
                if tag == "per_video":
                    if value.kind == "meta":
                        self._frames.inc(value.payload["frame_count"])
                        self._decoded.inc()
                        progress.video_done(ref.uri, value.payload["frame_count"], value.payload.get("duration_s") or 0.0)
                    value = (value.video_id, value)
                yield beam.pvalue.TaggedOutput(tag, value)
        except Exception as e:  # noqa: BLE001 - every per-video error becomes a failures row
            self._failed.inc()
            row = failure_row(ref.video_id, ref.uri, "decode", e)
            LOG.warning("decode failed for %s: %s: %s", ref.uri, row["error_type"], row["message"])
            progress.video_failed(ref.uri, "decode", row["error_type"])
            yield beam.pvalue.TaggedOutput("failures", row)
        finally:
            self._clock.flush()


class DecodeVideo(beam.PTransform):
    """PCollection[VideoRef] -> tagged outputs (see the module docstring).

    consumer_factories: zero-argument callables building a fresh FrameConsumer per video
      (picklable: classes or functools.partial); the frame index consumer is always first.
    tags: output tags besides `per_video`, `failures` and those the consumers declare in `tags`.
    owners: the stage each factory belongs to (its time inside the pass counts toward it); empty:
      all the decode pass's own.
    """

    def __init__(
        self,
        consumer_factories: Sequence = (),
        config: DecodeConfig = DecodeConfig(),
        tags: Sequence[str] = (),
        motion_vectors: bool = False,
        owners: Sequence[str | None] = (),
    ) -> None:
        super().__init__()
        self._factories = [FrameIndexConsumer, *consumer_factories]
        self._owners = [None, *owners] if owners else []
        self._config = config
        declared = [t for f in self._factories for t in getattr(getattr(f, "func", f), "tags", ())]
        self.tags = sorted(set(tags) | set(declared))
        self._motion_vectors = motion_vectors

    def expand(self, videos):
        from reelbeam.transforms.portable import split_outputs

        fn = _DecodeVideoFn(self._factories, self._config, self._motion_vectors, self._owners)
        return split_outputs(videos, fn, ["failures", *self.tags], "per_video", "DecodeFrames")
