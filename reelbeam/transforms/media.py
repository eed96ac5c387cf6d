"""Opening videos, pixels as players show them, and JPEG encoding: the helpers every stage that
touches media shares.

- `opened_video(uri)`: a PyAV input container for a local path (opened directly, the fastest) or
  any fsspec URL, closed with its file handle afterwards.
- Display geometry: `quarter_turns` (the stream's display matrix, in quarter turns counter-clockwise),
  `display_size` (the picture size with square pixels: a 704x576 stream with sample aspect ratio
  16:11 is shown 1024x576), `display_rgb` (a decoded frame as RGB, turned and stretched as players
  and OpenCV's auto-orientation show it, optionally downscaled), `square_rgb` (squashed to a
  square model input).
- `jpeg_bytes` / `frame_jpeg`: RGB (or a decoded frame) to JPEG bytes.

Conversions use one swscale thread (`SWS_THREADS`): PyAV >= 17 converts through `sws_scale_frame`,
whose default splits every call over all CPUs; for a small frame the hand-off costs more than the
scaling (~50 us a frame here) and the decoder's threads already use the cores. One thread measured
5-20% faster for the TransNetV2 decode pass and 1.5-2x for full-frame conversions.
"""

from __future__ import annotations

import bisect
import contextlib
import io
import os
from collections.abc import Callable, Iterator, Sequence
from fractions import Fraction
from typing import Any

import av
import fsspec
import numpy as np

from reelbeam.transforms.failures import VideoError

SWS_THREADS = 1


def local_path(uri: str) -> str | None:
    """The local file system path of `uri` (a plain path or a file:// URL), else None."""
    if uri.startswith("file://"):
        return uri[len("file://") :]
    return None if "://" in uri else uri


def open_container(uri: str) -> tuple[av.container.InputContainer, Any]:
    """(container, fsspec handle or None). Local paths are opened by FFmpeg directly; any other URL
    through fsspec. Raises VideoError for a local file that is missing or unreadable."""
    path = local_path(uri)
    if path is not None:
        if not os.path.exists(path):
            raise VideoError("not_found", f"no such file: {path}")
        if not os.access(path, os.R_OK):
            raise VideoError("permission_denied", f"no permission to read {path}")
        return av.open(path, mode="r", metadata_errors="ignore"), None
    handle = fsspec.open(uri, "rb").open()
    try:
        return av.open(handle, mode="r", metadata_errors="ignore"), handle
    except BaseException:
        handle.close()
        raise


@contextlib.contextmanager
def opened_video(uri: str) -> Iterator[av.container.InputContainer]:
    """`open_container` as a context: the container and any fsspec handle are closed after."""
    container, handle = open_container(uri)
    try:
        yield container
    finally:
        container.close()
        if handle is not None:
            handle.close()


def quarter_turns(frame) -> int:
    """The frame's display rotation (`frame.rotation`: degrees counter-clockwise) in quarter turns."""
    return round(float(getattr(frame, "rotation", 0) or 0) / 90.0) % 4


def parse_ratio(value) -> Fraction | None:
    """'16:11', a Fraction or None -> Fraction (None for missing or non-positive ratios)."""
    if value is None:
        return None
    if isinstance(value, str):
        num, _, den = value.partition(":")
        try:
            value = Fraction(int(num), int(den or 1))
        except (ValueError, ZeroDivisionError):
            return None
    value = Fraction(value)
    return value if value > 0 else None


def display_size(width: int, height: int, sar=None) -> tuple[int, int]:
    """Coded size -> size with square pixels (before rotation): the width is stretched by the
    sample aspect ratio (or the height, when the ratio is below 1, so no pixel is invented twice)."""
    sar = parse_ratio(sar)
    if sar is None or sar == 1:
        return width, height
    if sar > 1:
        return max(1, round(width * sar)), height
    return width, max(1, round(height / sar))


def fit_within(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(width, height) scaled down so the longer side is at most `max_side` (0: unchanged)."""
    if not max_side or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(2, round(width * scale)), max(2, round(height * scale))


def turned(rgb: np.ndarray, turns: int) -> np.ndarray:
    """`rgb` turned counter-clockwise by `turns` quarter turns (contiguous)."""
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns % 4 else rgb


def display_rgb(frame, max_side: int = 0, sar=None) -> np.ndarray:
    """A decoded frame as uint8 RGB [H, W, 3] as players show it: square pixels (`sar`, the
    stream's sample aspect ratio), the display rotation applied, the longer side at most
    `max_side` when > 0 (area downscaling)."""
    width, height = fit_within(*display_size(frame.width, frame.height, sar), max_side)
    if (width, height) == (frame.width, frame.height):
        rgb = frame.to_ndarray(format="rgb24", threads=SWS_THREADS)
    else:
        rgb = frame.to_ndarray(
            format="rgb24", width=width, height=height, interpolation="AREA", threads=SWS_THREADS
        )
    return turned(rgb, quarter_turns(frame))


def square_rgb(frame, size: int) -> np.ndarray:
    """A decoded frame as uint8 RGB [size, size, 3]: the whole picture squashed to a square (area
    averaging, as image models that resize without cropping read it), in display orientation."""
    rgb = frame.to_ndarray(format="rgb24", width=size, height=size, interpolation="AREA", threads=SWS_THREADS)
    return turned(rgb, quarter_turns(frame))


def jpeg_bytes(rgb: np.ndarray, quality: int = 90) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def rgb_from_jpeg(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def frame_jpeg(frame, max_side: int = 0, quality: int = 90, sar=None) -> tuple[bytes, int, int]:
    """A decoded frame as JPEG bytes in display orientation and aspect (see `display_rgb`);
    returns (jpeg, width, height)."""
    rgb = display_rgb(frame, max_side, sar)
    return jpeg_bytes(rgb, quality), int(rgb.shape[1]), int(rgb.shape[0])


def display_orientation(rgb: np.ndarray, frame) -> np.ndarray:
    """`rgb` (a conversion of `frame`) turned as the stream's display matrix says (rotation only;
    the pixel aspect is left as coded, as the models' references read frames)."""
    return turned(rgb, quarter_turns(frame))


def decode_keeping(container, stream, keep: Callable[[int], bool] | None) -> Iterator:
    """`container.decode(stream)`, except that a packet whose frame `keep(pts)` rejects is decoded
    with skip_frame=NONREF: the decoder drops it if no other frame refers to it (B-frames, in
    H.264/HEVC/MPEG-4 streams with them: a third of the frames at x264's defaults, ~25% of the
    decode time). The setting is read per packet, also under frame threading."""
    if keep is None:
        yield from container.decode(stream)
        return
    codec = stream.codec_context
    for packet in container.demux(stream):
        codec.skip_frame = "DEFAULT" if packet.pts is None or keep(packet.pts) else "NONREF"
        yield from packet.decode()


def seek_frames(container, stream, pts: Sequence[int | None], is_keyframe: Sequence[bool], wanted: set[int],
                skip_unneeded: bool = False) -> Iterator[tuple[int, Any]]:
    """(frame index, decoded frame) for each index in `wanted`, in frame order, using a video's frame
    index (the `frames` table's `pts` and `is_keyframe`, in presentation order): frames are decoded
    forward, with a seek to the codec keyframe at or before the next wanted frame where that lies
    past the frames being decoded, and each decoded frame is placed by its PTS (by count where it
    has none). Found indices are removed from `wanted`; what is left when the stream ends (a seek
    that landed past its keyframe, a shorter stream) stays in it for the caller to handle.
    `skip_unneeded`: let the decoder drop non-reference frames that are not wanted
    (`decode_keeping`), where every frame of the index has a PTS."""
    key_positions = np.flatnonzero(np.asarray(is_keyframe, dtype=bool)).tolist()
    pts_to_index = {p: i for i, p in enumerate(pts) if p is not None}

    def keep(p: int) -> bool:
        return pts_to_index.get(p) in wanted

    keep_fn = keep if skip_unneeded and len(pts_to_index) == len(pts) else None
    frames = None
    pos = -1  # index of the last decoded frame
    for target in sorted(wanted):
        if target not in wanted:
            continue
        k = bisect.bisect_right(key_positions, target) - 1
        key = key_positions[k] if k >= 0 else 0
        if frames is None or (key > pos + 1 and pts[key] is not None):
            if frames is not None or key > 0:
                container.seek(int(pts[key]), stream=stream, backward=True, any_frame=False)
            frames = decode_keeping(container, stream, keep_fn)
            pos = key - 1
        for frame in frames:
            idx = pts_to_index.get(frame.pts, pos + 1) if frame.pts is not None else pos + 1
            pos = idx
            if idx in wanted:
                wanted.discard(idx)
                yield idx, frame
            if idx >= target:
                break
        else:
            return  # the stream ended before the target
