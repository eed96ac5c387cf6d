"""Summaries: KTS, shots, scores, knapsack and output against literal copies of the reference code
(tests/reference_clipit.py: ModelScope's vectorised KTS and summarizer, KTS's original loops) on
many random cases. Change points, selections and outputs must be equal, not close."""

import numpy as np
import pytest
import reference_clipit as ref

from reelbeam.transforms.summaries import (
    cpd_auto,
    cpd_nonlin,
    knapsack,
    kts_change_points,
    l2_normalize_rows,
    modelscope_output,
    shot_scores,
    shots_from_change_points,
    spread_scores,
    summarize,
    summary_segments,
    timestamp,
)


def video_features(rng, n, kind, dim=16):
    """Sampled-frame features of a made-up video: 'noise' (no structure), 'segments' (piecewise
    constant means plus noise: KTS has real changes to find) or 'repeats' (a few exact feature
    vectors: many equal costs, so the tie-breaking is what is tested)."""
    if kind == "noise":
        return rng.normal(size=(n, dim)).astype(np.float32)
    if kind == "segments":
        cuts = (
            np.sort(rng.choice(np.arange(1, n), size=min(int(rng.integers(1, 8)), n - 1), replace=False))
            if n > 1
            else []
        )
        means = rng.normal(size=(len(cuts) + 1, dim)) * 2
        return (
            means[np.searchsorted(cuts, np.arange(n), side="right")] + rng.normal(size=(n, dim)) * 0.5
        ).astype(np.float32)
    base = rng.normal(size=(int(rng.integers(1, 4)), dim))
    return base[np.repeat(rng.integers(0, len(base), size=n // 5 + 1), 5)[:n]].astype(np.float32)


CASES = [(seed, kind) for seed in range(14) for kind in ("noise", "segments", "repeats")]


@pytest.mark.parametrize("seed,kind", CASES)
def test_kts_equals_modelscope(seed, kind):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 260))
    x = video_features(rng, n, kind)
    xn = ref.norm_feature(x.copy())
    K = np.dot(xn, xn.T)
    want, _ = ref.cpd_auto(K, ncp=min(n - 1, 120), vmax=2.2 / 4.0, lmin=1)
    got = kts_change_points(x)
    np.testing.assert_array_equal(got, want)
    # the objective for every number of change points, bit for bit
    np.testing.assert_array_equal(
        cpd_nonlin(K, min(n - 1, 120), backtrack=False)[1],
        ref.cpd_nonlin(K, min(n - 1, 120), backtrack=False)[1],
    )


@pytest.mark.parametrize("seed", range(12))
def test_kts_equals_the_original_loops(seed):
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(2, 36))
    x = ref.norm_feature(video_features(rng, n, ("noise", "segments", "repeats")[seed % 3]))
    K = np.dot(x, x.T)
    cps, costs = cpd_auto(K, n - 1, 0.55)
    want_cps, want_costs = ref.cpd_auto_loops(K, n - 1, 0.55)
    np.testing.assert_array_equal(cps, want_cps)
    np.testing.assert_array_equal(costs, want_costs)


@pytest.mark.parametrize("seed", range(10))
def test_cpd_nonlin_with_segment_length_limits(seed):
    rng = np.random.default_rng(200 + seed)
    n = int(rng.integers(6, 90))
    lmin = int(rng.integers(1, 4))
    ncp = int(rng.integers(0, n // lmin))
    lmax = int(rng.integers(max(lmin, -(-n // (ncp + 1))), n + 2))
    x = ref.norm_feature(video_features(rng, n, "segments"))
    K = np.dot(x, x.T)
    for a, b in zip(cpd_nonlin(K, ncp, lmin, lmax), ref.cpd_nonlin(K, ncp, lmin, lmax)):
        np.testing.assert_array_equal(a, b)


def test_cpd_nonlin_refuses_what_cannot_fit():
    with pytest.raises(ValueError, match="do not fit 5 frames"):
        cpd_nonlin(np.eye(5), 4, lmin=2)


def test_kts_finds_clear_changes():
    rng = np.random.default_rng(0)
    means = rng.normal(size=(3, 32))
    x = np.repeat(means, [20, 35, 25], axis=0) + rng.normal(size=(80, 32)) * 0.05
    assert kts_change_points(x).tolist() == [20, 55]


def test_kts_of_a_single_frame_or_a_static_video_has_no_change():
    assert kts_change_points(np.ones((1, 8))).tolist() == []
    assert kts_change_points(np.ones((40, 8))).tolist() == []
    with pytest.raises(ValueError, match="at least one frame"):
        kts_change_points(np.zeros((0, 8)))


def test_long_videos_run_in_blocks_whose_starts_are_change_points():
    rng = np.random.default_rng(1)
    x = video_features(rng, 130, "segments")
    got = kts_change_points(x, block=50)  # 3 blocks: [0, 43), [43, 86), [86, 130)
    assert 43 in got and 86 in got and list(got) == sorted(set(got))
    for s, e in ((0, 43), (43, 86), (86, 130)):
        inside = [c - s for c in got if s < c < e]
        assert inside == kts_change_points(x[s:e]).tolist()
    assert np.array_equal(kts_change_points(x, block=130), kts_change_points(x, block=None))


def test_l2_normalize_rows_is_norm_feature():
    x = np.random.default_rng(2).normal(size=(20, 512)).astype(np.float32)
    np.testing.assert_array_equal(l2_normalize_rows(x), ref.norm_feature(x.copy()))


# ------------------------------------------------------------------------------------------------
# Shots, scores, knapsack, output


@pytest.mark.parametrize("seed", range(20))
def test_shots_equal_get_change_points(seed):
    rng = np.random.default_rng(300 + seed)
    n_sampled = int(rng.integers(1, 120))
    n_frames = 15 * (n_sampled - 1) + int(rng.integers(1, 16))  # any tail after the last pick
    x = video_features(rng, n_sampled, ("noise", "segments", "repeats")[seed % 3])
    want, _ = ref.get_change_points(ref.norm_feature(x.copy()), n_frames)
    picks = np.arange(0, n_frames, 15)
    got = shots_from_change_points(kts_change_points(x), picks, n_frames)
    np.testing.assert_array_equal(got, want)


def test_shots_of_a_picks_sequence_other_than_every_15th():
    picks = np.array([0, 12, 25, 37, 50])  # 2 per second at 25 fps
    assert shots_from_change_points([2, 4], picks, 60).tolist() == [[0, 24], [25, 49], [50, 59]]
    assert shots_from_change_points([], picks, 60).tolist() == [[0, 59]]


def test_spread_scores():
    got = spread_scores([0.5, 0.25, 1.0], [0, 4, 8], 10)
    assert got.dtype == np.float32
    assert got.tolist() == [0.5] * 4 + [0.25] * 4 + [1.0] * 2
    assert spread_scores([0.5, 0.25], [2, 4], 6).tolist() == [0, 0, 0.5, 0.5, 0.25, 0.25]


def test_shot_scores_are_float32_means():
    frames = np.array([0.1, 0.2, 0.3, 0.7], np.float32)
    got = shot_scores(frames, np.array([[0, 2], [3, 3]]))
    assert got.tolist() == [frames[:3].mean().item(), frames[3:].mean().item()]


@pytest.mark.parametrize("seed", range(60))
def test_knapsack_equals_the_reference(seed):
    rng = np.random.default_rng(400 + seed)
    n = int(rng.integers(0, 25))
    weights = [int(w) for w in rng.integers(1, 40, size=n)]
    if seed % 3 == 0:  # few distinct values: many optimal sets, the reference's choice must be kept
        values = [float(v) for v in rng.integers(0, 3, size=n)]
    elif seed % 3 == 1:
        values = [float(np.float32(v)) for v in rng.random(n)]
    else:
        values = [float(v) for v in rng.choice([0.25, 0.5, 0.75], size=n)]
    capacity = int(rng.integers(0, max(sum(weights), 1) + 1))
    assert knapsack(capacity, weights, values) == ref.knap_sack(capacity, weights, values, n)


def test_knapsack_refuses_empty_shots():
    with pytest.raises(ValueError, match=">= 1 frame"):
        knapsack(10, [3, 0], [1.0, 1.0])


@pytest.mark.parametrize("seed", range(25))
def test_summaries_equal_the_reference_end_to_end(seed):
    """Features + sampled-frame scores -> change points, shots, the 15% knapsack, the output
    JSON: the reference's get_change_points, generate_summary and summary_format."""
    rng = np.random.default_rng(500 + seed)
    n_sampled = int(rng.integers(1, 200))
    n_frames = 15 * (n_sampled - 1) + int(rng.integers(1, 16))
    picks = np.arange(0, n_frames, 15)
    x = video_features(rng, n_sampled, ("noise", "segments", "repeats")[seed % 3])
    scores = rng.random(n_sampled).astype(np.float32)
    if seed % 4 == 0:
        scores = np.round(scores * 2) / 2  # repeated scores: ties between shots
    fps = float(rng.choice([23.976, 25.0, 29.97, 30.0, 60.0]))

    shots_ref, _ = ref.get_change_points(ref.norm_feature(x.copy()), n_frames)
    summary_ref = ref.generate_summary([shots_ref], [scores.tolist()], [n_frames], [picks.astype(np.int32)])[
        0
    ]
    out_ref = ref.summary_format(summary_ref.tolist(), fps)

    shots = shots_from_change_points(kts_change_points(x), picks, n_frames)
    summary = summarize(shots, scores, picks, n_frames)
    np.testing.assert_array_equal(summary.frames, summary_ref)
    assert summary.capacity == int(n_frames * 0.15) and summary.frames.sum() <= summary.capacity
    assert modelscope_output(summary.frames, fps) == out_ref


def test_summarize_with_another_budget():
    shots = np.array([[0, 9], [10, 29], [30, 39]])
    s = summarize(shots, [0.9, 0.1, 0.8, 0.2], [0, 10, 20, 30], 40, budget=0.5)
    assert s.capacity == 20 and s.selected == [0, 2]
    assert s.frames.tolist() == [1] * 10 + [0] * 20 + [1] * 10
    with pytest.raises(ValueError, match="budget"):
        summarize(shots, [0.5] * 4, [0, 10, 20, 30], 40, budget=0.0)


def test_summary_segments_and_output():
    frames = np.array([1, 1, 0, 0, 1, 0, 1, 1, 1])
    assert summary_segments(frames) == [[0, 1], [4, 4], [6, 8]]
    assert summary_segments(np.zeros(5)) == []
    out = modelscope_output(frames, 2.0)
    assert out[2] == {"frame": [6, 8], "timestamps": ["00:00:03.000", "00:00:04.000"]}
    assert out == ref.summary_format(frames.tolist(), 2.0)


@pytest.mark.parametrize("seconds", [0.0, 0.5, 59.9996, 61.25, 3599.9999, 3725.5, 36000.04, 1e-4])
def test_timestamps_are_the_references(seconds):
    assert timestamp(seconds) == ref.transform_time(seconds)
    assert timestamp(3725.5) == "01:02:05.500"


def test_shot_segments_split_only_shots_longer_than_the_budget():
    from reelbeam.transforms.summaries import shot_segments, split_long_segments

    # 720 frames at 15%: 108 frames fit; a 500-frame shot becomes 5 pieces of 100, a 108-frame one stays
    segs = shot_segments([(0, 99), (100, 207), (208, 707), (708, 719)], 720, 0.15)
    assert segs.tolist() == [[0, 99], [100, 207], [208, 307], [308, 407], [408, 507], [508, 607], [608, 707], [708, 719]]
    # one 720-frame shot (issue #25's single KTS segment): 7 near-equal pieces, none over 108 frames
    one = split_long_segments(np.array([[0, 719]]), 108)
    assert len(one) == 7 and one[0, 0] == 0 and one[-1, 1] == 719
    assert np.all(one[1:, 0] == one[:-1, 1] + 1) and (one[:, 1] - one[:, 0] + 1).max() <= 108
    assert split_long_segments(np.array([[0, 5]]), 0).tolist() == [[0, 5]]  # nothing can fit: as it is
    with pytest.raises(ValueError, match="partition"):
        shot_segments([(0, 99), (150, 719)], 720, 0.15)
