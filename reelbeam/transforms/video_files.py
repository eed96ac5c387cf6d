"""Writing video files, shared by the scene clips (`clips`) and the summary videos
(`summary_video`): an H.264 video stream set up as both encode it, audio copied or re-encoded to
AAC between two times, and the removal of a video's folder of files when its rows are not written."""

from __future__ import annotations

import posixpath
from fractions import Fraction

import fsspec

# x264's constant-rate factor for re-encoded clips and summaries: visually lossless at 'veryfast'.
EXACT_CRF = 18
# Sample rates the AAC encoder takes; audio at another rate is resampled to 48 kHz.
AAC_RATES = frozenset(
    {96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350}
)


def add_x264_stream(out, vstream, rate, time_base):
    """(stream, width, height): an H.264 (libx264, CRF `EXACT_CRF`, preset veryfast, yuv420p)
    stream on the output container `out` at `vstream`'s size rounded down to even numbers, with
    `time_base` for both the stream and its encoder."""
    w, h = vstream.codec_context.width // 2 * 2, vstream.codec_context.height // 2 * 2
    ov = out.add_stream("libx264", rate=rate)
    ov.width, ov.height, ov.pix_fmt = w, h, "yuv420p"
    ov.time_base = time_base
    ov.codec_context.time_base = time_base
    ov.options = {"crf": str(EXACT_CRF), "preset": "veryfast"}
    return ov, w, h


def audio_packets(container, astream, t0: float, t1: float, seek_pts: int, vstream):
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


def add_audio_stream(out, astream, how: str):
    """The output's audio stream: a copy of `astream`'s ('copy') or AAC ('encode')."""
    if how == "copy":
        return out.add_stream_from_template(astream)
    src = astream.codec_context
    oa = out.add_stream("aac", rate=src.sample_rate if src.sample_rate in AAC_RATES else 48000)
    # By channel count: a source layout can be unnamed ("1 channels"), which the encoder refuses.
    oa.layout = "mono" if src.layout.nb_channels == 1 else "stereo"
    return oa


def mux_audio(out, oa, astream, packets: list, how: str, origin: float) -> None:
    """Mux a clip's audio packets, copied or re-encoded, with times from `origin` (seconds in
    the source) on."""
    atb = astream.time_base
    if how == "copy":
        shift = round(origin / atb)
        for p in packets:
            p.pts = p.pts - shift
            p.dts = None if p.dts is None else p.dts - shift
            p.stream = oa
            out.mux(p)
        return
    astream.codec_context.flush_buffers()  # no state from the previous clip's packets
    next_t = None
    for p in packets:
        for frame in p.decode():
            t = float(frame.pts * frame.time_base) if frame.pts is not None else next_t
            if t is None:
                t = float(p.pts * atb)
            next_t = t + frame.samples / frame.sample_rate
            frame.pts = max(round((t - origin) * frame.sample_rate), 0)
            frame.time_base = Fraction(1, frame.sample_rate)
            out.mux(oa.encode(frame))
    out.mux(oa.encode(None))


def remove_video_folder(output: str, folder: str, video_id: str) -> None:
    """Remove OUTPUT/<folder>/<video_id>/ and the files in it (local or fsspec), best effort: the
    video's failures row already says its files are not to be used."""
    fs, root = fsspec.core.url_to_fs(posixpath.join(output, folder, video_id))
    try:
        if fs.exists(root):
            fs.rm(root, recursive=True)
    except OSError:
        pass
