"""Tables you can trust, under faults: each trial ends with tables identical to a clean run (after
`--skip-existing`) or with a one-line refusal, readers never see what was not committed, and the
run's manifest says what happened.

The runs are `reelbeam run` processes over 3 tiny videos (LGSS shots, histogram scenes: no model
to load), faults injected with REELBEAM_FAULT (reelbeam.store.tables.fault_point), kills, a small
tmpfs (disk full) and a read-only remount (the mount trials need root and skip without it)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import snapshots
import synthetic

import reelbeam

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])}
FLAGS = ["--shot-detector", "lgss", "--scenes", "histogram"]
IN_PROCESS = ["--direct_running_mode=in_memory"]  # the commit runs in the run's own process
SKIP_COLUMNS = {"decode_seconds", "time", "run_id"}


def cli(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "reelbeam", *args], capture_output=True, text=True,
                          env={**ENV, **(env or {})}, timeout=timeout)


def start(*args, env=None):
    return subprocess.Popen([sys.executable, "-m", "reelbeam", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**ENV, **(env or {})}, start_new_session=True)


def snapshot(out):
    return snapshots.snapshot(str(out), skip_columns=SKIP_COLUMNS, skip_tables=("stage_runs", "failures"))


def manifests(out):
    folder = os.path.join(out, "_runs")
    return {p[:-5]: json.load(open(os.path.join(folder, p))) for p in sorted(os.listdir(folder)) if p.endswith(".json")}


def error_line(proc):
    """The run's error: the last line of stderr, which must be the only line saying so."""
    lines = [x for x in proc.stderr.strip().splitlines() if x.strip()]
    errors = [x for x in lines if x.startswith("reelbeam: error:")]
    assert len(errors) == 1 and errors[0] == lines[-1], proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return errors[0]


def no_duplicates(out):
    for table, key in (("videos", ["video_id"]), ("frames", ["video_id", "frame_idx"]), ("shots", ["video_id", "shot_idx"]),
                       ("scenes", ["video_id", "scene_idx"])):
        try:
            rows = reelbeam.read(str(out), table, key).to_pylist()
        except reelbeam.TableNotFound:
            continue
        keys = [tuple(r.values()) for r in rows]
        assert len(keys) == len(set(keys)), f"{table}: duplicate rows"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    for i in range(3):
        synthetic.make_shot_video(str(root / f"v{i}.mp4"), (12, 10), width=64, height=48, seed=20 + i)
    first = root / "first.txt"
    first.write_text("".join(f"{root / f'v{i}.mp4'}\n" for i in range(2)))
    return root


@pytest.fixture(scope="module")
def clean(corpus, tmp_path_factory):
    """A clean run over all 3 videos, and one over the first 2 (the trials start from a copy)."""
    out = tmp_path_factory.mktemp("clean") / "out"
    assert cli("run", "--input", str(corpus), "--output", str(out), *FLAGS).returncode == 0
    two = tmp_path_factory.mktemp("two") / "out"
    proc = cli("run", "--input", str(corpus / "first.txt"), "--output", str(two), *FLAGS)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return snapshot(out), str(two)


def resume_equals_clean(corpus, out, clean_snapshot, extra=()):
    proc = cli("run", "--input", str(corpus), "--output", str(out), *FLAGS, "--skip-existing", *extra)
    assert proc.returncode == 0, proc.stderr[-3000:]
    snapshots.assert_same_output(snapshot(out), clean_snapshot)
    no_duplicates(out)
    return proc


def test_a_second_run_on_one_output_is_refused_or_waits_and_nothing_is_duplicated(corpus, clean, tmp_path):
    want, _ = clean
    out = tmp_path / "out"
    first = start("run", "--input", str(corpus), "--output", str(out), *FLAGS, env={"REELBEAM_FAULT": "sleep:before-intent:6"})
    deadline = time.time() + 120
    while not (out / "_lease.json").exists():
        assert first.poll() is None and time.time() < deadline, first.stderr.read() if first.poll() is not None else ""
        time.sleep(0.2)
    holder = json.load(open(out / "_lease.json"))
    second = cli("run", "--input", str(corpus), "--output", str(out), *FLAGS)
    assert second.returncode == 3
    line = error_line(second)
    assert f"is in use by run {holder['run_id']}" in line and "--wait" in line
    waiter = cli("run", "--input", str(corpus), "--output", str(out), *FLAGS, "--skip-existing", "--wait")
    assert first.wait(timeout=120) == 0
    assert waiter.returncode == 0, waiter.stderr[-2000:]
    assert "nothing new: everything asked for was done before" in waiter.stdout
    snapshots.assert_same_output(snapshot(out), want)
    statuses = sorted(m["status"] for m in manifests(out).values())
    assert statuses == ["succeeded", "succeeded"]  # the refused run never started: no manifest
    assert not (out / "_lease.json").exists()


@pytest.mark.parametrize("point", ["before-intent", "after-intent", "between-tables", "before-ledger", "after-ledger"])
def test_kill_9_at_any_point_of_the_commits_then_a_resume_equals_a_clean_run(corpus, clean, tmp_path, point):
    want, two = clean
    out = tmp_path / "out"
    shutil.copytree(two, out)
    before = snapshot(out)
    killed = cli("run", "--input", str(corpus), "--output", str(out), *FLAGS, "--skip-existing", *IN_PROCESS,
                 env={"REELBEAM_FAULT": f"kill:{point}"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    # Readers see committed rows only: nothing of the killed run before its first table commit,
    # whole tables after, and never a duplicate.
    no_duplicates(out)
    now = snapshot(out)
    if point in ("before-intent", "after-intent"):
        # (Files outside the tables, the JSON documents, are written as they are made: the
        # resume rewrites them.)
        assert now["tables"] == before["tables"] or not snapshots.differences(now["tables"], before["tables"])
    videos = {r["uri"].rsplit("/", 1)[-1] for r in reelbeam.read(str(out), "videos", ["uri"]).to_pylist()}
    assert videos == ({"v0.mp4", "v1.mp4"} if point in ("before-intent", "after-intent") else {"v0.mp4", "v1.mp4", "v2.mp4"})
    (killed_id,) = [k for k, m in manifests(out).items() if m["status"] == "running"]
    resume_equals_clean(corpus, out, want)
    after = manifests(out)
    assert after[killed_id]["status"] == "abandoned" and after[killed_id]["abandoned"]


def test_a_lost_worker_is_one_line_and_the_resume_completes(corpus, clean, tmp_path):
    want, two = clean
    out = tmp_path / "out"
    shutil.copytree(two, out)
    proc = cli("run", "--input", str(corpus), "--output", str(out), *FLAGS, "--skip-existing",
               "--direct_running_mode=multi_processing", "--direct_num_workers=2", env={"REELBEAM_FAULT": "kill:decode"})
    assert proc.returncode == 7, proc.stderr[-3000:]
    assert "a worker process of the run was lost" in error_line(proc)
    (failed,) = [m for m in manifests(out).values() if m["status"] == "failed"]
    assert failed["exit_code"] == 7 and "worker process" in failed["reason"]
    no_duplicates(out)
    resume_equals_clean(corpus, out, want)


def _mount_tmpfs(path, size):
    path.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip() or 'not root'})")
    return path


@pytest.fixture
def small_disk(tmp_path):
    disk = tmp_path / "disk"
    yield disk
    subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_disk_full_is_one_line_and_after_freeing_space_the_resume_completes(corpus, clean, small_disk):
    want, _ = clean
    _mount_tmpfs(small_disk, "160k")
    out = small_disk / "out"
    proc = cli("run", "--input", str(corpus), "--output", str(out), *FLAGS)
    assert proc.returncode == 5, proc.stderr[-3000:]
    assert "the output's disk is full" in error_line(proc)
    no_duplicates(out)
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    resume_equals_clean(corpus, out, want)
    statuses = {m["status"] for m in manifests(out).values()}
    assert statuses <= {"failed", "abandoned", "succeeded"} and "running" not in statuses


def test_an_output_made_read_only_mid_run_is_one_line_and_the_resume_completes(corpus, clean, small_disk):
    want, _ = clean
    _mount_tmpfs(small_disk, "64m")
    out = small_disk / "out"
    run = start("run", "--input", str(corpus), "--output", str(out), *FLAGS, env={"REELBEAM_FAULT": "sleep:before-intent:8"})
    deadline = time.time() + 120
    while not list((out / "videos").glob("*.parquet")) if (out / "videos").exists() else True:
        assert run.poll() is None and time.time() < deadline
        time.sleep(0.2)
    time.sleep(1)
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 5, stderr[-3000:]
    assert "the output cannot be written" in error_line(subprocess.CompletedProcess([], 5, "", stderr))
    subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    no_duplicates(out)
    resume_equals_clean(corpus, out, want)
    statuses = [m["status"] for m in manifests(out).values()]
    assert sorted(statuses) == ["abandoned", "succeeded"]  # the manifest could not be written at the fault


@pytest.mark.parametrize("damage", ["truncated ledger", "corrupt page"])
def test_a_damaged_file_is_one_line_repair_takes_it_out_and_the_resume_completes(corpus, clean, tmp_path, damage):
    from reelbeam.store.tables import active_files

    want, _ = clean
    out = tmp_path / "out"
    proc = cli("run", "--input", str(corpus), "--output", str(out), *FLAGS)
    assert proc.returncode == 0
    if damage == "truncated ledger":
        path = active_files(str(out), "stage_runs")[0].path
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 2)
    else:
        import pyarrow.parquet as pq

        path = max((p.path for p in active_files(str(out), "frames")), key=os.path.getsize)
        column = pq.ParquetFile(path).metadata.row_group(0).column(1)
        data = bytearray(open(path, "rb").read())
        start = column.data_page_offset + 24  # inside the first data page of a column, past its header
        data[start : start + 16] = bytes(b ^ 0xFF for b in data[start : start + 16])
        open(path, "wb").write(bytes(data))
        from reelbeam.store.tables import CorruptTable

        with pytest.raises(CorruptTable, match="table 'frames' .* cannot be read .*reelbeam repair"):
            reelbeam.read(str(out), "frames")
    proc = cli("run", "--input", str(corpus), "--output", str(out), *FLAGS, "--skip-existing")
    if damage == "truncated ledger":
        assert proc.returncode == 6, proc.stderr[-3000:]
        line = error_line(proc)
        assert os.path.basename(path) in line and "reelbeam repair" in line
    repaired = cli("repair", str(out))
    assert repaired.returncode == 0, repaired.stderr
    assert f"unreadable: {path}" in repaired.stdout
    resume_equals_clean(corpus, out, want)
