"""`reelbeam.read(OUTPUT, table)`: schemas, errors, fsspec URLs, and a cheap `import reelbeam`."""

import os
import shutil
import subprocess
import sys

import pyarrow.dataset as ds
import pytest

import reelbeam
from reelbeam.schemas import schema_for


def test_read_gives_the_tables_schema(pipeline_output):
    shots = reelbeam.read(pipeline_output, "shots")
    assert shots.schema.equals(schema_for("shots"), check_metadata=False)
    assert shots.num_rows == 4 + 3
    one = reelbeam.read(pipeline_output, "shots", columns=["video_id", "shot_idx"], filter=ds.field("shot_idx") == 0)
    assert one.column_names == ["video_id", "shot_idx"] and one.num_rows == 2


def test_read_from_an_fsspec_url(pipeline_output):
    local = reelbeam.read(pipeline_output, "videos")
    assert reelbeam.read("file://" + os.path.abspath(pipeline_output), "videos").equals(local)


def test_unknown_table_names_the_known_ones(pipeline_output):
    with pytest.raises(KeyError, match="known tables: .*'shots'"):
        reelbeam.read(pipeline_output, "shot")


def test_missing_table_says_what_is_present(pipeline_output):
    with pytest.raises(reelbeam.TableNotFound, match=r"'summaries' is not in .*tables present: \['videos'"):
        reelbeam.read(pipeline_output, "summaries")
    with pytest.raises(FileNotFoundError, match="no reelbeam output"):
        reelbeam.read(pipeline_output + "-missing", "videos")


def test_columns_added_since_a_file_was_written_read_as_nulls(pipeline_output, tmp_path):
    """Adding a nullable field is compatible (schemas/tables.py): old files still read."""
    import pyarrow.parquet as pq

    out = tmp_path / "out"
    shutil.copytree(pipeline_output, out, ignore=shutil.ignore_patterns("frames", "keyframes", "json"))
    for f in (out / "shots").glob("*.parquet"):
        pq.write_table(pq.read_table(f).drop_columns(["motion_score"]), f)
    shots = reelbeam.read(str(out), "shots")
    assert shots.column("motion_score").null_count == shots.num_rows


def test_import_reelbeam_stays_cheap():
    code = (
        "import sys, reelbeam; assert callable(reelbeam.read);"
        "print(sorted(m for m in ('apache_beam', 'torch', 'av', 'cv2') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.stdout.strip() == "[]"
    assert "read" in dir(reelbeam)
    with pytest.raises(AttributeError):
        reelbeam.no_such_name  # noqa: B018
