"""Training-free scenes: consecutive shots grouped by colour similarity, with no model weights.

Features come from the single decode pass: `ColorHistogramConsumer` takes the 48x27 RGB frame that
TransNetV2 already uses (shared through `FrameView`'s cache) and counts a 64-bin (4x4x4) RGB
histogram per frame. A shot's descriptor is its frames' mean histogram, L1-normalised.

`group_shots` puts a scene boundary after shot i when no shot among the `window` shots after i
resembles any of the `window` shots up to i (histogram intersection below `threshold`). The
defaults (window 1, threshold 0.5) scored best on bench/scenes.py (docs/BENCHMARKS.md); a window
of 2 or 3 keeps shot / reverse-shot cutting (A B A B) between dissimilar angles inside one scene,
at the cost of merging more on montage-like footage.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from reelbeam.transforms.decode import ChunkedConsumer, FrameView

BINS_PER_CHANNEL = 4
NUM_BINS = BINS_PER_CHANNEL**3
SCENE_METHODS = ("histogram", "none")


@dataclasses.dataclass(frozen=True)
class SceneConfig:
    """method: 'histogram' (training-free, default) or 'none'.
    window: shots compared on each side of a candidate boundary.
    threshold: histogram intersection (0..1) under which two shots are 'different'."""

    method: str = "histogram"
    window: int = 1
    threshold: float = 0.5

    def __post_init__(self) -> None:
        if self.method not in SCENE_METHODS:
            raise ValueError(f"scene method must be one of {SCENE_METHODS}, got {self.method!r}")
        if self.window < 1:
            raise ValueError(f"scene window must be >= 1 shot, got {self.window}")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"scene threshold must be in (0, 1), got {self.threshold}")


def frame_histogram(rgb: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3] -> uint16 [64] counts of a 4x4x4 RGB histogram."""
    q = (rgb >> 6).astype(np.int32)
    idx = (q[..., 0] << 4) | (q[..., 1] << 2) | q[..., 2]
    return np.bincount(idx.ravel(), minlength=NUM_BINS).astype(np.uint16)


def shot_descriptors(frame_hists: np.ndarray, spans: list[tuple[int, int]]) -> np.ndarray:
    """Per-frame histograms [N, 64] and inclusive shot spans -> L1-normalised [S, 64]."""
    out = np.zeros((len(spans), frame_hists.shape[1]), np.float64)
    for i, (s, e) in enumerate(spans):
        h = frame_hists[s : e + 1].astype(np.float64).sum(0)
        out[i] = h / max(h.sum(), 1.0)
    return out


def intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Histogram intersection of L1-normalised rows: [P, B] x [Q, B] -> [P, Q] in [0, 1]."""
    return np.minimum(a[:, None, :], b[None, :, :]).sum(-1)


def boundary_scores(desc: np.ndarray, window: int) -> np.ndarray:
    """score[i] = highest similarity between shots (i-window, i] and (i, i+window]; the last
    shot gets 0 (a scene always ends there)."""
    n = len(desc)
    scores = np.zeros(n)
    for i in range(n - 1):
        left = desc[max(0, i - window + 1) : i + 1]
        right = desc[i + 1 : i + 1 + window]
        scores[i] = intersection(left, right).max()
    return scores


def group_shots(desc: np.ndarray, window: int = 1, threshold: float = 0.5) -> tuple[list[tuple[int, int]], np.ndarray]:
    """Scenes as inclusive (first_shot, last_shot) runs, and each shot's boundary score."""
    n = len(desc)
    if n == 0:
        return [], np.zeros(0)
    scores = boundary_scores(desc, window)
    ends = [i for i in range(n - 1) if scores[i] < threshold] + [n - 1]
    scenes, start = [], 0
    for e in ends:
        scenes.append((start, e))
        start = e + 1
    return scenes, scores


class ColorHistogramConsumer(ChunkedConsumer):
    """Per-frame 64-bin histograms of the 48x27 frames, in chunks (part 'color_hist')."""

    part = "color_hist"

    def __init__(self, scaler: str = "AREA", chunk: int = 8192) -> None:
        super().__init__(chunk)
        self._scaler = scaler

    def measure(self, view: FrameView):
        return frame_histogram(view.rgb(48, 27, self._scaler))

    def columns(self, values: list) -> dict:
        return {"hist": np.stack(values)}
