"""Detection counts and the precision / recall / F1 they give."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Counts:
    """True positives, false positives and false negatives of a one-to-one matching.

    Counts add up (`a + b`), so corpus figures are pooled over videos (micro-averaged), as the
    TransNetV2 evaluation and bench/shots.py do. A ratio whose denominator is 0 is 0, as in
    TransNetV2's `evaluate_scenes` (no detections: precision 0; nothing to find: recall 0).
    """

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def as_dict(self, digits: int | None = 4) -> dict:
        """{'precision', 'recall', 'f1', 'tp', 'fp', 'fn'}; ratios rounded to `digits` (None: exact)."""

        def r(x: float) -> float:
            return x if digits is None else round(x, digits)

        return {
            "precision": r(self.precision),
            "recall": r(self.recall),
            "f1": r(self.f1),
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
        }
