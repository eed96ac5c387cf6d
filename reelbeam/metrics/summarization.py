"""Video summaries against TVSum / SumMe user annotations: F-score, rank correlations, random baseline.

- F-score (`summary_fscore`): the reference's metric (ModelScope `metrics/video_summarization_metric.py`
  `evaluate_summary`, from PGL-SUM; reference/cmd_clipit.md B.7). The predicted 0/1 frame summary S
  and each user's 0/1 summary G are zero-padded to a common length; overlap = S AND G; precision =
  |overlap| / |S|, recall = |overlap| / |G|, F = 2PR / (P + R) (0 when P + R = 0); reduced over
  users by the mean (`'avg'`, what ModelScope uses for every dataset and PGL-SUM for TVSum) or the
  max (`'max'`, PGL-SUM's convention for SumMe). Returned as a fraction: the reference multiplies by
  100. Where the reference divides 0 by 0 (an empty summary, or an empty user summary) and gets NaN,
  this returns 0 for that user.
- The summary the reference's protocol scores (`reference_summary`): `generate_summary` of the same
  file: frame scores sampled at `positions` are held until the next position, each shot of the
  dataset's segmentation (the h5 `change_points`, KTS) scores the mean of its frames, and an exact
  0/1 knapsack keeps shots within `int(0.15 * (last frame + 1))` frames, maximising the summed shot
  scores (the reference's table and backtracking, so ties resolve the same way).
- Rank correlation (`rank_correlation`), Otani et al., "Rethinking the evaluation of video
  summaries", CVPR 2019 (mayu-ot/rethinking-evs, notebook "rank order statistics"): Kendall's tau
  (`scipy.stats.kendalltau` of `rankdata(-x)` and `rankdata(-y)`, tau-b) or Spearman's rho
  (`scipy.stats.spearmanr`) of the predicted frame scores against each user's frame scores,
  averaged over users. On TVSum the user scores are the 1-5 ratings of `ydata-tvsum50-anno.tsv`.
  Otani et al. showed random summaries reach state-of-the-art F-scores, so the correlation is what
  tells a scorer from chance (random scores give tau and rho near 0).
- Random baseline (`random_summary_baseline`): uniform random scores (numpy `default_rng(seed)`,
  seeds 0..n-1) made into summaries the same way as the method's (the reference protocol on the
  given shots, or any `summarize` callable, e.g. the pipeline's own KTS + knapsack), F-scored
  against the users, mean and standard deviation over seeds.

Truth readers (`read_summary_truth`), returning `{video: SummaryTruth}`:

- `h5`: the PGL-SUM / DSNet / ModelScope dataset files (`eccv16_dataset_tvsum_google_pool5.h5`,
  `..._summe_...`): per video key a group with `user_summary` [users, frames], `n_frames`,
  `change_points` [shots, 2], `picks`, and `video_name` and `user_scores` where present. Needs h5py
  (`pip install reelbeam[eval]`).
- `tvsum-tsv`: TVSum's `ydata-tvsum50-anno.tsv` (no header; `video_id<TAB>category<TAB>s1,s2,...`,
  one row per user with a 1-5 score per frame): user scores only.
- `json`: `{"<video>": {"user_summary": [[0, 1, ...], ...], "user_scores": [[...], ...],
  "n_frames": N, "change_points": [[start, end], ...], "picks": [...]}}`; `user_summary` or
  `user_scores` required, the rest optional.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable

import numpy as np

from reelbeam.metrics.truth import TruthFormatError, read_json, text_lines

SUMMARY_FORMATS = ("h5", "tvsum-tsv", "json")
BUDGET = 0.15  # fraction of the frames a summary may keep, as the reference


def summary_fscores(summary, user_summaries) -> np.ndarray:
    """F-score of a 0/1 frame summary against each row of `user_summaries` [users, frames]."""
    users = np.atleast_2d(np.asarray(user_summaries) > 0)
    s = np.asarray(summary).ravel() > 0
    n = max(len(s), users.shape[1])
    s = np.pad(s, (0, n - len(s)))
    users = np.pad(users, ((0, 0), (0, n - users.shape[1])))
    overlap = (users & s).sum(1).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(s.sum() > 0, overlap / max(s.sum(), 1), 0.0)
        r = np.where(users.sum(1) > 0, overlap / np.maximum(users.sum(1), 1), 0.0)
        return np.where(p + r > 0, 2 * p * r / np.where(p + r > 0, p + r, 1.0), 0.0)


def summary_fscore(summary, user_summaries, reduce: str = "avg") -> float:
    """The reference's F-score (module doc), in [0, 1]; reduce 'avg' (TVSum) or 'max' (SumMe, PGL-SUM)."""
    if reduce not in ("avg", "max"):
        raise ValueError(f"reduce must be 'avg' or 'max', got {reduce!r}")
    f = summary_fscores(summary, user_summaries)
    return float(f.mean() if reduce == "avg" else f.max())


def frame_scores(scores, positions, n_frames: int) -> np.ndarray:
    """Scores of sampled frames at `positions` -> one score per frame: each held until the next
    position, the last until `n_frames` (the reference's upsampling; frames before the first
    position and positions without a score get 0)."""
    scores = np.asarray(scores, np.float32).ravel()
    pos = np.asarray(positions, np.int64).ravel()
    if len(pos) == 0 or pos[-1] != n_frames:
        pos = np.r_[pos, n_frames]
    out = np.zeros(n_frames, np.float32)
    for i in range(min(len(pos) - 1, len(scores))):
        out[pos[i] : pos[i + 1]] = scores[i]
    return out


def knapsack(capacity: int, weights, values) -> list[int]:
    """Exact 0/1 knapsack: indices of the items kept, as the reference's dynamic programme and
    backtracking (an item is kept where taking it strictly raised the best value)."""
    w = np.asarray(weights, np.int64)
    v = np.asarray(values, np.float64)
    best = np.zeros(capacity + 1, np.float64)
    took = np.zeros((len(w), capacity + 1), bool)
    for i in range(len(w)):
        if w[i] <= capacity:
            cand = np.full_like(best, -np.inf)
            cand[w[i]:] = v[i] + best[: capacity + 1 - w[i]]
            new = np.maximum(best, cand)
            took[i] = new != best
            best = new
    kept, c = [], capacity
    for i in range(len(w) - 1, -1, -1):
        if took[i, c]:
            kept.append(i)
            c -= int(w[i])
    return kept[::-1]


def reference_summary(shots, scores, n_frames: int, positions=None, budget: float = BUDGET) -> np.ndarray:
    """The reference protocol's 0/1 summary (module doc) over frames 0 .. shots[-1][1].

    shots: [k, 2] inclusive frame spans (the dataset's segmentation). scores: per sampled frame at
    `positions` (default: one per frame)."""
    shots = np.asarray(shots, np.int64).reshape(-1, 2)
    positions = np.arange(n_frames) if positions is None else positions
    f = frame_scores(scores, positions, n_frames)
    lengths = shots[:, 1] - shots[:, 0] + 1
    values = [float(f[s : e + 1].mean()) for s, e in shots]
    length = int(shots[-1, 1]) + 1
    summary = np.zeros(length, np.int8)
    for i in knapsack(int(length * budget), lengths, values):
        summary[shots[i, 0] : shots[i, 1] + 1] = 1
    return summary


def rank_correlations(scores, user_scores, method: str = "kendall") -> np.ndarray:
    """Kendall's tau or Spearman's rho of frame `scores` [frames] with each user's [users, frames]."""
    from scipy import stats  # a second to import: only when correlations are asked for

    users = np.atleast_2d(np.asarray(user_scores, np.float64))
    x = np.asarray(scores, np.float64).ravel()
    if users.shape[1] != len(x):
        raise ValueError(f"scores cover {len(x)} frames, user scores {users.shape[1]}")
    if method == "kendall":
        return np.array([stats.kendalltau(stats.rankdata(-u), stats.rankdata(-x))[0] for u in users])
    if method == "spearman":
        return np.array([stats.spearmanr(u, x)[0] for u in users])
    raise ValueError(f"method must be 'kendall' or 'spearman', got {method!r}")


def rank_correlation(scores, user_scores, method: str = "kendall") -> float:
    """Otani et al.'s rank correlation (module doc): the mean over users."""
    return float(np.mean(rank_correlations(scores, user_scores, method)))


def random_summary_baseline(
    user_summaries,
    n_frames: int,
    *,
    shots=None,
    positions=None,
    summarize: Callable[[np.ndarray], np.ndarray] | None = None,
    seeds: Iterable[int] = range(100),
    reduce: str = "avg",
) -> dict:
    """F-score of random scores made into summaries like the method's (module doc).

    Give `shots` ([k, 2], the reference protocol with `reference_summary`) or `summarize` (scores
    -> 0/1 frame summary). Scores are drawn per sampled frame (`positions`, default every frame).
    Returns {'mean', 'std', 'seeds'}."""
    if (shots is None) == (summarize is None):
        raise ValueError("give exactly one of shots= and summarize=")
    n_scores = n_frames if positions is None else len(positions)
    f = []
    for seed in seeds:
        scores = np.random.default_rng(seed).random(n_scores)
        summary = summarize(scores) if summarize else reference_summary(shots, scores, n_frames, positions)
        f.append(summary_fscore(summary, user_summaries, reduce))
    return {"mean": float(np.mean(f)), "std": float(np.std(f)), "seeds": len(f)}


# ------------------------------------------------------------------------------------------------
# Ground-truth readers


@dataclasses.dataclass(frozen=True)
class SummaryTruth:
    """One video's annotations; any field may be None where the source lacks it.

    user_summary: [users, frames] 0/1. user_scores: [users, frames] importance scores.
    change_points: [shots, 2] inclusive frame spans. picks: sampled frame positions."""

    n_frames: int | None = None
    user_summary: np.ndarray | None = None
    user_scores: np.ndarray | None = None
    change_points: np.ndarray | None = None
    picks: np.ndarray | None = None


def h5_videos(path: str, error: type[Exception], what: str = "ground truth"):
    """(video name, get) for every group of a TVSum / SumMe / PGL-SUM-style .h5 file, where
    `get(field)` is the group's array or None and the name is the group's `video_name` (else its
    key). h5py missing or an unreadable file raise `error` in one line."""
    try:
        import h5py
    except ImportError:
        raise error(f"{path}: reading .h5 {what} needs h5py (pip install 'reelbeam[eval]')") from None
    try:
        with h5py.File(path, "r") as f:
            for key in f:
                g = f[key]

                def get(name, g=g):
                    return np.asarray(g[name][()]) if name in g else None

                name = get("video_name")
                name = name.item().decode() if name is not None and isinstance(name.item(), bytes) else key
                yield str(name), key, get
    except OSError as e:
        raise error(f"{path}: not a readable HDF5 file ({e})") from None


def _read_h5(path: str) -> dict[str, SummaryTruth]:
    out = {}
    for name, key, get in h5_videos(path, TruthFormatError):
        if get("user_summary") is None:
            raise TruthFormatError(f"{path}: group {key!r} has no 'user_summary'")
        n = get("n_frames")
        out[name] = SummaryTruth(
            n_frames=int(n) if n is not None else None,
            user_summary=get("user_summary"),
            user_scores=get("user_scores"),
            change_points=get("change_points"),
            picks=get("picks"),
        )
    return out


def _read_tvsum_tsv(path: str) -> dict[str, SummaryTruth]:
    rows: dict[str, list] = {}
    for n, line in text_lines(path):
        parts = line.split("\t")
        if len(parts) != 3:
            raise TruthFormatError(f"{path}:{n}: expected video_id<TAB>category<TAB>scores, got {len(parts)} fields")
        try:
            rows.setdefault(parts[0], []).append([int(x) for x in parts[2].split(",")])
        except ValueError:
            raise TruthFormatError(f"{path}:{n}: scores must be comma-separated integers") from None
    out = {}
    for vid, users in rows.items():
        if len({len(u) for u in users}) != 1:
            raise TruthFormatError(f"{path}: video {vid!r}: users scored different numbers of frames")
        out[vid] = SummaryTruth(n_frames=len(users[0]), user_scores=np.array(users, np.float64))
    return out


def _read_summary_json(path: str) -> dict[str, SummaryTruth]:
    data = read_json(path)
    if not isinstance(data, dict):
        raise TruthFormatError(f"{path}: expected a JSON object {{video: {{user_summary: [[...]], ...}}}}")
    out = {}
    for vid, v in data.items():
        if not isinstance(v, dict) or not {"user_summary", "user_scores"} & set(v):
            raise TruthFormatError(f"{path}: video {vid!r} needs 'user_summary' or 'user_scores'")

        def arr(name, dtype, v=v):
            return None if v.get(name) is None else np.asarray(v[name], dtype)

        try:
            t = SummaryTruth(
                n_frames=int(v["n_frames"]) if "n_frames" in v else None,
                user_summary=arr("user_summary", np.int8),
                user_scores=arr("user_scores", np.float64),
                change_points=arr("change_points", np.int64),
                picks=arr("picks", np.int64),
            )
        except (TypeError, ValueError) as e:
            raise TruthFormatError(f"{path}: video {vid!r}: {e}") from None
        out[str(vid)] = t
    return out


def read_summary_truth(path: str, fmt: str | None = None) -> dict[str, SummaryTruth]:
    """TVSum / SumMe annotations -> {video: SummaryTruth} (formats in the module doc)."""
    if not os.path.exists(path):
        raise TruthFormatError(f"{path}: no such file or directory")
    if fmt is None:
        for ext, f in ((".h5", "h5"), (".hdf5", "h5"), (".tsv", "tvsum-tsv"), (".json", "json")):
            if path.endswith(ext):
                fmt = f
    readers = {"h5": _read_h5, "tvsum-tsv": _read_tvsum_tsv, "json": _read_summary_json}
    if fmt not in readers:
        raise TruthFormatError(f"{path}: unknown summary ground-truth format {fmt!r}; known: {', '.join(SUMMARY_FORMATS)}")
    return readers[fmt](path)
