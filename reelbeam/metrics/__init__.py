"""Evaluation against ground truth: pure numpy / scipy functions, no Beam.

- `shot_boundaries`: shot-boundary P/R/F1 as TransNetV2's evaluation (frame tolerance, gradual
  transitions as intervals); readers for JSON / CSV / shot lists, RAI and BBC Planet Earth.
- `scene_boundaries`: scene-boundary P/R/F1 within a time tolerance and mIoU of scenes; JSON / CSV
  and BBC Planet Earth scene readers.
- `movienet`: MovieNet scene segmentation metrics exactly as BaSSL (AP, F1, Recall, Recall@3s, mIoU);
  `label318` / `shot_movie318` and JSON readers.
- `summarization`: TVSum / SumMe F-score as the reference, Kendall's tau and Spearman's rho as
  Otani et al., a random-summary baseline; PGL-SUM h5, TVSum TSV and JSON readers.

`reelbeam evaluate` (reelbeam/evaluate.py) runs them on a run's tables; docs/evaluation.md.
"""

from reelbeam.metrics.counts import Counts
from reelbeam.metrics.movienet import MovieTruth, average_precision, movienet_metrics, read_movienet_truth
from reelbeam.metrics.scene_boundaries import match_boundaries, read_scene_truth, scene_ends, scene_miou
from reelbeam.metrics.shot_boundaries import (
    evaluate_transitions,
    match_transitions,
    read_shot_truth,
    scenes_from_predictions,
    transitions_from_cuts,
    transitions_from_shots,
)
from reelbeam.metrics.summarization import (
    SummaryTruth,
    random_summary_baseline,
    rank_correlation,
    read_summary_truth,
    reference_summary,
    summary_fscore,
)
from reelbeam.metrics.truth import TruthFormatError

__all__ = [
    "Counts",
    "MovieTruth",
    "SummaryTruth",
    "TruthFormatError",
    "average_precision",
    "evaluate_transitions",
    "match_boundaries",
    "match_transitions",
    "movienet_metrics",
    "random_summary_baseline",
    "rank_correlation",
    "read_movienet_truth",
    "read_scene_truth",
    "read_shot_truth",
    "read_summary_truth",
    "reference_summary",
    "scene_ends",
    "scene_miou",
    "scenes_from_predictions",
    "summary_fscore",
    "transitions_from_cuts",
    "transitions_from_shots",
]
