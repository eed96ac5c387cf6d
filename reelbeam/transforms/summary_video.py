"""`--save-summary-video`: a summary (its selected frame spans) as one playable file, audio kept.

- Stream copy where the cut points allow: when every span is a run of whole GOPs (it starts on a
  codec keyframe and the frame after it is a keyframe or the end) and a container carries the
  streams as they are (`clips.plan_clips`), the packets of the spans are copied, one after the
  other, their timestamps shifted so the spans follow each other without a gap. Intra-only codecs
  (MJPEG, ProRes, FFV1 intra) always qualify.
- Otherwise the spans' frames are decoded and re-encoded (H.264, CRF 18, MP4), and the audio of
  each span is re-encoded to AAC (or copied where MP4 carries it), in step with the video.
"""

from __future__ import annotations

import os
from fractions import Fraction

import av

from reelbeam.transforms.media import SWS_THREADS, opened_video
from reelbeam.transforms.scene_clips import plan_clips
from reelbeam.transforms.video_files import add_audio_stream, add_x264_stream, audio_packets, mux_audio


def whole_gops(spans: list, is_keyframe: list) -> bool:
    """Whether every inclusive [s, e] span starts on a keyframe and ends before one (or at the end)."""
    n = len(is_keyframe)
    return all(is_keyframe[s] and (e + 1 >= n or is_keyframe[e + 1]) for s, e in spans)


def write_summary_video(uri: str, spans: list, pts: list, is_keyframe: list, path: str) -> dict:
    """Write the frames of `spans` (inclusive frame indices, increasing, not overlapping) of the
    video at `uri` to `path` (its extension is chosen here: returned in 'path'). `pts` and
    `is_keyframe` are the video's `frames` columns. Returns {'path', 'mode', 'frames', 'has_audio'}."""
    if not spans:
        raise ValueError("a summary video needs at least one span")
    with opened_video(uri) as container:
        vstream = container.streams.video[0]
        astream = container.streams.audio[0] if container.streams.audio else None
        if astream is not None and astream.codec_context is None:
            astream = None
        plan = plan_clips(vstream, astream, "copy")
        if plan.video == "copy" and plan.audio in (None, "copy") and whole_gops(spans, is_keyframe):
            out = os.path.splitext(path)[0] + "." + plan.ext
            frames = _copy(container, vstream, astream if plan.audio else None, spans, pts, out, plan.format)
            return {"path": out, "mode": "stream_copy", "frames": frames, "has_audio": plan.audio is not None}
        out = os.path.splitext(path)[0] + ".mp4"
        audio = None if astream is None else ("copy" if plan_clips(vstream, astream, "exact").audio == "copy" else "encode")
        frames = _encode(container, vstream, astream, audio, spans, pts, out)
        return {"path": out, "mode": "reencode", "frames": frames, "has_audio": audio is not None}


def _span_times(spans, pts, tb, rate) -> list[tuple[int, int, float, float]]:
    """(start_pts, end_pts, t0, t1) per span: t1 is the next frame's time (or + one frame)."""
    out = []
    for s, e in spans:
        nxt = pts[e + 1] if e + 1 < len(pts) and pts[e + 1] is not None else None
        t1 = float(nxt * tb) if nxt is not None else float(pts[e] * tb) + 1.0 / float(rate)
        out.append((int(pts[s]), int(pts[e]), float(pts[s] * tb), t1))
    return out


def _copy(container, vstream, astream, spans, pts, path, fmt) -> int:
    tb = vstream.time_base
    rate = vstream.average_rate or vstream.guessed_rate or Fraction(25)
    times = _span_times(spans, pts, tb, rate)
    written = 0
    with av.open(path, "w", format=fmt) as out:
        ov = out.add_stream_from_template(vstream)
        oa = out.add_stream_from_template(astream) if astream is not None else None
        shift_t = 0.0  # seconds removed so far (the gaps between spans)
        last_end = None
        for (start_pts, end_pts, t0, t1), (s, e) in zip(times, spans):
            shift_t += t0 - (last_end if last_end is not None else t0)
            last_end = t1
            shift = round(shift_t / tb)
            container.seek(start_pts, stream=vstream, backward=True, any_frame=False)
            for packet in container.demux(vstream):
                if packet.pts is None or not packet.size:
                    continue
                if packet.pts > end_pts:
                    break
                if packet.pts < start_pts:
                    continue
                packet.pts -= shift
                packet.dts = None if packet.dts is None else packet.dts - shift
                packet.stream = ov
                out.mux(packet)
                written += 1
            if oa is not None:
                mux_audio(out, oa, astream, audio_packets(container, astream, t0, t1, start_pts, vstream), "copy", shift_t)
    return written


def _encode(container, vstream, astream, audio, spans, pts, path) -> int:
    tb = vstream.time_base
    rate = vstream.average_rate or vstream.guessed_rate or Fraction(25)
    times = _span_times(spans, pts, tb, rate)
    # Collect the audio first: every stream must exist before the first packet is written.
    audio_parts = []
    if audio is not None:
        for start_pts, _end_pts, t0, t1 in times:
            audio_parts.append((t0, audio_packets(container, astream, t0, t1, start_pts, vstream)))
    written = 0
    with av.open(path, "w", format="mp4") as out:
        ov, w, h = add_x264_stream(out, vstream, rate, tb)
        oa = add_audio_stream(out, astream, audio) if audio is not None else None
        offset = 0.0  # output time at the start of the current span
        audio_state = {"next": 0}  # first sample the encoder may take (no overlap between spans)
        for k, (start_pts, end_pts, t0, t1) in enumerate(times):
            container.seek(start_pts, stream=vstream, backward=True, any_frame=False)
            vstream.codec_context.flush_buffers()
            for frame in container.decode(vstream):
                if frame.pts is None or frame.pts < start_pts:
                    continue
                if frame.pts > end_pts:
                    break
                new = frame.reformat(width=w, height=h, format="yuv420p", threads=SWS_THREADS)
                new.pts = round((float(frame.pts * tb) - t0 + offset) / tb)
                new.time_base = tb
                for packet in ov.encode(new):
                    out.mux(packet)
                written += 1
            if oa is not None:
                origin = audio_parts[k][0] - offset
                if audio == "copy":
                    mux_audio(out, oa, astream, audio_parts[k][1], "copy", origin)
                else:
                    _encode_audio(out, oa, astream, audio_parts[k][1], origin, t1 - t0 + offset, audio_state)
            offset += t1 - t0
        for packet in ov.encode(None):
            out.mux(packet)
        if oa is not None and audio != "copy":
            out.mux(oa.encode(None))
    return written


def _encode_audio(out, oa, astream, packets, origin: float, until: float, state: dict) -> None:
    """Re-encode one span's audio packets, with times from `origin` (source seconds) on, cut at
    output time `until`; frames that would overlap the previous span's are dropped; the encoder
    is flushed only once, after the last span."""
    astream.codec_context.flush_buffers()
    next_t = None
    for p in packets:
        for frame in p.decode():
            t = float(frame.pts * frame.time_base) if frame.pts is not None else next_t
            if t is None:
                t = float(p.pts * astream.time_base)
            next_t = t + frame.samples / frame.sample_rate
            if t - origin >= until:
                return
            start = max(round((t - origin) * frame.sample_rate), 0)
            if start < state["next"]:
                continue
            frame.pts = start
            frame.time_base = Fraction(1, frame.sample_rate)
            state["next"] = start + frame.samples
            out.mux(oa.encode(frame))
