"""Stage `shots`: --shot-rule (configuration, settings, decode-pass consumers) and the assembly of
both TransNetV2 heads with the frame-difference signals."""

import numpy as np
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from reelbeam.pipelines.cli import main
from reelbeam.pipelines.plan import build_plan
from reelbeam.schemas.records import VideoPart
from reelbeam.stages.assembly import AssemblyFailed, assemble_video
from reelbeam.stages.shots import ShotsStage
from reelbeam.transforms.frame_difference import LAGS, SIGNALS, FrameDifferenceConsumer
from reelbeam.transforms.shots import ShotConfig


def plan(video, tmp_path, *extra):
    return build_plan(PipelineOptions(["--input", video, "--output", str(tmp_path / "out"), *extra]))


def consumer_classes(stage):
    return [getattr(f, "func", f) for f in stage.frame_consumers()]


def test_the_improved_rule_is_the_default_and_part_of_the_settings(short_video, tmp_path):
    p = plan(short_video, tmp_path)
    shots = p.stage("shots")
    assert shots.config.rule == "improved"
    assert shots.settings().startswith("transnetv2(rule=improved, threshold=0.5,")
    assert FrameDifferenceConsumer in consumer_classes(shots)
    assert "rule=improved" in p.stage("decode").settings()  # the frames' columns depend on it
    assert shots.handler()._heads == 2

    ref = plan(short_video, tmp_path, "--shot-rule", "reference").stage("shots")
    assert ref.settings().startswith("transnetv2(rule=reference, threshold=0.5,")
    assert FrameDifferenceConsumer not in consumer_classes(ref)
    assert ref.handler()._heads == 2  # both heads are scored (and written) under either rule
    lgss = plan(short_video, tmp_path, "--shot-detector", "lgss").stage("shots")
    assert FrameDifferenceConsumer not in consumer_classes(lgss) and lgss.settings() == "lgss(min_shot_frames=15)"


@pytest.mark.parametrize("layout", ["on", "off"])
def test_both_layouts_follow_the_rule(short_video, tmp_path, layout):
    shots = plan(short_video, tmp_path, "--shots-in-decode-pass", layout).stage("shots")
    classes = consumer_classes(shots)
    assert FrameDifferenceConsumer in classes
    if layout == "on":
        inline = shots.frame_consumers()[0]
        assert inline.keywords["many_hot_threshold"] == 0.5  # the live capture follows both heads
        ref = plan(short_video, tmp_path, "--shots-in-decode-pass", layout, "--shot-rule", "reference").stage("shots")
        assert ref.frame_consumers()[0].keywords["many_hot_threshold"] is None


def test_a_bad_shot_rule_fails_before_the_run_in_one_line(short_video, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["run", "--input", short_video, "--output", str(tmp_path), "--shot-rule", "best"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'best'" in err and len(err.strip().splitlines()) == 2


# ---------------------------------------------------------------------------------------------
# Assembly


def shots_stage(rule):
    return ShotsStage(ShotConfig(rule=rule), None, "fp32", "cpu", inline=False, batch=1, model_copies=None)


def signals_of(n, same_picture=False):
    """Frame-difference signals of n frames: picture A, a gradual change over frames 40-59 to
    picture B (with same_picture, back to A: a brightness ramp, a flash), a cut to C at 90."""
    picture = np.array(["A"] * 40 + ["mix"] * 20 + ["A" if same_picture else "B"] * 30 + ["C"] * (n - 90))
    sig = {k: np.zeros(n, np.float32) for k in SIGNALS}
    sig["frame_idx"] = np.arange(n, dtype=np.int32)
    sig["luma_mean"][:] = 120.0
    sig["luma_std"][:] = 40.0
    sig["luma_corr"][:] = 1.0
    sig["diff_luma"][40:60] = 3.0
    sig["diff_luma"][90] = 60.0
    for k in LAGS:
        corr = np.full(n, np.nan, np.float32)
        corr[k:] = np.where(picture[k:] == picture[:-k], 1.0, 0.1)
        sig[f"corr_lag{k}"] = corr
    return sig


def parts(n=120, many_hot=True, signals=True, same_picture=False, bad_window=False):
    meta = {"video_id": "vid", "uri": "x.mp4", "frame_count": n, "nominal_fps": 25.0, "size_bytes": 1}
    index = {
        "frame_idx": np.arange(n, dtype=np.int32), "pts": list(range(n)), "pts_time": np.arange(n) / 25.0,
        "is_keyframe": np.zeros(n, bool), "pict_type": ["P"] * n, "duration": np.full(n, 0.04),
    }
    count = 3
    probs = np.full((count * 50, 2), 0.01, np.float32)
    probs[89] = 0.9  # a hard cut before frame 90, on both heads
    probs[40:60, 0] = 0.35  # a 20-frame dissolve: the single-frame head stays under 0.5 ...
    probs[40:60, 1] = 0.95  # ... the many-hot head marks all of it
    windows = [probs[i * 50 : (i + 1) * 50] if many_hot else probs[i * 50 : (i + 1) * 50, 0] for i in range(count)]
    if bad_window:
        windows[1] = np.zeros((50, 3), np.float32)
    out = [VideoPart("vid", "meta", meta), VideoPart("vid", "frames", index), VideoPart("vid", "transnetv2_windows", count)]
    out += [VideoPart("vid", "transnetv2_probs", (i, w)) for i, w in enumerate(windows)]
    if signals:
        sig = signals_of(n, same_picture)
        out += [VideoPart("vid", "frame_difference", {k: v[:70] for k, v in sig.items()}),
                VideoPart("vid", "frame_difference", {k: v[70:] for k, v in sig.items()})]
    return out


def starts(result):
    return [s["start_frame"] for s in result["shots"]]


def test_the_improved_rule_ends_the_dissolve_the_reference_misses():
    improved = assemble_video("vid", parts(), [shots_stage("improved")])
    reference = assemble_video("vid", parts(), [shots_stage("reference")])
    assert starts(improved) == [0, 60, 90]
    assert starts(reference) == [0, 90]
    # The transition into each shot (issue #27): kind and span under the improved rule, nulls
    # under the reference's.
    rows = [(r["transition_kind"], r["transition_first_frame"], r["transition_last_frame"]) for r in improved["shots"]]
    assert rows == [(None, None, None), ("dissolve", 40, 59), ("cut", 89, 90)]
    assert {(r["transition_kind"], r["transition_first_frame"]) for r in reference["shots"]} == {(None, None)}
    for result in (improved, reference):
        frames = result["frames"]
        assert frames.column("transnetv2_many_hot").to_pylist()[45] == pytest.approx(0.95)
        assert frames.column("transition_prob").to_pylist()[89] == pytest.approx(0.9)


def test_a_picture_that_comes_back_is_no_cut():
    # The same many-hot run, but the picture after it is the one before (a flash, a ramp).
    assert starts(assemble_video("vid", parts(same_picture=True), [shots_stage("improved")])) == [0, 90]


def test_a_one_head_model_leaves_the_many_hot_column_null():
    result = assemble_video("vid", parts(many_hot=False), [shots_stage("improved")])
    assert result["frames"].column("transnetv2_many_hot").null_count == 120
    assert starts(result) == [0, 90]


def test_missing_signals_or_odd_windows_fail_the_video():
    with pytest.raises(AssemblyFailed, match="frame-difference signals for 0 of 120 frames") as e:
        assemble_video("vid", parts(signals=False), [shots_stage("improved")])
    assert e.value.stage == "shots"
    assert starts(assemble_video("vid", parts(signals=False), [shots_stage("reference")])) == [0, 90]
    with pytest.raises(AssemblyFailed, match=r"expected \[50\] or \[50, 2\]") as e:
        assemble_video("vid", parts(bad_window=True), [shots_stage("improved")])
    assert e.value.stage == "transition_model"


@pytest.mark.xfail(strict=True, reason="known weakness of the improved rule: a 1-frame many-hot-only blip without a "
                   "frame-difference spike becomes a cut (3 of 12 generated videos with moving rectangles)")
def test_a_rectangle_jumping_across_the_frame_is_no_cut(video_dir):
    """The real model on a generated video whose cut is at 30: at frame 24 a rectangle of the
    picture wraps around the frame; TransNetV2's many-hot head gives it 0.83 (the single-frame
    head 0.09, the frame difference no spike). The reference rule finds [30] only."""
    import os

    import synthetic

    from reelbeam.models.transnetv2 import TransNetV2ModelHandler, stitch_window_predictions
    from reelbeam.schemas.records import VideoRef
    from reelbeam.transforms.decode import decode_video
    from reelbeam.transforms.frame_difference import concat_chunks
    from reelbeam.transforms.shot_rule import improved_shot_starts
    from reelbeam.transforms.shots import TransNetV2WindowConsumer, transnetv2_shot_starts

    path = synthetic.make_shot_video(str(video_dir / "jumping_rectangle.mkv"), (30, 40), seed=3)
    windows, chunks = [], []
    for tag, value in decode_video(VideoRef("v", path, os.path.getsize(path)), [TransNetV2WindowConsumer(), FrameDifferenceConsumer()]):
        if tag == "windows":
            windows.append(value[1])
        elif tag == "per_video" and value.kind == "frame_difference":
            chunks.append(value.payload)
    handler = TransNetV2ModelHandler(device="cpu", heads=2)
    probs = stitch_window_predictions([r.inference for r in handler.run_inference(windows, handler.load_model())], 70)
    assert transnetv2_shot_starts(probs[:, 0]) == [30]
    assert improved_shot_starts(probs[:, 0], probs[:, 1], concat_chunks(chunks)) == [30]
