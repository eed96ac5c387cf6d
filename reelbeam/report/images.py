"""Keyframe JPEGs at the video's display aspect ratio.

A stream's pixels need not be square: a 704x576 PAL stream with a sample (pixel) aspect ratio of
16:11 is shown 16:9 (1024x576). The `keyframes` table may hold such JPEGs at their stored pixel
size; these helpers resample them to what a player shows. They are idempotent: a JPEG already at
the display aspect ratio is returned unchanged, so they stay right once the pipeline stores
keyframes at the display aspect ratio itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction

import cv2
import numpy as np

# Differences below this (relative) are rounding of an already-correct size, not a wrong aspect.
_ASPECT_TOLERANCE = 0.01


def parse_ratio(text: str | None) -> Fraction | None:
    """'16:11' -> Fraction(16, 11); None, '', '0:1' or garbage -> None."""
    if not text:
        return None
    try:
        num, den = (int(x) for x in str(text).replace("/", ":").split(":"))
    except ValueError:
        return None
    if num <= 0 or den <= 0:
        return None
    return Fraction(num, den)


def display_aspect(video: Mapping) -> float | None:
    """Width / height of the picture as a player shows it, from a `videos` row.

    Uses `display_aspect_ratio`, else coded size x `sample_aspect_ratio`, else the coded size;
    a rotation of 90 or 270 degrees swaps it (keyframe JPEGs are stored in display orientation).
    None when the row has no usable size.
    """
    width, height = video.get("width"), video.get("height")
    dar = parse_ratio(video.get("display_aspect_ratio"))
    if dar is None and width and height:
        sar = parse_ratio(video.get("sample_aspect_ratio")) or Fraction(1)
        dar = Fraction(int(width), int(height)) * sar
    if dar is None:
        return None
    aspect = float(dar)
    if (video.get("rotation") or 0) % 180 == 90:
        aspect = 1.0 / aspect
    return aspect


def display_size(width: int, height: int, aspect: float | None) -> tuple[int, int]:
    """(width, height) of a `width` x `height` picture shown at `aspect`: the height is kept and
    the width scaled, as ffmpeg's `scale=iw*sar:ih` does; unchanged when already right."""
    if not aspect or height <= 0:
        return width, height
    target = max(1, round(height * aspect))
    if abs(target - width) <= max(1, _ASPECT_TOLERANCE * width):
        return width, height
    return target, height


def resample_jpeg(
    jpeg: bytes, aspect: float | None, height: int | None = None, quality: int = 90
) -> tuple[bytes, int, int]:
    """The JPEG at display aspect `aspect`, optionally scaled to `height` pixels.

    Returns (jpeg bytes, width, height). The input bytes come back untouched when neither the
    aspect nor the height changes anything. Raises ValueError on bytes that are not an image.
    """
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError("not a decodable image")
    h, w = img.shape[:2]
    dw, dh = display_size(w, h, aspect)
    if height is not None and height != dh:
        dw, dh = max(1, round(dw * height / dh)), height
    if (dw, dh) == (w, h):
        return jpeg, w, h
    # INTER_AREA when shrinking (no aliasing), cubic when stretching.
    interp = cv2.INTER_AREA if dw * dh < w * h else cv2.INTER_CUBIC
    out = cv2.resize(img, (dw, dh), interpolation=interp)
    ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes(), dw, dh
