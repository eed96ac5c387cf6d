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
    """

    def __init__(self):
        super().__init__(min_batch_size=4, max_batch_size=4)

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
            out.append(PredictionResult(window, probs[25:75]))
        return out
