import fractions
import os

import apache_beam as beam
import numpy as np
import pytest
import synthetic
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from reelbeam.schemas.records import VideoRef
from reelbeam.transforms.decode import DecodeConfig, DecodeVideo, FrameIndexConsumer, VideoError, decode_video
from reelbeam.transforms.listing import make_video_id


def ref_of(path):
    size = os.path.getsize(path)
    return VideoRef(make_video_id(path, size), path, size)


def run_decode(path, config=DecodeConfig()):
    outs = list(decode_video(ref_of(path), [FrameIndexConsumer()], config))
    meta = [v.payload for t, v in outs if t == "per_video" and v.kind == "meta"]
    chunks = [v.payload for t, v in outs if t == "per_video" and v.kind == "frames"]
    return meta[0], chunks


@pytest.mark.parametrize(
    "frames, size, fps, codec, pix_fmt",
    [
        (1, (64, 48), 25, "libx264", "yuv420p"),
        (2, (64, 48), 25, "libx264", "yuv420p"),
        (37, (161, 91), 30, "libx264", "yuv444p"),  # odd size (4:2:0 needs even sizes)
        (25, (96, 64), 24, "mpeg4", "yuv420p"),
        (20, (96, 64), 25, "libx264", "yuv420p10le"),  # 10-bit
    ],
)
def test_decodes_every_frame_with_stream_metadata(video_dir, frames, size, fps, codec, pix_fmt):
    path = str(video_dir / f"f{frames}_{size[0]}x{size[1]}_{codec}_{pix_fmt}.mp4")
    synthetic.write_video(path, synthetic.shot_frames([frames], *size), fps=fps, codec=codec, pix_fmt=pix_fmt)
    meta, chunks = run_decode(path)
    assert meta["frame_count"] == frames
    assert (meta["width"], meta["height"]) == size
    assert meta["codec"] == {"libx264": "h264", "mpeg4": "mpeg4"}[codec]
    assert meta["pix_fmt"] == pix_fmt
    assert meta["bit_depth"] == (10 if "10" in pix_fmt else 8)
    assert meta["nominal_fps"] == pytest.approx(fps)
    assert meta["duration_s"] == pytest.approx(frames / fps, abs=1e-6)
    assert meta["status"] == "ok" and meta["has_audio"] is False
    idx = np.concatenate([c["frame_idx"] for c in chunks])
    assert list(idx) == list(range(frames))
    times = np.concatenate([c["pts_time"] for c in chunks])
    np.testing.assert_allclose(times, np.arange(frames) / fps, atol=1e-6)
    assert chunks[0]["is_keyframe"][0] and chunks[0]["pict_type"][0] == "I"


def test_variable_frame_rate_times_come_from_pts(video_dir):
    # 1 ms time base; gaps of 40, 40, 100, 40, 250 ms.
    pts = [0, 40, 80, 180, 220, 470]
    path = str(video_dir / "vfr.mkv")
    synthetic.write_video(
        path, synthetic.shot_frames([len(pts)], 64, 48), fps=25, pts=pts, time_base=fractions.Fraction(1, 1000)
    )
    meta, chunks = run_decode(path)
    times = np.concatenate([c["pts_time"] for c in chunks])
    np.testing.assert_allclose(times, np.array(pts) / 1000.0, atol=1e-6)
    assert meta["frame_count"] == len(pts)
    assert meta["duration_s"] > 0.47


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotation_is_read_from_the_display_matrix(video_dir, rotation):
    path = str(video_dir / f"rot{rotation}.mp4")
    synthetic.write_video(path, synthetic.shot_frames([5], 64, 48), rotation=rotation)
    meta, _ = run_decode(path)
    assert meta["rotation"] == rotation
    assert (meta["width"], meta["height"]) == (64, 48)


def test_frame_index_chunks_bound_memory(shot_video):
    outs = list(decode_video(ref_of(shot_video), [FrameIndexConsumer(chunk=64)]))
    chunks = [v.payload for t, v in outs if t == "per_video" and v.kind == "frames"]
    assert [len(c["frame_idx"]) for c in chunks] == [64, 64, 22]


def test_frames_larger_than_the_limit_are_refused_before_decoding(shot_video):
    with pytest.raises(VideoError) as e:
        run_decode(shot_video, DecodeConfig(max_frame_pixels=100 * 50))
    assert e.value.error_type == "frame_too_large"


def test_timeout_becomes_a_timeout_error(shot_video):
    with pytest.raises(VideoError) as e:
        run_decode(shot_video, DecodeConfig(timeout_s=1e-9))
    assert e.value.error_type == "timeout"


def test_bad_inputs_become_failures_and_good_videos_survive(tmp_path, shot_video, short_video):
    expected = synthetic.bad_inputs(str(tmp_path), shot_video)
    refs = [ref_of(str(tmp_path / name)) for name in expected] + [ref_of(shot_video), ref_of(short_video)]
    with TestPipeline() as p:
        out = p | beam.Create(refs) | DecodeVideo()
        metas = out.per_video | beam.Filter(lambda kv: kv[1].kind == "meta")
        assert_that(
            metas | beam.Map(lambda kv: (os.path.basename(kv[1].payload["uri"]), kv[1].payload["frame_count"])),
            equal_to([("shots.mp4", 150), ("short.mp4", 30)]),
            label="ok",
        )
        assert_that(
            out.failures | beam.Map(lambda f: (os.path.basename(f["uri"]), f["stage"], f["error_type"])),
            equal_to([(name, "decode", error) for name, error in expected.items()]),
            label="failures",
        )


def test_animated_gif_decodes_as_a_video_and_animated_webp_is_refused(video_dir):
    # Why folder listings take .gif but not .webp (see listing.VIDEO_EXTENSIONS).
    frames = synthetic.numbered_frames(12, 64, 48)
    gif = synthetic.write_video(str(video_dir / "anim.gif"), frames, fps=10, codec="gif", pix_fmt="rgb8")
    meta, chunks = run_decode(gif)
    assert (meta["codec"], meta["frame_count"]) == ("gif", 12)
    assert meta["duration_s"] == pytest.approx(1.2)
    np.testing.assert_allclose(np.concatenate([c["pts_time"] for c in chunks]), np.arange(12) / 10)
    webp = synthetic.write_video(str(video_dir / "anim.webp"), frames, fps=10, codec="libwebp_anim")
    with pytest.raises(VideoError) as e:
        run_decode(webp)
    assert e.value.error_type == "not_a_video"


@pytest.mark.parametrize(
    "name, frames, gop",
    [
        ("sparse_keyframes.mp4", 100, 30),  # keyframes 0, 30, 60, 90: the last 10 frames follow the last one
        ("one_keyframe.mp4", 60, 250),  # a single keyframe (one-GOP files: duration was one frame)
        ("sparse_keyframes.mkv", 100, 30),  # Matroska: no stream duration, the container's is used
    ],
)
def test_keyframes_only_takes_duration_and_rate_from_the_stream(video_dir, name, frames, gop):
    path = str(video_dir / f"kf_{name}")
    synthetic.write_video(path, synthetic.shot_frames([frames], 96, 64), fps=25, gop=gop)
    full, _ = run_decode(path)
    fast, chunks = run_decode(path, DecodeConfig(keyframes_only=True))
    keyframes = sum(len(c["frame_idx"]) for c in chunks)
    assert fast["keyframes_only"] and fast["frame_count"] == keyframes < frames
    assert full["duration_s"] == pytest.approx(frames / 25, abs=1e-3)
    assert fast["duration_s"] == pytest.approx(full["duration_s"], abs=1e-3)
    assert fast["avg_fps"] == pytest.approx(25, rel=1e-3) and fast["nominal_fps"] == pytest.approx(25)
    assert fast["declared_frame_count"] == full["declared_frame_count"]
    assert fast["start_time_s"] == full["start_time_s"] == 0


def test_every_chunked_consumer_splits_a_video_into_the_same_rows_whatever_the_chunk(shot_video):
    """The chunked consumers share one base: in chunks of 7 frames or in one chunk, their columns
    are the same, and every chunk has its frame_idx."""
    from reelbeam.transforms.frame_difference import FrameDifferenceConsumer
    from reelbeam.transforms.motion import MotionStatsConsumer
    from reelbeam.transforms.scenes import ColorHistogramConsumer

    def parts(chunk):
        consumers = [FrameIndexConsumer(chunk=chunk), MotionStatsConsumer(chunk=chunk),
                     ColorHistogramConsumer(chunk=chunk), FrameDifferenceConsumer(chunk=chunk)]
        out = {}
        for tag, value in decode_video(ref_of(shot_video), consumers):
            if tag == "per_video" and value.kind in ("frames", "motion_stats", "color_hist", "frame_difference"):
                out.setdefault(value.kind, []).append(value.payload)
        return out

    small, whole = parts(7), parts(100000)
    for kind, chunks in whole.items():
        assert len(chunks) == 1 and len(small[kind]) > 1, kind
        assert all(len(c["frame_idx"]) <= 7 for c in small[kind])
        for key, column in chunks[0].items():
            joined = [v for c in small[kind] for v in (c[key].tolist() if hasattr(c[key], "tolist") else c[key])]
            expected = column.tolist() if hasattr(column, "tolist") else list(column)
            assert [repr(v) for v in joined] == [repr(v) for v in expected], f"{kind}.{key}"  # (NaN == NaN)


def test_a_decode_tells_the_progress_display_its_frames_to_come_and_done(shot_video, tmp_path, monkeypatch):
    """#25: the terminal's bar per video needs the frames a stream promises before it is decoded."""
    import json

    from reelbeam import progress
    from reelbeam.transforms import decode as decode_module

    path = tmp_path / "events.jsonl"
    monkeypatch.setenv(progress.ENV, str(path))
    monkeypatch.setattr(decode_module, "PROGRESS_FRAMES", 64)
    run_decode(shot_video)
    events = [json.loads(line) for line in path.read_text().splitlines()]
    assert events[0] == {"event": "start", "uri": shot_video, "total": 150, "t": events[0]["t"]}
    frames = [e["frames"] for e in events if e["event"] == "frames"]
    assert frames and sum(frames) <= 150 and all(n <= 64 for n in frames)
    path.unlink()
    run_decode(shot_video, DecodeConfig(keyframes_only=True))  # keyframes: no total to promise
    assert json.loads(path.read_text().splitlines()[0])["total"] is None


def test_frames_to_come_from_the_duration_where_the_header_declares_none(tmp_path):
    import av

    from reelbeam.transforms.decode import expected_frames

    path = synthetic.make_shot_video(str(tmp_path / "v.mkv"), (30, 40), seed=3)  # Matroska: no frame count
    with av.open(path) as container:
        stream = container.streams.video[0]
        assert stream.frames == 0
        assert expected_frames(container, stream, float(stream.base_rate or stream.guessed_rate)) == 70
