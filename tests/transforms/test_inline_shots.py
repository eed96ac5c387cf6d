"""In-pass shot keyframes: the online shot rule and the bounded frame buffer against the offline
shots, and the pipeline taking keyframes from the decode pass with the second pass as fallback."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reelbeam.models.transnetv2 import STRIDE, stitch_window_predictions
from reelbeam.transforms import inline_shots
from reelbeam.transforms.inline_shots import ShotKeyframeCapture
from reelbeam.transforms.keyframes import shot_keyframe_targets
from reelbeam.transforms.media import rgb_from_jpeg
from reelbeam.transforms.scene_grouping import scene_frame_indices
from reelbeam.transforms.shot_rule import improved_shot_starts
from reelbeam.transforms.shots import shots_from_starts, transnetv2_shot_starts


class FakePlane:
    buffer_size = 1000


class FakeFrame:
    """What the capture touches on a decoded frame: planes' sizes, time, RGB conversion."""

    width, height = 8, 6
    planes = (FakePlane(),)

    def __init__(self, index):
        self.index = index
        self.time = index / 25

    def to_ndarray(self, format, width=None, height=None, **kw):
        return np.full((height or self.height, width or self.width, 3), self.index % 256, np.uint8)


def run_capture(probs, buffer_frames, **kw):
    """Frames and window predictions in the order the decode pass delivers them."""
    n = len(probs)
    cap = ShotKeyframeCapture(0.5, buffer_frames * FakePlane.buffer_size, 0, 90, **kw)
    windows = [probs[i : i + STRIDE] for i in range(0, n, STRIDE)]
    emitted = 0
    for index in range(n):
        cap.add_frame(index, FakeFrame(index))
        # Window w is complete once frame 50w + 74 is decoded.
        while emitted < len(windows) and index >= STRIDE * emitted + 74:
            cap.add_probs(windows[emitted], n)
            emitted += 1
    for w in windows[emitted:]:
        cap.add_probs(w, n)
    cap.finish(n)
    return cap


def offline_keyframes(probs, starts=None):
    n = len(probs)
    if starts is None:
        starts = transnetv2_shot_starts(stitch_window_predictions([probs], n), 0.5)
    spans = shots_from_starts(starts, n)
    return {f for f, *_ in shot_keyframe_targets([{"shot_idx": i, "shot_id": str(i), "start_frame": a, "end_frame": b} for i, (a, b) in enumerate(spans)])}


def offline_scene_frames(n, starts):
    return {f for a, b in shots_from_starts(starts, n) for f in scene_frame_indices(a, b)}


def probs_with_cuts(n, cuts):
    p = np.full(n, 0.01, np.float32)
    for c in cuts:
        p[c - 1] = 0.9
    return p


def test_with_room_every_keyframe_is_captured_in_the_pass():
    probs = probs_with_cuts(300, [40, 41, 120, 250])
    cap = run_capture(probs, buffer_frames=400)
    assert cap.captured == offline_keyframes(probs)
    assert cap.missed == 0
    records = dict(cap.take())
    assert records[120]["pts_time"] == pytest.approx(120 / 25) and records[120]["jpeg"][:2] == b"\xff\xd8"


def test_the_buffer_holds_only_what_may_still_be_a_keyframe():
    probs = probs_with_cuts(1000, [500])
    cap = ShotKeyframeCapture(0.5, 10**9, 0, 90)
    for i in range(300):
        cap.add_frame(i, FakeFrame(i))
    cap.add_probs(probs[:200], 1000)
    # Open shot from 0, scored up to 199: its middle is at least 99, so frames before go.
    assert cap._ring[0][0] == 99


def test_a_shot_longer_than_the_buffer_leaves_its_middle_to_the_second_pass():
    probs = probs_with_cuts(600, [500])
    cap = run_capture(probs, buffer_frames=120)
    wanted = offline_keyframes(probs)
    assert 249 in wanted and 249 not in cap.captured  # middle of [0, 499]
    assert cap.captured | {249} == wanted and cap.missed == 1


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(1, 400),
    cuts=st.lists(st.integers(1, 399), max_size=12),
    buffer_frames=st.integers(1, 600),
)
def test_captured_frames_are_keyframes_and_the_rest_is_counted(n, cuts, buffer_frames):
    probs = probs_with_cuts(n, [c for c in cuts if c < n])
    cap = run_capture(probs, buffer_frames)
    wanted = offline_keyframes(probs)
    assert cap.captured <= wanted
    assert len(wanted - cap.captured) <= cap.missed
    if buffer_frames >= 300:
        assert cap.captured == wanted


def two_heads(n, cuts=(), gradual=()):
    """[n, 2] rows: a cut before frame c marks frame c - 1 on both heads; a gradual transition
    (first, last) keeps the single-frame head at 0.35 and marks the many-hot head."""
    p = np.full((n, 2), 0.01, np.float32)
    for c in cuts:
        p[c - 1] = 0.9
    for a, b in gradual:
        p[a : b + 1, 0] = np.maximum(p[a : b + 1, 0], 0.35)
        p[a : b + 1, 1] = 0.9
    return p


def test_improved_live_shots_end_gradual_transitions_and_skip_a_fade_in():
    probs = two_heads(400, cuts=[60, 300], gradual=[(0, 9), (150, 189)])
    cap = run_capture(probs, buffer_frames=1000, many_hot_threshold=0.5, scene_frames=True)
    starts = improved_shot_starts(probs[:, 0], probs[:, 1])
    assert starts == [60, 190, 300]  # no cut after the fade-in at frame 0; one after the dissolve
    assert cap.captured == offline_keyframes(probs[:, 0], starts)
    assert cap.scene_captured == offline_scene_frames(400, starts) and cap.missed == 0
    # The reference rule on the same rows (the single-frame head alone) sees neither.
    ref = run_capture(probs, buffer_frames=1000)
    assert ref.captured == offline_keyframes(probs[:, 0]) == offline_keyframes(probs[:, 0], [60, 300])


def test_scene_frames_are_squashed_to_the_model_input_with_their_histogram():
    cap = run_capture(two_heads(120, cuts=[50]), buffer_frames=200, keyframes=False, scene_frames=True)
    records = dict(cap.take_scene_frames())
    assert sorted(records) == sorted(offline_scene_frames(120, [50])) == [12, 24, 37, 67, 84, 102]
    rgb = rgb_from_jpeg(records[24].jpeg)
    assert rgb.shape == (224, 224, 3) and abs(int(rgb[0, 0, 0]) - 24) <= 2 and records[24].frame_idx == 24
    assert records[24].hist.shape == (52,) and records[24].hist.sum() == pytest.approx(1.0)
    assert cap.captured == set() and cap.take() == []


def test_with_scene_frames_the_buffer_holds_from_a_quarter_of_the_open_shot():
    cap = ShotKeyframeCapture(0.5, 10**9, 0, 90, scene_frames=True)
    for i in range(300):
        cap.add_frame(i, FakeFrame(i))
    cap.add_probs(probs_with_cuts(1000, [500])[:200], 1000)
    assert cap._ring[0][0] == 49  # open shot from 0, scored up to 199: a quarter in is at least 49


def test_inside_a_transition_run_the_buffer_keeps_what_a_cut_inside_it_needs():
    # Shot open from 0; a many-hot run from 100 on: the improved rule may end the shot at 100, so
    # the frames from a quarter of [0, 100] on stay, however long the run lasts.
    cap = ShotKeyframeCapture(0.5, 10**9, 0, 90, many_hot_threshold=0.5, scene_frames=True)
    for i in range(300):
        cap.add_frame(i, FakeFrame(i))
    cap.add_probs(two_heads(1000, gradual=[(100, 400)])[:250], 1000)
    assert cap._ring[0][0] == 25


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(2, 400),
    cuts=st.lists(st.integers(1, 398), max_size=8),
    gradual=st.lists(st.tuples(st.integers(0, 397), st.integers(1, 60)), max_size=4),
    buffer_frames=st.integers(1, 600),
)
def test_improved_live_shots_are_the_rule_without_its_signal_steps(n, cuts, gradual, buffer_frames):
    """Without the frame-difference signals the improved rule is the live one, as long as no
    transition lasts to the last frame (the live rule cannot know that a run open at the end is a
    fade-out until the end; the rule with signals drops it too)."""
    probs = two_heads(n, [c for c in cuts if c < n], [(a, min(a + k, n - 2)) for a, k in gradual if a < n - 1])
    probs[-1] = 0.01
    cap = run_capture(probs, buffer_frames, many_hot_threshold=0.5, scene_frames=True)
    starts = improved_shot_starts(probs[:, 0], probs[:, 1])
    assert cap.captured <= offline_keyframes(probs[:, 0], starts)
    assert cap.scene_captured <= offline_scene_frames(n, starts)
    missing = len(offline_keyframes(probs[:, 0], starts) - cap.captured) + len(offline_scene_frames(n, starts) - cap.scene_captured)
    assert missing <= cap.missed
    if buffer_frames >= 450:
        assert cap.captured == offline_keyframes(probs[:, 0], starts)
        assert cap.scene_captured == offline_scene_frames(n, starts)


def test_model_is_loaded_once_per_handler():
    class Handler:
        loads = 0

        def load_model(self):
            Handler.loads += 1
            return object()

    h = Handler()
    assert inline_shots.loaded_model(h) is inline_shots.loaded_model(h)
    assert Handler.loads == 1


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_keyframes_are_stored_as_players_show_them(tmp_path, rotation):
    """A white block in the coded frame's top-left corner lands where OpenCV's auto-orientation
    (what the reference's decoders show) puts it, for shot keyframes and I-frames alike."""
    import io
    import os

    import av
    import cv2
    import synthetic
    from PIL import Image

    from reelbeam.schemas.records import VideoRef
    from reelbeam.transforms.decode import DecodeConfig, FrameIndexConsumer, decode_video
    from reelbeam.transforms.media import frame_jpeg
    from reelbeam.transforms.motion import IFrameConsumer

    img = np.zeros((96, 160, 3), np.uint8)
    img[:24, :40] = 255
    path = synthetic.write_video(str(tmp_path / f"rot{rotation}.mp4"), [img] * 3, rotation=rotation)
    ok, shown = cv2.VideoCapture(path).read()
    assert ok
    with av.open(path) as c:
        frame = next(c.decode(video=0))
        jpeg, w, h = frame_jpeg(frame)
    ours = np.asarray(Image.open(io.BytesIO(jpeg)))
    assert ours.shape[:2] == shown.shape[:2] == (h, w)
    assert np.abs(ours.astype(int).mean(axis=2) - shown.astype(int).mean(axis=2)).mean() < 4
    ref = VideoRef("r", path, os.path.getsize(path))
    rows = [v for t, v in decode_video(ref, [FrameIndexConsumer(), IFrameConsumer()], DecodeConfig()) if t == "keyframes"]
    iframe = np.asarray(Image.open(io.BytesIO(rows[0]["jpeg"])))
    assert iframe.shape[:2] == shown.shape[:2] == (rows[0]["height"], rows[0]["width"])
    assert np.abs(iframe.astype(int).mean(axis=2) - shown.astype(int).mean(axis=2)).mean() < 4


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_decode_pass_scoring_equals_the_runinference_path(shot_video, tmp_path, precision):
    """The real model, windows scored one by one in the pass vs batched by RunInference after
    it: the same per-frame probabilities (so the same shots), in fp32 and in int8. (That int8
    scores do not depend on the batch is tested on the model: the DirectRunner hands RunInference
    one window per bundle here.)"""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.testing.test_pipeline import TestPipeline
    from apache_beam.testing.util import assert_that, equal_to
    from process_videos import ProcessVideos

    from reelbeam.pipelines.plan import build_plan

    cfgs = {}
    for mode in ("on", "off"):
        cfgs[mode] = build_plan(PipelineOptions([
            "--input", shot_video, "--output", str(tmp_path / mode), "--shots-in-decode-pass", mode,
            "--transnetv2-precision", precision, "--inference-batch-size", "4",
        ]))
        assert cfgs[mode].stage("shots").inline == (mode == "on")

    def same(element):
        _, g = element
        on, off = g["on"][0], g["off"][0]
        return len(on) == len(off) == 150 and float(np.abs(on - off).max()) <= 1e-6

    with TestPipeline() as p:
        outs = {mode: p | f"Process_{mode}" >> ProcessVideos(cfg) for mode, cfg in cfgs.items()}
        probs = {
            mode: out["frames"] | f"Probs_{mode}" >> beam.Map(lambda t: (t.column("video_id")[0].as_py(), t.column("transition_prob").to_numpy()))
            for mode, out in outs.items()
        }
        assert_that(probs | beam.CoGroupByKey() | beam.Map(same), equal_to([True]), label="same_probs")
        for mode, out in outs.items():
            assert_that(out["shots"] | f"Starts_{mode}" >> beam.Map(lambda r: r["start_frame"]), equal_to([0, 40, 70, 120]), label=f"shots_{mode}")

