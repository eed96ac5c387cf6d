"""Video summaries from per-frame scores, as ModelScope's CLIP-It and PGL-SUM pipelines make them
(reference/cmd_clipit.md B.5): KTS shots on the sampled frames' features, frame scores spread to
source frames, a shot score per shot, an exact 0/1 knapsack under a length budget, and the
ModelScope output `[{'frame': [s, e], 'timestamps': [...]}]`. Pure numpy; no Beam, no torch.

Exactness: with the same inputs every function here returns the reference's result bit for bit,
tie-breaking included (the tests compare against literal copies of the reference code on many
random cases). That is why some choices look odd: the kernel is a float32 product, its double
cumulative sum is taken in float32, frame scores are float32 and a shot's score is the float32
`mean()` of its frames, as in the reference.

KTS (Potapov et al., "Category-specific video summarization", ECCV 2014; code of
TatsuyaShirakawa/KTS as ModelScope copies it):
- `cpd_nonlin` finds, for each number of change points k <= ncp, the segmentation minimising the
  summed within-segment kernel scatter (dynamic programme, backtracking); `cpd_auto` picks
  m = argmin_k scatter_k / N + vmax * k / (2N) * (log(N / k) + 1) and returns its change points.
- The reference loops over (k, l) in Python (ModelScope) or Cython (KTS), calling `cpd_nonlin`
  twice. Here each row k of the programme is one numpy pass over column blocks of the scatter
  matrix (with invalid (t, l) pairs set to +inf once), and one pass with backtracking serves both
  the model choice and the change points (row k depends only on row k - 1, so the first k rows are
  the same whatever the largest k is).
- Cost: time O(ncp * N^2 / 2), memory ~18 N^2 bytes (the scatter matrix in float64, the kernel
  and its cumulative sums in float32). On this project's 2-core machine (bench/clip.py,
  docs/BENCHMARKS.md): N = 1000 sampled frames (8 min of 30 fps video at 1 frame in 15) ~0.3 s
  and 24 MB; N = 4000 (the CLIP-It model's limit, 33 min) ~4 s and 0.28 GB; 4-7x less CPU time
  than ModelScope's loop. Above `KTS_BLOCK` sampled frames (default 4000) the sequence is cut
  into equal consecutive blocks of at most that length, KTS runs on each block (ncp =
  min(len - 1, 120) per block, so more change points overall, as a longer video needs) and each
  block start is a change point: time and memory then grow linearly. Up to the block length the
  result is exactly the reference's.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from reelbeam.schemas.rows import l2_normalize_rows  # the features' normalisation (imported from here too)

SAMPLE_STRIDE = 15  # the reference keeps source frames 0, 15, 30, ... whatever the fps
KTS_MAX_CHANGE_POINTS = 120  # ncp = min(N - 1, 120)
KTS_VMAX = 2.2 / 4.0  # 0.55
KTS_BLOCK = 4000  # sampled frames; the CLIP-It model's n_position, ~33 min at 30 fps
DEFAULT_BUDGET = 0.15  # summary length: 15% of the video's frames
_ROW_BLOCK = 256  # rows of the scatter matrix built per numpy pass (bounds temporaries)
_COLUMN_BLOCK = 64  # columns of the dynamic programme per numpy pass (its temporaries stay in cache)


# ------------------------------------------------------------------------------------------------
# KTS


def scatter_costs(K: np.ndarray, lmin: int = 1, lmax: int = 100000) -> np.ndarray:
    """cost[j, t] = kernel scatter of the segment of frames t..j (inclusive): KTS's
    `calc_scatters(K)[t, j]`, transposed so that the dynamic programme reduces along contiguous
    rows, with +inf where a last segment [t, j] breaks lmin / lmax (so also for t > j).

    [n, n] kernel -> [n, n] float64. The cumulative sums of K are taken in K's dtype (float32 for
    the reference's float32 features) and every entry is computed with the reference's operations
    in the reference's order, so the values are its values bit for bit. Built in row blocks: the
    temporaries stay O(n * block)."""
    n = K.shape[0]
    K1 = np.cumsum([0] + list(np.diag(K)))
    K2 = np.zeros((n + 1, n + 1), dtype=K.dtype)
    K2[1:, 1:] = np.cumsum(np.cumsum(K, 0), 1)
    d = np.diag(K2).astype(np.float64)
    cost = np.full((n, n), np.inf)
    for j0 in range(0, n, _ROW_BLOCK):
        j1 = min(j0 + _ROW_BLOCK, n)
        t1 = min(j1 + 1 - lmin, n)  # t <= j + 1 - lmin: only the lower triangle is ever used
        if t1 <= 0:
            continue
        diff = np.arange(j0, j1)[:, None] - np.arange(t1)[None, :]  # j - t
        # ((d[j+1] + d[t]) - K2[j+1, t] - K2[t, j+1]) / (j - t + 1), then K1[j+1] - K1[t] - that
        w = d[j0 + 1 : j1 + 1, None] + d[None, :t1]
        w -= K2[j0 + 1 : j1 + 1, :t1]
        w -= K2[:t1, j0 + 1 : j1 + 1].T
        w /= diff + 1 + (diff == -1)
        block = K1[j0 + 1 : j1 + 1, None] - K1[None, :t1]
        block -= w
        block[(diff < lmin - 1) | (diff > lmax - 1)] = np.inf
        cost[j0:j1, :t1] = block
    return cost


def cpd_nonlin(
    K: np.ndarray, ncp: int, lmin: int = 1, lmax: int = 100000, backtrack: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Change points for exactly `ncp` changes minimising the summed scatter (KTS `cpd_nonlin`).

    K: [n, n] kernel. Returns (cps, scores): cps int [ncp], sample indices where a new segment
    starts (a segment is [cps[i], cps[i+1])); scores float64 [ncp + 1], the minimal objective for
    0..ncp change points (inf where infeasible). Ties go to the earliest change point, as in KTS.
    """
    scores, prev = _kts_programme(K, int(ncp), lmin, lmax, backtrack)
    cps = _backtrack(prev, int(ncp), K.shape[0]) if backtrack else np.zeros(int(ncp), dtype=int)
    return cps, scores


def cpd_auto(
    K: np.ndarray, ncp: int, vmax: float, lmin: int = 1, lmax: int = 100000, desc_rate: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """KTS `cpd_auto`: the number of change points m <= ncp minimising
    scores[m] / N + vmax * m / (2 N') * (log(N' / m) + 1), N' = N * desc_rate, and its change points.

    Returns (cps int [m], costs float64 [ncp + 1]), as TatsuyaShirakawa/KTS (ModelScope's copy
    returns the objective values instead of the costs; the pipeline uses only cps).
    """
    m = int(ncp)
    scores, prev = _kts_programme(K, m, lmin, lmax, backtrack=True)
    n = K.shape[0]
    n2 = n * desc_rate
    penalties = np.zeros(m + 1)
    k = np.arange(1, m + 1)
    penalties[1:] = (vmax * k / (2.0 * n2)) * (np.log(float(n2) / k) + 1)
    costs = scores / float(n) + penalties
    m_best = int(np.argmin(costs))
    return _backtrack(prev, m_best, n), costs


def _kts_programme(
    K: np.ndarray, m: int, lmin: int, lmax: int, backtrack: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Rows 0..m of KTS's table I[k, l] (best objective for k change points over the first l
    frames). Returns (I[:, n] with values > 1e99 as inf, prev[k, l] = best last change point)."""
    n, n1 = K.shape
    if n != n1:
        raise ValueError(f"KTS needs a square kernel matrix, got {K.shape}")
    if not (m + 1) * lmin <= n <= (m + 1) * lmax or not 1 <= lmin <= lmax:
        raise ValueError(
            f"KTS: {m} change points with segment lengths in [{lmin}, {lmax}] do not fit {n} frames"
        )
    cost = scatter_costs(K, lmin, lmax)
    row = np.full(n + 1, 1e101)
    row[lmin:lmax] = cost[lmin - 1 : lmax - 1, 0]
    scores = np.empty(m + 1)
    scores[0] = row[n]
    prev = np.zeros((m + 1, n + 1), dtype=int) if backtrack else np.zeros((1, 1), dtype=int)
    for k in range(1, m + 1):
        new = np.full(n + 1, 1e101)
        for a in range((k + 1) * lmin, n + 1, _COLUMN_BLOCK):
            b = min(a + _COLUMN_BLOCK, n + 1)  # columns l in [a, b)
            t0, t1 = max(k * lmin, a - lmax), b - lmin  # candidate t in [t0, t1)
            c = cost[a - 1 : b - 1, t0:t1] + row[None, t0:t1]
            best = np.argmin(c, axis=1)
            new[a:b] = c[np.arange(b - a), best]
            if backtrack:
                prev[k, a:b] = best + t0
        row = new
        scores[k] = row[n]
    scores[scores > 1e99] = np.inf
    return scores, prev


def _backtrack(prev: np.ndarray, m: int, n: int) -> np.ndarray:
    cps = np.zeros(m, dtype=int)
    cur = n
    for k in range(m, 0, -1):
        cps[k - 1] = prev[k, cur]
        cur = cps[k - 1]
    return cps


def kts_change_points(
    features: np.ndarray,
    max_change_points: int = KTS_MAX_CHANGE_POINTS,
    vmax: float = KTS_VMAX,
    block: int | None = KTS_BLOCK,
    normalize: bool = True,
) -> np.ndarray:
    """Sampled-frame features [N, D] -> int [m] change points (sample indices, increasing, > 0),
    as ModelScope's `get_change_points`: linear kernel X X^T in float32 on the L2-normalised rows,
    `cpd_auto(ncp=min(N - 1, max_change_points), vmax, lmin=1)`.

    normalize=False when the rows are already normalised with `l2_normalize_rows` (normalising
    twice can move the last bits). Above `block` frames (None: never) see the module docstring.
    """
    if len(features) == 0:
        raise ValueError("KTS needs at least one frame feature")
    x = l2_normalize_rows(features) if normalize else np.asarray(features, np.float32)
    n = len(x)
    if block is None or n <= block:
        K = np.dot(x, x.T)
        return cpd_auto(K, ncp=min(n - 1, max_change_points), vmax=vmax, lmin=1)[0]
    blocks = -(-n // block)
    starts = [n * i // blocks for i in range(blocks + 1)]
    cps: list[int] = []
    for s, e in itertools.pairwise(starts):
        if s > 0:
            cps.append(s)
        cps.extend(int(c) + s for c in kts_change_points(x[s:e], max_change_points, vmax, None, False))
    return np.asarray(cps, dtype=int)


# ------------------------------------------------------------------------------------------------
# Shots, scores, knapsack


def shots_from_change_points(change_points: Sequence[int], picks: Sequence[int], n_frames: int) -> np.ndarray:
    """Change points in sampled frames -> shots [S, 2], inclusive source-frame spans.

    Each change point c becomes source frame picks[c] (the reference multiplies by 15, which is
    picks[c] when every 15th frame is sampled); with 0 prepended and n_frames - 1 appended, shot i
    is [cp_i, cp_{i+1} - 1] and the last one [cp_last, n_frames - 1], as the reference.
    """
    picks = np.asarray(picks)
    bounds = np.concatenate(([0], picks[np.asarray(change_points, dtype=int)], [n_frames - 1])).astype(
        np.int64
    )
    shots = np.stack([bounds[:-1], bounds[1:] - 1], axis=1)
    shots[-1, 1] = bounds[-1]
    return shots


def split_long_segments(segments: np.ndarray, capacity: int) -> np.ndarray:
    """Segments [S, 2] (inclusive frame spans) with each one longer than `capacity` frames cut into
    the fewest near-equal consecutive pieces of at most `capacity` frames, so that the knapsack can
    keep any part of the video: [S', 2]. capacity < 1 leaves them as they are (nothing fits)."""
    segments = np.asarray(segments, dtype=np.int64).reshape(-1, 2)
    if capacity < 1:
        return segments
    out = []
    for s, e in segments:
        n = int(e - s + 1)
        pieces = -(-n // capacity)
        edges = s + (np.arange(pieces + 1) * n) // pieces
        out += [(int(a), int(b) - 1) for a, b in itertools.pairwise(edges)]
    return np.asarray(out, dtype=np.int64).reshape(-1, 2)


def shot_segments(shot_spans: Sequence[tuple[int, int]], n_frames: int, budget: float) -> np.ndarray:
    """The pipeline's shots (inclusive [start, end] spans, in order, covering the video) as summary
    segments: each shot longer than the knapsack's capacity (int(n_frames * budget) frames, as
    `summarize` computes it) split by `split_long_segments`. [S', 2]."""
    spans = np.asarray(sorted((int(a), int(b)) for a, b in shot_spans), dtype=np.int64).reshape(-1, 2)
    if not len(spans):
        raise ValueError("no shots to make summary segments of")
    if spans[0, 0] != 0 or spans[-1, 1] != n_frames - 1 or np.any(spans[1:, 0] != spans[:-1, 1] + 1):
        raise ValueError(f"the shots do not partition the video's {n_frames} frames: {spans.tolist()[:5]}...")
    return split_long_segments(spans, int(n_frames * budget))


def spread_scores(scores: Sequence[float], picks: Sequence[int], n_frames: int) -> np.ndarray:
    """Per-sampled-frame scores -> float32 [n_frames]: sampled frame i's score covers source
    frames [picks[i], picks[i + 1]) and the last one runs to the end (frames before picks[0], if
    any, score 0), as the reference's `generate_summary`."""
    out = np.zeros(n_frames, dtype=np.float32)
    positions = np.asarray(picks).astype(np.int32)
    if positions[-1] != n_frames:
        positions = np.concatenate([positions, [n_frames]])
    scores = np.asarray(scores)
    for i in range(len(positions) - 1):
        out[positions[i] : positions[i + 1]] = 0 if i >= len(scores) else scores[i]
    return out


def shot_scores(frame_scores: np.ndarray, shots: np.ndarray) -> np.ndarray:
    """float64 [S]: each shot's mean frame score, the float32 `mean()` the reference takes."""
    return np.array([frame_scores[s : e + 1].mean().item() for s, e in shots], dtype=np.float64)


def knapsack(capacity: int, weights: Sequence[int], values: Sequence[float]) -> list[int]:
    """Exact 0/1 knapsack: the indices (increasing) of the items of summed weight <= capacity with
    the largest summed value. The reference's dynamic programme row by row (one numpy op per
    item; float64 sums in the same order, so its choice among equal-valued sets is kept)."""
    n = len(weights)
    if capacity < 0:
        raise ValueError(f"knapsack capacity must be >= 0, got {capacity}")
    if any(int(w) < 1 for w in weights):
        raise ValueError(f"knapsack weights must be >= 1 frame, got {list(weights)}")
    table = np.zeros((n + 1, capacity + 1))
    for i in range(1, n + 1):
        w, v = int(weights[i - 1]), float(values[i - 1])
        table[i] = table[i - 1]
        if w <= capacity:
            table[i, w:] = np.maximum(v + table[i - 1, : capacity + 1 - w], table[i - 1, w:])
        table[i, 0] = 0
    selected = []
    c = capacity
    for i in range(n, 0, -1):
        if table[i, c] != table[i - 1, c]:
            selected.append(i - 1)
            c -= int(weights[i - 1])
    return selected[::-1]


class Summary(NamedTuple):
    """shots: [S, 2] inclusive source-frame spans; shot_scores: [S]; selected: indices into shots;
    frames: int8 [n_frames] 0/1 (1 = in the summary); capacity: the knapsack's frame budget."""

    shots: np.ndarray
    shot_scores: np.ndarray
    selected: list[int]
    frames: np.ndarray
    capacity: int


def summarize(
    shots: np.ndarray,
    scores: Sequence[float],
    picks: Sequence[int],
    n_frames: int,
    budget: float = DEFAULT_BUDGET,
) -> Summary:
    """The reference's `generate_summary` for one video: sampled-frame scores spread to source
    frames, shot scores (means), and the shots a 0/1 knapsack picks with capacity
    int((last shot end + 1) * budget) frames (15%: the reference's fixed budget)."""
    if not 0.0 < budget <= 1.0:
        raise ValueError(f"summary budget must be in (0, 1], got {budget}")
    shots = np.asarray(shots, dtype=np.int64)
    frame_scores = spread_scores(scores, picks, n_frames)
    values = shot_scores(frame_scores, shots)
    lengths = [int(e - s + 1) for s, e in shots]
    total = int(shots[-1][1]) + 1
    capacity = int(total * budget)
    selected = knapsack(capacity, lengths, values)
    frames = np.zeros(total, dtype=np.int8)
    for i in selected:
        frames[shots[i][0] : shots[i][1] + 1] = 1
    return Summary(shots, values, selected, frames, capacity)


# ------------------------------------------------------------------------------------------------
# Output


def summary_segments(frames: np.ndarray) -> list[list[int]]:
    """0/1 frame vector -> maximal runs of 1s as inclusive [start, end] frame spans."""
    f = np.concatenate(([0], np.asarray(frames) != 0, [0])).astype(np.int8)
    edges = np.flatnonzero(np.diff(f))
    return [[int(s), int(e) - 1] for s, e in zip(edges[::2], edges[1::2])]


def timestamp(seconds: float) -> str:
    """'HH:MM:SS.mmm' as the reference formats it ('%02d:%02d:%06.3f')."""
    m, s = divmod(seconds, 60)
    h, m = divmod(m, 60)
    return f"{int(h):02d}:{int(m):02d}:{s:06.3f}"


def modelscope_output(frames: np.ndarray, fps: float) -> list[dict]:
    """The ModelScope pipelines' output: one {'frame': [s, e], 'timestamps': [t_s, t_e]} per run
    of summary frames, times = frame / fps."""
    return [
        {"frame": seg, "timestamps": [timestamp(seg[0] / float(fps)), timestamp(seg[1] / float(fps))]}
        for seg in summary_segments(frames)
    ]
