"""The per-video assembly: parts -> rows, and any problem of one video -> its failures row."""

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from reelbeam.schemas.records import VideoPart
from reelbeam.stages.assembly import AssembleVideos, AssemblyFailed, assemble_video, check_parts
from reelbeam.stages.base import ConfigError, PassStage
from reelbeam.stages.shots import ShotsStage
from reelbeam.transforms.failures import IncompleteVideo
from reelbeam.transforms.shots import ShotConfig


def shots_stage(**config):
    # The assembly's mechanics, on the reference rule (the improved rule's parts: tests/stages/test_shots.py).
    config.setdefault("rule", "reference")
    return ShotsStage(ShotConfig(**config), None, "fp32", "cpu", inline=False, batch=1, model_copies=None)


def parts(n=120, windows=None, drop=(), video_id="vid"):
    meta = {"video_id": video_id, "uri": "x.mp4", "frame_count": n, "nominal_fps": 25.0, "size_bytes": 1}
    index = {
        "frame_idx": np.arange(n, dtype=np.int32),
        "pts": list(range(n)),
        "pts_time": np.arange(n) / 25.0,
        "is_keyframe": np.zeros(n, bool),
        "pict_type": ["P"] * n,
        "duration": np.full(n, 0.04),
    }
    count = windows if windows is not None else (25 + n + 25 + (50 - n % 50 if n % 50 else 0) - 100) // 50 + 1
    probs = np.zeros(count * 50, np.float32)
    probs[59] = 0.95
    out = [VideoPart(video_id, "meta", meta), VideoPart(video_id, "frames", index), VideoPart(video_id, "transnetv2_windows", count)]
    out += [VideoPart(video_id, "transnetv2_probs", (i, probs[i * 50 : (i + 1) * 50])) for i in range(count) if i not in drop]
    return out


def test_shots_partition_the_video_with_times():
    result = assemble_video("vid", parts(), [shots_stage()])
    spans = [(s["start_frame"], s["end_frame"], s["start_time"], s["end_time"]) for s in result["shots"]]
    assert spans == [(0, 59, 0.0, 2.4), (60, 119, 2.4, pytest.approx(4.8))]
    assert result["frames"].num_rows == 120
    assert result["frames"].column("transition_prob").to_pylist()[59] == pytest.approx(0.95)
    assert result["frames"].column("content_delta").null_count == 120  # LGSS did not run
    assert result["videos"]["num_shots"] == 2 and result["videos"]["shot_detector"] == "transnetv2"


def test_a_missing_window_fails_the_video_and_names_the_stage():
    with pytest.raises(AssemblyFailed) as e:
        assemble_video("vid", parts(drop={1}), [shots_stage()])
    assert e.value.stage == "transition_model"
    assert isinstance(e.value.cause, IncompleteVideo) and "2 of 3" in str(e.value.cause)


def test_orphans_are_dropped():
    assert assemble_video("vid", parts()[1:], [shots_stage()]) is None


def test_a_part_no_stage_declared_fails_the_video():
    with pytest.raises(AssemblyFailed, match="part kinds no stage declared"):
        assemble_video("vid", [*parts(), VideoPart("vid", "mystery", 1)], [shots_stage()])


class _Boom(PassStage):
    name = "boom"
    parts = ("boom",)

    def assemble(self, video, parts):
        if video.video_id == "bad":
            raise ZeroDivisionError("a bug in a stage")


def test_any_error_of_one_video_becomes_its_failure_and_the_others_go_on():
    records = [(p.video_id, p) for vid in ("good", "bad") for p in parts(video_id=vid)]
    with TestPipeline() as p:
        out = p | beam.Create(records) | AssembleVideos([shots_stage(), _Boom()])
        assert_that(out.videos | beam.Map(lambda v: v["video_id"]), equal_to(["good"]), label="ok")
        assert_that(
            out.failures | beam.Map(lambda f: (f["video_id"], f["stage"], f["error_type"], f["message"])),
            equal_to([("bad", "boom", "internal_error", "ZeroDivisionError: a bug in a stage")]),
            label="failure",
        )


def test_undeclared_parts_and_tags_are_refused_when_the_pipeline_is_built():
    class Consumer:
        parts = ("secret",)

    class Sloppy(PassStage):
        name = "sloppy"
        parts = ("declared",)

        def frame_consumers(self):
            return [Consumer]

    with pytest.raises(ConfigError, match="emits part kinds"):
        check_parts([Sloppy()])

    class Twice(PassStage):
        name = "twice"
        parts = ("transnetv2_probs",)

    with pytest.raises(ConfigError, match="already declares"):
        check_parts([shots_stage(), Twice()])
