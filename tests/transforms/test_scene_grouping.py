"""Training-free scene grouping v2: features and the optimal sequential grouping on hand-made
similarities whose answer is known."""

import itertools

import numpy as np
import pytest
import synthetic

from reelbeam.transforms.scene_grouping import (
    HS_BINS,
    SceneGroupingConfig,
    boundary_dissimilarity,
    group_scenes,
    hs_histogram,
    mean_embeddings,
    mean_histograms,
    optimal_grouping,
    scene_frame_indices,
    scene_gain,
    shot_scene_features,
    shot_similarity,
    video_threshold,
    windowed_boundaries,
)


def block_similarity(labels, inside=0.8, across=0.3):
    lab = np.asarray(labels)
    return np.where(lab[:, None] == lab[None, :], inside, across).astype(float)


def test_hs_histogram_sums_to_one_and_ignores_exposure():
    img = synthetic.scene_frame(3, 0, 96, 54)
    h = hs_histogram(img)
    assert h.shape == (HS_BINS,) and h.sum() == pytest.approx(1.0)
    darker = (img.astype(np.float32) * 0.7).astype(np.uint8)
    assert np.minimum(h, hs_histogram(darker)).sum() > 0.8
    other = synthetic.scene_frame(11, 0, 96, 54)
    assert np.minimum(h, hs_histogram(other)).sum() < np.minimum(h, hs_histogram(darker)).sum()


def test_grey_pictures_fall_in_the_grey_bins():
    grey = np.repeat(np.linspace(0, 255, 64, dtype=np.uint8)[None, :, None], 3, 2).repeat(8, 0)
    h = hs_histogram(grey)
    assert h[-4:].sum() == pytest.approx(1.0)


def test_shot_means():
    e = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    m = mean_embeddings(e, [0, 0, 1], 3)
    np.testing.assert_allclose(m, [[2 ** -0.5, 2 ** -0.5], [1.0, 0.0], [0.0, 0.0]])
    h = mean_histograms(np.array([[1.0, 0.0], [0.0, 1.0]]), [0, 0], 1)
    np.testing.assert_allclose(h, [[0.5, 0.5]])


def test_similarity_mixes_cosine_and_intersection():
    e = np.array([[1.0, 0.0], [0.0, 1.0]])
    h = np.array([[1.0, 0.0], [1.0, 0.0]])
    s = shot_similarity(e, h, 0.7)
    np.testing.assert_allclose(s, [[1.0, 0.3], [0.3, 1.0]])
    np.testing.assert_allclose(shot_similarity(None, h, 0.7), np.ones((2, 2)))
    with pytest.raises(ValueError):
        shot_similarity(None, None, 0.5)


def test_blocks_become_scenes():
    sim = block_similarity([0, 0, 0, 1, 1, 2, 2, 2, 2])
    assert optimal_grouping(sim, 0.55, 4, 64) == [(0, 2), (3, 4), (5, 8)]


def test_alternating_set_ups_stay_one_scene():
    """A B A B: neighbours look less alike than the threshold, every other shot matches; the
    pairs two apart keep the scene together where one neighbouring pair at a time splits it."""
    sim = np.full((6, 6), 0.45)
    for i in range(6):
        for j in range(6):
            if i % 2 == j % 2:
                sim[i, j] = 0.9
    sim[4:, :] = sim[:, 4:] = 0.2
    sim[4, 4] = sim[5, 5] = sim[4, 5] = sim[5, 4] = 0.9
    assert optimal_grouping(sim, 0.55, 4, 64) == [(0, 3), (4, 5)]
    assert windowed_boundaries(sim, 1, 0.55)[:2] == [(0, 0), (1, 1)]  # one pair at a time splits it


def brute_force(sim, threshold, window):
    n = len(sim)
    pair = scene_gain(sim, threshold, window)
    best, best_parts = -np.inf, None
    for cuts in itertools.product([0, 1], repeat=n - 1):
        ends = [i for i, c in enumerate(cuts) if c] + [n - 1]
        parts, start, total = [], 0, 0.0
        for e in ends:
            parts.append((start, e))
            total += sum(pair[i, j - i] for i in range(start, e + 1) for j in range(i + 1, e + 1) if j - i <= window)
            start = e + 1
        if total > best + 1e-12 or (abs(total - best) <= 1e-12 and len(parts) < len(best_parts)):
            best, best_parts = total, parts
    return best_parts


@pytest.mark.parametrize("seed", range(12))
def test_dynamic_programme_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 9))
    a = rng.random((n, n))
    sim = (a + a.T) / 2
    window = int(rng.integers(1, 5))
    assert optimal_grouping(sim, 0.5, window, 64) == brute_force(sim, 0.5, window)


def test_few_shots_use_the_absolute_threshold():
    cfg = SceneGroupingConfig()
    one_scene = np.full((3, 3), 0.75)
    assert group_scenes(one_scene, cfg)[0] == [(0, 2)]  # a 3-shot excerpt of one scene
    unrelated = np.full((3, 3), 0.35)
    np.fill_diagonal(unrelated, 1.0)
    assert group_scenes(unrelated, cfg)[0] == [(0, 0), (1, 1), (2, 2)]


def test_relative_threshold_is_clamped_for_one_scene_and_for_compilations():
    cfg = SceneGroupingConfig()
    all_similar = np.full((10, 10), 0.95)
    assert video_threshold(all_similar, cfg) == cfg.max_threshold
    assert group_scenes(all_similar, cfg)[0] == [(0, 9)]
    compilation = np.full((10, 10), 0.2)
    np.fill_diagonal(compilation, 1.0)
    assert video_threshold(compilation, cfg) == cfg.min_threshold
    assert len(group_scenes(compilation, cfg)[0]) == 10


def test_relative_threshold_follows_the_video():
    """A video whose shots are all fairly alike (one palette) still splits where its scenes change."""
    sim = block_similarity([0] * 5 + [1] * 5 + [2] * 5, inside=0.9, across=0.62)
    cfg = SceneGroupingConfig()
    assert group_scenes(sim, cfg)[0] == [(0, 4), (5, 9), (10, 14)]
    assert group_scenes(sim, SceneGroupingConfig(relative=False, threshold=0.6))[0] == [(0, 14)]


def test_max_scene_length_and_empty():
    scenes = optimal_grouping(np.ones((5, 5)), 0.5, 4, 2)
    assert len(scenes) == 3 and all(b - a + 1 <= 2 for a, b in scenes)
    assert group_scenes(np.zeros((0, 0)))[0] == []
    with pytest.raises(ValueError):
        SceneGroupingConfig(min_threshold=0.8, max_threshold=0.7)


@pytest.mark.parametrize("span, frames", [
    ((0, 99), (24, 49, 75)),  # a quarter in, the middle, a quarter from the end
    ((10, 13), (10, 11, 13)),
    ((5, 6), (5, 6)),
    ((7, 7), (7,)),
])
def test_scene_frame_indices(span, frames):
    assert scene_frame_indices(*span) == frames


def test_boundary_dissimilarity_reads_the_window_on_both_sides():
    sim = block_similarity([0, 0, 0, 1, 1], inside=0.9, across=0.2)
    assert boundary_dissimilarity(sim, 2, 2) == pytest.approx(0.8)
    assert boundary_dissimilarity(sim, 0, 2) == pytest.approx(0.1)
    assert boundary_dissimilarity(sim, 3, 4) == pytest.approx(1 - np.mean([0.2, 0.2, 0.2, 0.9]))


def test_shot_features_average_each_shots_frames_and_name_a_missing_one():
    targets = [(0, 0), (5, 0), (9, 1)]
    emb = {0: np.array([1.0, 0.0]), 5: np.array([0.0, 1.0]), 9: np.array([1.0, 0.0])}
    hists = {f: np.eye(HS_BINS)[f % 3] for f in emb}
    e, h = shot_scene_features(targets, emb, hists, 2)
    np.testing.assert_allclose(e, [[2**-0.5, 2**-0.5], [1.0, 0.0]])
    np.testing.assert_allclose(h.sum(axis=1), 1.0)
    with pytest.raises(KeyError, match="first: frame 5"):
        shot_scene_features(targets, {0: emb[0], 9: emb[9]}, hists, 2)
