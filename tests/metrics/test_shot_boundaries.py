"""Shot-boundary metrics on hand-made cases, and the ground-truth readers on tiny files."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reelbeam.metrics import (
    Counts,
    TruthFormatError,
    evaluate_transitions,
    match_transitions,
    read_shot_truth,
    scenes_from_predictions,
    transitions_from_cuts,
    transitions_from_shots,
)


# A true cut at 40 is (39, 40), the interval [2*39 + 1 - t, 2*40 - 1 + t] = [79 - t, 79 + t] in
# half frames; a detected cut at s is [2s - 1 - t, 2s - 1 + t]; they overlap iff |s - 40| <= t.
@pytest.mark.parametrize(
    "detected, tolerance, hit",
    [(40, 0, True), (41, 0, False), (39, 0, False), (41, 1, True), (42, 2, True), (38, 2, True), (43, 2, False), (37, 2, False)],
)
def test_cut_within_tolerance(detected, tolerance, hit):
    c = evaluate_transitions(transitions_from_cuts([40]), transitions_from_cuts([detected]), tolerance)
    assert c == (Counts(1, 0, 0) if hit else Counts(0, 1, 1))


# A dissolve mixing frames 100..111 is (99, 112): [2*99 + 1 - 2, 2*112 - 1 + 2] = [197, 225] at
# t = 2; a cut at s, [2s - 3, 2s + 1], overlaps iff 98 <= s <= 114: inside, or 2 frames out.
@pytest.mark.parametrize("detected, hit", [(97, False), (98, True), (100, True), (106, True), (112, True), (114, True), (115, False)])
def test_cut_inside_a_gradual_transition(detected, hit):
    c = evaluate_transitions([(99, 112)], transitions_from_cuts([detected]), 2)
    assert c.tp == int(hit)


def test_gradual_transition_without_tolerance():
    # t = 0: [2*99 + 1, 2*112 - 1] = [199, 223]; a cut at s is [2s - 1, 2s - 1]: 100 <= s <= 112.
    hits = [s for s in range(95, 120) if evaluate_transitions([(99, 112)], transitions_from_cuts([s]), 0).tp]
    assert hits == list(range(100, 113))


def test_one_to_one_matching_pools_counts():
    # Truth: cut 40, dissolve (99, 112), cut 200. Detected: 41 (hits 40), 103 (hits the dissolve),
    # 106 (same dissolve, already matched: false alarm), 150 (false alarm). Cut 200 missed.
    # P = 2/4, R = 2/3, F1 = 2 * (1/2) * (2/3) / (1/2 + 2/3) = (2/3) / (7/6) = 4/7.
    truth = np.array([(39, 40), (99, 112), (199, 200)])
    detected = transitions_from_cuts([41, 103, 106, 150])
    m = match_transitions(truth, detected, 2)
    assert m.counts == Counts(2, 2, 1)
    assert m.matched == [(0, 0), (1, 1)] and m.false_alarms == [2, 3] and m.missed == [2]
    assert m.counts.precision == 0.5 and m.counts.recall == pytest.approx(2 / 3) and m.counts.f1 == pytest.approx(4 / 7)
    # Pooled over two videos: (2, 2, 1) + (1, 0, 0) = (3, 2, 1).
    assert (m.counts + Counts(1, 0, 0)).as_dict() == {"precision": 0.6, "recall": 0.75, "f1": 0.6667, "tp": 3, "fp": 2, "fn": 1}


@pytest.mark.parametrize(
    "gt, tolerance, hit",
    # The examples in TransNetV2's evaluate_scenes docstring, with pred_scenes [[0, 5], [6, 9]].
    [
        ([[0, 5], [6, 9]], 0, True),
        ([[0, 4], [5, 9]], 0, False),
        ([[0, 5], [6, 9]], 1, True),
        ([[0, 4], [5, 9]], 1, True),
        ([[0, 3], [4, 9]], 1, False),
        ([[0, 3], [4, 9]], 2, True),
        ([[0, 2], [3, 9]], 2, False),
    ],
)
def test_transnetv2_docstring_examples(gt, tolerance, hit):
    c = evaluate_transitions(transitions_from_shots(gt), transitions_from_shots([[0, 5], [6, 9]]), tolerance)
    assert c == (Counts(1, 0, 0) if hit else Counts(0, 1, 1))


def test_empty_inputs_give_zero_ratios():
    assert evaluate_transitions([(9, 10)], []).as_dict() == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "tp": 0, "fp": 0, "fn": 1}
    assert evaluate_transitions([], []) == Counts(0, 0, 0)
    with pytest.raises(ValueError, match="tolerance"):
        evaluate_transitions([], [], -1)


@pytest.mark.parametrize(
    "predictions, scenes",
    [
        ([0, 0, 1, 0, 0], [[0, 2], [3, 4]]),  # one frame above: the shot ends on it
        ([0, 0, 1, 1, 0, 0], [[0, 2], [4, 5]]),  # frame 3 lies between the shots: gradual
        ([0, 1, 0, 1, 0], [[0, 1], [2, 3], [4, 4]]),
        ([1, 0, 0], [[1, 2]]),
        ([1, 1, 1], [[0, 2]]),  # all transition: one shot, as TransNetV2's fix-up
    ],
)
def test_scenes_from_predictions(predictions, scenes):
    assert scenes_from_predictions(predictions).tolist() == scenes


def test_transitions_from_shots_keeps_gaps_as_gradual():
    assert transitions_from_shots([[0, 9], [10, 19], [25, 30]]).tolist() == [[9, 10], [19, 25]]
    assert transitions_from_shots([[0, 9]]).shape == (0, 2)


# ------------------------------------------------------------------------------------------------
# Readers


def test_json_reader_combines_cuts_transitions_and_shots(tmp_path):
    p = tmp_path / "truth.json"
    p.write_text(json.dumps({
        "a.mp4": {"cuts": [40, 70], "transitions": [[99, 112]]},
        "b": {"shots": [[0, 9], [10, 19]]},
        "clipshots.mp4": {"frame_num": 50, "transitions": [[9, 10], [19, 25]]},  # ClipShots' layout
    }))
    t = read_shot_truth(str(p))
    assert t["a.mp4"].tolist() == [[39, 40], [69, 70], [99, 112]]
    assert t["b"].tolist() == [[9, 10]]
    assert t["clipshots.mp4"].tolist() == [[9, 10], [19, 25]]
    # --frame-offset applies to every format
    assert read_shot_truth(str(p), frame_offset=1)["a.mp4"].tolist() == [[40, 41], [70, 71], [100, 113]]


def test_csv_reader_cuts_and_transitions(tmp_path):
    p = tmp_path / "truth.csv"
    p.write_text("video,frame,out_frame,in_frame\na.mp4,40,,\na.mp4,,99,112\nb.mp4,7,,\n")
    t = read_shot_truth(str(p))
    assert t["a.mp4"].tolist() == [[39, 40], [99, 112]] and t["b.mp4"].tolist() == [[6, 7]]


def test_shot_list_files_rai_and_transnetv2_names(tmp_path):
    d = tmp_path / "labels"
    d.mkdir()
    (d / "25011_gt.txt").write_text("0\t509\n523\t531\n532\t597\n")  # RAI: gap 510..522 is gradual
    (d / "25012_gt.txt").write_text("0 99\n100 199\n")
    t = read_shot_truth(str(d))  # all *_gt.txt: the RAI layout
    assert t == {"25011": pytest.approx(np.array([[509, 523], [531, 532]])), "25012": pytest.approx(np.array([[99, 100]]))}
    one = tmp_path / "clip.mp4.scenes.txt"  # TransNetV2's output file
    one.write_text("0 39\n40 69\n")
    assert read_shot_truth(str(one)) == {"clip.mp4": pytest.approx(np.array([[39, 40]]))}


def test_bbc_reader_shifts_frames_as_transnetv2(tmp_path):
    shots = tmp_path / "annotations" / "shots"
    shots.mkdir(parents=True)
    (shots / "01_From_Pole_to_Pole.txt").write_text("0\t99\n100\t199\n203\t300\n")
    assert read_shot_truth(str(tmp_path))["01_From_Pole_to_Pole"].tolist() == [[100, 101], [200, 204]]
    assert read_shot_truth(str(tmp_path), "bbc", frame_offset=0)["01_From_Pole_to_Pole"].tolist() == [[99, 100], [199, 203]]


@pytest.mark.parametrize(
    "name, content, fmt, message",
    [
        ("bad.txt", "0 10\n11\n", None, r"bad.txt:2: expected 2 integers"),
        ("bad.json", "{not json", None, "not valid JSON"),
        ("bad2.json", '{"a": {"frames": [1]}}', None, "needs 'cuts', 'transitions' or 'shots'"),
        ("bad.csv", "name,cut\na,1\n", None, "expected a header with 'video'"),
        ("x.dat", "", None, "cannot tell its shot ground-truth format"),
        ("y.txt", "0 1\n", "edl", "unknown shot ground-truth format 'edl'"),
    ],
)
def test_reader_errors_are_one_line(tmp_path, name, content, fmt, message):
    p = tmp_path / name
    p.write_text(content)
    with pytest.raises(TruthFormatError, match=message) as e:
        read_shot_truth(str(p), fmt)
    assert "\n" not in str(e.value)


def test_missing_truth_file(tmp_path):
    with pytest.raises(TruthFormatError, match="no such file"):
        read_shot_truth(str(tmp_path / "nope.json"))


def _maximum_matching(truth, cuts, t):
    """Size of a maximum matching where cut s may pair with truth (a, b) iff a + 1 - t <= s <= b + t."""
    pair: dict[int, int] = {}

    def augment(j, seen):
        for i, (a, b) in enumerate(truth):
            if a + 1 - t <= cuts[j] <= b + t and i not in seen:
                seen.add(i)
                if i not in pair or augment(pair[i], seen):
                    pair[i] = j
                    return True
        return False

    return sum(augment(j, set()) for j in range(len(cuts)))


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(1, 12), min_size=2, max_size=8),  # shot lengths
    st.lists(st.integers(0, 4), min_size=1, max_size=7),  # gaps (gradual transitions) between shots
    st.lists(st.integers(0, 80), max_size=10, unique=True),  # detected cuts
    st.integers(0, 3),
)
def test_matching_is_maximum_for_cuts(lengths, gaps, cuts, tolerance):
    spans, start = [], 0
    for k, n in enumerate(lengths):
        spans.append((start, start + n - 1))
        start += n + gaps[k % len(gaps)]
    truth = transitions_from_shots(spans)
    c = evaluate_transitions(truth, transitions_from_cuts(cuts), tolerance)
    assert c.tp == _maximum_matching(truth.tolist(), sorted(cuts), tolerance)
    assert (c.tp + c.fp, c.tp + c.fn) == (len(cuts), len(truth))
