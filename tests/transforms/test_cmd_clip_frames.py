"""Clip frames fetched by seeking equal the frames of a straight decode at the same indices (short
and long GOPs, B-frames, rotation, frame 0 repeated, the last frame), with either frame index, and
clips come out whole while only the frames of clips in progress are held."""

import os
import weakref

import av
import fsspec
import numpy as np
import pyarrow as pa
import pytest
import synthetic

from reelbeam.models.r2plus1d import resize_clip_frame, shot_clip_indices, video_clip_indices
from reelbeam.transforms import cmd_clip_frames as clip_frames
from reelbeam.transforms.cmd_clip_frames import FrameIndex, fetch_frames, iter_clips, packet_index
from reelbeam.transforms.decode import pict_type_name

N = 300


def _write(path, gop, **kwargs):
    return synthetic.write_video(
        path,
        synthetic.numbered_frames(N, width=160, height=96, bits=9),
        gop=gop,
        options={"bf": "2", "keyint_min": str(gop), "sc_threshold": "0"},
        **kwargs,
    )


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clip_frames")
    paths = {
        "short_gop": _write(str(folder / "gop12.mp4"), 12),
        "long_gop": _write(str(folder / "gop100.mp4"), 100),
        "one_gop": _write(str(folder / "gop1000.mkv"), 1000),
    }
    for path in paths.values():  # B-frames: reordering, and frames the fetch lets the decoder skip
        with av.open(path) as c:
            assert "B" in {pict_type_name(f) for f in c.decode(video=0)}
    return paths


def straight(path):
    """Every frame in display orientation, its PTS and keyframe flag, from one decode."""
    from reelbeam.transforms.media import display_orientation

    with av.open(path) as c:
        frames = [
            (display_orientation(f.to_ndarray(format="rgb24"), f), f.pts, bool(f.key_frame))
            for f in c.decode(video=0)
        ]
    return [f for f, _, _ in frames], FrameIndex.of([p for _, p, _ in frames], [k for _, _, k in frames])


def clip_indices_with_edges(n):
    """The reference's 10 x 16 clip indices plus the last frame (and frame 0 again)."""
    return np.concatenate([video_clip_indices(n).reshape(-1), [n - 1, 0]])


def methods():
    out = ["pyav_frame_index", "pyav_packet_index"]
    try:
        import decord  # noqa: F401

        out.append("decord")
    except ImportError:
        pass
    return out


def fetch(path, indices, method, index, transform=None):
    if method == "pyav_frame_index":
        return fetch_frames(path, indices, index, transform=transform)
    if method == "pyav_packet_index":
        return fetch_frames(path, indices, None, transform=transform)
    return fetch_frames(path, indices, index, method="decord", transform=transform)


@pytest.mark.parametrize("method", methods())
@pytest.mark.parametrize("kind", ["short_gop", "long_gop", "one_gop"])
def test_fetched_frames_equal_a_straight_decode(videos, kind, method):
    frames, index = straight(videos[kind])
    assert (
        len(frames) == N and index.is_keyframe.sum() == {"short_gop": 25, "long_gop": 3, "one_gop": 1}[kind]
    )
    indices = clip_indices_with_edges(N)
    got = fetch(videos[kind], indices, method, index)
    assert got.shape == (len(indices), 96, 160, 3)
    for i, j in enumerate(indices):
        assert np.array_equal(got[i], frames[j]), (kind, method, j)
        assert synthetic.frame_number(got[i], bits=9) == j
    # Resized as fetched: equal to resizing the straight decode's frames.
    small = fetch(videos[kind], indices[:20], method, index, transform=resize_clip_frame)
    assert small.shape == (20, 128, 213, 3)
    for i, j in enumerate(indices[:20]):
        assert np.array_equal(small[i], resize_clip_frame(frames[j]))


class CountingContainer:
    """A PyAV container that counts seeks and decoded frames."""

    def __init__(self, container, counts):
        self._container, self._counts = container, counts

    def __getattr__(self, name):
        return getattr(self._container, name)

    def seek(self, *args, **kwargs):
        self._counts["seeks"] += 1
        return self._container.seek(*args, **kwargs)

    def decode(self, *args, **kwargs):
        for frame in self._container.decode(*args, **kwargs):
            self._counts["frames"] += 1
            yield frame


def test_far_frames_are_reached_by_seeking(videos, monkeypatch):
    import contextlib

    counts = {"seeks": 0, "frames": 0}
    real = clip_frames.opened_video

    @contextlib.contextmanager
    def counting(ref):
        with real(ref) as container:
            yield CountingContainer(container, counts)

    monkeypatch.setattr(clip_frames, "opened_video", counting)
    _, index = straight(videos["long_gop"])  # keyframes at 0, 100, 200
    got = fetch_frames(videos["long_gop"], [5, 150, 160, 299], index, transform=None)
    assert [synthetic.frame_number(g, bits=9) for g in got] == [5, 150, 160, 299]
    # 0..5, then a seek to 100 and 100..160, then a seek to 200 and 200..299 (plus what the
    # decoder's frame threads run ahead): far fewer than the 300 of a straight decode.
    assert counts["seeks"] == 2 and counts["frames"] < 250, counts


@pytest.mark.parametrize("n", [1, 30, 62])
def test_short_videos_repeat_frame_zero(tmp_path, n):
    path = synthetic.write_video(str(tmp_path / f"n{n}.mp4"), synthetic.numbered_frames(n), gop=12)
    frames, index = straight(path)
    indices = video_clip_indices(n).reshape(-1)
    got = fetch_frames(path, indices, index, transform=None)
    assert [synthetic.frame_number(f) for f in got] == indices.tolist()
    assert all(np.array_equal(g, frames[j]) for g, j in zip(got, indices))


def test_frame_index_from_the_frames_table(videos):
    _, index = straight(videos["long_gop"])
    order = np.random.default_rng(0).permutation(N)
    table = pa.table(
        {
            "frame_idx": pa.array(order, pa.int32()),
            "pts": pa.array([index.pts[i] for i in order], pa.int64()),
            "is_keyframe": pa.array([bool(index.is_keyframe[i]) for i in order]),
        }
    )
    from_table = FrameIndex.from_frames_table(table)
    assert list(from_table.pts) == list(index.pts) and list(from_table.is_keyframe) == list(index.is_keyframe)
    assert list(packet_index(videos["long_gop"]).pts) == list(index.pts)


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_frames_come_in_display_orientation(tmp_path, rotation):
    path = synthetic.write_video(
        str(tmp_path / f"rot{rotation}.mp4"), synthetic.shot_frames([40], 64, 48), gop=10, rotation=rotation
    )
    with av.open(path) as c:
        coded = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    indices = [0, 13, 39]
    got = fetch_frames(path, indices, transform=None)
    for g, j in zip(got, indices):
        assert np.array_equal(g, np.rot90(coded[j], rotation // 90))


def test_decord_reads_180_like_us_and_refuses_90(tmp_path):
    pytest.importorskip("decord")
    for rotation in (180, 90):
        path = synthetic.write_video(
            str(tmp_path / f"r{rotation}.mp4"), synthetic.shot_frames([20], 64, 48), rotation=rotation
        )
        if rotation == 180:
            np.testing.assert_array_equal(
                fetch_frames(path, [3], method="decord", transform=None),
                fetch_frames(path, [3], transform=None),
            )
        else:
            with pytest.raises(ValueError, match="rotated"):
                fetch_frames(path, [3], method="decord", transform=None)


def test_remote_url(videos):
    url = "memory://clips/gop100.mp4"
    with fsspec.open(url, "wb") as f, open(videos["long_gop"], "rb") as src:
        f.write(src.read())
    _, index = straight(videos["long_gop"])
    got = fetch_frames(url, [5, 150, 299], index, transform=None)
    assert [synthetic.frame_number(g, bits=9) for g in got] == [5, 150, 299]


def test_clips_come_whole_and_only_clips_in_progress_are_held(videos):
    _, index = straight(videos["short_gop"])
    shots = [(0, 9), (10, 99), (100, 229), (230, 299)]  # 1 + 1 + 2 + 1 clips
    clips = np.concatenate([shot_clip_indices(s, e) for s, e in shots])
    alive: list = []

    def tracked(rgb):
        out = rgb.copy()
        alive.append(weakref.ref(out))
        return out

    seen = []
    for c, clip in iter_clips(videos["short_gop"], clips, index, transform=tracked):
        held = sum(r() is not None for r in alive)
        # This clip's frames (stacked copies aside) and those of at most the next clip.
        assert held <= 2 * 16, held
        assert [synthetic.frame_number(f, bits=9) for f in clip] == clips[c].tolist()
        seen.append(c)
        del clip
    assert sorted(seen) == list(range(len(clips)))
    # Video clips of a short video: frame 0 pads every clip and is held until the last one.
    video = video_clip_indices(40)
    got = dict(iter_clips(videos["short_gop"], video, index, transform=None))
    assert sorted(got) == list(range(10))
    for c, clip in got.items():
        assert [synthetic.frame_number(f, bits=9) for f in clip] == video[c].tolist()


def test_bad_requests_are_refused(videos, tmp_path):
    _, index = straight(videos["short_gop"])
    with pytest.raises(ValueError, match="past the end"):
        fetch_frames(videos["short_gop"], [N], index)
    with pytest.raises(ValueError, match=">= 0"):
        fetch_frames(videos["short_gop"], [-1], index)
    # An index that promises more frames than the file holds: the missing ones are named.
    longer = FrameIndex.of(
        list(index.pts) + [index.pts[-1] + 512 * k for k in range(1, 4)],
        list(index.is_keyframe) + [False] * 3,
    )
    with pytest.raises(ValueError, match="not found"):
        fetch_frames(videos["short_gop"], [10, N + 1], longer)
    with pytest.raises(ValueError, match="method"):
        fetch_frames(videos["short_gop"], [0], index, method="opencv")
    assert not os.path.exists(str(tmp_path / "nothing"))
