import numpy as np
import pytest

from reelbeam.transforms.scenes import (
    NUM_BINS,
    SceneConfig,
    boundary_scores,
    frame_histogram,
    group_shots,
    intersection,
    shot_descriptors,
)


def one_hot(*bins):
    d = np.zeros((len(bins), NUM_BINS))
    for i, b in enumerate(bins):
        d[i, b] = 1.0
    return d


def test_frame_histogram_counts_every_pixel_in_its_bin():
    img = np.zeros((27, 48, 3), np.uint8)
    img[:, :24] = (255, 0, 0)  # bin (3, 0, 0) = 48
    h = frame_histogram(img)
    assert h.sum() == 27 * 48 and h[48] == 27 * 24 and h[0] == 27 * 24


def test_shot_descriptors_are_normalised_means():
    hists = np.array([[2, 0], [0, 2], [1, 1]], np.uint16)
    d = shot_descriptors(hists, [(0, 1), (2, 2)])
    np.testing.assert_allclose(d, [[0.5, 0.5], [0.5, 0.5]])


def test_intersection():
    a = one_hot(0, 1)
    np.testing.assert_allclose(intersection(a, a), np.eye(2))


def test_group_shots_splits_where_colours_change():
    desc = one_hot(0, 0, 5, 5, 5, 9)
    scenes, scores = group_shots(desc, window=1, threshold=0.5)
    assert scenes == [(0, 1), (2, 4), (5, 5)]
    assert scores[-1] == 0.0


def test_a_wider_window_keeps_alternating_angles_together():
    desc = one_hot(0, 3, 0, 3, 7, 7)  # A B A B | C C
    assert group_shots(desc, window=1, threshold=0.5)[0] == [(0, 0), (1, 1), (2, 2), (3, 3), (4, 5)]
    assert group_shots(desc, window=2, threshold=0.5)[0] == [(0, 3), (4, 5)]


def test_boundary_scores_look_both_ways():
    s = boundary_scores(one_hot(0, 1, 0), window=2)
    assert s[0] == 1.0  # shot 0 matches shot 2 in the window after it


def test_empty_and_single():
    assert group_shots(np.zeros((0, NUM_BINS)))[0] == []
    assert group_shots(one_hot(3))[0] == [(0, 0)]


def test_config_validates():
    with pytest.raises(ValueError, match="scene method"):
        SceneConfig(method="bassl-ish")
    with pytest.raises(ValueError, match="window"):
        SceneConfig(window=0)
