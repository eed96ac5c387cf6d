"""--save-scene-clips: stream-copied clips (start snapped to a keyframe, recorded), exact re-encoded
clips, audio, and the scene_clips table written by a real run."""

import os

import av
import pyarrow.parquet as pq
import pytest

import synthetic
from reelbeam.pipelines.cli import main
from reelbeam.pipelines.options import ConfigError
from reelbeam.pipelines.plan import build_plan
from reelbeam.schemas.records import VideoRef
from reelbeam.transforms.clips import write_scene_clips

SCENES = [(0, 29), (30, 61), (62, 89)]


@pytest.fixture(scope="module")
def av_video(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("clips") / "numbered.mp4")
    return synthetic.write_video_with_audio(path, synthetic.numbered_frames(90), gop=12)


def source_index(path):
    with av.open(path) as c:
        frames = list(c.decode(video=0))
    return [f.pts for f in frames], [bool(f.key_frame) for f in frames]


def decoded_numbers(path):
    with av.open(path) as c:
        return [synthetic.frame_number(f.to_ndarray(format="rgb24")) for f in c.decode(video=0)], len(c.streams.audio)


def scene_dicts():
    return [{"scene_idx": i, "scene_id": f"s{i}", "start_frame": a, "end_frame": b} for i, (a, b) in enumerate(SCENES)]


def test_stream_copy_starts_on_a_keyframe_and_says_so(av_video, tmp_path):
    pts, key = source_index(av_video)
    rows = list(write_scene_clips(VideoRef("v", av_video, os.path.getsize(av_video)), "h264", scene_dicts(), pts, key, str(tmp_path), exact=False))
    assert [r["scene_idx"] for r in rows] == [0, 1, 2]
    for r, (a, b) in zip(rows, SCENES):
        numbers, audio_streams = decoded_numbers(r["uri"])
        assert r["mode"] == "stream_copy" and r["has_audio"] and audio_streams == 1
        assert key[r["actual_start_frame"]] and r["actual_start_frame"] <= a
        assert r["actual_start_frame"] == max(i for i in range(a + 1) if key[i])
        assert r["start_snapped"] == (r["actual_start_frame"] != a)
        # The clip shows the frames it says, in order, and the whole scene.
        assert numbers == list(range(r["actual_start_frame"], r["actual_end_frame"] + 1))
        assert r["actual_end_frame"] >= b and r["num_frames"] == len(numbers)
        assert r["size_bytes"] == os.path.getsize(r["uri"])
    assert rows[1]["start_snapped"] and rows[1]["actual_start_frame"] == 24  # keyframes every 12


def test_exact_cuts_hold_exactly_the_scene(av_video, tmp_path):
    pts, key = source_index(av_video)
    rows = list(write_scene_clips(VideoRef("v", av_video, os.path.getsize(av_video)), "h264", scene_dicts(), pts, key, str(tmp_path), exact=True))
    for r, (a, b) in zip(rows, SCENES):
        numbers, audio_streams = decoded_numbers(r["uri"])
        assert numbers == list(range(a, b + 1))
        assert (r["mode"], r["start_snapped"], r["end_snapped"], r["num_frames"]) == ("reencode", False, False, b - a + 1)
        assert audio_streams == 1
        with av.open(r["uri"]) as c:
            audio_s = float(c.streams.audio[0].duration * c.streams.audio[0].time_base)
        assert audio_s == pytest.approx((b - a + 1) / 25, abs=0.15)


def test_a_run_writes_clips_and_their_table(av_video, tmp_path):
    out = tmp_path / "out"
    assert main(["run", "--input", av_video, "--output", str(out), "--shot-detector", "lgss", "--scenes", "histogram", "--save-scene-clips", "--exact-cuts", "--direct_num_workers", "1"]) == 0
    table = pq.read_table(str(out / "scene_clips"))
    scenes = pq.read_table(str(out / "scenes"))
    assert table.num_rows == scenes.num_rows >= 1
    rows = sorted(table.to_pylist(), key=lambda r: r["scene_idx"])
    spans = sorted((r["scene_idx"], r["start_frame"], r["end_frame"]) for r in scenes.to_pylist())
    assert [(r["scene_idx"], r["start_frame"], r["end_frame"]) for r in rows] == spans
    for r in rows:
        assert os.path.exists(r["uri"]) and decoded_numbers(r["uri"])[0] == list(range(r["start_frame"], r["end_frame"] + 1))


def test_exact_cuts_alone_is_a_configuration_error(av_video, tmp_path):
    from apache_beam.options.pipeline_options import PipelineOptions

    with pytest.raises(ConfigError, match="--save-scene-clips"):
        build_plan(PipelineOptions(["--input", av_video, "--output", str(tmp_path / "o"), "--exact-cuts"]))


def test_a_video_whose_clips_fail_leaves_a_failures_row_and_no_files(av_video, tmp_path, monkeypatch):
    import apache_beam as beam
    import pyarrow as pa
    from apache_beam.testing.test_pipeline import TestPipeline
    from apache_beam.testing.util import assert_that, equal_to

    from reelbeam.transforms import clips

    real = clips._copy_clip
    calls = []

    def second_fails(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise ValueError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(clips, "_copy_clip", second_fails)
    pts, key = source_index(av_video)
    frames = pa.table({"video_id": ["v"] * len(pts), "pts": pts, "is_keyframe": key})
    out = str(tmp_path / "out")
    with TestPipeline() as p:
        videos = p | "V" >> beam.Create([{"video_id": "v", "uri": av_video, "size_bytes": os.path.getsize(av_video), "codec": "h264"}])
        tables = p | "F" >> beam.Create([frames])
        scenes = p | "S" >> beam.Create([{"video_id": "v", **s} for s in scene_dicts()])
        result = (videos, tables, scenes) | clips.SaveSceneClips(out)
        assert_that(result.clips, equal_to([]), label="no_rows")
        assert_that(result.failures | beam.Map(lambda r: (r["stage"], "disk full" in r["message"])), equal_to([("scene_clips", True)]), label="failure")
    assert not os.path.exists(os.path.join(out, "clips", "v"))
