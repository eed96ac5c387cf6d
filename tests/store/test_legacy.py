"""Outputs written by reelbeam before tables were Delta tables (plain Parquet part files and a
`stage_runs` ledger of Parquet files): read as that version read them, less the files it had not
committed; a run into one refused in one line naming `reelbeam migrate`; `reelbeam migrate`
converting one in place (no data copied, never-committed files left out); runs with
`--skip-existing` working on it afterwards; outputs older than the ledger refused by migrate.

The earlier output is made by the earlier version itself: the package at LEGACY_COMMIT (the last
commit of that layout) is taken out of git into a folder and run there in a subprocess with
PYTHONPATH pointing at it, on the same dependencies. A run of it that was killed after its data
files were final and before its ledger file (what that version left after a kill) is made by copying
its committed files under another run id, without a ledger file."""

import glob
import io
import os
import shutil
import subprocess
import sys
import tarfile

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import synthetic

from reelbeam import read
from reelbeam.pipelines.cli import main
from reelbeam.schemas.tables import TABLES
from reelbeam.store import legacy
from reelbeam.store import tables as store
from reelbeam.store.commands import migrate_main

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LEGACY_COMMIT = "01b1fd8f76ab5541e0f0de45b443cf516da00ced"  # main before Delta tables
KILLED_RUN = "20260101T000000Z-dead"
# Cheap flags both versions take: training-free scenes, no JSON, the DirectRunner in this process.
FLAGS = ["--scenes", "histogram", "--no-json", "--direct_running_mode=in_memory"]


def rows(table: pa.Table, like: pa.Table | None = None) -> list[str]:
    """The table's rows, sorted, as text; with `like` (what the earlier version read), only its
    columns: the columns added since (nullable) must be null in rows the earlier version wrote."""
    if like is not None:
        added = [c for c in table.column_names if c not in like.column_names]
        assert all(table.column(c).null_count == table.num_rows for c in added), added
        table = table.select(like.column_names)
    return sorted(repr(sorted(r.items())) for r in table.to_pylist())


def parquet_files(out: str) -> dict[str, int]:
    """Every Parquet file under the table folders -> its inode (a copy would have a new one)."""
    return {p: os.stat(p).st_ino for p in glob.glob(os.path.join(out, "*", "*.parquet"))}


@pytest.fixture(scope="module")
def legacy_code(tmp_path_factory):
    """The earlier version's package, out of git, in a folder of its own."""
    found = subprocess.run(["git", "-C", REPO, "cat-file", "-e", f"{LEGACY_COMMIT}^{{commit}}"], capture_output=True)
    if found.returncode != 0:
        pytest.skip(f"this checkout lacks commit {LEGACY_COMMIT[:10]} (a shallow clone?): cannot run the earlier version")
    archive = subprocess.run(["git", "-C", REPO, "archive", LEGACY_COMMIT, "reelbeam"], capture_output=True, check=True)
    folder = tmp_path_factory.mktemp("legacy_code")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(folder, filter="data")
    return str(folder)


def earlier_version(code: str, args, cwd: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": code, "PYTHONUNBUFFERED": "1"}
    done = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=110)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def legacy_output(legacy_code, tmp_path_factory):
    """(output folder, facts): a run of the earlier version over one video and one broken file,
    then a killed run of it (files, no ledger file); facts: what the earlier version's
    `reelbeam.read` returned for each table before the killed run, and the killed run's files."""
    root = tmp_path_factory.mktemp("legacy")
    corpus = root / "corpus"
    corpus.mkdir()
    synthetic.make_shot_video(str(corpus / "a.mp4"), (40, 30, 50))
    (corpus / "broken.mp4").write_bytes(b"not a video\n" * 40)
    # c.mp4 is for a later run (ids come from the path: the corpus stays where it is)
    synthetic.make_shot_video(str(corpus / "c.mp4"), (30,), width=64, height=48)
    out = str(root / "out")
    probe = earlier_version(legacy_code, ["-c", "import reelbeam; print(reelbeam.__file__)"], str(root))
    assert probe.stdout.startswith(legacy_code), probe.stdout  # the earlier package, not this checkout's
    inputs = ["--input", str(corpus / "a.mp4"), "--input", str(corpus / "broken.mp4")]
    earlier_version(legacy_code, ["-m", "reelbeam", "run", *inputs, "--output", out, *FLAGS], str(root))
    assert not glob.glob(os.path.join(out, "*", store.DELTA_LOG))
    names = sorted(os.path.basename(p) for p in parquet_files(out))
    assert names and all(n.endswith("-of-00001.parquet") for n in names), names

    # what the earlier version's own reader returns (it globbed: everything was committed here)
    expected = root / "read_by_earlier_version"
    earlier_version(legacy_code, ["-c", (
        "import sys, pyarrow.parquet as pq, reelbeam; from reelbeam.api import tables_present\n"
        "for t in tables_present(sys.argv[1]): pq.write_table(reelbeam.read(sys.argv[1], t), f'{sys.argv[2]}/{t}.parquet')"
    ), out, str(expected.mkdir() or expected)], str(root))
    before = {os.path.basename(p)[:-8]: pq.read_table(p) for p in glob.glob(str(expected / "*.parquet"))}

    # a killed run: its data files final, its ledger file never written (the same video again)
    killed = []
    for table in ("videos", "frames", "shots", "scenes"):
        for src in sorted(glob.glob(os.path.join(out, table, "part-*.parquet"))):
            run_id = os.path.basename(src)[5:26]
            dst = src.replace(run_id, KILLED_RUN)
            shutil.copy(src, dst)
            killed.append(dst)
    # and a bundle of it still in its temporary folder
    tmp = os.path.join(out, "shots", f".tmp-{KILLED_RUN}-shots")
    os.makedirs(tmp)
    shutil.copy(killed[-1], os.path.join(tmp, "0123abcd.parquet"))
    return out, {"before": before, "killed": killed}


@pytest.fixture
def copy_of(legacy_output, tmp_path):
    out = str(tmp_path / "out")
    shutil.copytree(legacy_output[0], out)
    return out


def test_an_earlier_output_reads_as_before_without_the_files_it_had_not_committed(legacy_output):
    out, facts = legacy_output
    assert legacy.is_legacy(out) and not any(store.is_delta(out, t) for t in TABLES)
    assert set(facts["before"]) == {"videos", "failures", "frames", "shots", "scenes", "stage_runs"}
    from reelbeam.api import tables_present

    assert tables_present(out) == [t for t in TABLES if t in facts["before"]]
    for table, expected in facts["before"].items():
        assert rows(read(out, table), expected) == rows(expected), table
    assert store.row_counts(out) == {t: facts["before"][t].num_rows for t in facts["before"]}
    assert read(out, "videos").num_rows == 1 and read(out, "failures").num_rows == 1
    # the killed run's files are there, and no reader counts them
    assert all(os.path.exists(p) for p in facts["killed"])
    assert not any(p.run_id == KILLED_RUN for t in TABLES for p in store.active_files(out, t))


def test_time_travel_on_an_earlier_output_is_refused_not_empty(legacy_output):
    out, _ = legacy_output
    with pytest.raises(ValueError, match="reelbeam migrate"):
        read(out, "shots", version=0)
    with pytest.raises(ValueError, match="reelbeam migrate"):
        read(out, "shots", as_of_run=KILLED_RUN)


def corpus_of(legacy_output) -> str:
    return os.path.join(os.path.dirname(legacy_output[0]), "corpus")


def test_a_run_into_an_earlier_output_is_refused_in_one_line_naming_migrate(legacy_output, copy_of, capfd):
    files = parquet_files(copy_of)
    for resume in ("--skip-existing", "--overwrite"):
        assert main(["run", "--input", corpus_of(legacy_output), "--output", copy_of, *FLAGS, resume]) == 2
        err = [line for line in capfd.readouterr().err.splitlines() if not line.startswith("INFO ")]
        assert len(err) == 1 and f"`reelbeam migrate {copy_of}`" in err[0], err
    assert parquet_files(copy_of) == files and not glob.glob(os.path.join(copy_of, "*", store.DELTA_LOG))


def test_migrate_converts_in_place_and_keeps_the_never_committed_files_out(legacy_output, copy_of, capsys):
    _, facts = legacy_output
    files = parquet_files(copy_of)
    assert migrate_main([copy_of]) == 0
    said = capsys.readouterr().out
    assert "now holds Delta tables" in said
    assert not legacy.is_legacy(copy_of)
    assert parquet_files(copy_of) == files  # nothing copied, moved or deleted
    killed = {p.replace(os.path.dirname(os.path.dirname(p)), copy_of) for p in facts["killed"]}
    for table in facts["before"]:
        assert store.is_delta(copy_of, table), table
        assert rows(read(copy_of, table), facts["before"][table]) == rows(facts["before"][table]), table
        active = {p.path for p in store.active_files(copy_of, table)}
        assert active and not active & killed, table
        assert active <= set(files), table
    assert store.row_counts(copy_of) == {t: facts["before"][t].num_rows for t in facts["before"]}
    assert migrate_main([copy_of]) == 0 and "nothing to do" in capsys.readouterr().out


def test_a_migration_stopped_half_way_is_finished_by_running_it_again(legacy_output, copy_of, monkeypatch):
    """Tables are converted one by one, the ledger last: until then, the tables not yet converted
    (an empty log folder is no table) still read as before, and migrate converts what is left."""
    _, facts = legacy_output
    real = store._add_action

    def die_at_scenes(uri, path):
        if uri.endswith("/scenes"):
            raise OSError("killed")
        return real(uri, path)

    monkeypatch.setattr(store, "_add_action", die_at_scenes)
    with pytest.raises(OSError):
        legacy.migrate(copy_of)
    monkeypatch.undo()
    assert store.is_delta(copy_of, "shots") and not store.is_delta(copy_of, "scenes")
    # a creation that died before its first commit (a full disk, say) leaves an empty log folder
    os.makedirs(os.path.join(copy_of, "scenes", store.DELTA_LOG))
    assert legacy.is_legacy(copy_of)
    for table in facts["before"]:
        assert rows(read(copy_of, table), facts["before"][table]) == rows(facts["before"][table]), table
    legacy.migrate(copy_of)
    assert not legacy.is_legacy(copy_of)
    for table in facts["before"]:
        assert store.is_delta(copy_of, table) and rows(read(copy_of, table), facts["before"][table]) == rows(facts["before"][table]), table


def test_a_rerun_commit_into_a_migrated_table_replaces_the_earlier_rows(legacy_output, copy_of):
    """The replace path over the earlier version's files: a stage redoing a video replaces its rows
    (the earlier file leaves the table), and no row is duplicated."""
    _, facts = legacy_output
    legacy.migrate(copy_of)
    shots = read(copy_of, "shots")
    (video,) = set(shots.column("video_id").to_pylist())
    run_id = store.new_run_id()
    path = store.write_data_file(store.table_uri(copy_of, "shots"), "shots", shots, run_id, "shots")
    settings = read(copy_of, "stage_runs").to_pandas().query("stage == 'shots'").settings.item()
    store.commit_stages(copy_of, run_id, [store.StageCommit("shots", settings, ["shots"], {"shots": [path]}, [video])])
    assert [p.run_id for p in store.active_files(copy_of, "shots")] == [run_id]
    assert rows(read(copy_of, "shots"), facts["before"]["shots"]) == rows(facts["before"]["shots"])
    ledger = store.ledger_state(copy_of, ["shots", "decode"])
    assert ledger["shots"] == {video: [(run_id, "ok")]} and len(ledger["decode"][video]) == 1


def test_after_migrate_a_skip_existing_run_does_only_the_new_work(legacy_output, copy_of, capfd):
    """The earlier run did a.mp4 (and broken.mp4 failed); this one is given the whole folder."""
    _, facts = legacy_output
    corpus = corpus_of(legacy_output)
    assert migrate_main([copy_of]) == 0
    earlier = {t: {p.path for p in store.active_files(copy_of, t)} for t in facts["before"]}
    assert main(["run", "--input", str(corpus), "--output", copy_of, *FLAGS, "--skip-existing"]) == 0
    said = capfd.readouterr()
    # c.mp4 done, broken.mp4 tried again (it had failed), a.mp4 skipped
    assert "1 video ok, 1 failed; 1 done earlier" in said.out, said.out + said.err[-2000:]
    ledger = read(copy_of, "stage_runs")
    this_run = set(ledger.column("run_id").to_pylist()) - set(facts["before"]["stage_runs"].column("run_id").to_pylist())
    (run_id,) = this_run
    redone = {r["video_id"] for r in ledger.to_pylist() if r["run_id"] == run_id}
    videos = read(copy_of, "videos").to_pylist()
    (a,) = [v["video_id"] for v in videos if v["uri"].endswith("a.mp4")]
    (c,) = [v["video_id"] for v in videos if v["uri"].endswith("c.mp4")]
    assert len(videos) == 2 and c in redone and a not in redone and len(redone) == 2  # c, and broken.mp4

    def kept(table):
        return table.filter(pc.invert(pc.is_in(table.column("video_id"), pa.array(sorted(redone)))))

    for table, expected in facts["before"].items():
        now = read(copy_of, table)
        assert rows(kept(now), expected) == rows(kept(expected)), table  # the earlier rows of a.mp4, as they were
        if table not in ("failures", "stage_runs"):
            assert kept(now).num_rows > 0 and c in set(now.column("video_id").to_pylist()), table
            assert earlier[table] <= {p.path for p in store.active_files(copy_of, table)}, table  # in their files
    failures = read(copy_of, "failures")
    assert failures.num_rows == 2 and rows(facts["before"]["failures"])[0] in rows(failures)  # a log: tried again
    tables = {t: rows(read(copy_of, t)) for t in facts["before"]}
    again = ["--input", os.path.join(corpus, "a.mp4"), "--input", os.path.join(corpus, "c.mp4")]
    assert main(["run", *again, "--output", copy_of, *FLAGS, "--skip-existing"]) == 0
    assert "nothing new" in capfd.readouterr().out
    assert {t: rows(read(copy_of, t)) for t in facts["before"]} == tables


def test_migrate_refuses_an_output_older_than_the_ledger_in_one_line(legacy_output, copy_of, capsys):
    """Versions before the ledger named no stage in their files (part-<run>-00000-of-00001.parquet)
    and wrote no stage_runs."""
    _, facts = legacy_output
    for path in facts["killed"]:
        os.remove(path.replace(os.path.dirname(os.path.dirname(path)), copy_of))
    shutil.rmtree(os.path.join(copy_of, "stage_runs"))
    for path in parquet_files(copy_of):
        name = os.path.basename(path)
        os.rename(path, os.path.join(os.path.dirname(path), name[:26] + name[name.index("-000"):]))
    assert legacy.is_legacy(copy_of)
    files = parquet_files(copy_of)
    assert migrate_main([copy_of]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    # (a run into it with --overwrite is refused too: see the test above)
    assert len(err) == 1 and "older than the stage ledger" in err[0] and "new --output" in err[0], err
    assert "--overwrite" not in err[0]
    assert parquet_files(copy_of) == files and not glob.glob(os.path.join(copy_of, "*", store.DELTA_LOG))
    for table, expected in facts["before"].items():  # still read as before
        if table != "stage_runs":
            assert rows(read(copy_of, table), expected) == rows(expected), table
