"""The improved shot rule on hand-made signals whose right answer is known."""

import numpy as np
import pytest

from reelbeam.transforms.frame_difference import LAGS
from reelbeam.transforms.shot_rule import (
    ShotRuleConfig,
    adaptive_spikes,
    confirmed_weak_cuts,
    extend_over_dark,
    improved_shot_starts,
    is_same_picture,
    lagged_correlation,
    runs,
    transition_mask,
    weak_peaks,
)
from reelbeam.transforms.shots import transnetv2_shot_starts

N = 120


def quiet_signals(n=N, luma=110.0):
    """Signals of one steady shot: small frame differences, constant brightness, every lagged
    correlation high."""
    s = {
        "diff_luma": np.full(n, 1.5),
        "diff_chroma": np.full(n, 0.3),
        "luma_mean": np.full(n, luma),
        "luma_std": np.full(n, 40.0),
        "luma_corr": np.full(n, 0.99),
    }
    for k in LAGS:
        c = np.full(n, 0.99)
        c[:k] = np.nan
        s[f"corr_lag{k}"] = c
    return s


def cut_at(s, p, size=30.0):
    """A cut before frame p: the difference spikes at p and correlations across p drop."""
    s["diff_luma"][p] = size
    s["diff_chroma"][p] = 5.0
    for k in LAGS:
        s[f"corr_lag{k}"][p : p + k] = 0.1


def test_runs():
    assert runs(np.array([0, 1, 1, 0, 1], bool)) == [(1, 2), (4, 4)]
    assert runs(np.zeros(4, bool)) == []
    assert runs(np.ones(3, bool)) == [(0, 2)]


def test_either_head_marks_a_transition():
    single = np.array([0.1, 0.6, 0.1, 0.1, 0.1])
    many = np.array([0.1, 0.1, 0.1, 0.95, 0.1])
    assert transition_mask(single, many, 0.5, 0.5).tolist() == [False, True, False, True, False]
    assert transition_mask(single, None, 0.5, 0.5).tolist() == [False, True, False, False, False]


def test_a_long_dissolve_seen_only_by_the_many_hot_head_is_one_cut():
    """The issue's case: the single head stays at 0.3-0.4 over a 2 s dissolve while the many-hot
    head is above 0.9 throughout: the reference rule misses it, the new rule finds one cut."""
    single = np.full(N, 0.01)
    many = np.full(N, 0.02)
    single[40:90] = 0.35
    many[40:90] = 0.93
    assert transnetv2_shot_starts(single) == []
    assert improved_shot_starts(single, many) == [90]
    s = quiet_signals()
    cut_at(s, 65, size=1.5)  # the pictures before and after differ (no spike: a dissolve)
    assert improved_shot_starts(single, many, s) == [90]


def test_adaptive_spikes_need_ratio_and_floor():
    c = np.full(20, 2.0)
    c[10] = 30.0  # a clear spike
    c[15] = 5.0  # 2.5x its neighbours but under the floor
    spikes = adaptive_spikes(c, window=2, ratio=3.0, floor=12.0)
    assert np.flatnonzero(spikes).tolist() == [10]
    steady_motion = np.full(20, 20.0)  # a fast pan: large but not a spike
    assert not adaptive_spikes(steady_motion, 2, 3.0, 12.0).any()
    assert not adaptive_spikes(np.array([50.0, 0.0, 0.0]), 2, 3.0, 12.0)[0]  # frame 0 never


def test_weak_peaks_are_local_maxima_in_the_band():
    p = np.array([0.0, 0.1, 0.02, 0.3, 0.6, 0.1, 0.04, 0.01])
    assert weak_peaks(p, 0.05, 0.5).tolist() == [1]


def test_weak_peak_becomes_a_cut_only_with_a_difference_spike():
    single = np.full(N, 0.005)
    single[49] = 0.2  # a hard cut between two views of similar content: weak peak at the last frame
    single[79] = 0.2  # a weak peak without a spike (motion the model half-suspects)
    s = quiet_signals()
    cut_at(s, 50)
    assert transnetv2_shot_starts(single) == []
    assert improved_shot_starts(single, np.zeros(N), s) == [50]
    spikes = adaptive_spikes(s["diff_luma"] + s["diff_chroma"], 2, 3.0, 12.0)
    assert confirmed_weak_cuts(single, spikes, 0.05, 0.5) == [50]


def test_a_spike_without_any_peak_is_not_a_cut():
    """A flash or a fast movement spikes the difference; without a TransNetV2 peak it stays."""
    s = quiet_signals()
    cut_at(s, 50)
    assert improved_shot_starts(np.full(N, 0.001), np.zeros(N), s) == []


def test_fade_in_at_the_start_is_not_a_cut():
    single = np.full(N, 0.01)
    single[:30] = 0.8  # the model marks the fade-in as a transition
    s = quiet_signals()
    s["luma_mean"][:10], s["luma_std"][:10] = 0.0, 0.0  # black lead-in
    s["luma_mean"][10:30] = np.linspace(5, 110, 20)
    assert transnetv2_shot_starts(single) == [30]
    assert improved_shot_starts(single, np.zeros(N), s) == []
    assert improved_shot_starts(single, np.zeros(N)) == []  # the frame-0 rule needs no signals


def test_fade_through_black_is_one_transition():
    """Fade-out, 8 black frames, fade-in: the model marks both fades; the black frames between
    join them into one transition instead of a black one-second 'shot'."""
    single = np.full(N, 0.01)
    single[40:50] = 0.7  # fade-out
    single[58:68] = 0.7  # fade-in
    s = quiet_signals()
    s["luma_mean"][48:60], s["luma_std"][48:60] = 2.0, 1.0
    cut_at(s, 58, size=1.5)  # the picture after the fade is another one (no spike: a fade)
    assert transnetv2_shot_starts(single) == [50, 68]
    assert improved_shot_starts(single, np.zeros(N), s) == [68]


def test_fade_out_at_the_end_leaves_no_black_shot():
    single = np.full(N, 0.01)
    single[95:105] = 0.8
    s = quiet_signals()
    s["luma_mean"][103:], s["luma_std"][103:] = 1.0, 0.5
    assert transnetv2_shot_starts(single) == [105]
    assert improved_shot_starts(single, np.zeros(N), s) == []


def test_dark_frames_join_transitions_that_fade_into_or_out_of_them():
    mask = np.zeros(20, bool)
    mask[5] = mask[14] = True
    dark = np.zeros(20, bool)
    dark[[0, 1, 6, 7, 10, 15, 16]] = True  # 10: a dark frame inside a shot, alone
    spikes = np.zeros(20, bool)
    spikes[15] = True  # a hard cut into black at 15
    got = np.flatnonzero(extend_over_dark(mask, dark, spikes)).tolist()
    assert got == [5, 6, 7, 14]  # 0-1: the start with no transition after; 15-16: a hard cut


def test_hard_cuts_between_black_and_white_stay_cuts():
    """Full-frame white / black segments with abrupt switches (a scene-cut test clip): each
    switch is a cut, though every frame is blank."""
    n = 100
    single = np.full(n, 0.001)
    s = quiet_signals(n)
    s["luma_std"][:] = 0.0
    s["diff_luma"][:] = 0.0
    for p in (25, 50, 75):
        single[p - 1] = 0.95
        s["diff_luma"][p] = 200.0
    s["luma_mean"][:] = 235.0
    s["luma_mean"][25:50] = s["luma_mean"][75:] = 16.0
    assert improved_shot_starts(single, np.zeros(n), s) == [25, 50, 75]


def test_a_grey_level_drifting_is_not_a_cut():
    """A full-frame grey level fading between black and white (no picture at all): the model
    marks the middle of each fade; nothing there is a cut."""
    n = 100
    single = np.full(n, 0.001)
    single[40:46] = 0.7
    s = quiet_signals(n)
    s["luma_std"][:] = 0.0
    s["luma_mean"][:] = 16 + 219 * (0.5 + 0.5 * np.sin(np.arange(n) / 8.0))
    s["diff_luma"][1:] = np.abs(np.diff(s["luma_mean"]))
    assert transnetv2_shot_starts(single) == [46]
    assert improved_shot_starts(single, np.zeros(n), s) == []


@pytest.mark.parametrize("kind", ["flash", "ramp"])
def test_flash_and_brightness_ramp_are_not_cuts(kind):
    single = np.full(N, 0.01)
    s = quiet_signals()
    if kind == "flash":
        single[59:62] = 0.9
        s["luma_mean"][60:62] = 230.0
    else:
        single[50:70] = 0.6
        s["luma_mean"][50:70] = np.linspace(110, 60, 20)
        s["luma_mean"][70:] = 60.0
    assert transnetv2_shot_starts(single) != []
    assert improved_shot_starts(single, np.zeros(N), s) == []


def test_a_real_cut_with_a_brightness_change_stays():
    """Across a cut the pictures differ (low correlation): a change of brightness there does not
    make it a ramp."""
    single = np.full(N, 0.01)
    single[59] = 0.9
    s = quiet_signals()
    cut_at(s, 60)
    s["luma_mean"][60:] = 40.0
    assert not is_same_picture((59, 59), s, 0.97)
    assert improved_shot_starts(single, np.zeros(N), s) == [60]


def test_lagged_correlation_picks_the_shortest_lag_that_reaches():
    s = quiet_signals()
    s["corr_lag8"][30] = 0.5
    assert lagged_correlation(s, 30, 24) == 0.5  # needs 6 -> lag 8
    assert lagged_correlation(s, 30, 24, slack=10) == 0.99  # or lag 16 (reaches 10 further back)
    assert lagged_correlation(s, 30, 24, slack=2) == 0.5
    assert np.isnan(lagged_correlation(s, 30, 30 - 100))  # longer than any lag
    assert np.isnan(lagged_correlation(s, 5, 0))  # lag 8 reaches before frame 0


def test_without_signals_or_many_hot_it_is_the_reference_except_at_frame_0():
    rng = np.random.default_rng(3)
    for _ in range(20):
        p = rng.random(200) ** 4
        p[0] = 0.0
        assert improved_shot_starts(p) == transnetv2_shot_starts(p)


def test_config_is_validated():
    with pytest.raises(ValueError, match="many_hot_threshold"):
        ShotRuleConfig(many_hot_threshold=1.5)
    with pytest.raises(ValueError, match="weak_threshold"):
        ShotRuleConfig(weak_threshold=0.7)


def test_a_confirmed_weak_peak_at_a_flash_is_dropped_when_the_picture_comes_back():
    """A 3-frame flash: the model half-suspects its first frame, the difference spikes there and
    the flash frames look unlike the picture (clipped highlights), but 4 frames on the picture is
    the one before the flash again."""
    single = np.full(N, 0.005)
    single[59] = 0.3
    s = quiet_signals()
    s["diff_luma"][60] = 80.0
    s["luma_mean"][60:63] = 220.0
    for k in LAGS:
        s[f"corr_lag{k}"][60 : 63 + k] = 0.6  # lags that compare a flash frame with a normal one
        s[f"corr_lag{k}"][63 + k :] = 0.99
        for t in range(63, min(N, 63 + k)):
            if t - k < 60:  # a normal frame after the flash against one before it
                s[f"corr_lag{k}"][t] = 0.99
    assert improved_shot_starts(single, np.zeros(N), s) == []
    cut_at(s, 60)  # the same spike at a real cut: the picture does not come back
    assert improved_shot_starts(single, np.zeros(N), s) == [60]


def test_a_cut_stretched_by_the_many_hot_head_starts_where_the_reference_puts_it():
    """The many-hot head often marks a frame or two past a hard cut; the shot still starts after
    the single head's frame, as in the reference."""
    single = np.full(N, 0.001)
    many = np.full(N, 0.001)
    single[20] = 0.8
    many[20:22] = 0.7
    s = quiet_signals()
    cut_at(s, 21)
    assert transnetv2_shot_starts(single) == [21]
    assert improved_shot_starts(single, many, s) == [21]


# ------------------------------------------------------------------------------------------------
# Issue #27: wipes, exposure changes, dark cuts, long many-hot runs; transitions with their kind


def _changed_across(s, first, last):
    """Lagged correlations low for frames after `last` that look back past `first` (two pictures)."""
    for k in LAGS:
        c = s[f"corr_lag{k}"]
        for t in range(last + 1, min(len(c), first + k + 1)):
            if t - k < first:
                c[t] = 0.1


def test_a_wipe_is_found_from_the_moving_band_and_typed():
    from reelbeam.transforms.shot_rule import improved_transitions

    n = 100
    single = np.full(n, 0.01)
    s = quiet_signals(n)
    s["diff_x_spread"] = np.full(n, 0.29)
    s["diff_x_centre"] = np.full(n, 0.5)
    s["diff_y_spread"] = np.full(n, 0.29)
    s["diff_y_centre"] = np.full(n, 0.5)
    s["diff_luma"][40:52] = 6.0
    s["diff_x_spread"][40:52] = 0.05
    s["diff_x_centre"][40:52] = np.linspace(0.04, 0.96, 12)
    _changed_across(s, 40, 51)
    assert transnetv2_shot_starts(single) == []
    assert improved_shot_starts(single, np.zeros(n), s) == [52]
    assert improved_transitions(single, np.zeros(n), s) == [{"start": 52, "first": 40, "last": 51, "kind": "wipe"}]
    still = dict(s, diff_x_centre=np.full(n, 0.5))  # a band that does not move: no wipe
    assert improved_shot_starts(single, np.zeros(n), still) == []
    off = ShotRuleConfig(wipe_spread=0.0)
    assert improved_shot_starts(single, np.zeros(n), s, off) == []


def test_an_exposure_change_that_stays_is_not_a_cut():
    n = 100
    single = np.full(n, 0.01)
    single[49] = 0.9
    s = quiet_signals(n, luma=150.0)
    s["luma_mean"][50:] = 210.0  # brighter from frame 50 on; highlights clip: correlation 0.9
    s["diff_luma"][50] = 60.0
    for k in LAGS:
        c = s[f"corr_lag{k}"]
        c[50 : 50 + k] = np.where(np.isnan(c[50 : 50 + k]), np.nan, 0.9)
    assert transnetv2_shot_starts(single) == [50]
    assert improved_shot_starts(single, np.zeros(n), s) == []
    assert improved_shot_starts(single, np.zeros(n), s, ShotRuleConfig(exposure_corr=1.01, exposure_corr_any=1.01)) == [50]
    same_brightness = dict(s, luma_mean=np.full(n, 150.0))  # a cut to a similar framing: kept
    assert improved_shot_starts(single, np.zeros(n), same_brightness) == [50]


def test_a_cut_between_dark_shots_is_confirmed_with_a_contrast_scaled_floor():
    from reelbeam.transforms.shot_rule import improved_transitions

    n = 100
    single = np.full(n, 0.01)
    single[49] = 0.3  # a weak peak
    s = quiet_signals(n, luma=30.0)
    s["luma_std"][:] = 5.0 + 3.0  # dim pictures with little contrast
    s["diff_luma"][:] = 0.6
    s["diff_chroma"][:] = 0.1
    s["diff_luma"][50] = 5.0  # a clear spike, under the fixed floor of 8 grey levels
    _changed_across(s, 49, 49)
    assert improved_shot_starts(single, np.zeros(n), s, ShotRuleConfig(contrast_std=0.0)) == []
    assert improved_shot_starts(single, np.zeros(n), s) == [50]
    assert improved_transitions(single, np.zeros(n), s) == [{"start": 50, "first": 49, "last": 50, "kind": "cut"}]


def test_a_long_many_hot_run_between_two_pictures_is_a_dissolve():
    from reelbeam.transforms.shot_rule import improved_transitions

    n = 120
    single = np.full(n, 0.05)
    many = np.full(n, 0.02)
    many[40:90] = 0.3  # the model unsure over a 50-frame dissolve
    s = quiet_signals(n)
    _changed_across(s, 40, 89)
    assert improved_shot_starts(single, many, s, ShotRuleConfig(gradual_frames=0)) == []
    assert improved_shot_starts(single, many, s) == [90]
    assert improved_transitions(single, many, s) == [{"start": 90, "first": 40, "last": 89, "kind": "dissolve"}]
    s_same = quiet_signals(n)  # the same picture on both sides: not a transition
    assert improved_shot_starts(single, many, s_same) == []
