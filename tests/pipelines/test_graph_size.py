"""The default run's Beam graph stays lean (issue #24: 590 steps once, 294 after the stage
redesign, 166 before tagged outputs became single steps): every step costs graph construction
time, job-graph size and, on Dask, a task per partition."""

import os

from reelbeam.pipelines.graph_size import count

SAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "samples", "sintel_trailer_30s.mp4")


def test_the_default_run_has_under_150_steps(tmp_path):
    size = count(["--input", SAMPLE, "--output", str(tmp_path / "out")])
    assert size["total"] < 150, size
    assert size["leaf"] > 50  # it did build the default stages
    out = tmp_path / "out"
    assert not out.exists() or not any(out.iterdir())  # counting writes nothing
