"""TransNetV2 inside the decode pass, and shot keyframes captured while the frames go by.

Each window is scored as it fills. (A model thread overlapping the decoder was measured: no
faster on 2 cores, where the model's own threads already use both.)

On a CPU worker, scoring TransNetV2 windows in the decode pass costs the same as scoring them in a
RunInference step after it (cross-video batching only pays on a GPU), and it makes the shot
boundaries known while the decoder is still near them. `InlineTransNetV2Consumer` then keeps the
frames that may still become a shot keyframe (first, middle or last frame of a shot, as LGSS and
BaSSL choose them) and JPEG-encodes exactly those, so the BaSSL/SCRL path needs no second decode.

Per-frame probabilities, and so the shots, are the same as the RunInference path's: the consumer
calls the same ModelHandler on the same windows and emits the same `transnetv2_probs` records.

What is kept, and the bound on it:
- Window w's predictions cover frames 50w..50w+49 and are known once frame 50w+74 is decoded
  (plus 50 frames per window in flight), so a frame's shot role is known at most 75 frames after
  it.
- A shot's first frame is encoded as soon as the shot is known to start; its last frame when the
  next shot starts (within 75 frames); its middle s + (e - s) // 2 when it ends. While a shot is
  open, frames from s + (p - s) // 2 on (p: the last scored frame) may still be its middle.
- Frames are held as decoder references (no conversion), within `buffer_bytes`; the oldest go
  first. A keyframe whose frame was let go is not captured; `AssembleVideos` then plans it for
  the seeking second pass (`ExtractShotKeyframes`), which so only sees very long shots.

Captured frames go out as ('shot_frames', CapturedFrame) and, per video, their indices as
('shot_frames_index', (video_id, [frame_idx])). The shot keyframe stage decides which of them are
keyframes of the final shots (assembly alone applies the minimum shot length, and the improved shot
rule's frame-difference steps); frames it does not accept are dropped.

The training-free scene grouping's frames (a quarter in, the middle and a quarter from the end of a
shot) are captured the same way, from the same buffer, as 224 x 224 JPEG with their hue/saturation
histogram: ('scene_frames', SceneFrame) and ('scene_frames_index', (video_id, [frame_idx])). Their
earliest role is a quarter into the shot, so with them on the buffer holds frames from a quarter of
the open shot on instead of from its middle.
"""

from __future__ import annotations

import collections
import threading
from typing import Any

import numpy as np

from reelbeam.models.transnetv2_windows import STRIDE
from reelbeam.schemas.records import CapturedFrame, VideoPart
from reelbeam.transforms.decode import FrameView, StreamInfo
from reelbeam.transforms.failures import VideoError
from reelbeam.transforms.media import frame_jpeg
from reelbeam.transforms.scene_grouping import scene_frame, scene_frame_indices
from reelbeam.transforms.shot_rule import CUT_FRAMES
from reelbeam.transforms.shots import TransNetV2WindowConsumer

DEFAULT_BUFFER_MB = 512
_LOCK = threading.Lock()


def loaded_model(handler) -> Any:
    """The handler's model, loaded once per handler object (one per DoFn instance)."""
    model = getattr(handler, "_reelbeam_inline_model", None)
    if model is None:
        with _LOCK:
            model = getattr(handler, "_reelbeam_inline_model", None)
            if model is None:
                model = handler.load_model()
                handler._reelbeam_inline_model = model
    return model


class ShotKeyframeCapture:
    """Online shot boundaries from per-frame probabilities and capture of the frames that play a
    role in a shot, within a bounded frame buffer.

    The online rule follows the shot stage's rule as far as the probabilities alone can:
    - `many_hot_threshold` None (`--shot-rule reference`): the reference rule on the single-frame
      head (column 0 of [n, 2] rows, or 1-D rows): a shot starts at the first frame at or under
      the threshold after frames over it; these are exactly the final cuts.
    - a float (`--shot-rule improved`): a frame is in a transition when either head is over its
      threshold; a run that begins at frame 0 is no cut (a fade-in), one still open at the end is
      none either (a fade-out), and a shot starts after the run's last frame whose single-frame
      probability is over the threshold, else after the run: `improved_shot_starts` without the
      frame-difference steps (weak cuts confirmed, dark frames joined, flashes and ramps vetted),
      which need the signals of the whole video.
    Where the final shots differ (those steps, `--min-shot-frames`), the frames captured for the
    live shots that are no role of a final shot are dropped downstream, and the final roles not
    captured come from a seeking second pass: captured frames are a saving, never the truth.

    Roles captured (each on request):
    - `keyframes`: first, middle and last frame (LGSS/BaSSL's keyframes), as JPEG ('pending');
    - `scene_frames`: a quarter in, the middle and a quarter from the end
      (`scene_grouping.scene_frame_indices`), as 224 x 224 JPEG with their hue/saturation
      histogram ('scene_pending').
    With `avoid_transitions` (the improved rule without --keep-transition-frames), a shot next to
    a live run longer than a cut also has the keyframes of its span without the run's frames
    (`keyframes.clean_span`): the frame before the run, the frame after it and the middle between.
    """

    def __init__(self, threshold: float, buffer_bytes: int, max_side: int, quality: int, sar=None, *,
                 many_hot_threshold: float | None = None, keyframes: bool = True, scene_frames: bool = False,
                 avoid_transitions: bool = False) -> None:
        self._threshold = threshold
        self._many_hot_threshold = many_hot_threshold
        self._budget = buffer_bytes
        self._max_side = max_side
        self._quality = quality
        self._sar = sar
        self._keyframes = keyframes
        self._scene_frames = scene_frames
        # The earliest role of a shot [s, e] lies at s + (e - s) // divisor (middle or quarter).
        self._divisor = 4 if scene_frames else 2
        self._ring: collections.deque = collections.deque()  # (index, av.VideoFrame)
        self._frame_bytes = 0
        self._scored = -1  # last frame with a known probability
        self._prev_above = False
        self._run_start = -1  # first frame of the open transition run (-1: none open)
        self._last_single = -1  # last frame of the open run with the single-frame head over its threshold
        self._start = 0  # first frame of the open shot
        self._avoid = avoid_transitions and many_hot_threshold is not None
        self._clean_start = 0  # first frame of the open shot after the gradual run into it
        self.captured: set[int] = set()
        self.pending: list[tuple[int, dict]] = []  # captured keyframes, not yet emitted
        self.scene_captured: set[int] = set()
        self.scene_pending: list[tuple[int, dict]] = []  # captured scene frames, not yet emitted
        self.missed = 0

    def add_frame(self, index: int, frame) -> None:
        if not self._frame_bytes:
            self._frame_bytes = max(1, sum(p.buffer_size for p in frame.planes))
        self._ring.append((index, frame))
        while self._ring and len(self._ring) * self._frame_bytes > self._budget:
            self._ring.popleft()

    def _frame(self, index: int):
        if not self._ring or not self._ring[0][0] <= index <= self._ring[-1][0]:
            self.missed += 1
            return None
        return self._ring[index - self._ring[0][0]][1]

    def _capture(self, index: int) -> None:
        if not self._keyframes or index in self.captured:
            return
        frame = self._frame(index)
        if frame is None:
            return
        jpeg, w, h = frame_jpeg(frame, self._max_side, self._quality, self._sar)
        self.captured.add(index)
        self.pending.append(
            (index, {"pts_time": float(frame.time) if frame.time is not None else None, "width": w, "height": h, "jpeg": jpeg})
        )

    def _capture_scene_frame(self, index: int) -> None:
        if index in self.scene_captured:
            return
        frame = self._frame(index)
        if frame is None:
            return
        self.scene_captured.add(index)
        self.scene_pending.append((index, scene_frame("", index, frame)))

    def take(self) -> list[tuple[int, dict]]:
        out, self.pending = self.pending, []
        return out

    def take_scene_frames(self) -> list[tuple[int, dict]]:
        out, self.scene_pending = self.scene_pending, []
        return out

    def _open(self, start: int, clean_start: int | None = None) -> None:
        self._start = start
        self._capture(start)
        self._clean_start = start
        if self._avoid and clean_start is not None and clean_start > start:
            self._clean_start = clean_start
            self._capture(clean_start)

    def _close(self, end: int, clean_end: int | None = None) -> None:
        """The open shot [start, end] is complete: capture its remaining roles (and, avoiding
        transitions, those of [clean start, clean_end] when it differs)."""
        s = self._start
        self._capture(s + (end - s) // 2)
        self._capture(end)
        if self._avoid:
            a, b = self._clean_start, end if clean_end is None else min(end, clean_end)
            if a <= b and (a, b) != (s, end):
                self._capture(a)
                self._capture(a + (b - a) // 2)
                self._capture(b)
        if self._scene_frames:
            for index in scene_frame_indices(s, end):
                self._capture_scene_frame(index)

    def add_probs(self, probs: np.ndarray, frames_total: int | None = None) -> None:
        """Probabilities of the next frames in order, [n] or [n, 2] (single-frame, many-hot);
        rows beyond the video's end are ignored."""
        probs = np.asarray(probs)
        single = probs[:, 0] if probs.ndim == 2 else probs
        many_hot = probs[:, 1] if probs.ndim == 2 and probs.shape[1] > 1 and self._many_hot_threshold is not None else None
        for k in range(len(single)):
            j = self._scored + 1
            if frames_total is not None and j >= frames_total:
                break
            single_above = bool(single[k] > self._threshold)
            if self._many_hot_threshold is None:
                if j == 0:
                    self._open(0)
                elif self._prev_above and not single_above:
                    self._close(j - 1)
                    self._open(j)
                self._prev_above = single_above
            else:
                above = single_above or (many_hot is not None and bool(many_hot[k] > self._many_hot_threshold))
                if j == 0:
                    self._open(0)
                if above:
                    if self._run_start < 0:
                        self._run_start, self._last_single = j, -1
                    if single_above:
                        self._last_single = j
                elif self._run_start >= 0:
                    if self._run_start > 0:  # a run from frame 0 is a fade-in, not a cut
                        start = self._last_single + 1 if self._last_single >= 0 else j
                        gradual = j - self._run_start > CUT_FRAMES
                        self._close(start - 1, self._run_start - 1 if gradual else None)
                        self._open(start, j if gradual else None)
                    self._run_start = -1
            self._scored = j
        # Frames before the earliest possible role of the open shot can no longer be captured. The
        # shot ends at or after the open run's first frame (the improved rule may cut inside it).
        # Avoiding transitions, the shot may end one frame before the run.
        horizon = self._scored if self._run_start < 0 else max(self._start, self._run_start - self._avoid)
        keep_from = self._start + (horizon - self._start) // self._divisor
        while self._ring and self._ring[0][0] < keep_from:
            self._ring.popleft()

    def finish(self, frames_total: int) -> None:
        if frames_total > 0:
            self._close(frames_total - 1)
        self._ring.clear()


class InlineTransNetV2Consumer(TransNetV2WindowConsumer):
    """TransNetV2 windows scored as they fill (see the module docstring); with `capture`, the shot
    keyframes' frames are JPEG-encoded in the pass (streams 'shot_frames', 'shot_frames_index');
    with `scene_frames`, the scene grouping's frames are captured at 224 x 224 (streams
    'scene_frames', 'scene_frames_index'). `many_hot_threshold` (the improved rule) lets the live
    shots follow both heads (`ShotKeyframeCapture`)."""

    parts = ("transnetv2_windows", "transnetv2_probs")
    tags = ("shot_frames", "shot_frames_index", "scene_frames", "scene_frames_index")

    def __init__(
        self,
        handler,
        scaler: str = "AREA",
        threshold: float = 0.5,
        capture: bool = True,
        buffer_mb: int = DEFAULT_BUFFER_MB,
        max_side: int = 0,
        quality: int = 90,
        many_hot_threshold: float | None = None,
        scene_frames: bool = False,
        avoid_transitions: bool = False,
    ) -> None:
        super().__init__(scaler)
        self._handler = handler
        self._threshold = threshold
        self._capture_on = capture
        self._scene_frames_on = scene_frames
        self._many_hot_threshold = many_hot_threshold
        self._avoid_transitions = avoid_transitions
        self._buffer_bytes = buffer_mb << 20
        self._max_side = max_side
        self._quality = quality

    def start(self, info: StreamInfo):
        self._capture = (
            ShotKeyframeCapture(
                self._threshold, self._buffer_bytes, self._max_side, self._quality, info.sample_aspect_ratio,
                many_hot_threshold=self._many_hot_threshold, keyframes=self._capture_on, scene_frames=self._scene_frames_on,
                avoid_transitions=self._avoid_transitions,
            )
            if self._capture_on or self._scene_frames_on
            else None
        )
        return super().start(info)

    def _score(self, out, frames_total: int | None = None):
        """A window ('windows', (WindowKey, window)) -> its probs part, then the frames it let the
        capture encode."""
        _, ((vid, idx), window) = out
        try:
            (result,) = self._handler.run_inference([window], loaded_model(self._handler))
        except Exception as e:
            raise VideoError("inference_error", f"TransNetV2 in the decode pass: {type(e).__name__}: {e}") from e
        probs = np.asarray(result.inference)
        yield "per_video", VideoPart(vid, "transnetv2_probs", (idx, probs))
        if self._capture is not None:
            self._capture.add_probs(probs[:STRIDE], frames_total)
            yield from self._captured()

    def _captured(self):
        for index, record in self._capture.take():
            yield "shot_frames", CapturedFrame(self._vid, index, **record)
        for index, record in self._capture.take_scene_frames():
            yield "scene_frames", record._replace(video_id=self._vid)

    def consume(self, view: FrameView):
        if self._capture is not None:
            self._capture.add_frame(view.index, view.frame)
        for out in super().consume(view):
            yield from self._score(out)

    def finish(self):
        total = self._frames
        for out in super().finish():
            if out[0] == "windows":
                yield from self._score(out, total)
            else:
                yield out
        if self._capture is not None:
            self._capture.finish(total)
            yield from self._captured()
            if self._capture_on:
                yield "shot_frames_index", (self._vid, sorted(self._capture.captured))
            if self._scene_frames_on:
                yield "scene_frames_index", (self._vid, sorted(self._capture.scene_captured))
