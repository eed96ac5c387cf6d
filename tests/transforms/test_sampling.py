"""One frame-sampling spec and picker for every decode-pass consumer that samples frames."""

import pytest

from reelbeam.transforms.clip_scoring import ClipSampling
from reelbeam.transforms.motion import MotionSampling
from reelbeam.transforms.sampling import FrameSampling


def test_each_consumer_accepts_its_own_modes_and_names_them_in_errors():
    assert MotionSampling.parse(None) == MotionSampling("off")
    assert MotionSampling.parse("every:3") == MotionSampling("every", 3.0)
    assert ClipSampling.parse("fps:2") == ClipSampling("fps", 2.0)
    with pytest.raises(ValueError, match=r"^--clip-sample must be every:N \(N >= 1 frames\) or fps:R \(R > 0 a second\), got 'all'$"):
        ClipSampling.parse("all")
    with pytest.raises(ValueError, match=r"^motion map sampling must be off, all, every:N .* or fps:R .*, got 'every:1.5'$"):
        MotionSampling.parse("every:1.5")
    assert str(ClipSampling()) == "every:15" and str(MotionSampling("all")) == "all"


def test_pickers_take_every_nth_index_or_r_frames_a_second_of_pts():
    frames = [(i, i / 10) for i in range(30)]  # 10 fps
    every = FrameSampling("every", 4).picker()
    assert [i for i, t in frames if every(i, t)] == [0, 4, 8, 12, 16, 20, 24, 28]
    fps = FrameSampling("fps", 2.5).picker()
    assert [i for i, t in frames if fps(i, t)] == [0, 4, 8, 12, 16, 20, 24, 28]
    assert all(FrameSampling("all").picker()(i, t) for i, t in frames)
    # A picker is per video: a fresh one starts again at the video's first frame.
    late = FrameSampling("fps", 1).picker()
    assert [i for i, t in frames[5:] if late(i, t)] == [5, 15, 25]
