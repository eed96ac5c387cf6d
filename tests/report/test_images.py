"""Display aspect ratio of keyframes: SAR, DAR, rotation, and idempotent resampling."""

import cv2
import numpy as np
import pytest

from reelbeam.report.images import display_aspect, display_size, parse_ratio, resample_jpeg


@pytest.mark.parametrize(
    "video, aspect",
    [
        ({"width": 704, "height": 576, "sample_aspect_ratio": "16:11", "display_aspect_ratio": "16:9"}, 16 / 9),
        ({"width": 704, "height": 576, "sample_aspect_ratio": "16:11"}, 16 / 9),  # DAR missing: from SAR
        ({"width": 720, "height": 480, "sample_aspect_ratio": "8:9"}, 4 / 3),
        ({"width": 854, "height": 480}, 854 / 480),  # square pixels, nothing set
        ({"width": 704, "height": 576, "display_aspect_ratio": "16:9", "rotation": 90}, 9 / 16),
        ({"width": None, "height": None}, None),
    ],
)
def test_display_aspect(video, aspect):
    assert display_aspect(video) == (pytest.approx(aspect) if aspect else None)


def test_parse_ratio_rejects_garbage():
    assert parse_ratio("0:1") is None and parse_ratio("abc") is None and parse_ratio(None) is None
    assert parse_ratio("16/11") == parse_ratio("16:11")


def test_display_size_keeps_the_height_and_is_idempotent():
    assert display_size(704, 576, 16 / 9) == (1024, 576)
    assert display_size(1024, 576, 16 / 9) == (1024, 576)
    assert display_size(1023, 576, 16 / 9) == (1023, 576)  # rounding, not a wrong aspect


def _jpeg(w, h):
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2] = 255  # left half white: the stretch must keep it the left half
    return cv2.imencode(".jpg", img)[1].tobytes()


def test_resample_stretches_a_squashed_keyframe():
    jpeg = _jpeg(176, 144)
    out, w, h = resample_jpeg(jpeg, 16 / 9)
    assert (w, h) == (256, 144)
    img = cv2.imdecode(np.frombuffer(out, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert img.shape == (144, 256) and img[:, :120].mean() > 240 and img[:, 136:].mean() < 15
    same, w2, h2 = resample_jpeg(out, 16 / 9)
    assert same is out and (w2, h2) == (256, 144)  # already right: bytes untouched
    _, tw, th = resample_jpeg(jpeg, 16 / 9, height=72)
    assert (tw, th) == (128, 72)
    with pytest.raises(ValueError):
        resample_jpeg(b"not a jpeg", 1.0)
