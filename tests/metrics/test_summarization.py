"""Summary F-score, the reference protocol's summary, rank correlations and the random baseline on
hand-made cases; the TVSum / SumMe readers on tiny files."""

import itertools
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reelbeam.metrics import (
    TruthFormatError,
    random_summary_baseline,
    rank_correlation,
    read_summary_truth,
    reference_summary,
    summary_fscore,
)
from reelbeam.metrics.summarization import frame_scores, knapsack


def test_fscore_pads_and_reduces_over_users():
    summary = [1, 1, 0, 0, 0, 0]  # 6 frames, zero-padded to the users' 8
    users = [[1, 0, 0, 0, 0, 0, 0, 1], [0, 0, 1, 1, 0, 0, 0, 0]]
    # User 1: overlap 1, P = 1/2, R = 1/2, F = 1/2. User 2: no overlap, F = 0.
    assert summary_fscore(summary, users) == pytest.approx(0.25)
    assert summary_fscore(summary, users, "max") == pytest.approx(0.5)
    # A longer summary than the users': P = 1/3 (frames 0, 1, 8), R = 1/2 -> F = 2/5 for user 1.
    assert summary_fscore([1, 1, 0, 0, 0, 0, 0, 0, 1], users, "max") == pytest.approx(0.4)


def test_fscore_of_an_empty_summary_is_zero():
    # The reference divides 0 by 0 here (NaN); an empty summary scores 0.
    assert summary_fscore([0, 0, 0], [[1, 0, 0]]) == 0.0
    with pytest.raises(ValueError, match="reduce"):
        summary_fscore([1], [[1]], "median")


def test_frame_scores_hold_until_the_next_position():
    got = frame_scores([0.1, 0.5, 0.9], [0, 3, 6], 8)
    assert got.tolist() == pytest.approx([0.1, 0.1, 0.1, 0.5, 0.5, 0.5, 0.9, 0.9])


def test_knapsack_exact_and_reference_tie_break():
    assert knapsack(5, [2, 3, 4], [3.0, 4.0, 5.0]) == [0, 1]  # 3 + 4 = 7 beats 5
    assert knapsack(10, [5, 4, 6, 3], [10.0, 40.0, 30.0, 50.0]) == [1, 3]  # 90
    # Equal values: the reference's backtracking keeps the earlier item (the later one does not
    # strictly raise the table).
    assert knapsack(1, [1, 1], [1.0, 1.0]) == [0]
    assert knapsack(3, [4, 5], [1.0, 1.0]) == []


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 12), st.floats(0, 1, allow_nan=False)), min_size=0, max_size=8),
    st.integers(0, 30),
)
def test_knapsack_is_optimal(items, capacity):
    weights, values = [w for w, _ in items], [v for _, v in items]
    kept = knapsack(capacity, weights, values)
    best = max(
        (sum(values[i] for i in c) for r in range(len(items) + 1) for c in itertools.combinations(range(len(items)), r)
         if sum(weights[i] for i in c) <= capacity),
    )
    assert sum(weights[i] for i in kept) <= capacity and sorted(set(kept)) == kept
    assert sum(values[i] for i in kept) == pytest.approx(best)


def test_reference_summary_by_hand():
    # 20 frames, shots [0,1] [2,9] [10,12] [13,19]; scores sampled at 0, 10, 13: 0.2, 0.6, 0.9.
    # Shot means 0.2, 0.2, 0.6, 0.9; lengths 2, 8, 3, 7; budget int(20 * 0.15) = 3 frames: the best
    # that fits is shot [10, 12] (0.6 > 0.2).
    s = reference_summary([[0, 1], [2, 9], [10, 12], [13, 19]], [0.2, 0.6, 0.9], 20, [0, 10, 13])
    assert np.flatnonzero(s).tolist() == [10, 11, 12] and len(s) == 20


def test_rank_correlation_by_hand():
    scores = [1, 2, 3, 4]
    users = [[1, 2, 3, 4], [4, 3, 2, 1], [1, 2, 4, 3]]
    # User 3: 5 concordant, 1 discordant pair of 6: tau = 4/6; rho = 1 - 6 * (1 + 1) / (4 * 15) = 0.8.
    assert rank_correlation(scores, users, "kendall") == pytest.approx((1 - 1 + 4 / 6) / 3)
    assert rank_correlation(scores, users, "spearman") == pytest.approx((1 - 1 + 0.8) / 3)
    # Ties (TVSum's 1-5 ratings): tau-b = (C - D) / sqrt((6 - 2 tied pairs) * (6 - 0)) = 4 / sqrt(24).
    assert rank_correlation(scores, [[1, 1, 2, 2]], "kendall") == pytest.approx(4 / np.sqrt(24))
    with pytest.raises(ValueError, match="frames"):
        rank_correlation([1, 2], [[1, 2, 3]])


def test_random_baseline_through_the_reference_protocol():
    # 20 frames, shots [0, 2] and [3, 19], budget 3 frames: only the first shot fits, and any
    # positive random scores keep it. User summary frames 0..5: P = 1, R = 3/6, F = 2/3 each seed.
    users = [np.r_[np.ones(6), np.zeros(14)]]
    r = random_summary_baseline(users, 20, shots=[[0, 2], [3, 19]], seeds=range(7))
    assert r == {"mean": pytest.approx(2 / 3), "std": pytest.approx(0.0), "seeds": 7}


def test_random_baseline_with_a_summarize_callable():
    seen = []

    def summarize(scores):
        seen.append(len(scores))
        return np.array([1, 0, 0, 0])

    # Scores are drawn per sampled frame (3 positions); the summary [1, 0, 0, 0] against user
    # [1, 1, 0, 0]: P = 1, R = 1/2, F = 2/3.
    r = random_summary_baseline([[1, 1, 0, 0]], 4, positions=[0, 1, 2], summarize=summarize, seeds=range(3))
    assert seen == [3, 3, 3] and r["mean"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="exactly one"):
        random_summary_baseline([[1]], 1, seeds=range(1))


def test_json_and_tvsum_tsv_readers(tmp_path):
    j = tmp_path / "tvsum.json"
    j.write_text(json.dumps({"v1": {"user_summary": [[0, 1, 1]], "n_frames": 3, "change_points": [[0, 0], [1, 2]]}}))
    t = read_summary_truth(str(j))["v1"]
    assert t.n_frames == 3 and t.user_summary.tolist() == [[0, 1, 1]] and t.change_points.tolist() == [[0, 0], [1, 2]]
    assert t.user_scores is None
    tsv = tmp_path / "ydata-tvsum50-anno.tsv"
    tsv.write_text("AwmHb44_ouw\tVT\t1,1,3,5\nAwmHb44_ouw\tVT\t2,2,2,4\n98MoyGZKHXc\tVT\t1,2\n")
    t = read_summary_truth(str(tsv))
    assert t["AwmHb44_ouw"].user_scores.tolist() == [[1, 1, 3, 5], [2, 2, 2, 4]] and t["AwmHb44_ouw"].n_frames == 4
    assert t["98MoyGZKHXc"].n_frames == 2


def test_pgl_sum_h5_reader(tmp_path):
    h5py = pytest.importorskip("h5py")
    p = tmp_path / "eccv16_dataset_tvsum_google_pool5.h5"
    with h5py.File(p, "w") as f:
        g = f.create_group("video_1")
        g["user_summary"] = np.array([[0, 1, 1, 0], [1, 1, 0, 0]], np.float32)
        g["n_frames"] = 4
        g["change_points"] = np.array([[0, 1], [2, 3]])
        g["picks"] = np.array([0, 2])
        g["video_name"] = b"AwmHb44_ouw"
        f.create_group("video_2")["user_summary"] = np.zeros((1, 2))
    t = read_summary_truth(str(p))
    assert sorted(t) == ["AwmHb44_ouw", "video_2"]
    v = t["AwmHb44_ouw"]
    assert v.n_frames == 4 and v.picks.tolist() == [0, 2] and v.user_summary.shape == (2, 4)


@pytest.mark.parametrize(
    "name, content, fmt, message",
    [
        ("a.json", '{"v": {"n_frames": 3}}', None, "needs 'user_summary' or 'user_scores'"),
        ("a.tsv", "v\t1,2\n", None, "expected video_id<TAB>category<TAB>scores"),
        ("a.tsv", "v\tVT\t1,x\n", None, "comma-separated integers"),
        ("a.mat", "", None, "unknown summary ground-truth format None"),
        ("b.h5", "not hdf5", None, "not a readable HDF5 file"),
    ],
)
def test_summary_truth_errors(tmp_path, name, content, fmt, message):
    if name.endswith(".h5"):
        pytest.importorskip("h5py")
    p = tmp_path / name
    p.write_text(content)
    with pytest.raises(TruthFormatError, match=message):
        read_summary_truth(str(p), fmt)
