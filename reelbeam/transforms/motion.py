"""Compressed-domain motion and I-frames (CMD): consumers of the single decode pass.

Motion vectors come from the codec (`flags2=+export_mvs`, frame side data `MOTION_VECTORS`), not
from optical flow. Each vector moves a w x h block between `src` (in the reference frame) and
`dst` (in this frame). Motion here is always forward in time, in pixels per reference distance:
(dst - src) for a past reference, (src - dst) for a future one (B-frames), computed from
`motion_x / motion_scale` for sub-pixel precision.

- `MotionStatsConsumer`: per frame, vector count, mean/max magnitude, fraction of the frame's area
  that moves, mean (dx, dy) and an 8-sector direction histogram -> `frames` columns.
- `MotionMapConsumer`: CMD's 2-channel map for sampled frames -> `motion` rows: each block's
  forward motion painted over its block on a grid of 16-pixel cells (area-weighted where smaller
  blocks share a cell), optionally resized (bilinear, values not rescaled, as CMD), clamped to
  [-10, 10] and divided by 10.
- `IFrameConsumer`: JPEG of every I-frame -> `keyframes` rows of kind 'iframe', as players show it
  (the stream's rotation and pixel aspect applied).

Codecs whose FFmpeg decoder exports no vectors (VP9, AV1, HEVC, intra-only codecs) give null motion
columns and `videos.motion_vectors = 'unavailable'`, never an error.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import cv2
import numpy as np

from reelbeam.transforms.decode import ChunkedConsumer, FrameView, StreamInfo, pict_type_name
from reelbeam.transforms.media import display_size, fit_within, jpeg_bytes, quarter_turns, turned
from reelbeam.transforms.sampling import FrameSampling
from reelbeam.transforms.sidedata import MOTION_VECTOR_DTYPE, MV_CODECS, motion_vectors

GRID = 16
CLAMP = 10.0


@dataclasses.dataclass(frozen=True)
class MotionSampling(FrameSampling):
    """Which frames get a motion map: 'off', 'all' P/B frames, every Nth frame, or N per second."""

    mode: str = "off"
    WHAT: ClassVar[str] = "motion map sampling"


@dataclasses.dataclass(frozen=True)
class MotionMapConfig:
    """sampling: which frames get a map; size: (width, height) to resize maps to, or None for the
    16-pixel grid; dtype: 'int8' (value x 127) or 'float16'."""

    sampling: MotionSampling = MotionSampling("all")
    size: tuple[int, int] | None = None
    dtype: str = "int8"

    def __post_init__(self) -> None:
        if self.dtype not in ("int8", "float16"):
            raise ValueError(f"motion map dtype must be int8 or float16, got {self.dtype!r}")
        if self.size is not None and (self.size[0] < 1 or self.size[1] < 1):
            raise ValueError(f"motion map size must be positive, got {self.size}")

    @staticmethod
    def parse_size(spec: str | None) -> tuple[int, int] | None:
        """'112x112' -> (112, 112); None/'' -> None; raises ValueError saying what is accepted."""
        if not spec:
            return None
        try:
            w, h = (int(x) for x in spec.lower().split("x"))
        except ValueError:
            raise ValueError(f"motion map size must look like 112x112, got {spec!r}") from None
        return w, h


def frame_vectors(view: FrameView) -> np.ndarray | None:
    """The frame's motion vectors as a structured array, or None when it has none."""
    return motion_vectors(view.frame)


def forward_motion(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(dx, dy) float32 forward motion in pixels per vector."""
    scale = np.maximum(vectors["motion_scale"].astype(np.float32), 1.0)
    # motion = src - dst (in 1/scale pixels); forward motion is dst - src for a past reference.
    sign = np.where(vectors["source"] > 0, 1.0, -1.0).astype(np.float32)
    dx = sign * vectors["motion_x"].astype(np.float32) / scale
    dy = sign * vectors["motion_y"].astype(np.float32) / scale
    return dx, dy


def _no_vectors() -> dict:
    return {
        "mv_count": 0, "mv_mean_mag": math.nan, "mv_max_mag": math.nan, "mv_moving_fraction": 0.0,
        "mv_mean_dx": math.nan, "mv_mean_dy": math.nan, "mv_direction_hist": np.zeros(8, np.int32),
    }


def _records(vectors: np.ndarray) -> np.ndarray:
    if vectors.dtype != MOTION_VECTOR_DTYPE:
        vectors = vectors.astype(MOTION_VECTOR_DTYPE)
    return np.ascontiguousarray(vectors)


def motion_stats(vectors: np.ndarray | None, width: int, height: int) -> dict:
    """Per-frame statistics; a frame without vectors (I-frame) has count 0 and null magnitudes.

    Runs on every frame of the decode pass: a compiled loop (numba) over the 40-byte
    AVMotionVector records; `motion_stats_numpy` is the same computation in numpy (the reference
    the tests hold it to, and the fallback where numba is missing).
    """
    n = 0 if vectors is None else len(vectors)
    if n == 0:
        return _no_vectors()
    if _stats_kernel is None:
        return motion_stats_numpy(vectors, width, height)
    vectors = _records(vectors)
    mean_mag, max_mag, area, mean_dx, mean_dy, hist = _stats_kernel(
        vectors.view(np.int32).reshape(n, 10), vectors.view(np.int16).reshape(n, 20), vectors.view(np.uint8).reshape(n, 40)
    )
    return {
        "mv_count": int(n),
        "mv_mean_mag": float(mean_mag),
        "mv_max_mag": float(max_mag),
        "mv_moving_fraction": min(area / float(max(width * height, 1)), 1.0),
        "mv_mean_dx": float(mean_dx),
        "mv_mean_dy": float(mean_dy),
        "mv_direction_hist": hist,
    }


def _make_stats_kernel():
    try:
        import numba
    except ImportError:  # pragma: no cover - numba is a dependency; this keeps a broken install working
        return None

    @numba.njit(cache=True, nogil=True)
    def kernel(i32, i16, u8):  # pragma: no cover - compiled; held equal to motion_stats_numpy by tests
        n = i32.shape[0]
        bidir = False
        for i in range(n):
            if i32[i, 0] > 0:
                bidir = True
                break
        sum_mag = 0.0
        max_mag = np.float32(0.0)
        sum_dx = 0.0
        sum_dy = 0.0
        area = 0
        hist = np.zeros(8, np.int32)
        keys = np.zeros(4, np.int64)  # the last 4 moving blocks (see motion_stats_numpy)
        seen = 0
        eighth = np.float32(np.pi / 8)
        quarter = np.float32(np.pi / 4)
        for i in range(n):
            scale = np.float32(max(i16[i, 16] & 0xFFFF, 1))
            f = (np.float32(1.0) if i32[i, 0] > 0 else np.float32(-1.0)) / scale
            dx = np.float32(i32[i, 6]) * f
            dy = np.float32(i32[i, 7]) * f
            mag = np.float32(math.sqrt(dx * dx + dy * dy))
            sum_mag += mag
            sum_dx += dx
            sum_dy += dy
            max_mag = max(max_mag, mag)
            if mag > 0:
                w = np.int64(u8[i, 4])
                h = np.int64(u8[i, 5])
                counted = True
                if bidir:
                    key = ((np.int64(i16[i, 6]) & 0xFFFF) << 32) | ((np.int64(i16[i, 5]) & 0xFFFF) << 16) | (w << 8) | h
                    for j in range(min(seen, 4)):
                        if keys[j] == key:
                            counted = False
                    keys[seen % 4] = key
                    seen += 1
                if counted:
                    area += w * h
                angle = np.float32(np.arctan2(-dy, dx))
                hist[np.int64(math.floor((angle + eighth) / quarter)) & 7] += 1
        return sum_mag / n, max_mag, area, sum_dx / n, sum_dy / n, hist

    return kernel


def motion_stats_numpy(vectors: np.ndarray | None, width: int, height: int) -> dict:
    """`motion_stats` in numpy: fields read as columns of int32/int16/uint8 views of the records,
    float work in float32."""
    n = 0 if vectors is None else len(vectors)
    if n == 0:
        return _no_vectors()
    vectors = _records(vectors)
    i32 = vectors.view(np.int32).reshape(n, 10)  # source, motion_x, motion_y at 0, 6, 7
    i16 = vectors.view(np.int16).reshape(n, 20)  # dst_x, dst_y at 5, 6; motion_scale at 16
    u8 = vectors.view(np.uint8).reshape(n, 40)  # w, h at 4, 5
    # Forward motion, as forward_motion(): (src - dst) / scale, negated for a past reference.
    future = i32[:, 0] > 0
    bidir = bool(future.any())
    factor = np.where(future, np.float32(1), np.float32(-1)) if bidir else np.full(n, -1, np.float32)
    factor /= np.maximum(i16[:, 16].view(np.uint16), 1).astype(np.float32)
    dx = i32[:, 6].astype(np.float32) * factor
    dy = i32[:, 7].astype(np.float32) * factor
    mag = np.sqrt(dx * dx + dy * dy)
    moving = mag > 0
    # Area that moves, each moving destination block once. Only a frame with future references
    # (B-frames) can name a block twice (bi-prediction); deduplicate just then, on one int64 key.
    w = u8[:, 4][moving].astype(np.int64)
    h = u8[:, 5][moving].astype(np.int64)
    if len(w) > 1 and bidir:
        # FFmpeg exports a macroblock's vectors list by list, each list over the same 1, 2 or 4
        # partitions (ff_print_debug_info2), so a block predicted from both lists repeats within
        # the next 4 entries; among moving vectors too, as masking only shortens the distance.
        x = i16[:, 5][moving].astype(np.int64) & 0xFFFF
        y = i16[:, 6][moving].astype(np.int64) & 0xFFFF
        key = (y << 32) | (x << 16) | (w << 8) | h
        repeat = np.zeros(len(key), np.bool_)
        for d in (1, 2, 3, 4):
            repeat[d:] |= key[d:] == key[:-d]
        w, h = w[~repeat], h[~repeat]
    area = float(w.dot(h))
    # Screen y points down; angles are measured counter-clockwise on screen, sector 0 around +x.
    angle = np.arctan2(-dy[moving], dx[moving])
    sector = np.floor((angle + np.float32(np.pi / 8)) / np.float32(np.pi / 4)).astype(np.int64) & 7
    return {
        "mv_count": int(n),
        "mv_mean_mag": float(mag.mean()),
        "mv_max_mag": float(mag.max()),
        "mv_moving_fraction": min(area / float(max(width * height, 1)), 1.0),
        "mv_mean_dx": float(dx.mean()),
        "mv_mean_dy": float(dy.mean()),
        "mv_direction_hist": np.bincount(sector, minlength=8).astype(np.int32),
    }


def motion_map(vectors: np.ndarray | None, width: int, height: int, grid: int = GRID) -> np.ndarray:
    """float32 [2, ceil(H/grid), ceil(W/grid)] of forward motion (x, y) in pixels, not clamped.

    Each vector's value covers the cells its block overlaps, weighted by overlap area; cells with
    no vector (intra blocks, I-frames) are 0. For 16x16 macroblocks on the 16-pixel grid this is
    exactly CMD's per-pixel painting, sampled once per macroblock.
    """
    gh, gw = -(-height // grid), -(-width // grid)
    out = np.zeros((2, gh, gw), np.float32)
    if vectors is None or len(vectors) == 0:
        return out
    dx, dy = forward_motion(vectors)
    w = vectors["w"].astype(np.int64)
    h = vectors["h"].astype(np.int64)
    x0 = vectors["dst_x"].astype(np.int64) - w // 2
    y0 = vectors["dst_y"].astype(np.int64) - h // 2
    sums = np.zeros((3, gh, gw), np.float64)  # dx*area, dy*area, area
    # Blocks are at most 16x16 in these codecs, so a block overlaps at most 2x2 cells.
    for oy in (0, 1):
        for ox in (0, 1):
            cy = y0 // grid + oy
            cx = x0 // grid + ox
            ov_w = np.minimum(x0 + w, (cx + 1) * grid) - np.maximum(x0, cx * grid)
            ov_h = np.minimum(y0 + h, (cy + 1) * grid) - np.maximum(y0, cy * grid)
            ok = (ov_w > 0) & (ov_h > 0) & (cy >= 0) & (cy < gh) & (cx >= 0) & (cx < gw)
            a = (ov_w * ov_h)[ok].astype(np.float64)
            np.add.at(sums[0], (cy[ok], cx[ok]), dx[ok] * a)
            np.add.at(sums[1], (cy[ok], cx[ok]), dy[ok] * a)
            np.add.at(sums[2], (cy[ok], cx[ok]), a)
    covered = sums[2] > 0
    out[0][covered] = sums[0][covered] / sums[2][covered]
    out[1][covered] = sums[1][covered] / sums[2][covered]
    return out


def encode_map(mmap: np.ndarray, size: tuple[int, int] | None, dtype: str) -> np.ndarray:
    """Resize (bilinear, values kept), clamp to +-10, divide by 10, store as int8 (x127) or float16."""
    if size is not None:
        mmap = np.stack([cv2.resize(c, size, interpolation=cv2.INTER_LINEAR) for c in mmap])
    norm = np.clip(mmap, -CLAMP, CLAMP) / CLAMP
    if dtype == "int8":
        return np.round(norm * 127).astype(np.int8)
    return norm.astype(np.float16)


def decode_map(data: bytes, grid_height: int, grid_width: int, dtype: str) -> np.ndarray:
    """A `motion` row's data back to float32 [2, H, W] in [-1, 1] (the inverse of encode_map)."""
    arr = np.frombuffer(data, np.int8 if dtype == "int8" else np.float16).reshape(2, grid_height, grid_width)
    return arr.astype(np.float32) / (127.0 if dtype == "int8" else 1.0)


class MotionStatsConsumer(ChunkedConsumer):
    """Per-frame motion statistics, emitted in chunks (part 'motion_stats')."""

    part = "motion_stats"

    def begin(self, info: StreamInfo) -> None:
        self._w, self._h = info.width, info.height
        self.available = info.codec in MV_CODECS

    def measure(self, view: FrameView):
        if not self.available:
            return None
        return motion_stats(frame_vectors(view), self._w, self._h)

    def columns(self, values: list) -> dict:
        return {k: np.stack([r[k] for r in values]) if k == "mv_direction_hist" else np.asarray([r[k] for r in values])
                for k in values[0]}


class MotionMapConsumer:
    """CMD motion maps for sampled P/B frames -> ('motion', row)."""

    tags = ("motion",)

    def __init__(self, config: MotionMapConfig = MotionMapConfig()) -> None:
        self._sampling = config.sampling
        self._size = config.size
        self._dtype = config.dtype

    def start(self, info: StreamInfo):
        self._vid = info.video_id
        self._w, self._h = info.width, info.height
        self._fps = info.nominal_fps or 25.0
        self._available = info.codec in MV_CODECS
        self._wanted = self._sampling.picker()
        return ()

    def consume(self, view: FrameView):
        if not self._available or not self._wanted(view.index, view.time):
            return
        vectors = frame_vectors(view)
        if vectors is None:  # I-frames carry no vectors: nothing to learn from
            return
        data = encode_map(motion_map(vectors, self._w, self._h), self._size, self._dtype)
        yield "motion", {
            "video_id": self._vid,
            "frame_idx": view.index,
            "pts_time": view.time,
            "pict_type": pict_type_name(view.frame),
            "src_width": self._w,
            "src_height": self._h,
            "grid_height": int(data.shape[1]),
            "grid_width": int(data.shape[2]),
            "dtype": self._dtype,
            "data": data.tobytes(),
        }

    def finish(self):
        return ()


class IFrameConsumer:
    """JPEG of every I-frame -> ('keyframes', row) with kind 'iframe', as players show it (display
    rotation and pixel aspect applied; longer side at most `max_side` when > 0)."""

    tags = ("keyframes",)

    def __init__(self, max_side: int = 0, quality: int = 90) -> None:
        self._max_side = max_side
        self._quality = quality

    def start(self, info: StreamInfo):
        self._vid = info.video_id
        self._size = fit_within(*display_size(info.width, info.height, info.sample_aspect_ratio), self._max_side)
        return ()

    def consume(self, view: FrameView):
        if int(view.frame.pict_type) != 1:  # PictureType.I
            return
        rgb = turned(view.rgb(*self._size, interpolation="AREA"), quarter_turns(view.frame))
        yield "keyframes", {
            "video_id": self._vid,
            "kind": "iframe",
            "frame_idx": view.index,
            "pts_time": view.time,
            "shot_id": None,
            "shot_idx": None,
            "keyframe_idx": None,
            "width": int(rgb.shape[1]),
            "height": int(rgb.shape[0]),
            "jpeg": jpeg_bytes(rgb, self._quality),
        }

    def finish(self):
        return ()


_stats_kernel = _make_stats_kernel()
