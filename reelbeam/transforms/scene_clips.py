"""SaveSceneClips (`--save-scene-clips`): each scene as its own video file, and a `scene_clips` row
saying exactly what the file holds.

Two modes (`mode`):
- 'exact' (re-encode): the scene's frames, and only those, are decoded and re-encoded (H.264,
  CRF 18, frame timing and display rotation kept) into MP4. Slower; every clip holds exactly its
  scene.
- 'copy' (stream copy): packets are copied, not decoded; fast and lossless. A copied clip must
  start on a codec keyframe, so its start is snapped back to the keyframe at or before the
  scene's first frame: the clip then begins with frames of the previous scene, as many as the
  GOP allows (on a file with a keyframe every 8 s a 41-frame scene becomes a 240-frame clip). It
  ends with the scene's last frame in decode order; frames the last ones reference (B-frames'
  future references) come along, so the clip may also hold a few frames after the scene. The row
  records the clip's actual first and last frame and whether either end was snapped.

Containers: a re-encoded clip is MP4. A stream copy goes into the first of MP4, Matroska,
QuickTime and AVI that can carry the video and audio codecs as they are (FFmpeg's muxers are
asked, by writing a header in memory): H.264 into MP4, FFV1 into Matroska, Sorenson (SVQ1/SVQ3),
QuickTime RLE and ADPCM IMA QT into QuickTime, MS ADPCM into AVI. Where no container carries the
audio with the video, the audio is re-encoded to AAC beside the copied video; where none carries
the video, the video's clips are re-encoded as in 'exact' mode (the rows say `mode = 'reencode'`).

Audio (the first audio stream) comes along in both modes: packets whose start falls inside the
clip's time span, so it is exact to one audio packet (about 20 ms for AAC). It is copied when the
clip's container carries its codec, else decoded and re-encoded to AAC.

Files: OUTPUT/clips/<video_id>/scene_<idx:04d>.<mp4|mkv|mov|avi>; a failure to write one video's
clips is a `failures` row with stage `scene_clips`, its clip folder is removed, and its other
tables stand. A clip leaves out the frames of a gradual transition into or out of its scene (the
`scenes` rows' transition columns, `keyframes.clean_span`; cuts change nothing), as dataset curation
tools cut clips, unless --keep-transition-frames. ModelScope's `save_split_scene` re-encodes with ffmpeg and drops each scene's last
frame; 'exact' keeps it.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import os
import posixpath
import shutil
import tempfile
from fractions import Fraction

import apache_beam as beam
import av
import fsspec
from av.video.frame import PictureType
from fsspec.implementations.local import LocalFileSystem

from reelbeam.schemas.records import VideoRef
from reelbeam.transforms.failures import IncompleteVideo, failure_row
from reelbeam.transforms.keyframes import clean_spans, frames_by_video
from reelbeam.transforms.media import SWS_THREADS, opened_video
from reelbeam.transforms.video_files import (
    add_audio_stream,
    add_x264_stream,
    audio_packets,
    mux_audio,
    remove_video_folder,
)

CLIP_MODES = ("exact", "copy")
# Where a stream copy may go, in order of preference: MP4 plays everywhere; Matroska carries most
# other codecs; QuickTime carries Apple's (Sorenson, QuickTime RLE, ADPCM IMA QT); AVI the
# Video-for-Windows / WAV ones (MS ADPCM, IMA WAV ADPCM) the others refuse.
COPY_CONTAINERS = (("mp4", "mp4"), ("matroska", "mkv"), ("mov", "mov"), ("avi", "avi"))


@dataclasses.dataclass(frozen=True)
class ClipPlan:
    """How one video's clips are written: the muxer (`format`) and file extension, the video
    'copy' or 'encode' (H.264), the audio 'copy', 'encode' (AAC) or None (no audio)."""

    format: str
    ext: str
    video: str
    audio: str | None


def can_carry(fmt: str, streams: list) -> bool:
    """Whether FFmpeg's `fmt` muxer takes these input streams as they are (stream copy): the
    header is written into memory, which is where muxers check codecs and tags."""
    try:
        with av.open(io.BytesIO(), "w", format=fmt) as out:
            for stream in streams:
                out.add_stream_from_template(stream, opaque=True)
            out.start_encoding()
    except (av.FFmpegError, ValueError, NotImplementedError):
        return False
    return True


def plan_clips(vstream, astream, mode: str) -> ClipPlan:
    """Choose container and per-stream copy/encode for a video's clips (see the module doc).
    `astream` is None for a video without audio (or whose audio cannot be decoded)."""
    if mode not in CLIP_MODES:
        raise ValueError(f"clip mode must be one of {CLIP_MODES}, got {mode!r}")
    if mode == "copy":
        if astream is not None:
            for fmt, ext in COPY_CONTAINERS:
                if can_carry(fmt, [vstream, astream]):
                    return ClipPlan(fmt, ext, "copy", "copy")
        for fmt, ext in COPY_CONTAINERS:
            if can_carry(fmt, [vstream]):
                return ClipPlan(fmt, ext, "copy", None if astream is None else "encode")
    audio = None
    if astream is not None:
        audio = "copy" if can_carry("mp4", [astream]) else "encode"
    return ClipPlan("mp4", "mp4", "encode", audio)


def clip_path(output: str, video_id: str, scene_idx: int, ext: str) -> str:
    """Where a scene's clip goes: OUTPUT/clips/<video_id>/scene_<idx:04d>.<ext>."""
    return posixpath.join(output, "clips", video_id, f"scene_{scene_idx:04d}.{ext}")


class _FrameIndex:
    """pts -> frame index, from the `frames` table of the first pass."""

    def __init__(self, pts: list) -> None:
        self.pts = pts
        self.index_of = {p: i for i, p in enumerate(pts) if p is not None}


def _keyframe_at_or_before(container, vstream, target: int) -> int:
    """pts of the codec keyframe at or before pts `target`, from the packets' keyframe flags (the
    container's index): the decoder does not flag keyframes for every codec (SVQ1's flags none,
    so the `frames` table's is_keyframe cannot be trusted for this)."""
    container.seek(target, stream=vstream, backward=True, any_frame=False)
    for packet in container.demux(vstream):
        if packet.size and packet.pts is not None and packet.is_keyframe:
            if packet.pts <= target:
                return packet.pts
            break
    # The demuxer landed after the target (a file without an index): scan from the start.
    container.seek(0, backward=True, any_frame=False)
    found = None
    for packet in container.demux(vstream):
        if not packet.size or packet.pts is None:
            continue
        if packet.dts is not None and packet.dts > target:
            break
        if packet.is_keyframe and packet.pts <= target:
            found = packet.pts
    if found is None:
        raise ValueError(f"no keyframe at or before pts {target}")
    return found


def _time(value: int | None, tb: Fraction) -> float | None:
    return None if value is None else float(value * tb)


def _copy_clip(
    container, vstream, astream, index: _FrameIndex, start: int, end: int, path: str, plan: ClipPlan
) -> dict:
    vtb = vstream.time_base
    start_pts, end_pts = _keyframe_at_or_before(container, vstream, index.pts[start]), index.pts[end]
    container.seek(int(start_pts), stream=vstream, backward=True, any_frame=False)
    # Packets from the keyframe on (leading pictures of an open GOP, which refer to the previous
    # GOP, are skipped), in decode order.
    stream = (p for p in container.demux(vstream) if p.size and p.pts is not None and p.pts >= start_pts)
    head, rest = [], []
    for packet in stream:
        if packet.dts is not None and packet.dts > end_pts:
            rest.append(packet)
            break  # nothing later in decode order is shown at or before the scene's last frame
        head.append(packet)
    last = max((i for i, p in enumerate(head) if p.pts <= end_pts), default=-1)
    packets, rest = head[: last + 1], head[last + 1 :] + rest
    if not packets:
        raise ValueError(f"no packets found for frames {start}..{end}")
    # The scene's last frames may refer to a later frame (a B-frame's future reference), which then
    # comes along; take every frame shown up to it too, so the clip is a contiguous run of frames.
    top = max(p.pts for p in packets)
    for packet in itertools.chain(rest, stream):
        if packet.dts is not None and packet.dts > top:
            break
        if packet.pts <= top:
            packets.append(packet)
    shown = sorted(index.index_of[p.pts] for p in packets if p.pts in index.index_of)
    t0 = float(start_pts * vtb)
    nxt = index.pts[end + 1] if end + 1 < len(index.pts) else None
    frame_dur = (nxt - end_pts) if nxt is not None else (packets[-1].duration or 0)
    t1 = float((end_pts + frame_dur) * vtb)
    audio = audio_packets(container, astream, t0, t1, int(start_pts), vstream)
    offset = min(p.dts if p.dts is not None else p.pts for p in packets)
    with av.open(path, "w", format=plan.format) as out:
        # opaque: the stream is described from the decoder's parameters; copying needs no encoder
        # (SVQ3 has none).
        ov = out.add_stream_from_template(vstream, opaque=True)
        oa = add_audio_stream(out, astream, plan.audio) if audio else None
        for p in packets:
            p.pts = None if p.pts is None else p.pts - offset
            p.dts = None if p.dts is None else p.dts - offset
            p.stream = ov
            out.mux(p)
        if oa is not None:
            mux_audio(out, oa, astream, audio, plan.audio, float(offset * vtb))
    return {
        "actual_start_frame": shown[0] if shown else index.index_of.get(start_pts, start),
        "actual_end_frame": shown[-1] if shown else end,
        "num_frames": len(shown),
        "has_audio": bool(audio),
    }


def _exact_clip(
    container, vstream, astream, index: _FrameIndex, start: int, end: int, path: str, plan: ClipPlan
) -> dict:
    vtb = vstream.time_base
    start_pts, end_pts = index.pts[start], index.pts[end]
    key_pts = _keyframe_at_or_before(container, vstream, start_pts)
    rate = vstream.average_rate or vstream.guessed_rate or Fraction(25)
    t0 = float(start_pts * vtb)
    nxt = index.pts[end + 1] if end + 1 < len(index.pts) else None
    t1 = float(nxt * vtb) if nxt is not None else float(end_pts * vtb) + 1.0 / float(rate)
    # Every stream must exist before the first packet is written: collect the audio first.
    audio = audio_packets(container, astream, t0, t1, int(key_pts), vstream)
    # The decoder may still hold a frame of the previous clip (delayed output, frame threads);
    # neither PyAV's seek nor a flush drops it for every codec (SVQ3 keeps its delayed picture),
    # and it would come out first, out of order: drain it, then reset the decoder.
    for _stale in vstream.codec_context.decode(None):
        pass
    vstream.codec_context.flush_buffers()
    container.seek(int(key_pts), stream=vstream, backward=True, any_frame=False)
    written = 0
    with av.open(path, "w", format=plan.format) as out:
        ov, w, h = add_x264_stream(out, vstream, rate, vtb)
        oa = add_audio_stream(out, astream, plan.audio) if audio else None
        for frame in container.decode(vstream):
            if frame.pts is None or frame.pts < start_pts:
                continue
            if frame.pts > end_pts:
                break
            if not written and frame.rotation:
                # The display matrix (phone videos) is stream side data: set before the header.
                ov.set_display_rotation(frame.rotation)
            new = frame.reformat(width=w, height=h, format="yuv420p", threads=SWS_THREADS)
            new.pts = frame.pts - start_pts
            new.time_base = vtb
            # The source's picture types would be forced on x264 (a P where it needs its first
            # I-frame, B-frames it did not plan): it chooses its own.
            new.pict_type = PictureType.NONE
            for packet in ov.encode(new):
                out.mux(packet)
            written += 1
        for packet in ov.encode(None):
            out.mux(packet)
        if oa is not None:
            mux_audio(out, oa, astream, audio, plan.audio, t0)
    return {
        "actual_start_frame": start,
        "actual_end_frame": end,
        "num_frames": written,
        "has_audio": bool(audio),
    }


def write_scene_clips(ref: VideoRef, scenes: list[dict], pts: list, output: str, mode: str = "exact",
                      keep_transition_frames: bool = False):
    """Write one video's scene clips (all its `scenes` rows); yield `scene_clips` rows (raises on an
    unreadable source). Each clip spans its scene without the frames of gradual transitions into and
    out of it unless `keep_transition_frames` (module docstring).

    `pts`: every frame's PTS in presentation order (the `frames` table's column), to map frames
    to times. `mode` is 'exact' (re-encode) or 'copy' (stream copy); see the module doc, and
    `plan_clips` for the container and what is re-encoded."""
    index = _FrameIndex(pts)
    fs, _ = fsspec.core.url_to_fs(output)
    local = isinstance(fs, LocalFileSystem)
    with opened_video(ref.uri) as container, tempfile.TemporaryDirectory(prefix="reelbeam-clips-") as tmpdir:
        vstream = container.streams.video[0]
        astream = container.streams.audio[0] if container.streams.audio else None
        if astream is not None and astream.codec_context is None:
            astream = None  # no decoder: neither copied (its codec is unknown) nor re-encoded
        plan = plan_clips(vstream, astream, mode)
        write = _copy_clip if plan.video == "copy" else _exact_clip
        ordered = sorted(scenes, key=lambda s: s["scene_idx"])
        for scene, (start, end) in zip(ordered, clean_spans(ordered, keep_transition_frames)):
            dest = clip_path(output, ref.video_id, scene["scene_idx"], plan.ext)
            tmp = os.path.join(tmpdir, posixpath.basename(dest))
            info = write(container, vstream, astream, index, start, end, tmp, plan)
            size = os.path.getsize(tmp)
            _, dest_path = fsspec.core.url_to_fs(dest)
            fs.makedirs(posixpath.dirname(dest_path), exist_ok=True)
            if local:
                shutil.move(tmp, dest_path)
            else:
                fs.put_file(tmp, dest_path)
                os.remove(tmp)
            vtb = vstream.time_base
            yield {
                "video_id": ref.video_id,
                "scene_idx": scene["scene_idx"],
                "scene_id": scene["scene_id"],
                "uri": dest,
                "mode": "stream_copy" if plan.video == "copy" else "reencode",
                "start_frame": start,
                "end_frame": end,
                "actual_start_frame": info["actual_start_frame"],
                "actual_end_frame": info["actual_end_frame"],
                "actual_start_time": _time(pts[info["actual_start_frame"]], vtb),
                "actual_end_time": _time(pts[info["actual_end_frame"]], vtb),
                "start_snapped": info["actual_start_frame"] != start,
                "end_snapped": info["actual_end_frame"] != end,
                "num_frames": info["num_frames"],
                "has_audio": info["has_audio"],
                "size_bytes": size,
            }


class _SaveClipsFn(beam.DoFn):
    def __init__(self, output: str, mode: str, keep_transition_frames: bool = False) -> None:
        self._output = output
        self._mode = mode
        self._keep = keep_transition_frames
        self._count = beam.metrics.Metrics.counter("reelbeam", "scene_clips")

    def process(self, element):
        video_id, groups = element
        videos, frames, scenes = list(groups["videos"]), list(groups["frames"]), list(groups["scenes"])
        if not videos or not scenes:
            return
        yield beam.pvalue.TaggedOutput("processed", video_id)
        meta = videos[0]
        ref = VideoRef(video_id, meta["uri"], meta.get("size_bytes"))
        try:
            if not frames:
                raise IncompleteVideo("scene_clips", "incomplete", "no `frames` rows for the video's scenes")
            table = frames[0]
            rows = list(
                write_scene_clips(ref, scenes, table.column("pts").to_pylist(), self._output, self._mode, self._keep)
            )
        except Exception as e:  # noqa: BLE001 - one video's clips failing must not stop the run
            remove_video_folder(self._output, "clips", video_id)  # no clip files without their rows
            yield beam.pvalue.TaggedOutput("failures", failure_row(ref.video_id, ref.uri, "scene_clips", e))
            return
        self._count.inc(len(rows))
        yield from rows


class _SplitClips(beam.PTransform):
    def __init__(self, fn) -> None:
        super().__init__()
        self._fn = fn

    def expand(self, grouped):
        from reelbeam.transforms.portable import split_outputs

        return split_outputs(grouped, self._fn, ["failures", "processed"], "clips", "SaveClips")


class SaveSceneClips(beam.PTransform):
    """(videos rows, frames Tables, scenes rows) -> scene_clips rows; tags 'failures' and
    'processed' (video_ids).

    `mode`: 'exact' (re-encode, the default) or 'copy' (stream copy); `keep_transition_frames`:
    clips keep the frames of gradual transitions at their scene's ends.
    """

    def __init__(self, output: str, mode: str = "exact", keep_transition_frames: bool = False) -> None:
        super().__init__()
        self._keep = keep_transition_frames
        if mode not in CLIP_MODES:
            raise ValueError(f"clip mode must be one of {CLIP_MODES}, got {mode!r}")
        self._output = output.rstrip("/")
        self._mode = mode

    def expand(self, inputs):
        videos, frames, scenes = inputs
        keyed = {
            "videos": videos | "KeyVideos" >> beam.Map(lambda r: (r["video_id"], r)),
            "frames": frames
            | "KeyFrames" >> beam.Filter(lambda t: t.num_rows > 0)
            | "KeyFrameTables" >> beam.Map(frames_by_video),
            "scenes": scenes | "KeyScenes" >> beam.Map(lambda r: (r["video_id"], r)),
        }
        return (
            keyed
            | "GroupForClips" >> beam.CoGroupByKey()
            | "WriteClips" >> _SplitClips(_SaveClipsFn(self._output, self._mode, self._keep))
        )
