"""Per-video signals for the shot and scene benches, computed in one decode pass and cached.

`video_signals(path, ...)` returns, for every frame: TransNetV2's two heads (fp32), the decode-pass
frame-difference signals (`reelbeam.transforms.frame_difference`), PySceneDetect's content value
(mean HSV difference on a frame downscaled to width 256, as its detectors compute it) for
comparison, the content value of TransNetV2's own 48x27 frames, and the 64-bin colour histograms
of the training-free scene path. Cached as .npz under `cache_dir` keyed by the file's size and
mtime and the versions below (the model's outputs and the decode-pass signals apart).
"""

from __future__ import annotations

import hashlib
import os

import cv2
import numpy as np

from reelbeam.models.transnetv2 import TransNetV2ModelHandler, stitch_window_predictions
from reelbeam.schemas.records import VideoRef
from reelbeam.transforms.decode import FrameIndexConsumer, decode_video
from reelbeam.transforms.frame_difference import FrameDifferenceConsumer, concat_chunks
from reelbeam.transforms.scenes import ColorHistogramConsumer
from reelbeam.transforms.shots import TransNetV2WindowConsumer

MODEL_VERSION = 1
DIFF_VERSION = 6  # bump when reelbeam/transforms/frame_difference.py's signals change


class _ReferenceContentConsumer:
    """PySceneDetect's content value: mean |dH|, |dS|, |dV| / 3 on the frame resized to width 256
    (its default effective width), and the same on TransNetV2's 48x27 frame."""

    def start(self, info):
        self._prev = None
        self._prev_small = None
        self.values, self.small_values = [], []
        w = info.width
        self._size = (256, max(1, round(info.height * 256 / w))) if w > 256 else (w, info.height)
        return ()

    def consume(self, view):
        hsv = cv2.cvtColor(view.bgr_full(), cv2.COLOR_BGR2HSV) if self._size == (view.frame.width, view.frame.height) else cv2.cvtColor(
            cv2.resize(view.bgr_full(), self._size, interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2HSV)
        small = cv2.cvtColor(np.ascontiguousarray(view.rgb(48, 27, "AREA")), cv2.COLOR_RGB2HSV)
        self.values.append(0.0 if self._prev is None else float(np.abs(hsv.astype(np.int16) - self._prev).mean()))
        self.small_values.append(0.0 if self._prev_small is None else float(np.abs(small.astype(np.int16) - self._prev_small).mean()))
        self._prev, self._prev_small = hsv.astype(np.int16), small.astype(np.int16)
        return ()

    def finish(self):
        return ()


def _key(path: str, version: str) -> str:
    st = os.stat(path)
    return hashlib.sha256(f"{version}|{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]


def _cached(path: str, cache_dir: str, version: str, compute) -> dict[str, np.ndarray]:
    os.makedirs(cache_dir, exist_ok=True)
    cache = os.path.join(cache_dir, f"{os.path.basename(path)}.{_key(path, version)}.npz")
    if os.path.exists(cache):
        with np.load(cache) as z:
            return dict(z)
    out = compute()
    np.savez(cache + ".tmp.npz", **out)
    os.replace(cache + ".tmp.npz", cache)
    return out


def _model_signals(path: str, model, precision: str = "fp32") -> dict[str, np.ndarray]:
    handler = TransNetV2ModelHandler(device="cpu", heads=2, precision=precision)
    if precision != "fp32":
        model = handler.load_model()  # bf16 runs the fp32 model under autocast; int8 is quantized
    probs, hists, n, fps = {}, [], 0, 25.0
    ref = _ReferenceContentConsumer()
    consumers = [FrameIndexConsumer(), TransNetV2WindowConsumer("AREA"), ColorHistogramConsumer(), ref]
    for tag, value in decode_video(VideoRef("bench", path, os.path.getsize(path)), consumers):
        if tag == "windows":
            (_, idx), window = value
            probs[idx] = handler.run_inference([window], model)[0].inference
        elif tag == "per_video":
            kind, payload = value.kind, value.payload
            if kind == "color_hist":
                hists.append(payload["hist"])
            elif kind == "meta":
                n = payload["frame_count"]
                fps = payload["avg_fps"] or fps
    p = stitch_window_predictions([probs[i] for i in range(len(probs))], n)
    out = {"single": p[:, 0], "many_hot": p[:, 1], "hist": np.concatenate(hists), "fps": np.float64(fps), "frames": np.int64(n)}
    out["content_hsv256"] = np.asarray(ref.values, np.float32)
    out["content_hsv48x27"] = np.asarray(ref.small_values, np.float32)
    return out


OTHER_GRIDS = (128, 256)  # grid widths compared with the default (content value only)


def _difference_signals(path: str) -> dict[str, np.ndarray]:
    """The default consumer's signals, and the content value (diff_luma + diff_chroma) on other
    grid widths as 'content_grid{width}'; one decode pass."""
    consumers = [FrameDifferenceConsumer(), *(FrameDifferenceConsumer(grid_width=g) for g in OTHER_GRIDS)]
    chunks: list[list] = [[] for _ in consumers]
    outs = decode_video(VideoRef("bench", path, os.path.getsize(path)), consumers)
    # Consumers emit in their order (decode_video calls them in turn): a chunk's rank among those
    # starting at the same frame says which consumer it came from.
    seen: dict = {}
    for t, v in outs:
        if t == "per_video" and v.kind == "frame_difference":
            start = int(v.payload["frame_idx"][0])
            k = seen.get(start, 0)
            seen[start] = k + 1
            chunks[k].append(v.payload)
    out = {k: v for k, v in concat_chunks(chunks[0]).items() if k != "frame_idx"}
    for g, ch in zip(OTHER_GRIDS, chunks[1:]):
        c = concat_chunks(ch)
        out[f"content_grid{g}"] = c["diff_luma"] + c["diff_chroma"]
    return out


def video_signals(path: str, model, cache_dir: str, precision: str = "fp32") -> dict[str, np.ndarray]:
    """The signals with TransNetV2 in `precision` (fp32: the reference's numbers)."""
    key = f"model{MODEL_VERSION}" + ("" if precision == "fp32" else f"-{precision}")
    out = _cached(path, cache_dir, key, lambda: _model_signals(path, model, precision))
    out.update(_cached(path, cache_dir, f"diff{DIFF_VERSION}", lambda: _difference_signals(path)))
    return out
