"""The improved shot rule: TransNetV2's two heads, confirmed by the decode pass's frame difference.

Pure functions over per-frame arrays of one video (N frames):
- `single`, `many_hot`: TransNetV2's single-frame and many-hot probabilities
  (`TransNetV2ModelHandler(heads=2)`);
- the frame-difference signals of `reelbeam.transforms.frame_difference` (`diff_luma`,
  `diff_chroma`, `luma_mean`, `luma_std`, `corr_lag{k}`).

The rule (`improved_shot_starts`), step by step:
1. A frame is in a transition when either head is above its threshold (`transition_mask`): the
   many-hot head marks every frame of a long dissolve, where the single-frame head can stay at
   0.3-0.4 for its whole length.
2. A weak single-head peak (a local maximum in [`weak_threshold`, `single_threshold`]) becomes a
   cut when the frame difference spikes at that cut (`confirmed_weak_cuts`): the content value of
   the first frame after the peak (or the peak frame) is at least `spike_ratio` times the mean of
   its `spike_window` neighbours on each side and at least `spike_floor` (PySceneDetect's adaptive
   test: a spike against its neighbours, with an absolute floor).
3. Black or blank frames (`dark_frames`: mean luma and its spread both low, or the spread very
   low at any brightness) that a transition enters or leaves gradually (no difference spike there)
   count as part of that transition (`extend_over_dark`), so a fade-out, black, fade-in between two
   shots is one transition, not two cuts around a black "shot"; a hard cut to or from black stays
   a cut.
4. Transition runs are then vetted (`vet_runs`): a run that begins at frame 0 is a fade-in (or a
   black lead-in), not a cut (there is no shot before it), nor is one that lasts to the last frame
   (a fade-out); a run after which the picture is the
   same, up to brightness and contrast, as just before it (`is_same_picture`: correlation of the
   coarse luma across the run >= `same_picture_corr`) is a flash, a brightness ramp or the model
   reacting to motion, not a cut; nor is a gradual change between two blank pictures
   (`is_blank_change`: a grey level drifting).
5. As the reference rule, a shot starts at the first frame after each remaining run, or after the
   run's last frame where the single-frame head is above its threshold, when it has one (where
   the reference puts the cut; the many-hot head and black frames can stretch a run past it).

Issue #27 (hard cases: bench/corpus.py `plan_hard_video`) added four steps, each off with its
ShotRuleConfig field at 0 (or above 1):
- in step 2 the spike floor scales with the picture's contrast (`contrast_floor`: dark cuts);
- after step 3, wipes (`wipe_runs`: the change a narrow band moving steadily across the frame,
  from the frame-difference consumer's `diff_{x,y}_centre` / `_spread`) and long many-hot runs
  between 0.2 and 0.5 between two different pictures (`gradual_runs`: long dissolves) join the
  transitions;
- in step 4 a run after which the picture is the one before it at another exposure is dropped
  (`is_exposure_change`: a step in brightness, the structure kept).
`improved_transitions` gives each kept run's span and kind (cut, dissolve, fade, wipe, other).

`transnetv2_shot_starts` in `reelbeam.transforms.shots` stays the exact reference rule
(`--shot-rule reference`). The defaults below were chosen from the middle of the plateau of a sweep
on the development corpus (bench/shots.py, docs/BENCHMARKS.md).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from reelbeam.transforms.frame_difference import LAGS

SHOT_RULES = ("improved", "reference")


@dataclasses.dataclass(frozen=True)
class ShotRuleConfig:
    """Thresholds of `improved_shot_starts` (see the module docstring for what each does).

    From bench/shots.py's sweep (docs/BENCHMARKS.md). On the development corpus F1 stays within
    0.005 of its best for many_hot_threshold 0.2-0.5, weak_threshold 0-0.2, spike_ratio 1.5-4,
    spike_floor 2-12, dark_luma 8-48, dark_std 2-8, blank_std 0-6 and same_picture_corr 0.95-0.99;
    the defaults are the middle of these ranges except two. many_hot_threshold is the top of its
    range, the same 0.5 as the single-frame head's (the reference's): the old generated corpus's
    slowly drifting synthetic textures keep the many-hot head at 0.40-0.48 for seconds (5 false
    cuts at 0.4, 2 at 0.5). same_picture_corr is 0.98, the corpus's best point, rather than 0.97:
    at 0.97 the dip to white between the Sintel sample's first two shots (coarse correlation 0.97
    across it: two bright snow pictures) is taken for a brightness ramp.

    The steps of issue #27 (contrast_std ... gradual_corr) were swept on the hard-case corpus
    (bench/corpus.py `plan_hard_video`, seed 2027, 8 videos; docs/BENCHMARKS.md): F1 within 0.005
    of its best for contrast_std 8-48, exposure_corr 0.75-0.85, exposure_corr_any 0.9-0.95,
    exposure_ratio 1.1-1.2 (1.2, the top, kept after the Sintel sample check), wipe_spread 0.16-0.2, wipe_travel 0.2-0.3, gradual_threshold
    0.15-0.25, gradual_frames 6-15, gradual_corr 0.3-0.7; the defaults are their middles, and
    change nothing on the first 6 videos of the development corpus but the cuts they add."""

    single_threshold: float = 0.5
    many_hot_threshold: float = 0.5
    weak_threshold: float = 0.1
    spike_ratio: float = 3.0
    spike_floor: float = 8.0
    spike_window: int = 2
    dark_luma: float = 24.0
    dark_std: float = 6.0
    blank_std: float = 4.0
    same_picture_corr: float = 0.98
    # Issue #27 (bench/corpus.py's hard cases; 0 / > 1 turns a step off):
    # the spike floor scales with the picture's contrast (luma spread) below `contrast_std`, down
    # to `spike_floor_min`: a cut between two dark shots changes few grey levels;
    contrast_std: float = 24.0
    spike_floor_min: float = 2.0
    # a run after which the picture is the same up to an exposure change (correlation across it at
    # least `exposure_corr_any` for one frame after it or `exposure_corr` for all three, and the
    # mean luma changed by a factor of at least `exposure_ratio`: highlights clip, so the
    # correlation falls short of same_picture_corr; dim pictures, which same_picture skips) is no cut;
    exposure_corr: float = 0.8
    exposure_corr_any: float = 0.95
    exposure_ratio: float = 1.2
    # wipes, which TransNetV2 hardly sees: at least `wipe_frames` consecutive frames (gaps of up
    # to 2 bridged) whose change is a band (spread across the frame at most `wipe_spread`, against
    # 0.29 for a change spread evenly) moving steadily one way across at least `wipe_travel` of
    # the frame (a line fits its centre, R^2 >= 0.8), with different
    # pictures on either side (correlation across below `wipe_corr`).
    wipe_spread: float = 0.18
    wipe_frames: int = 5
    wipe_travel: float = 0.25
    wipe_corr: float = 0.8
    # long dissolves, where the many-hot head stays between 0.2 and 0.5 for many frames: a run of
    # at least `gradual_frames` frames above `gradual_threshold` counts when the pictures on
    # either side differ (correlation across below `gradual_corr`) and each is steady (the same
    # over 8 frames: correlation at least `gradual_steady`).
    gradual_threshold: float = 0.2
    gradual_frames: int = 10
    gradual_corr: float = 0.5
    gradual_steady: float = 0.8

    def __post_init__(self) -> None:
        for name in ("single_threshold", "many_hot_threshold"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in (0, 1), got {getattr(self, name)}")
        if not 0.0 <= self.weak_threshold <= self.single_threshold:
            raise ValueError(f"weak_threshold must be in [0, single_threshold], got {self.weak_threshold}")
        if self.spike_ratio < 1.0 or self.spike_floor < 0.0 or self.spike_window < 1:
            raise ValueError("spike_ratio must be >= 1, spike_floor >= 0 and spike_window >= 1")


# ---------------------------------------------------------------------------------------------
# Building blocks


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive (first, last) index ranges of the True runs of a boolean array."""
    m = np.asarray(mask, bool)
    if not m.any():
        return []
    d = np.diff(np.concatenate([[0], m.view(np.int8), [0]]))
    return [(int(a), int(b) - 1) for a, b in zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1))]


def transition_mask(single: np.ndarray, many_hot: np.ndarray | None, single_threshold: float, many_hot_threshold: float) -> np.ndarray:
    """Frames where either head is above its threshold (only the single head without many_hot)."""
    mask = np.asarray(single) > single_threshold
    if many_hot is not None:
        mask |= np.asarray(many_hot) > many_hot_threshold
    return mask


def content_value(diff_luma: np.ndarray, diff_chroma: np.ndarray) -> np.ndarray:
    """Per-frame content change (grey levels): luma difference plus the chroma difference, so that
    a cut between two pictures of similar brightness but different colour still registers."""
    return np.asarray(diff_luma, np.float64) + np.asarray(diff_chroma, np.float64)


def adaptive_spikes(content: np.ndarray, window: int, ratio: float, floor) -> np.ndarray:
    """spike[t]: content[t] >= floor (a number, or one per frame) and >= ratio x the mean of its
    `window` neighbours on each side (fewer at the ends of the video; frame 0, which compares with
    nothing, never spikes)."""
    c = np.asarray(content, np.float64)
    n = len(c)
    if n == 0:
        return np.zeros(0, bool)
    csum = np.concatenate([[0.0], np.cumsum(c)])
    idx = np.arange(n)
    lo, hi = np.maximum(idx - window, 0), np.minimum(idx + window + 1, n)
    count = (hi - lo - 1).astype(np.float64)
    neigh = np.where(count > 0, (csum[hi] - csum[lo] - c) / np.maximum(count, 1), 0.0)
    spikes = (c >= floor) & (c >= ratio * neigh)
    spikes[0] = False
    return spikes


def weak_peaks(single: np.ndarray, low: float, high: float) -> np.ndarray:
    """Indices of local maxima of `single` (>= both neighbours) with low <= value <= high."""
    p = np.asarray(single, np.float64)
    if len(p) == 0:
        return np.zeros(0, np.int64)
    left = np.concatenate([[-np.inf], p[:-1]])
    right = np.concatenate([p[1:], [-np.inf]])
    return np.flatnonzero((p >= left) & (p >= right) & (p >= low) & (p <= high))


def confirmed_weak_cuts(single: np.ndarray, spikes: np.ndarray, low: float, high: float) -> list[int]:
    """Shot starts s confirmed at weak single-head peaks: a peak at t (the head marks the last frame
    of a shot) with a frame-difference spike at t + 1 gives s = t + 1; with the spike at t itself
    (the head one frame late), s = t."""
    out = []
    n = len(spikes)
    for t in weak_peaks(single, low, high):
        if t + 1 < n and spikes[t + 1]:
            out.append(int(t + 1))
        elif spikes[t]:
            out.append(int(t))
    return out


def contrast_floor(signals: Mapping[str, np.ndarray], floor: float, contrast_std: float, min_floor: float) -> np.ndarray | float:
    """The spike floor per frame: `floor` where the picture on either side of the frame has a luma
    spread of at least `contrast_std`, scaled down in proportion below it (not under
    `min_floor`): the same cut between two shots at a fifth of the exposure changes a fifth of the
    grey levels. A scalar `floor` when `contrast_std` is 0 (off)."""
    if contrast_std <= 0:
        return floor
    std = np.asarray(signals["luma_std"], np.float64)
    local = np.maximum(std, np.concatenate([[std[0]] if len(std) else [], std[:-1]]))
    return np.maximum(floor * np.minimum(local / contrast_std, 1.0), min(min_floor, floor))


def wipe_runs(signals: Mapping[str, np.ndarray], config: ShotRuleConfig) -> list[tuple[int, int]]:
    """Runs of frames that make a wipe (ShotRuleConfig: wipe_*), horizontal or vertical: the
    change of each frame is a narrow band (`diff_x_spread` or `diff_y_spread` at most
    `wipe_spread`) whose centre moves one way across at least `wipe_travel` of the frame, and the
    picture after the run differs from the one before it. Signals without the change's location
    (older runs) give none."""
    if config.wipe_spread <= 0 or "diff_x_spread" not in signals:
        return []
    out = []
    diff = np.asarray(signals["diff_luma"], np.float64)
    for axis in ("x", "y"):
        spread = np.asarray(signals[f"diff_{axis}_spread"], np.float64)
        centre = np.asarray(signals[f"diff_{axis}_centre"], np.float64)
        low = (spread <= config.wipe_spread) & (diff > 0.05)
        for a, b in runs(~low):  # bridge gaps of up to 2 frames (a frame where other motion dominates)
            if a > 0 and b + 1 < len(low) and b - a < 2:
                low[a : b + 1] = True
        for a, b in runs(low):
            if b - a + 1 < config.wipe_frames:
                continue
            # The band's centre moves steadily: a line fits it (R^2 >= 0.8) and covers the travel.
            c = centre[a : b + 1]
            t = np.arange(len(c), dtype=np.float64)
            slope, icpt = np.polyfit(t, c, 1)
            resid = c - (slope * t + icpt)
            r2 = 1.0 - float(resid.var()) / max(float(c.var()), 1e-9)
            if abs(slope) * (len(c) - 1) < config.wipe_travel or r2 < 0.8:
                continue
            across = lagged_correlation(signals, min(b + 1, len(diff) - 1), max(a - 1, 0)) if a > 0 else float("nan")
            if across == across and across >= config.wipe_corr:
                continue
            out.append((a, b))
    return out


def gradual_runs(many_hot: np.ndarray | None, signals: Mapping[str, np.ndarray], config: ShotRuleConfig) -> list[tuple[int, int]]:
    """Long runs of the many-hot head above `gradual_threshold` (below its own threshold: a long
    dissolve the model is unsure of) between two different pictures, neither of them flat (luma
    spread above `dark_std`: a fade from black is no dissolve) (ShotRuleConfig: gradual_*).
    Runs longer than the longest correlation lag are left to the heads."""
    if many_hot is None or config.gradual_frames <= 0 or config.gradual_threshold >= config.many_hot_threshold:
        return []
    n = len(many_hot)
    out = []
    for a, b in runs(np.asarray(many_hot) > config.gradual_threshold):
        if b - a + 1 < config.gradual_frames or a < 1 or b + 1 >= n:
            continue
        if min(signals["luma_std"][a - 1], signals["luma_std"][b + 1]) <= config.dark_std:
            continue  # from or into a (nearly) flat picture: a fade, which the dark frames handle
        across = lagged_correlation(signals, b + 1, a - 1)
        if not (across == across and across < config.gradual_corr):
            continue
        # Two steady pictures joined: each side the same over 8 frames (content that drifts all
        # the time, which keeps the many-hot head up for seconds, is no dissolve).
        before = lagged_correlation(signals, a - 1, a - 9) if a >= 9 else float("nan")
        after = lagged_correlation(signals, b + 9, b + 1) if b + 9 < n else float("nan")
        if min(before, after) >= config.gradual_steady:  # NaN (too near an end) fails
            out.append((a, b))
    return out


def is_exposure_change(run: tuple[int, int], signals: Mapping[str, np.ndarray], min_corr: float, min_ratio: float,
                       min_std: float = 0.0, any_corr: float = 0.95) -> bool:
    """Whether the picture after a run is the one before it at another exposure: the correlation
    across (as `is_same_picture`, frames after the run 1, 5, 9) at least `any_corr` for one of them
    or at least `min_corr` for all, and the mean luma changed by a factor of at least `min_ratio` (clipped highlights or crushed shadows lower
    the correlation of an exposure change; a cut to a similar framing keeps its brightness).
    Pictures with a luma spread of at most `min_std` (flat: a cut between black and white; the
    rule passes 1 grey level, the correlation's own flat limit) say nothing."""
    a, b = run
    mean, std = signals["luma_mean"], signals["luma_std"]
    n = len(mean)
    if min_corr > 1 or a < 1 or b + 1 >= n or std[a - 1] <= min_std:
        return False
    # A step: the brightness steady over the 4 frames before the run (within 5%). A dip to white
    # between two bright pictures (the Sintel sample's first cut, correlation 0.97 across and
    # 1.3x brighter after) starts brightening before the model marks it.
    if a >= 5 and abs(float(mean[a - 1]) - float(mean[a - 5])) > 0.05 * max(float(mean[a - 5]), 1.0):
        return False
    corrs, ratios = [], []
    for after in (b + 1, b + 5, b + 9):
        if after < n and std[after] > min_std:
            c = lagged_correlation(signals, after, a - 1, slack=12)
            if c == c:
                corrs.append(c)
                lo, hi = sorted((float(mean[after]), float(mean[a - 1])))
                ratios.append(hi / max(lo, 1.0))
    if not corrs:
        return False
    best = int(np.argmax(corrs))
    # The same picture at another brightness: one frame after the run nearly the same (>= any_corr),
    # or every frame after it at least min_corr (clipping lowers all three alike; a picture that
    # keeps changing after the run, the tail of a dissolve, does not).
    same = corrs[best] >= any_corr or min(corrs) >= min_corr
    return same and ratios[best] >= min_ratio


def dark_frames(luma_mean: np.ndarray, luma_std: np.ndarray, max_luma: float, max_std: float, blank_std: float = 0.0) -> np.ndarray:
    """Frames that are (nearly) black, dim and flat, or blank at any brightness (luma spread at
    most `blank_std`: the depth of a fade into a low-contrast picture, a white flash)."""
    std = np.asarray(luma_std)
    return ((np.asarray(luma_mean) <= max_luma) & (std <= max_std)) | (std <= blank_std)


def extend_over_dark(mask: np.ndarray, dark: np.ndarray, spikes: np.ndarray | None = None, reach: int = 3) -> np.ndarray:
    """The transition mask plus the runs of dark frames that a transition enters or leaves
    gradually: a dark run joins when a transition frame lies within `reach` frames before it and
    its first frame is no difference spike (a fade into black), or within `reach` frames after it
    and the frame after it is no spike (a fade out of black). A hard cut to or from black (a spike)
    stays a cut. At the start of the video only the second case applies (a fade-in), at the end
    only the first (a fade-out)."""
    marked = np.asarray(mask, bool)
    out = marked.copy()
    n = len(out)
    spk = np.zeros(n, bool) if spikes is None else np.asarray(spikes, bool)
    for a, b in runs(dark):
        enters = a > 0 and marked[max(0, a - reach) : a].any() and not spk[a]
        leaves = b + 1 < n and marked[b + 1 : b + 1 + reach].any() and not spk[b + 1]
        if enters or leaves:
            out[a : b + 1] = True
    return out


def lagged_correlation(signals: Mapping[str, np.ndarray], after: int, before: int, slack: int = 0) -> float:
    """Correlation of the coarse luma of frame `after` with a frame at or before `before`: the
    shortest lag in LAGS that reaches back that far, or the best of the lags that reach at most
    `slack` frames further back (NaN when no lag reaches)."""
    need = after - before
    first = next((k for k in LAGS if k >= need), None)
    if first is None or after - first < 0:
        return float("nan")
    lags = [k for k in LAGS if k == first or (need <= k <= need + slack and after - k >= 0)]
    return float(np.nanmax([signals[f"corr_lag{k}"][after] for k in lags]))


def is_same_picture(run: tuple[int, int], signals: Mapping[str, np.ndarray], min_corr: float, min_std: float = 0.0) -> bool:
    """Whether the picture after a transition run is the same, up to brightness and contrast, as
    just before it: then the run was a flash, a brightness ramp or the model reacting to motion,
    not a shot change. Compared: the frame after the run and the frames 4 and 8 later (a flash
    can outlast the frames the model marks) with the frame before the run or up to 12 frames
    earlier. A frame after the run with a luma spread of at most `min_std` (still black or blank)
    says nothing."""
    a, b = run
    n = len(signals["luma_mean"])
    if a < 1 or b + 1 >= n:
        return False
    best = -1.0
    for after in (b + 1, b + 5, b + 9):
        if after < n and signals["luma_std"][after] > min_std:
            c = lagged_correlation(signals, after, a - 1, slack=12)
            if c == c:  # not NaN
                best = max(best, c)
    return best >= min_corr


def is_blank_change(run: tuple[int, int], signals: Mapping[str, np.ndarray], spikes: np.ndarray, max_std: float) -> bool:
    """Whether a run goes gradually (no difference spike in it or at the frame after it) from a
    blank picture to a blank picture (luma spread at most `max_std` on both sides): a grey level
    drifting, with no shot on either side to tell apart."""
    a, b = run
    std = signals["luma_std"]
    if a < 1 or b + 1 >= len(std):
        return False
    return bool(std[a - 1] <= max_std and std[b + 1] <= max_std and not np.asarray(spikes)[a : b + 2].any())


def vet_runs(run_list: list[tuple[int, int]], signals: Mapping[str, np.ndarray] | None, config: ShotRuleConfig,
             spikes: np.ndarray | None = None) -> list[tuple[int, int]]:
    """Drop runs that are not shot changes: one that begins at frame 0 (a fade-in or black lead-in
    at the start) or ends at the last frame (a fade-out to the end), flashes / brightness ramps (`is_same_picture`) and gradual changes between
    blank pictures (`is_blank_change`)."""
    kept = []
    n = len(signals["luma_mean"]) if signals is not None else None
    for run in run_list:
        if run[0] == 0 or (n is not None and run[1] == n - 1):
            continue
        if signals is not None:
            if is_same_picture(run, signals, config.same_picture_corr, config.dark_std):
                continue
            if is_exposure_change(run, signals, config.exposure_corr, config.exposure_ratio, 1.0, config.exposure_corr_any):
                continue
            if spikes is not None and is_blank_change(run, signals, spikes, config.dark_std):
                continue
        kept.append(run)
    return kept


def starts_from_runs(run_list: list[tuple[int, int]], num_frames: int, single: np.ndarray | None = None,
                     single_threshold: float = 0.5) -> list[int]:
    """A shot starts at the first frame after each run (the reference rule's convention); with
    `single`, after the run's last frame whose single-frame probability is above the threshold
    when it has one (the reference's frame for a cut: the many-hot head and black frames can
    stretch a run past it), else after the run."""
    out = []
    for a, b in run_list:
        end = b
        if single is not None:
            above = np.flatnonzero(np.asarray(single[a : b + 1]) > single_threshold)
            if len(above):
                end = a + int(above[-1])
        if end + 1 < num_frames:
            out.append(end + 1)
    return out


# ---------------------------------------------------------------------------------------------
# The rule


def _rule_runs(single, many_hot, signals, config, content):
    """The transition runs the rule keeps, and what classifies them: (runs, spikes, dark, wipes)."""
    n = len(single)
    mask = transition_mask(single, many_hot, config.single_threshold, config.many_hot_threshold)
    spikes = dark = None
    wipes: list[tuple[int, int]] = []
    if signals is not None:
        if content is None:
            content = content_value(signals["diff_luma"], signals["diff_chroma"])
        floor = contrast_floor(signals, config.spike_floor, config.contrast_std, config.spike_floor_min)
        spikes = adaptive_spikes(content, config.spike_window, config.spike_ratio, floor)
        for s in confirmed_weak_cuts(single, spikes, config.weak_threshold, config.single_threshold):
            if 0 < s < n:
                mask[s - 1] = True  # the last frame of the outgoing shot, as the single head marks it
        dark = dark_frames(signals["luma_mean"], signals["luma_std"], config.dark_luma, config.dark_std, config.blank_std)
        mask = extend_over_dark(mask, dark, spikes)
        wipes = wipe_runs(signals, config)
        for a, b in wipes + gradual_runs(many_hot, signals, config):
            mask[a : b + 1] = True  # after the dark frames: a wipe or dissolve between dim shots stays one run
    kept = vet_runs(runs(mask), signals, config, spikes)
    return kept, spikes, dark, wipes


def improved_shot_starts(
    single: np.ndarray,
    many_hot: np.ndarray | None = None,
    signals: Mapping[str, np.ndarray] | None = None,
    config: ShotRuleConfig = ShotRuleConfig(),
    content: np.ndarray | None = None,
) -> list[int]:
    """Shot start frames (sorted, > 0) from both heads and the frame-difference signals (module
    docstring). Without `signals` only steps 1, 4 (the frame-0 part) and 5 apply; without
    `many_hot`, only the single-frame head marks transitions. `content` replaces the content value
    computed from the signals (the benchmark compares other difference measures with it)."""
    single = np.asarray(single, np.float64)
    n = len(single)
    if n < 2:
        return []
    kept = _rule_runs(single, many_hot, signals, config, content)[0]
    return starts_from_runs(kept, n, single, config.single_threshold)


TRANSITION_KINDS = ("cut", "dissolve", "fade", "wipe", "other")
CUT_FRAMES = 3  # a run of at most this many frames is a cut (TransNetV2 marks a cut on 1-3 frames)


def improved_transitions(
    single: np.ndarray,
    many_hot: np.ndarray | None = None,
    signals: Mapping[str, np.ndarray] | None = None,
    config: ShotRuleConfig = ShotRuleConfig(),
) -> list[dict]:
    """The transitions behind `improved_shot_starts` (the same starts, in order), each
    {'start': the first frame of the next shot, 'first', 'last': its first and last frame
    (a cut before frame s is (s - 1, s), as the development corpus's truth), 'kind'}. Kinds:
    'wipe' (a run the moving-band test found), 'cut' (at most CUT_FRAMES frames, or a difference
    spike in a run of at most 5), 'fade' (a longer run through dark frames), 'dissolve' (any other
    gradual run), 'other' (a gradual run without the signals to tell)."""
    single = np.asarray(single, np.float64)
    n = len(single)
    if n < 2:
        return []
    kept, spikes, dark, wipes = _rule_runs(single, many_hot, signals, config, None)
    out = []
    for (a, b), start in zip(kept, [starts_from_runs([r], n, single, config.single_threshold) for r in kept]):
        if not start:
            continue
        s = start[0]
        length = b - a + 1
        if any(wa <= b and wb >= a for wa, wb in wipes):
            kind = "wipe"
        elif length <= CUT_FRAMES or (spikes is not None and length <= 5 and spikes[a : b + 2].any()):
            kind = "cut"
        elif dark is not None and dark[a : b + 1].any():
            kind = "fade"
        else:
            kind = "dissolve" if signals is not None else "other"
        first, last = (s - 1, s) if kind == "cut" else (a, b)
        out.append({"start": s, "first": int(first), "last": int(last), "kind": kind})
    return out
