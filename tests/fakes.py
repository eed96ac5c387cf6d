"""Test doubles shared by the test modules."""

import numpy as np
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

BATCHES = []


class FakeModel:
    pass


class FakeTransitionHandler(ModelHandler):
    """Probability 0.9 on a window's frames followed by a large pixel change; records batch sizes.

    It sees only pixels, like the real model; the test videos' cuts are hard cuts between scenes
    of different colours, so a large mean absolute change marks them.

    heads=2 gives [50, 2] per window as TransNetV2ModelHandler(heads=2) does, scripted like the real
    model on a long dissolve (the issue's case): on a frame followed by a small but clear change
    (mean absolute change in (`gradual`, 20]: a dissolve between two still pictures) the
    single-frame head stays at 0.35, under its threshold, while the many-hot head is 0.9; a cut
    marks both heads. Test videos for it keep their pictures still within shots.
    """

    def __init__(self, heads: int = 1, gradual: float = 1.5):
        super().__init__(min_batch_size=4, max_batch_size=4)
        self.heads = heads
        self.gradual = gradual

    def load_model(self):
        return FakeModel()

    def run_inference(self, batch, model, inference_args=None):
        BATCHES.append(len(batch))
        out = []
        for window in batch:
            x = window.astype(np.int16)
            change = np.abs(x[1:] - x[:-1]).mean(axis=(1, 2, 3))
            jump = np.append(change > 20, False)  # marks the last frame before a cut
            probs = np.where(jump, 0.9, 0.01).astype(np.float32)
            if self.heads == 2:
                gradual = np.append((change > self.gradual) & (change <= 20), False)
                single = np.where(gradual, 0.35, probs).astype(np.float32)
                many_hot = np.where(jump | gradual, 0.9, 0.01).astype(np.float32)
                probs = np.stack([single, many_hot], -1)
            out.append(PredictionResult(window, probs[25:75]))
        return out
