"""The pipeline on a real distributed engine: Beam's DaskRunner on a dask.distributed LocalCluster
of 2 worker processes writes exactly the rows the DirectRunner writes, for the decode pass, a
RunInference stage (TransNetV2 outside the pass), failures of broken files, the Parquet and JSON
writers, and a second job started from the first one's tables."""

import os

import pytest
import snapshots
import synthetic

from reelbeam.pipelines.cli import run

distributed = pytest.importorskip("distributed")

RUN_COLUMNS = {"decode_seconds", "time", "run_id", "size_bytes"}
FLAGS = ["--shots-in-decode-pass", "off", "--shot-keyframes", "--iframes", "--motion-maps", "every:10"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("dask-corpus")
    synthetic.make_shot_video(str(root / "a.mp4"), (40, 30, 50))
    synthetic.make_shot_video(str(root / "nested" / "b.mkv"), (30, 45), seed=3)
    synthetic.make_shot_video(str(root / "c.mp4"), (25,), width=64, height=48, seed=5)
    (root / "broken.mp4").write_bytes(b"\x00" * 300)
    (root / "empty.mp4").write_bytes(b"")
    return str(root)


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c:
        yield c


def snapshot(out):
    def edit(name, row):
        if name == "failures":
            row = {k: row[k] for k in ("video_id", "uri", "stage", "error_type")}
        if name == "scene_clips":
            row["uri"] = os.path.relpath(row["uri"], out)
        return row

    return snapshots.snapshot(out, skip_columns=RUN_COLUMNS, edit=edit)


def test_the_dask_runner_writes_what_the_direct_runner_writes(corpus, cluster, tmp_path):
    direct = str(tmp_path / "direct")
    direct_plan = run(["--input", corpus, "--output", direct, *FLAGS])
    run(["--output", direct, "--start-from", "scenes", "--save-scene-clips", "--clip-mode", "copy"])
    on_dask = str(tmp_path / "dask")
    dask_flags = ["--runner", "dask", f"--dask_client_address={cluster.scheduler_address}"]
    plan = run(["--input", corpus, "--output", on_dask, *FLAGS, *dask_flags])
    assert plan.counters == direct_plan.counters and plan.counters["videos_listed"] == 5  # each task once
    assert plan.running("decode") is not None and not plan.stage("shots").inline  # RunInference for TransNetV2
    run(["--output", on_dask, "--start-from", "scenes", "--save-scene-clips", "--clip-mode", "copy", *dask_flags])
    got, want = snapshot(on_dask), snapshot(direct)
    assert set(want["tables"]) >= {"videos", "failures", "frames", "shots", "keyframes", "motion", "scenes", "scene_clips", "stage_runs"}
    snapshots.assert_same_output(got, want)
    assert len(want["tables"]["videos"]) == 3 and len(want["tables"]["failures"]) == 2


def test_a_worker_lost_mid_decode_is_replaced_and_the_tables_are_whole(corpus, tmp_path):
    # The first worker to decode a video dies (SIGKILL); Dask reruns its tasks on a new worker and
    # the job writes what a clean run writes, each video and counter once.
    marker = tmp_path / "killed"
    env = {"REELBEAM_FAULT": f"killonce:decode:{marker}"}
    direct = str(tmp_path / "direct")
    want = run(["--input", corpus, "--output", direct, *FLAGS])
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  env=env) as lossy:
        out = str(tmp_path / "dask")
        got = run(["--input", corpus, "--output", out, *FLAGS, "--runner", "dask",
                   f"--dask_client_address={lossy.scheduler_address}"])
    assert marker.exists()  # a worker was killed
    snapshots.assert_same_output(snapshot(out), snapshot(direct))
    assert got.counters == want.counters


def test_a_job_leaves_no_dofn_loaded_on_the_workers(corpus, cluster, tmp_path):
    # a long-lived cluster serves many jobs: each job's DoFns (and their models) go when it ends
    run(["--input", corpus, "--output", str(tmp_path / "o"), *FLAGS, "--runner", "dask",
         f"--dask_client_address={cluster.scheduler_address}"])
    with distributed.Client(cluster.scheduler_address) as client:
        left = client.run(lambda: len(__import__("reelbeam.runners.dask", fromlist=["_INVOKERS"])._INVOKERS))
    assert set(left.values()) == {0}


def test_a_dask_run_on_the_command_line_prints_no_library_noise(tmp_path):
    # #25 item 10: dask.distributed's INFO lines, its "Sending large graph" and "Event loop was
    # unresponsive" warnings belong behind --verbose; a run prints reelbeam's own lines only.
    import subprocess
    import sys

    video = synthetic.make_shot_video(str(tmp_path / "a.mp4"), (20, 20))
    proc = subprocess.run([sys.executable, "-m", "reelbeam", "run", "--input", video, "--output", str(tmp_path / "out"),
                           "--stages", "decode", "--runner", "dask"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout + proc.stderr
    for noise in ("distributed.", "Sending large graph", "Event loop was unresponsive", "UserWarning", "WARNING:root",
                  "INFO:"):
        assert noise not in text, f"{noise!r} in the output:\n{text}"
    assert "1 video ok, 0 failed" in text
