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
keyframes of the final shots (assembly alone applies the minimum shot length); frames it does not
accept are dropped.
"""

from __future__ import annotations

import collections
import threading
from typing import Any

import numpy as np

from reelbeam.models.transnetv2 import STRIDE
from reelbeam.schemas.records import CapturedFrame, VideoPart
from reelbeam.transforms.decode import FrameView, StreamInfo
from reelbeam.transforms.failures import VideoError
from reelbeam.transforms.media import frame_jpeg
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
    """Online shot boundaries from per-frame probabilities (the reference rule: a shot starts at
    the first frame at or under the threshold after frames over it) and capture of the frames
    that are first, middle or last frame of a shot, within a bounded frame buffer."""

    def __init__(self, threshold: float, buffer_bytes: int, max_side: int, quality: int, sar=None) -> None:
        self._threshold = threshold
        self._budget = buffer_bytes
        self._max_side = max_side
        self._quality = quality
        self._sar = sar
        self._ring: collections.deque = collections.deque()  # (index, av.VideoFrame)
        self._frame_bytes = 0
        self._scored = -1  # last frame with a known probability
        self._prev_above = False
        self._start = 0  # first frame of the open shot
        self.captured: set[int] = set()
        self.pending: list[tuple[int, dict]] = []  # captured, not yet emitted
        self.missed = 0

    def add_frame(self, index: int, frame) -> None:
        if not self._frame_bytes:
            self._frame_bytes = max(1, sum(p.buffer_size for p in frame.planes))
        self._ring.append((index, frame))
        while self._ring and len(self._ring) * self._frame_bytes > self._budget:
            self._ring.popleft()

    def _capture(self, index: int) -> None:
        if index in self.captured:
            return
        if not self._ring or not self._ring[0][0] <= index <= self._ring[-1][0]:
            self.missed += 1
            return
        _, frame = self._ring[index - self._ring[0][0]]
        jpeg, w, h = frame_jpeg(frame, self._max_side, self._quality, self._sar)
        self.captured.add(index)
        self.pending.append(
            (index, {"pts_time": float(frame.time) if frame.time is not None else None, "width": w, "height": h, "jpeg": jpeg})
        )

    def take(self) -> list[tuple[int, dict]]:
        out, self.pending = self.pending, []
        return out

    def _close(self, end: int) -> None:
        """The open shot [start, end] is complete: capture its middle and last frame."""
        s = self._start
        self._capture(s + (end - s) // 2)
        self._capture(end)

    def add_probs(self, probs: np.ndarray, frames_total: int | None = None) -> None:
        """Probabilities of the next frames in order (beyond the video's end they are ignored)."""
        for p in probs:
            j = self._scored + 1
            if frames_total is not None and j >= frames_total:
                break
            above = bool(p > self._threshold)
            if j == 0:
                self._capture(0)
            elif self._prev_above and not above:
                self._close(j - 1)
                self._start = j
                self._capture(j)
            self._prev_above = above
            self._scored = j
        # Frames before the earliest possible middle of the open shot can no longer be keyframes.
        keep_from = self._start + (self._scored - self._start) // 2
        while self._ring and self._ring[0][0] < keep_from:
            self._ring.popleft()

    def finish(self, frames_total: int) -> None:
        if frames_total > 0:
            self._close(frames_total - 1)
        self._ring.clear()


class InlineTransNetV2Consumer(TransNetV2WindowConsumer):
    """TransNetV2 windows scored as they fill (see the module docstring); with `capture`, the shot
    keyframes' frames are JPEG-encoded in the pass (streams 'shot_frames', 'shot_frames_index')."""

    parts = ("transnetv2_windows", "transnetv2_probs")
    tags = ("shot_frames", "shot_frames_index")

    def __init__(
        self,
        handler,
        scaler: str = "AREA",
        threshold: float = 0.5,
        capture: bool = True,
        buffer_mb: int = DEFAULT_BUFFER_MB,
        max_side: int = 0,
        quality: int = 90,
    ) -> None:
        super().__init__(scaler)
        self._handler = handler
        self._threshold = threshold
        self._capture_on = capture
        self._buffer_bytes = buffer_mb << 20
        self._max_side = max_side
        self._quality = quality

    def start(self, info: StreamInfo):
        self._capture = (
            ShotKeyframeCapture(self._threshold, self._buffer_bytes, self._max_side, self._quality, info.sample_aspect_ratio)
            if self._capture_on
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
            yield "shot_frames_index", (self._vid, sorted(self._capture.captured))
