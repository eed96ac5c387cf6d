"""SaveSceneClips (`--save-scene-clips`): each scene as its own video file, and a `scene_clips` row
saying exactly what the file holds.

Two modes:
- stream copy (default): packets are copied, not decoded; fast and lossless. A copied clip must
  start on a codec keyframe, so its start is snapped back to the keyframe at or before the
  scene's first frame (the clip then begins with frames of the previous scene). It ends with the
  scene's last frame in decode order; frames the last ones reference (B-frames' future
  references) come along, so the clip may also hold a few frames after the scene. The row records
  the clip's actual first and last frame and whether either end was snapped.
- `--exact-cuts`: the scene's frames, and only those, are decoded and re-encoded (H.264, CRF 18,
  frame timing kept). Slower; no snapping.

Audio (the first audio stream) is copied in both modes: packets whose start falls inside the
clip's time span, so it is exact to one audio packet (about 20 ms for AAC).

Files: OUTPUT/clips/<video_id>/scene_<idx:04d>.<mp4|mkv> (MP4 for codecs it carries, Matroska
otherwise); a failure to write one video's clips is a `failures` row with stage `scene_clips`, its
clip folder is removed, and its other tables stand. ModelScope's `save_split_scene` re-encodes with ffmpeg and drops each
scene's last frame; neither is copied here.
"""

from __future__ import annotations

import bisect
import itertools
import os
import posixpath
import shutil
import tempfile
from fractions import Fraction
from typing import Optional

import apache_beam as beam
import av
import fsspec
from fsspec.implementations.local import LocalFileSystem

from reelbeam.schemas.records import VideoRef
from reelbeam.transforms.failures import failure_row
from reelbeam.transforms.media import SWS_THREADS, opened_video

MP4_CODECS = frozenset({"h264", "hevc", "mpeg4", "av1", "vp9", "mpeg2video", "mjpeg"})
MP4_AUDIO = frozenset({"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"})
EXACT_CRF = 18


def clip_path(output: str, video_id: str, scene_idx: int, codec: Optional[str], exact: bool, audio_codec: Optional[str] = None) -> str:
    """Where a scene's clip goes: MP4 when it can carry the copied streams, else Matroska."""
    mp4 = exact or (codec in MP4_CODECS and (audio_codec is None or audio_codec in MP4_AUDIO))
    ext = "mp4" if mp4 else "mkv"
    return posixpath.join(output, "clips", video_id, f"scene_{scene_idx:04d}.{ext}")


class _FrameIndex:
    """pts -> frame index and keyframe positions, from the `frames` table of the first pass."""

    def __init__(self, pts: list, is_keyframe: list) -> None:
        self.pts = pts
        self.keyframes = [i for i, k in enumerate(is_keyframe) if k] or [0]
        self.index_of = {p: i for i, p in enumerate(pts) if p is not None}

    def keyframe_at_or_before(self, frame: int) -> int:
        return self.keyframes[max(bisect.bisect_right(self.keyframes, frame) - 1, 0)]


def _time(value: Optional[int], tb: Fraction) -> Optional[float]:
    return None if value is None else float(value * tb)


def _audio_packets(container, astream, t0: float, t1: float, seek_pts: int, vstream):
    """Audio packets whose start time is in [t0, t1)."""
    out = []
    if astream is None:
        return out
    container.seek(seek_pts, stream=vstream, backward=True, any_frame=False)
    for packet in container.demux(astream):
        if packet.pts is None or packet.size == 0:
            continue
        t = float(packet.pts * astream.time_base)
        if t >= t1:
            break
        if t >= t0 - 1e-9:
            out.append(packet)
    return out


def _copy_clip(container, vstream, astream, index: _FrameIndex, start: int, end: int, path: str, fmt: str) -> dict:
    vtb = vstream.time_base
    key = index.keyframe_at_or_before(start)
    start_pts, end_pts = index.pts[key], index.pts[end]
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
    frame_dur = (index.pts[end + 1] - end_pts) if end + 1 < len(index.pts) and index.pts[end + 1] is not None else (packets[-1].duration or 0)
    t1 = float((end_pts + frame_dur) * vtb)
    audio = _audio_packets(container, astream, t0, t1, int(start_pts), vstream)
    offset = min(p.dts if p.dts is not None else p.pts for p in packets)
    with av.open(path, "w", format=fmt) as out:
        ov = out.add_stream_from_template(vstream)
        oa = out.add_stream_from_template(astream) if audio else None
        for p in packets:
            p.pts = None if p.pts is None else p.pts - offset
            p.dts = None if p.dts is None else p.dts - offset
            p.stream = ov
            out.mux(p)
        if oa is not None:
            a_offset = int(round(float(offset * vtb) / astream.time_base))
            for p in audio:
                p.pts = p.pts - a_offset
                p.dts = None if p.dts is None else p.dts - a_offset
                p.stream = oa
                out.mux(p)
    return {
        "actual_start_frame": shown[0] if shown else key,
        "actual_end_frame": shown[-1] if shown else end,
        "num_frames": len(shown),
        "has_audio": bool(audio),
    }


def _exact_clip(container, vstream, astream, index: _FrameIndex, start: int, end: int, path: str) -> dict:
    vtb = vstream.time_base
    key = index.keyframe_at_or_before(start)
    start_pts, end_pts = index.pts[start], index.pts[end]
    rate = vstream.average_rate or vstream.guessed_rate or Fraction(25)
    t0 = float(start_pts * vtb)
    nxt = index.pts[end + 1] if end + 1 < len(index.pts) else None
    t1 = float(nxt * vtb) if nxt is not None else float(end_pts * vtb) + 1.0 / float(rate)
    # Every stream must exist before the first packet is written: collect the audio first.
    audio = _audio_packets(container, astream, t0, t1, int(index.pts[key]), vstream)
    container.seek(int(index.pts[key]), stream=vstream, backward=True, any_frame=False)
    written = 0
    with av.open(path, "w", format="mp4") as out:
        w, h = vstream.codec_context.width // 2 * 2, vstream.codec_context.height // 2 * 2
        ov = out.add_stream("libx264", rate=rate)
        ov.width, ov.height, ov.pix_fmt = w, h, "yuv420p"
        ov.time_base = vtb
        ov.codec_context.time_base = vtb
        ov.options = {"crf": str(EXACT_CRF), "preset": "veryfast"}
        oa = out.add_stream_from_template(astream) if audio else None
        a_offset = int(round(t0 / astream.time_base)) if audio else 0
        for p in audio:
            p.pts = p.pts - a_offset
            p.dts = None if p.dts is None else p.dts - a_offset
            p.stream = oa
        pending = list(audio)
        for frame in container.decode(vstream):
            if frame.pts is None or frame.pts < start_pts:
                continue
            if frame.pts > end_pts:
                break
            new = frame.reformat(width=w, height=h, format="yuv420p", threads=SWS_THREADS)
            new.pts = frame.pts - start_pts
            new.time_base = vtb
            for packet in ov.encode(new):
                out.mux(packet)
            written += 1
        for packet in ov.encode(None):
            out.mux(packet)
        for p in pending:
            out.mux(p)
    return {"actual_start_frame": start, "actual_end_frame": end, "num_frames": written, "has_audio": bool(audio)}


def write_scene_clips(ref: VideoRef, codec: Optional[str], scenes: list[dict], pts: list, is_keyframe: list, output: str, exact: bool):
    """Write one video's scene clips; yield `scene_clips` rows (raises on an unreadable source)."""
    index = _FrameIndex(pts, is_keyframe)
    fs, _ = fsspec.core.url_to_fs(output)
    local = isinstance(fs, LocalFileSystem)
    with opened_video(ref.uri) as container, tempfile.TemporaryDirectory(prefix="reelbeam-clips-") as tmpdir:
        vstream = container.streams.video[0]
        astream = container.streams.audio[0] if container.streams.audio else None
        audio_codec = astream.codec_context.name if astream is not None and astream.codec_context is not None else None
        if astream is not None and (audio_codec is None or (exact and audio_codec not in MP4_AUDIO)):
            astream = None  # MP4 (re-encoded clips) cannot carry this audio as it is
        for scene in sorted(scenes, key=lambda s: s["scene_idx"]):
            start, end = int(scene["start_frame"]), int(scene["end_frame"])
            dest = clip_path(output, ref.video_id, scene["scene_idx"], codec, exact, audio_codec if astream is not None else None)
            fmt = "mp4" if dest.endswith(".mp4") else "matroska"
            tmp = os.path.join(tmpdir, posixpath.basename(dest))
            if exact:
                info = _exact_clip(container, vstream, astream, index, start, end, tmp)
            else:
                info = _copy_clip(container, vstream, astream, index, start, end, tmp, fmt)
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
                "mode": "reencode" if exact else "stream_copy",
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
    def __init__(self, output: str, exact: bool) -> None:
        self._output = output
        self._exact = exact
        self._count = beam.metrics.Metrics.counter("reelbeam", "scene_clips")

    def process(self, element):
        video_id, groups = element
        videos, frames, scenes = list(groups["videos"]), list(groups["frames"]), list(groups["scenes"])
        if not videos or not scenes:
            return
        yield beam.pvalue.TaggedOutput("processed", video_id)
        meta = videos[0]
        ref = VideoRef(video_id, meta["uri"], meta.get("size_bytes"))
        table = frames[0]
        try:
            rows = list(
                write_scene_clips(
                    ref, meta.get("codec"), scenes, table.column("pts").to_pylist(),
                    table.column("is_keyframe").to_pylist(), self._output, self._exact,
                )
            )
        except Exception as e:  # noqa: BLE001 - one video's clips failing must not stop the run
            _remove_clips(self._output, video_id)  # no clip files without their rows
            yield beam.pvalue.TaggedOutput("failures", failure_row(ref.video_id, ref.uri, "scene_clips", e))
            return
        self._count.inc(len(rows))
        yield from rows


def _remove_clips(output: str, video_id: str) -> None:
    fs, root = fsspec.core.url_to_fs(posixpath.join(output, "clips", video_id))
    try:
        if fs.exists(root):
            fs.rm(root, recursive=True)
    except OSError:
        pass  # best effort: the failures row already says the clips are not to be used


def _frames_key(table):
    return table.column("video_id")[0].as_py(), table


class SaveSceneClips(beam.PTransform):
    """(videos rows, frames Tables, scenes rows) -> scene_clips rows; tags 'failures' and
    'processed' (video_ids)."""

    def __init__(self, output: str, exact: bool = False) -> None:
        super().__init__()
        self._output = output.rstrip("/")
        self._exact = exact

    def expand(self, inputs):
        videos, frames, scenes = inputs
        keyed = {
            "videos": videos | "KeyVideos" >> beam.Map(lambda r: (r["video_id"], r)),
            "frames": frames | "KeyFrames" >> beam.Filter(lambda t: t.num_rows > 0) | "KeyFrameTables" >> beam.Map(_frames_key),
            "scenes": scenes | "KeyScenes" >> beam.Map(lambda r: (r["video_id"], r)),
        }
        return (
            keyed
            | "GroupForClips" >> beam.CoGroupByKey()
            | "WriteClips" >> beam.ParDo(_SaveClipsFn(self._output, self._exact)).with_outputs("failures", "processed", main="clips")
        )
