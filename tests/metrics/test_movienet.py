"""BaSSL's MovieNet metrics on two hand-made movies; label318 / shot_movie318 and JSON readers."""

import json

import numpy as np
import pytest

from reelbeam.metrics import (
    MovieTruth,
    TruthFormatError,
    average_precision,
    movienet_metrics,
    read_movienet_truth,
)

# Movie A: 6 shots of 24 frames (1 s at BaSSL's 24 fps). Movie B: 4 shots of 240 frames (10 s).
SHOTS_A = np.array([(24 * i, 24 * i + 23) for i in range(6)])
SHOTS_B = np.array([(240 * i, 240 * i + 239) for i in range(4)])
TRUTH = {
    "A": MovieTruth(dict(enumerate([0, 1, 0, 0, 1, 0])), SHOTS_A),
    "B": MovieTruth(dict(enumerate([0, 0, 1, 0])), SHOTS_B),
}
PROBS = {"A": [0.1, 0.7, 0.2, 0.6, 0.3, 0.9], "B": [0.55, 0.2, 0.4, 0.1]}


def test_average_precision_by_hand():
    # Scores 0.9 0.8 0.7 0.6 with labels 1 0 1 0: (recall step, precision) = (1/2, 1), (1/2, 2/3).
    assert average_precision([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.6]) == pytest.approx(0.5 + 0.5 * 2 / 3)
    # Tied scores are one threshold: 0.9 -> (1/2, 1/2); 0.5 -> (1/2, 2/3).
    assert average_precision([1, 0, 1], [0.9, 0.9, 0.5]) == pytest.approx(0.25 + 1 / 3)
    assert np.isnan(average_precision([0, 0], [0.1, 0.2]))


def test_movienet_metrics_by_hand():
    m = movienet_metrics(PROBS, TRUTH)
    # AP pooled over both movies, scores sorted: 0.9(0) 0.7(1) 0.6(0) 0.55(0) 0.4(1) 0.3(1) ...
    # recall steps of 1/3 at 0.7 (precision 1/2), 0.4 (2/5) and 0.3 (3/6).
    assert m["ap"] == pytest.approx((0.5 + 0.4 + 0.5) / 3)
    # F1 at p >= 0.5, pooled: TP = 1 (0.7), FP = 3 (0.9, 0.6, 0.55), FN = 2 (0.4, 0.3): 2/(2+3+2).
    assert m["f1"] == pytest.approx(2 / 7)
    # Recall per movie: A finds shot 1 of {1, 4}: 1/2; B misses shot 2: 0. Mean 1/4.
    assert m["recall"] == pytest.approx(0.25)
    # Recall@3s. A: shot 1 is predicted itself. Shot 4 (ends at frame 119): shot 1 is predicted
    # but (119 - 47) / 24 = 3.0 s is not < 3; shot 3 (ends at 95) is 1 s away: found. 2 / (2 + 1e-5).
    # B: shot 2 ends at 719; the only predicted shot, 0, ends at 239: 20 s away. 0.
    assert m["recall_at_3s"] == pytest.approx((2 / (2 + 1e-5) + 0) / 2, rel=1e-12)
    # mIoU. A truth scenes: shots 0-1 (0, 47), 2-4 (48, 119); shot 5 dropped (after the last 1).
    #   Predicted (shots 1, 3, 5): (0, 47), (48, 95), (96, 143).
    #   IoU (48, 119) ~ (48, 95) = 47/71, ~ (96, 143) = (119 - 96)/(143 - 48) = 23/95.
    #   truth side (1 + 47/71)/2; prediction side (1 + 47/71 + 23/95)/3.
    # B truth: shots 0-2 (0, 719); predicted: shot 0 (0, 239), the rest dropped: 239/719 both sides.
    a = ((1 + 47 / 71) / 2 + (1 + 47 / 71 + 23 / 95) / 3) / 2
    assert m["miou"] == pytest.approx((a + 239 / 719) / 2)
    assert (m["movies"], m["shots"], m["unscored_shots"]) == (2, 10, 0)


def test_argmax_at_one_half_but_f1_at_or_above():
    # BaSSL's prediction is argmax of the two classes (p = 0.5 is class 0), its F1 thresholds p >= 0.5.
    m = movienet_metrics({"A": [0.5, 0.0]}, {"A": MovieTruth({0: 1, 1: 0}, np.array([[0, 9], [10, 19]]))})
    assert m["f1"] == 1.0 and m["recall"] == 0.0 and m["miou"] == 0.0  # no predicted boundary: 0


def test_unscored_shots_and_unknown_movie():
    m = movienet_metrics({"A": {0: 0.1, 1: 0.9}}, TRUTH)  # 2 of A's 6 labelled shots scored
    assert m["unscored_shots"] == 4 and m["shots"] == 2
    with pytest.raises(KeyError, match="no ground truth"):
        movienet_metrics({"C": [0.5]}, TRUTH)


def test_truth_without_boundary_makes_miou_nan():
    t = {"A": MovieTruth({0: 0, 1: 0}, np.array([[0, 9], [10, 19]]))}
    assert np.isnan(movienet_metrics({"A": [0.9, 0.9]}, t)["miou"])


def test_movienet_folders(tmp_path):
    (tmp_path / "label318").mkdir()
    (tmp_path / "shot_movie318").mkdir()
    (tmp_path / "label318" / "tt0000001.txt").write_text("0000 0\n0001 1\n0002 -1\n0003 0\n")
    (tmp_path / "shot_movie318" / "tt0000001.txt").write_text("0 23 1 11 22\n24 47 25 35 46\n48 71 49 60 70\n72 95 73 84 94\n")
    t = read_movienet_truth(str(tmp_path))["tt0000001"]
    assert t.labels == {0: 0, 1: 1, 2: 1, 3: 0}  # -1 read as 1
    assert t.shots.tolist() == [[0, 23], [24, 47], [48, 71], [72, 95]]
    (tmp_path / "label318" / "tt0000001.txt").write_text("0000 0\n0009 1\n")
    with pytest.raises(TruthFormatError, match="shot 9 is not in shot_movie318"):
        read_movienet_truth(str(tmp_path))


def test_movienet_json(tmp_path):
    p = tmp_path / "movienet.json"
    p.write_text(json.dumps({"tt1": {"labels": [0, -1], "shots": [[0, 9], [10, 19]]}}))
    t = read_movienet_truth(str(p))["tt1"]
    assert t.labels == {0: 0, 1: 1} and t.shots.tolist() == [[0, 9], [10, 19]]
    p.write_text(json.dumps({"tt1": {"labels": [0], "shots": [[0, 9], [10, 19]]}}))
    with pytest.raises(TruthFormatError, match="1 labels"):
        read_movienet_truth(str(p))
    with pytest.raises(TruthFormatError, match="needs 'labels'"):
        p.write_text(json.dumps({"tt1": {"shots": []}}))
        read_movienet_truth(str(p))
