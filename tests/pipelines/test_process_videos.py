"""ProcessVideos end to end in a TestPipeline, with a fake transition model that records batches."""

import json
import os
import pathlib

import apache_beam as beam
import numpy as np
import synthetic
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from fakes import BATCHES, FakeTransitionHandler

from reelbeam.pipelines.plan import build_plan
from reelbeam.pipelines.video_pipeline import ProcessVideos


def config_for(tmp_path, *extra):
    options = PipelineOptions(["--input", str(tmp_path), "--output", str(tmp_path / "out"), *extra])
    return build_plan(options)


def json_documents(plan):
    return [json.loads(p.read_text()) for p in sorted(pathlib.Path(plan.output, "json").glob("*.json"))]


def test_two_videos_batched_together_give_shots_at_the_cuts(tmp_path):
    synthetic.make_shot_video(str(tmp_path / "a.mp4"), (40, 30, 50, 30))
    synthetic.make_shot_video(str(tmp_path / "b.mp4"), (60, 60), seed=5)
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 100)
    BATCHES.clear()
    cfg = config_for(tmp_path, "--shots-in-decode-pass", "off")  # the RunInference path (GPU default)
    with TestPipeline() as p:
        out = p | ProcessVideos(cfg, transition_handler=FakeTransitionHandler())
        assert_that(
            out["shots"] | beam.Map(lambda r: (r["video_id"], r["start_frame"], r["end_frame"])) | beam.combiners.Count.Globally(),
            equal_to([6]),
            label="shot_count",
        )
        assert_that(
            out["videos"] | beam.Map(lambda r: (os.path.basename(r["uri"]), r["frame_count"], r["num_shots"])),
            equal_to([("a.mp4", 150, 4), ("b.mp4", 120, 2)]),
            label="videos",
        )
        assert_that(
            out["failures"] | beam.Map(lambda r: (os.path.basename(r["uri"]), r["error_type"])),
            equal_to([("broken.mp4", "invalid_data")]),
            label="failures",
        )
        assert_that(
            out["frames"] | beam.Map(lambda t: t.num_rows),
            equal_to([150, 120]),
            label="frames",
        )
    # 3 + 3 windows went through batches of up to 4, so at least one batch mixed the videos.
    assert sum(BATCHES) == 6 and max(BATCHES) == 4


def test_videos_done_earlier_are_not_decoded_again(tmp_path):
    from reelbeam.pipelines.cli import run

    synthetic.make_shot_video(str(tmp_path / "a.mp4"), (30,))
    run(["--input", str(tmp_path / "a.mp4"), "--output", str(tmp_path / "out"), "--shot-detector", "none"])
    plan = config_for(tmp_path, "--shot-detector", "none", "--skip-existing")
    assert plan.skip_listing and plan.skip["decode"] == plan.skip_listing
    with TestPipeline() as p:
        out = p | ProcessVideos(plan)
        assert_that(out["videos"], equal_to([]), label="videos")
        assert_that(out["failures"], equal_to([]), label="failures")


def test_rows_of_failed_videos_are_dropped():
    from reelbeam.transforms.failures import KeepRowsOfOkVideos

    with TestPipeline() as p:
        videos = p | "Videos" >> beam.Create([{"video_id": "ok"}])
        rows = p | "Rows" >> beam.Create([{"video_id": "ok", "i": 1}, {"video_id": "failed", "i": 2}, {"video_id": "ok", "i": 3}])
        kept = (videos, rows) | KeepRowsOfOkVideos()
        assert_that(kept | beam.Map(lambda r: r["i"]), equal_to([1, 3]))


def test_motion_maps_iframes_and_motion_columns_end_to_end(tmp_path):
    synthetic.write_video(str(tmp_path / "pan.mp4"), synthetic.pan_frames(30, 4), gop=10)
    cfg = config_for(tmp_path, "--shot-detector", "none", "--motion-maps", "every:3", "--iframes", "--motion-map-size", "8x6")
    with TestPipeline() as p:
        out = p | ProcessVideos(cfg)
        assert_that(out["videos"] | beam.Map(lambda v: v["motion_vectors"]), equal_to(["available"]), label="mv")
        assert_that(
            out["motion"] | beam.Map(lambda r: (r["frame_idx"], r["grid_width"], r["grid_height"])),
            equal_to([(i, 8, 6) for i in range(3, 30, 3) if i not in (0, 10, 20)]),
            label="motion",
        )
        assert_that(out["keyframes"] | beam.Map(lambda r: (r["kind"], r["frame_idx"])), equal_to([("iframe", 0), ("iframe", 10), ("iframe", 20)]), label="iframes")

        def check_frames(table):
            dx = np.array(table.column("mv_mean_dx").to_pylist()[1:], dtype=float)
            assert abs(np.nanmedian(dx) + 4) < 1, dx
            assert table.column("mv_count").to_pylist()[0] == 0
            return True

        assert_that(out["frames"] | beam.Map(check_frames), equal_to([True]), label="frames")
        assert_that(
            out["shots"] | beam.Map(lambda s: abs(s["motion_score"] - 4) < 1), equal_to([True]), label="shots"
        )


def test_training_free_scenes_end_to_end(tmp_path):
    # Two "locations", two camera angles each: 2 scenes, whatever the cuts within a location.
    import av as _av

    frames = []
    for loc in (1, 2):
        big = synthetic.scene_frame(loc * 7, 0, 320, 180)
        for crop in ((0, 0), (100, 60)):
            for t in range(30):
                piece = np.ascontiguousarray(big[crop[1] : crop[1] + 120, crop[0] + t : crop[0] + t + 200])
                frames.append(_av.VideoFrame.from_ndarray(piece, format="rgb24").reformat(160, 96, "rgb24").to_ndarray())
    synthetic.write_video(str(tmp_path / "two_scenes.mp4"), frames)
    cfg = config_for(tmp_path)
    with TestPipeline() as p:
        out = p | ProcessVideos(cfg, transition_handler=FakeTransitionHandler())
        assert_that(
            out["scenes"] | beam.Map(lambda s: (s["scene_idx"], s["start_frame"], s["end_frame"])),
            equal_to([(0, 0, 59), (1, 60, 119)]),
            label="scenes",
        )
    assert [d["scene_num"] for d in json_documents(cfg)] == [2]
