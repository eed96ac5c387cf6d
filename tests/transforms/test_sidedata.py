"""The ctypes motion-vector reader against PyAV's own side-data reader, and MV determinism."""

import os

import av
import numpy as np
import pytest
import synthetic
from synthetic import pan_frames

from reelbeam.schemas.records import VideoRef
from reelbeam.transforms import sidedata
from reelbeam.transforms.decode import DecodeConfig, FrameIndexConsumer, decode_video
from reelbeam.transforms.motion import MotionStatsConsumer


def frames_with_vectors(path):
    with av.open(path) as c:
        s = c.streams.video[0]
        s.codec_context.options = {"flags2": "+export_mvs"}
        yield from c.decode(s)


def fields(arr):
    return None if arr is None else {k: arr[k].tolist() for k in arr.dtype.names}


@pytest.mark.parametrize("codec, ext", [("libx264", "mp4"), ("mpeg4", "avi")])
def test_fast_reader_equals_pyav(video_dir, codec, ext):
    path = synthetic.write_video(str(video_dir / f"pan_sd.{ext}"), pan_frames(16, 4), codec=codec)
    reader = sidedata.SideDataReader()
    seen = 0
    for frame in frames_with_vectors(path):
        ours = reader.vectors(frame)
        theirs = sidedata.pyav_vectors(frame)
        assert fields(ours) == fields(theirs)
        seen += ours is not None and len(ours) > 0
    assert seen >= 10
    assert reader.state == "ok"  # the fast path was verified and used, not the fallback


def test_failed_check_falls_back_to_pyav(video_dir):
    path = synthetic.write_video(str(video_dir / "pan_fb.mp4"), pan_frames(8, 4))
    reader = sidedata.SideDataReader(width_offset=0)  # a layout that does not match
    got = [reader.vectors(f) for f in frames_with_vectors(path)]
    assert reader.state == "off"
    assert sum(v is not None for v in got) >= 6
    assert all(fields(a) == fields(sidedata.pyav_vectors(f)) for a, f in zip(got, frames_with_vectors(path)))


def test_motion_stats_are_the_same_on_every_run(video_dir):
    # B-frames with pyramid references: FFmpeg's frame threads export these vectors differently
    # from run to run; the decode pass must not.
    path = synthetic.write_video(
        str(video_dir / "pan_b.mp4"), pan_frames(50, 3, 640, 360), options={"preset": "veryfast"}
    )
    runs = []
    for _ in range(4):
        ref = VideoRef("v", path, os.path.getsize(path))
        outs = decode_video(ref, [FrameIndexConsumer(), MotionStatsConsumer()], DecodeConfig(threads=2), True)
        chunk = next(v.payload for t, v in outs if t == "per_video" and v.kind == "motion_stats")
        runs.append(chunk)
    for run in runs[1:]:
        for k in runs[0]:
            assert np.array_equal(run[k], runs[0][k], equal_nan=True), k
