"""The stage contract from outside: a new stage that reads `keyframes` and writes a new table is
its own module plus one registry line, and runs in a full run and with --start-from keyframes."""

import os
from typing import ClassVar, Optional

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import synthetic

from reelbeam import stages
from reelbeam.pipelines.cli import run
from reelbeam.schemas import tables
from reelbeam.stages.base import Stage, add_flag

FAKE_TABLE = pa.schema(
    [
        pa.field("video_id", pa.string(), nullable=False),
        pa.field("shot_idx", pa.int32()),
        pa.field("jpeg_bytes", pa.int64()),
    ],
    metadata={"reelbeam.table": "keyframe_sizes", "reelbeam.schema_version": tables.SCHEMA_VERSION, "doc": "test"},
)


def _size_row(row):
    return {"video_id": row["video_id"], "shot_idx": row["shot_idx"], "jpeg_bytes": len(row["jpeg"])}


class KeyframeSizesStage(Stage):
    """The whole extension: declarations, a flag, configure and expand."""

    name: ClassVar[str] = "keyframe_sizes"
    title: ClassVar[str] = "Keyframe sizes (a test stage)"
    reads: ClassVar[tuple[str, ...]] = ("keyframes",)
    writes: ClassVar[tuple[str, ...]] = ("keyframe_sizes",)
    enabled_by: ClassVar[str] = "--keyframe-sizes"

    @staticmethod
    def add_flags(group) -> None:
        add_flag(group, "keyframe-sizes", action="store_true", help="write the size of every shot keyframe")

    @classmethod
    def configure(cls, options, env) -> Optional["KeyframeSizesStage"]:
        return cls() if options.keyframe_sizes else None

    def expand(self, tables):
        shot_rows = tables["keyframes"] | "ShotRows" >> beam.Filter(lambda r: r["kind"] == "shot")
        return {
            "keyframe_sizes": shot_rows | "Sizes" >> beam.Map(_size_row),
            "processed": shot_rows | "Ids" >> beam.Map(lambda r: r["video_id"]) | "Distinct" >> beam.Distinct(),
        }


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setattr(stages, "REGISTRY", (*stages.REGISTRY, KeyframeSizesStage))  # the one registry line
    monkeypatch.setitem(tables.TABLES, "keyframe_sizes", FAKE_TABLE)


def sizes(out):
    return sorted((r["shot_idx"], r["jpeg_bytes"]) for r in pq.read_table(os.path.join(out, "keyframe_sizes")).to_pylist())


def test_a_new_stage_runs_in_a_full_run_and_from_an_earlier_runs_keyframes(tmp_path, registered):
    video = synthetic.make_shot_video(str(tmp_path / "a.mp4"), (40, 30))
    full = str(tmp_path / "full")
    plan = run(["--input", video, "--output", full, "--shot-keyframes", "--keyframe-sizes"])
    assert plan.stage_names[-1] == "keyframe_sizes"
    expected = sizes(full)
    assert [s for s, _ in expected] == [0, 0, 0, 1, 1, 1] and all(n > 0 for _, n in expected)

    first = str(tmp_path / "split")
    run(["--input", video, "--output", first, "--shot-keyframes"])
    plan = run(["--output", first, "--start-from", "keyframes", "--keyframe-sizes"])
    assert plan.stage_names == ["keyframe_sizes"]
    assert sizes(first) == expected


def test_its_flag_is_listed_under_its_own_heading(registered, capsys):
    from reelbeam.pipelines.cli import main

    assert main(["run", "--help"]) == 0
    text = capsys.readouterr().out
    assert "Keyframe sizes (a test stage) [stage keyframe_sizes]:\n  --keyframe-sizes" in text
