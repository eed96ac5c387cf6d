"""The run manifest records the time of every stage that ran (`stage_times`, from the workers'
counters: reelbeam.transforms.timing) and the run's own wall time."""

import json

import synthetic

from reelbeam.pipelines.cli import run


def test_the_manifest_records_the_time_of_every_stage_that_ran(tmp_path):
    video = synthetic.make_shot_video(str(tmp_path / "a.mp4"), (20, 25))
    out = tmp_path / "out"
    # TransNetV2 through RunInference after the pass: the shot stage has work inside and outside it
    plan = run(["--input", video, "--output", str(out), "--shots-in-decode-pass", "off"])
    (path,) = (out / "_runs").glob("*.json")
    manifest = json.loads(path.read_text())
    times = manifest["stage_times"]
    assert plan.stage_times == times
    assert list(times) == [*plan.stage_names, "commit"]
    for stage, t in times.items():
        assert t["wall_s"] > 0, (stage, t)  # every one of them did some work, however little
        assert t["cpu_s"] is None or t["cpu_s"] >= 0, (stage, t)

    passes = [s.name for s in plan.stages if s.in_decode_pass]
    assert {"shots", "motion_stats"} <= set(passes)
    decode = times["decode"]
    # the decode pass as a whole, of which each pass stage's frame consumers took a part
    assert set(decode["in_pass"]) == set(passes)
    assert 0 < sum(decode["in_pass"].values()) < decode["wall_s"]
    for stage in passes:
        assert times[stage]["in_decode_pass_s"] == decode["in_pass"][stage]
    assert times["decode"]["cpu_s"] > 0  # one worker process, nothing alongside: CPU is known
    assert manifest["wall_s"] > 0
    assert manifest["counters"]["videos_ok"] == 1
    assert not any(name.startswith("stage_") for name in manifest["counters"])  # folded into stage_times
