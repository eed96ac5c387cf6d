"""Scene-boundary P/R/F1 and mIoU on hand-made cases; scene truth readers on tiny files."""

import json

import pytest

from reelbeam.metrics import (
    Counts,
    TruthFormatError,
    match_boundaries,
    read_scene_truth,
    scene_ends,
    scene_miou,
)


def test_boundaries_within_tolerance_one_to_one():
    # Truth 100, 200; tolerance 10. 90 -> 100 (|10| <= 10); 99 -> 100 is taken, 200 is 101 away: fp;
    # 260: fp. 200 unmatched: fn.
    assert match_boundaries([90, 99, 260], [100, 200], 10) == Counts(1, 2, 1)


def test_greedy_pairing_is_maximal():
    # 15 takes the earliest free truth within 5 (10), so 25 can still take 20. Pairing 15 with 20
    # instead would leave 25 unmatched.
    assert match_boundaries([15, 25], [10, 20], 5) == Counts(2, 0, 0)


def test_boundaries_in_seconds():
    # Same rule on times: 3.4 s is 0.6 s from 4.0 s (hit at 1 s), 9.0 s is 1.5 s from 7.5 s (miss).
    assert match_boundaries([3.4, 9.0], [4.0, 7.5], 1.0) == Counts(1, 1, 1)


def test_scene_ends_are_the_ends_of_all_scenes_but_the_last():
    assert scene_ends([(0, 99), (100, 149), (150, 199)]) == [99, 149]
    assert scene_ends([(0, 99)]) == []


def test_miou_by_hand():
    truth = [(0, 99), (100, 199)]
    pred = [(0, 99), (100, 149), (150, 199)]
    # IoU = (min end - max start) / (max end - min start):
    #   truth (0, 99) ~ pred (0, 99): 99 / 99 = 1
    #   truth (100, 199) ~ pred (100, 149): 49 / 99;  ~ pred (150, 199): 49 / 99
    # truth side: (1 + 49/99) / 2; prediction side: (1 + 49/99 + 49/99) / 3; mIoU: their mean.
    expected = ((1 + 49 / 99) / 2 + (1 + 2 * 49 / 99) / 3) / 2
    assert scene_miou(pred, truth) == pytest.approx(expected)
    assert expected == pytest.approx(0.705387, abs=1e-6)
    assert scene_miou(truth, truth) == 1.0


def test_miou_of_disjoint_scenes_is_zero_and_empty_is_an_error():
    assert scene_miou([(0, 10)], [(20, 30)]) == 0.0
    with pytest.raises(ValueError):
        scene_miou([], [(0, 1)])


def test_json_and_csv_scene_truth(tmp_path):
    j = tmp_path / "scenes.json"
    j.write_text(json.dumps({"a.mp4": {"scenes": [[100, 199], [0, 99]]}}))
    assert read_scene_truth(str(j))["a.mp4"].tolist() == [[0, 99], [100, 199]]  # sorted by start
    c = tmp_path / "scenes.csv"
    c.write_text("video,start_frame,end_frame\na.mp4,0,99\na.mp4,100,199\n")
    assert read_scene_truth(str(c))["a.mp4"].tolist() == [[0, 99], [100, 199]]


def test_bbc_scenes(tmp_path):
    shots = tmp_path / "annotations" / "shots"
    scenes = tmp_path / "annotations" / "scenes" / "annotator_1"
    shots.mkdir(parents=True)
    scenes.mkdir(parents=True)
    (shots / "02_Mountains.txt").write_text("0\t9\n10\t19\n20\t29\n32\t39\n")
    # Scenes start at shots 0 and 2; the list ends with the number of shots (4).
    (scenes / "02_Mountains.txt").write_text("0,2,4")
    got = read_scene_truth(str(tmp_path), annotator=1, frame_offset=0)
    assert got["02_Mountains"].tolist() == [[0, 19], [20, 39]]
    assert read_scene_truth(str(tmp_path), "bbc", annotator=1)["02_Mountains"].tolist() == [[1, 20], [21, 40]]
    (scenes / "02_Mountains.txt").write_text("0,2,3")
    with pytest.raises(TruthFormatError, match="ending with the number of shots"):
        read_scene_truth(str(tmp_path), annotator=1)


def test_scene_truth_errors(tmp_path):
    p = tmp_path / "s.json"
    p.write_text(json.dumps({"a": {"cuts": [1]}}))
    with pytest.raises(TruthFormatError, match="needs 'scenes'"):
        read_scene_truth(str(p))
    with pytest.raises(TruthFormatError, match="unknown scene ground-truth format"):
        read_scene_truth(str(p), "xml")
