"""--save-scene-clips: stream-copied clips (start snapped to a keyframe, recorded), exact re-encoded
clips, audio, sources in codecs MP4 cannot carry, and the scene_clips table written by a real run."""

import os

import av
import pyarrow.parquet as pq
import pytest
import synthetic

from reelbeam.pipelines.cli import main
from reelbeam.pipelines.options import ConfigError
from reelbeam.pipelines.plan import build_plan
from reelbeam.schemas.records import VideoRef
from reelbeam.transforms.scene_clips import SaveSceneClips, write_scene_clips

SCENES = [(0, 29), (30, 61), (62, 89)]


@pytest.fixture(scope="module")
def av_video(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("clips") / "numbered.mp4")
    return synthetic.write_video_with_audio(path, synthetic.numbered_frames(90), gop=12)


def source_index(path):
    """Frames' PTS in presentation order, and which frames are codec keyframes (from the packets:
    not every decoder flags its keyframes)."""
    with av.open(path) as c:
        keyframes = {p.pts for p in c.demux(video=0) if p.is_keyframe}
    with av.open(path) as c:
        pts = [f.pts for f in c.decode(video=0)]
    return pts, [p in keyframes for p in pts]


def decoded_numbers(path):
    with av.open(path) as c:
        return [synthetic.frame_number(f.to_ndarray(format="rgb24")) for f in c.decode(video=0)], len(c.streams.audio)


def scene_dicts():
    return [{"scene_idx": i, "scene_id": f"s{i}", "start_frame": a, "end_frame": b} for i, (a, b) in enumerate(SCENES)]


def test_stream_copy_starts_on_a_keyframe_and_says_so(av_video, tmp_path):
    pts, key = source_index(av_video)
    rows = list(write_scene_clips(VideoRef("v", av_video, os.path.getsize(av_video)), scene_dicts(), pts, str(tmp_path), "copy"))
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
    pts, _ = source_index(av_video)
    rows = list(write_scene_clips(VideoRef("v", av_video, os.path.getsize(av_video)), scene_dicts(), pts, str(tmp_path), "exact"))
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


# Sources in codecs MP4 cannot carry as they are. copy: (clip extension, clip audio codec): the first
# of MP4, Matroska, QuickTime, AVI that carries both streams, else the first that carries the video
# with the audio re-encoded to AAC. exact: always H.264 in MP4, the audio copied where MP4 takes it.
OTHER_CODECS = [
    # name, video codec, pix_fmt, audio codec, sample rate, copy -> (ext, audio), exact audio
    ("svq1_adpcm.mov", "svq1", "yuv410p", "adpcm_ima_qt", 16000, ("mov", "adpcm_ima_qt"), "aac"),
    ("qtrle_pcm.mov", "qtrle", "rgb24", "pcm_s16be", 16000, ("mov", "pcm_s16be"), "pcm_s16be"),
    ("mpeg4_adpcm.avi", "mpeg4", "yuv420p", "adpcm_ms", 16000, ("avi", "adpcm_ms"), "aac"),
    ("mjpeg_pcm.avi", "mjpeg", "yuvj420p", "pcm_s16le", 16000, ("mp4", "pcm_s16le"), "pcm_s16le"),
    ("ffv1_pcm.mkv", "ffv1", "yuv420p", "pcm_u8", 16000, ("mkv", "pcm_u8"), "aac"),
    # Flash video: Sorenson Spark goes only into AVI, Flash ADPCM into none of the four.
    ("flv1_adpcm.flv", "flv", "yuv420p", "adpcm_swf", 22050, ("avi", "aac"), "aac"),
]


@pytest.mark.parametrize("mode", ["copy", "exact"])
@pytest.mark.parametrize(
    "name, vcodec, pix_fmt, acodec, rate, copy, exact_audio", OTHER_CODECS, ids=[c[0] for c in OTHER_CODECS]
)
def test_clips_of_sources_in_other_codecs(
    tmp_path_factory, tmp_path, mode, name, vcodec, pix_fmt, acodec, rate, copy, exact_audio
):
    path = str(tmp_path_factory.getbasetemp() / "other_codecs" / name)
    if not os.path.exists(path):  # one source for both modes
        os.makedirs(os.path.dirname(path), exist_ok=True)
        frames = synthetic.numbered_frames(90)
        synthetic.write_video_with_audio(
            path, frames, gop=12, sample_rate=rate, codec=vcodec, pix_fmt=pix_fmt, audio_codec=acodec
        )
    pts, key = source_index(path)
    ref = VideoRef("v", path, os.path.getsize(path))
    rows = list(write_scene_clips(ref, scene_dicts(), pts, str(tmp_path), mode))
    assert len(rows) == len(SCENES)
    ext, audio = copy if mode == "copy" else ("mp4", exact_audio)
    for r, (a, b) in zip(rows, SCENES):
        assert r["uri"].endswith(f"scene_{r['scene_idx']:04d}.{ext}")
        numbers, _ = decoded_numbers(r["uri"])
        if mode == "copy":
            assert r["mode"] == "stream_copy" and key[r["actual_start_frame"]]
            assert r["actual_start_frame"] == max(i for i in range(a + 1) if key[i])
            assert numbers == list(range(r["actual_start_frame"], r["actual_end_frame"] + 1))
        else:
            assert r["mode"] == "reencode" and numbers == list(range(a, b + 1))
        assert r["num_frames"] == len(numbers)
        with av.open(r["uri"]) as c:
            video_codec = c.streams.video[0].codec_context.name
            assert video_codec == ("h264" if mode == "exact" else vcodec)
            assert r["has_audio"] and [s.codec_context.name for s in c.streams.audio] == [audio]
            samples = sum(f.samples for f in c.decode(audio=0))
        assert samples / rate == pytest.approx(len(numbers) / 25, abs=0.2)


@pytest.mark.parametrize("mode", ["copy", "exact"])
def test_clips_keep_the_display_rotation(tmp_path, mode):
    path = synthetic.write_video(str(tmp_path / "rotated.mp4"), synthetic.numbered_frames(90), rotation=90, gop=12)
    pts, _ = source_index(path)
    rows = list(write_scene_clips(VideoRef("v", path, os.path.getsize(path)), scene_dicts(), pts, str(tmp_path / "o"), mode))
    with av.open(path) as c:
        rotation = next(c.decode(video=0)).rotation
    assert rotation != 0
    for r in rows:
        with av.open(r["uri"]) as c:
            assert next(c.decode(video=0)).rotation == rotation


@pytest.mark.parametrize(
    "flags, mode",
    [([], "exact"), (["--clip-mode", "copy"], "copy"), (["--clip-mode", "exact"], "exact"), (["--exact-cuts"], "exact")],
)
def test_clip_mode_defaults_to_exact(av_video, tmp_path, flags, mode):
    from apache_beam.options.pipeline_options import PipelineOptions

    plan = build_plan(PipelineOptions(["--input", av_video, "--output", str(tmp_path / "o"), "--save-scene-clips", *flags]))
    assert plan.stage("scene_clips").mode == mode
    with pytest.raises(ValueError, match="clip mode"):
        SaveSceneClips("o", "fast")


@pytest.mark.parametrize("flags", [["--exact-cuts"], ["--clip-mode", "copy"]])
def test_a_clip_mode_without_clips_is_a_configuration_error(av_video, tmp_path, flags):
    from apache_beam.options.pipeline_options import PipelineOptions

    with pytest.raises(ConfigError, match="add --save-scene-clips"):
        build_plan(PipelineOptions(["--input", av_video, "--output", str(tmp_path / "o"), *flags]))


def test_a_video_whose_clips_fail_leaves_a_failures_row_and_no_files(av_video, tmp_path, monkeypatch):
    import apache_beam as beam
    import pyarrow as pa
    from apache_beam.testing.test_pipeline import TestPipeline
    from apache_beam.testing.util import assert_that, equal_to

    from reelbeam.transforms import scene_clips as clips

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
        result = (videos, tables, scenes) | clips.SaveSceneClips(out, "copy")
        assert_that(result.clips, equal_to([]), label="no_rows")
        assert_that(result.failures | beam.Map(lambda r: (r["stage"], "disk full" in r["message"])), equal_to([("scene_clips", True)]), label="failure")
    assert not os.path.exists(os.path.join(out, "clips", "v"))


@pytest.mark.parametrize("keep", [False, True])
def test_clips_leave_out_the_frames_of_a_gradual_transition_between_scenes(av_video, tmp_path, keep):
    # A dissolve over frames 25-34 into scene 1 (which starts at 30, where the shot rule cut it) and a
    # cut (61, 62) into scene 2: clip 0 ends at 24, clip 1 starts at 35; the cut changes nothing.
    pts, _ = source_index(av_video)
    scenes = scene_dicts()
    for scene, transition in zip(scenes, [(None, None, None), ("dissolve", 25, 34), ("cut", 61, 62)]):
        scene.update(zip(("transition_kind", "transition_first_frame", "transition_last_frame"), transition))
    ref = VideoRef("v", av_video, os.path.getsize(av_video))
    rows = list(write_scene_clips(ref, scenes, pts, str(tmp_path), "exact", keep_transition_frames=keep))
    spans = SCENES if keep else [(0, 24), (35, 61), (62, 89)]
    for r, (a, b) in zip(rows, spans):
        assert (r["start_frame"], r["end_frame"], r["actual_start_frame"], r["actual_end_frame"]) == (a, b, a, b)
        assert decoded_numbers(r["uri"])[0] == list(range(a, b + 1))
