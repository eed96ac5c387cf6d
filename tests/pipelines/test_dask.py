"""The pipeline on a real distributed engine: Beam's DaskRunner on a dask.distributed LocalCluster
of 2 worker processes writes exactly the rows the DirectRunner writes, for the decode pass, a
RunInference stage (TransNetV2 outside the pass), failures of broken files, the Parquet and JSON
writers, and a second job started from the first one's tables."""

import json
import os

import pyarrow.parquet as pq
import pytest
import synthetic

from reelbeam.pipelines.cli import run
from reelbeam.schemas.tables import TABLES
from reelbeam.transforms.write import table_files

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


def _value(v) -> str:
    """Floats to 4 significant digits: the model's arithmetic on another process (thread count,
    batch) moves its last bits."""
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list) and v and isinstance(v[0], float):
        return repr([f"{x:.4g}" for x in v])
    return repr(v)


def snapshot(out):
    tables = {}
    for name in TABLES:
        rows = []
        for part in table_files(out, name):
            for row in pq.read_table(part.path).to_pylist():
                if name == "failures":
                    row = {k: row[k] for k in ("video_id", "uri", "stage", "error_type")}
                if name == "scene_clips":
                    row["uri"] = os.path.relpath(row["uri"], out)
                rows.append(tuple(sorted((k, _value(v)) for k, v in row.items() if k not in RUN_COLUMNS)))
        if rows:
            tables[name] = sorted(rows)
    docs = {p: json.load(open(os.path.join(out, "json", p))) for p in sorted(os.listdir(os.path.join(out, "json")))}
    return tables, docs


def test_the_dask_runner_writes_what_the_direct_runner_writes(corpus, cluster, tmp_path):
    direct = str(tmp_path / "direct")
    run(["--input", corpus, "--output", direct, *FLAGS])
    run(["--output", direct, "--start-from", "scenes", "--save-scene-clips", "--clip-mode", "copy"])
    on_dask = str(tmp_path / "dask")
    dask_flags = ["--runner", "dask", f"--dask_client_address={cluster.scheduler_address}"]
    plan = run(["--input", corpus, "--output", on_dask, *FLAGS, *dask_flags])
    assert plan.running("decode") is not None and not plan.stage("shots").inline  # RunInference for TransNetV2
    run(["--output", on_dask, "--start-from", "scenes", "--save-scene-clips", "--clip-mode", "copy", *dask_flags])
    got, want = snapshot(on_dask), snapshot(direct)
    assert set(got[0]) == set(want[0]) >= {"videos", "failures", "frames", "shots", "keyframes", "motion", "scenes", "scene_clips", "stage_runs"}
    for table in want[0]:
        assert got[0][table] == want[0][table], table
    assert got[1] == want[1]
    assert len(want[0]["videos"]) == 3 and len(want[0]["failures"]) == 2
