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


def test_process_one_video_gives_its_modelscope_style_result(tmp_path):
    import synthetic

    path = synthetic.make_shot_video(str(tmp_path / "clip.mp4"), (30, 40, 30))
    result = reelbeam.process(path, output=str(tmp_path / "out"), shot_detector="lgss")
    assert result["uri"].endswith("clip.mp4") and result["output"] == str(tmp_path / "out")
    assert result["shot_num"] == len(result["shot_meta_list"]) == 3
    assert [s["frame"][0] for s in result["shot_meta_list"]] == [0, 30, 70]
    # The tables are there too, for everything the result dict leaves out.
    assert reelbeam.read(result["output"], "shots").num_rows == 3


def test_process_several_videos_reports_a_failed_one_beside_the_others(tmp_path):
    import synthetic

    good = synthetic.make_shot_video(str(tmp_path / "good.mp4"), (30, 30))
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all")
    results = reelbeam.process([good, str(bad)], output=str(tmp_path / "out"), shot_detector="lgss")
    assert len(results) == 2
    by_name = {uri.rsplit("/", 1)[-1]: r for uri, r in results.items()}
    assert by_name["good.mp4"]["shot_num"] == 2
    assert by_name["bad.mp4"]["failure"]["stage"] == "decode"
    with pytest.raises(reelbeam.ProcessingError, match="bad.mp4: decode/invalid_data"):
        reelbeam.process(str(bad), output=str(tmp_path / "out2"))
    # Into an output that holds them already, only the videos asked for come back.
    other = synthetic.make_shot_video(str(tmp_path / "other.mp4"), (20,))
    again = reelbeam.process([other, str(bad)], output=str(tmp_path / "out"), shot_detector="lgss", skip_existing=True)
    assert sorted(uri.rsplit("/", 1)[-1] for uri in again) == ["bad.mp4", "other.mp4"]


def test_process_refuses_bad_options_before_running(tmp_path):
    from reelbeam.pipelines.options import ConfigError

    with pytest.raises(ConfigError, match="--model-copies must be >= 1"):
        reelbeam.process("x.mp4", output=str(tmp_path / "o"), model_copies=0)
    # A bad choice is a ConfigError too (not the command line's usage error and SystemExit), and a
    # refused call leaves no temporary output folder behind.
    import glob
    import tempfile

    before = set(glob.glob(f"{tempfile.gettempdir()}/reelbeam-*"))
    with pytest.raises(reelbeam.ConfigError, match="invalid choice: 'x'"):
        reelbeam.process("x.mp4", shot_rule="x")
    with pytest.raises(reelbeam.ConfigError, match="unknown option"):
        reelbeam.process("x.mp4", foo=1)
    with pytest.raises(reelbeam.ConfigError, match="reelbeam run --dry_run"):
        reelbeam.process("x.mp4", dry_run=True)
    assert set(glob.glob(f"{tempfile.gettempdir()}/reelbeam-*")) == before
