"""The Delta Lake table store: commits add a stage's files atomically, replace the rows they
supersede (never duplicate), skip a commit made already, collide with a concurrent writer, and
readers see committed files only."""

import os
import threading

import pyarrow as pa
import pytest

from reelbeam.schemas.tables import schema_for
from reelbeam.store import tables as store
from reelbeam.store.tables import Change, StageCommit, active_files, commit, commit_stages, write_data_file


def shots(video_ids, run="r", start=0):
    rows = [{"video_id": v, "shot_id": f"{v}-{k}", "shot_idx": k, "start_frame": start + 10 * k,
             "end_frame": start + 10 * k + 9} for v in video_ids for k in range(2)]
    return pa.Table.from_pylist(rows, schema=schema_for("shots"))


def run_id(n):
    return f"20261207T00000{n}Z-000{n}"


def read(out, table="shots"):
    from reelbeam import read as api_read

    return sorted((r["video_id"], r["start_frame"]) for r in api_read(out, table, ["video_id", "start_frame"]).to_pylist())


def stage_run(out, run, videos, start=0, failed=(), whole=False, files_per_video=False):
    uri = store.table_uri(out, "shots")
    groups = [[v] for v in videos] if files_per_video else [list(videos)]
    paths = [write_data_file(uri, "shots", shots([v for v in g if v not in failed], start=start), run, "shots")
             for g in groups if [v for v in g if v not in failed]]
    return commit_stages(out, run, [StageCommit("shots", "s", ["shots"], {"shots": paths}, videos, failed, whole=whole)])


def racing(calls) -> list[str]:
    """Run each call in its own thread, every one having read the table's snapshot (its first
    `open_table`) before any commits; their outcomes, in the order they finished."""
    barrier = threading.Barrier(len(calls))
    real_open = store.open_table
    waited, outcomes = set(), []

    def open_then_wait(*args, **kwargs):
        dt = real_open(*args, **kwargs)
        name = threading.current_thread().name
        if name.startswith("racer") and name not in waited:
            waited.add(name)
            barrier.wait(timeout=10)  # all read the same snapshot before any commits
        return dt

    store.open_table = open_then_wait
    try:
        threads = [threading.Thread(target=lambda c=c: outcomes.append(c()), name=f"racer{i}") for i, c in enumerate(calls)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        store.open_table = real_open
    return outcomes


def test_files_are_invisible_until_committed_and_a_commit_adds_them_whole(tmp_path):
    out = str(tmp_path / "out")
    uri = store.table_uri(out, "shots")
    path = write_data_file(uri, "shots", shots(["a", "b"]), run_id(1), "shots")
    assert os.path.exists(path) and active_files(out, "shots") == []
    result = commit(out, "shots", [Change("shots", [path], {"a", "b"})], run_id=run_id(1))
    assert (result.version, result.added, result.rows) == (0, 1, 4)
    assert read(out) == [("a", 0), ("a", 10), ("b", 0), ("b", 10)]
    assert [(p.run_id, p.stage) for p in active_files(out, "shots")] == [(run_id(1), "shots")]


def test_a_rerun_replaces_the_videos_rows_and_rewrites_files_that_hold_others(tmp_path):
    out = str(tmp_path / "out")
    stage_run(out, run_id(1), ["a", "b", "c"])
    stage_run(out, run_id(2), ["b"], start=100)  # b again, with other rows
    assert read(out) == [("a", 0), ("a", 10), ("b", 100), ("b", 110), ("c", 0), ("c", 10)]
    ledger = store.ledger_state(out, ["shots"])["shots"]
    assert ledger == {"a": [(run_id(1), "ok")], "b": [(run_id(2), "ok")], "c": [(run_id(1), "ok")]}
    stage_run(out, run_id(3), ["a", "c"], failed={"c"})  # c failed now: its rows are gone
    assert read(out) == [("a", 0), ("a", 10), ("b", 100), ("b", 110)]
    assert store.ledger_state(out, ["shots"])["shots"]["c"] == [(run_id(3), "failed")]


def test_overwrite_replaces_every_row_of_the_stage(tmp_path):
    out = str(tmp_path / "out")
    stage_run(out, run_id(1), ["a", "b"])
    stage_run(out, run_id(2), ["c"], whole=True)
    assert read(out) == [("c", 0), ("c", 10)]
    assert set(store.ledger_state(out, ["shots"])["shots"]) == {"c"}


def test_a_retried_commit_is_recognised_and_skipped(tmp_path):
    out = str(tmp_path / "out")
    stage_run(out, run_id(1), ["a"])
    version = store.open_table(out, "shots").version()
    again = commit(out, "shots", [Change("shots", [], {"a"})], run_id=run_id(1), app="shots")
    assert again.skipped and store.open_table(out, "shots").version() == version
    assert read(out) == [("a", 0), ("a", 10)]


@pytest.mark.parametrize("point", ["after-intent", "between-tables", "before-ledger"])
def test_a_run_that_dies_mid_commit_leaves_no_duplicate_after_the_next_one(tmp_path, monkeypatch, point):
    """The intent rows say which run may hold rows of a video whose stage did not finish: the next
    commit of those videos removes them, even where the dead run had committed a table."""
    out = str(tmp_path / "out")
    stage_run(out, run_id(1), ["a", "b"])

    class Killed(Exception):
        pass

    def die(p):
        if p == point:
            raise Killed(p)

    monkeypatch.setattr(store, "_fault", die)
    with pytest.raises(Killed):
        stage_run(out, run_id(2), ["b", "c"], start=100)
    monkeypatch.undo()
    state = store.ledger_state(out, ["shots"])["shots"]
    assert (run_id(2), "pending") in state["b"] and state["c"] == [(run_id(2), "pending")]
    stage_run(out, run_id(3), ["b", "c"], start=200)
    assert read(out) == [("a", 0), ("a", 10), ("b", 200), ("b", 210), ("c", 200), ("c", 210)]
    assert {v: s for v, s in store.ledger_state(out, ["shots"])["shots"].items()} == {
        "a": [(run_id(1), "ok")], "b": [(run_id(3), "ok")], "c": [(run_id(3), "ok")]}


def test_files_of_a_run_no_ledger_row_names_are_removed_as_orphans(tmp_path):
    out = str(tmp_path / "out")
    stage_run(out, run_id(1), ["a"])
    uri = store.table_uri(out, "shots")
    orphan = write_data_file(uri, "shots", shots(["z"]), run_id(2), "shots")
    commit(out, "shots", [Change("shots", [orphan], {"z"})], run_id=run_id(2))  # a table commit, no ledger
    assert ("z", 0) in read(out)
    stage_run(out, run_id(3), ["b"])
    assert read(out) == [("a", 0), ("a", 10), ("b", 0), ("b", 10)]


def test_two_writers_of_the_same_stage_collide_instead_of_both_appending(tmp_path):
    out = str(tmp_path / "out")
    stage_run(out, run_id(1), ["a"])
    uri = store.table_uri(out, "shots")
    paths = [write_data_file(uri, "shots", shots(["b"]), run_id(n), "shots") for n in (2, 3)]
    def write(n, path):
        try:
            commit(out, "shots", [Change("shots", [path], {"b"})], run_id=run_id(n))
            return "ok"
        except store.CommitConflict as e:
            return str(e)

    outcomes = racing([lambda n=n, p=p: write(n, p) for n, p in zip((2, 3), paths)])
    assert min(outcomes, key=len) == "ok"
    assert "another writer committed rows of shots at the same time" in sorted(outcomes, key=len)[1]
    assert [v for v, _ in read(out)].count("b") == 2  # one copy of b's two shots


def test_commit_groups_of_one_run_racing_on_the_ledger_both_commit(tmp_path):
    # Dask commits the decode pass and a later stage in parallel: both end with a ledger commit that
    # replaces their intent rows; the later of the two is redone, not refused as a rival writer.
    out = str(tmp_path / "out")
    run = run_id(1)
    stage_run(out, run_id(0), ["a"])  # the ledger exists
    uri = store.table_uri(out, store.LEDGER)

    def ledger_file(stage, pending):
        rows = store.ledger_rows(stage, run, "s", ["a"], pending=pending)
        return write_data_file(uri, store.LEDGER, pa.Table.from_pylist(rows, schema=schema_for(store.LEDGER)),
                               run, stage, "zstd", store.PENDING if pending else "")

    commit(out, store.LEDGER, [Change(s, [ledger_file(s, True)]) for s in ("motion", "scenes")], run_id=run,
           app="intent", append_only=True)
    state = store.ledger_state(out, ["motion", "scenes"])
    def final(stage):
        try:
            commit(out, store.LEDGER, [Change(stage, [ledger_file(stage, False)], {"a"})], run_id=run, app=stage,
                   ledger=state)
            return "ok"
        except Exception as e:  # noqa: BLE001 - the test reports it
            return repr(e)

    outcomes = racing([lambda s=s: final(s) for s in ("motion", "scenes")])
    assert outcomes == ["ok", "ok"]
    got = store.ledger_state(out, ["motion", "scenes"])
    assert got == {"motion": {"a": [(run, "ok")]}, "scenes": {"a": [(run, "ok")]}}


def test_time_travel_and_vacuum(tmp_path):
    out = str(tmp_path / "out")
    stage_run(out, run_id(1), ["a"])
    first = store.open_table(out, "shots").version()
    stage_run(out, run_id(2), ["a"], start=50)
    assert [p.run_id for p in active_files(out, "shots", version=first)] == [run_id(1)]
    from reelbeam import read as api_read

    assert sorted(api_read(out, "shots", ["start_frame"], version=first).column(0).to_pylist()) == [0, 10]
    deleted = store.vacuum(out, retention_hours=0)["shots"]
    assert len(deleted) == 1 and run_id(1) in deleted[0]
    assert read(out) == [("a", 50), ("a", 60)]
