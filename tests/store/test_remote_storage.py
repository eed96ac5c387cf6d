"""Delta tables and the output lease on gs:// and s3://, against local emulators (tests/remote_storage.py).

For each backend: a Delta table made from Parquet files written through fsspec (as workers write
them) and committed with add actions, appended to, rewritten and read back; two commits carrying the
same application transaction collide; the lease is created, refused, renewed, taken over and released
with the backend's conditional writes; and a subprocess configured by environment variables alone
(as Beam workers and the CLI are) does all of it too.
"""

import json
import os
import subprocess
import sys
import time
import uuid

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import CommitProperties, DeltaTable, Schema, Transaction, write_deltalake
from deltalake.transaction import AddAction, RemoveAction, create_table_with_add_actions
from remote_storage import race

from reelbeam.store import LeaseHeld, LeaseLost, OutputNotWritable, acquire, read_holder
from reelbeam.store.conditional import PreconditionFailed, conditional_object

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCHEMA = pa.schema([("video_id", pa.string()), ("frame", pa.int64())])


@pytest.fixture(params=["gcs", "s3"])
def emulator(request):
    return request.getfixturevalue(f"{request.param}_emulator")


def _unique(emulator, name):
    return emulator.url(f"{name}-{uuid.uuid4().hex[:8]}")


def _rows(video_id, frames):
    return pa.table({"video_id": [video_id] * len(frames), "frame": frames}, schema=SCHEMA)


def _write_parquet(emulator, table_url, name, rows) -> AddAction:
    """A worker's data file, written through fsspec, and the add action that commits it."""
    fs = emulator.fs()
    path = f"{table_url}/{name}"
    with fs.open(path, "wb") as f:
        pq.write_table(rows, f)
    stats = {"numRecords": rows.num_rows}
    return AddAction(name, fs.info(path)["size"], {}, int(time.time() * 1000), True, json.dumps(stats))


def _read(emulator, table_url):
    table = DeltaTable(table_url, storage_options=emulator.delta_options).to_pyarrow_dataset().to_table()
    return sorted(zip(table["video_id"].to_pylist(), table["frame"].to_pylist(), strict=True))


def _app(app_id, version=1):
    return CommitProperties(app_transactions=[Transaction(app_id, version)])


def test_delta_table_from_parquet_files_written_by_workers(emulator):
    url = _unique(emulator, "out") + "/frames"
    first = [_write_parquet(emulator, url, "part-a.parquet", _rows("a", [0, 1])),
             _write_parquet(emulator, url, "part-b.parquet", _rows("b", [0]))]
    create_table_with_add_actions(url, Schema.from_arrow(SCHEMA), first, storage_options=emulator.delta_options,
                                  commit_properties=_app("run-1/decode"))
    assert _read(emulator, url) == [("a", 0), ("a", 1), ("b", 0)]

    dt = DeltaTable(url, storage_options=emulator.delta_options)
    more = _write_parquet(emulator, url, "part-c.parquet", _rows("c", [5]))
    dt.create_write_transaction([more], mode="append", schema=SCHEMA, commit_properties=_app("run-1/more"))
    assert _read(emulator, url) == [("a", 0), ("a", 1), ("b", 0), ("c", 5)]

    # a re-run replaces video a's rows: remove its old file, add the new one, in one commit
    dt = DeltaTable(url, storage_options=emulator.delta_options)
    old = next(a for a in pa.table(dt.get_add_actions(flatten=True)).to_pylist() if a["path"] == "part-a.parquet")
    redo = _write_parquet(emulator, url, "part-a2.parquet", _rows("a", [0, 1, 2]))
    gone = RemoveAction("part-a.parquet", True, int(time.time() * 1000), old["size_bytes"])
    dt.create_write_transaction([gone, redo], mode="append", schema=SCHEMA, commit_properties=_app("run-2/decode"))

    dt = DeltaTable(url, storage_options=emulator.delta_options)
    assert dt.version() == 2
    assert _read(emulator, url) == [("a", 0), ("a", 1), ("a", 2), ("b", 0), ("c", 5)]
    assert dt.transaction_version("run-1/decode") == 1 and dt.transaction_version("run-2/decode") == 1
    assert DeltaTable(url, version=1, storage_options=emulator.delta_options).to_pyarrow_dataset().count_rows() == 4


def test_two_commits_with_one_app_transaction_collide(emulator):
    url = _unique(emulator, "out") + "/shots"
    create_table_with_add_actions(url, Schema.from_arrow(SCHEMA), [_write_parquet(emulator, url, "p0.parquet",
                                                                                  _rows("a", [0]))],
                                  storage_options=emulator.delta_options)
    # two writers (a retried bundle, a second run) from the same snapshot, at the same moment
    handles = [DeltaTable(url, storage_options=emulator.delta_options) for _ in range(2)]
    files = [_write_parquet(emulator, url, f"p{i + 1}.parquet", _rows("b", [i])) for i in range(2)]

    def commit(i):
        handles[i].create_write_transaction([files[i]], mode="append", schema=SCHEMA,
                                            commit_properties=_app("run-7/shots"))
        return "committed"

    results = race(2, commit)
    assert sorted(type(r).__name__ for r in results) == ["CommitFailedError", "str"], results
    winner = results.index("committed")
    dt = DeltaTable(url, storage_options=emulator.delta_options)
    assert dt.version() == 1 and dt.transaction_version("run-7/shots") == 1
    assert _read(emulator, url) == [("a", 0), ("b", winner)]


def test_lease_acquire_refuse_heartbeat_takeover_release(emulator):
    out = _unique(emulator, "out")
    options = emulator.fsspec_options
    lease = acquire(out, "run-1", heartbeat_interval_s=0.05, stale_after_s=0.5, storage_options=options)
    assert lease.atomic, lease.mechanism
    with pytest.raises(LeaseHeld) as held:
        acquire(out, "run-2", storage_options=options)
    assert "\n" not in str(held.value) and "run run-1" in str(held.value) and str(held.value).startswith(out)

    before = read_holder(out, options)["heartbeat"]
    time.sleep(0.01)
    lease.heartbeat()
    assert read_holder(out, options)["heartbeat"] > before

    time.sleep(0.6)  # no more heartbeats: stale
    new = acquire(out, "run-2", stale_after_s=0.5, storage_options=options)
    assert new.taken_over_from["run_id"] == "run-1" and "heartbeat stopped" in new.taken_over_from["reason"]
    with pytest.raises(LeaseLost, match="run-2"):
        lease.heartbeat()
    assert lease.release() is False
    assert read_holder(out, options)["run_id"] == "run-2"
    assert new.release() is True
    assert read_holder(out, options) is None


def test_takers_racing_for_a_stale_lease_one_wins(emulator):
    out = _unique(emulator, "out")
    options = emulator.fsspec_options
    acquire(out, "run-dead", stale_after_s=0.1, heartbeat_interval_s=0.03, storage_options=options)
    time.sleep(0.2)
    results = race(6, lambda i: acquire(out, f"run-{i}", stale_after_s=0.1, storage_options=options))
    winners = [r for r in results if not isinstance(r, LeaseHeld)]
    assert len(winners) == 1, results
    assert read_holder(out, options)["run_id"] == winners[0].run_id


def test_conditional_writes_are_enforced(emulator):
    obj = conditional_object(_unique(emulator, "cas") + "/x.json", emulator.fsspec_options)
    token = obj.create(b"1")
    with pytest.raises(PreconditionFailed):
        obj.create(b"2")
    new = obj.replace(b"3", token)
    with pytest.raises(PreconditionFailed):
        obj.replace(b"4", token)
    with pytest.raises(PreconditionFailed):
        obj.delete(token)
    assert obj.read().data == b"3" and obj.read().token == new
    obj.delete(new)
    assert obj.read() is None
    with pytest.raises(PreconditionFailed):
        obj.delete(new)


def test_missing_bucket_is_one_line(emulator):
    out = f"{emulator.scheme}://no-such-bucket-{uuid.uuid4().hex[:6]}/out"
    with pytest.raises(OutputNotWritable) as err:
        acquire(out, "run-1", storage_options=emulator.fsspec_options)
    assert "\n" not in str(err.value) and "does not exist" in str(err.value)


def test_gcsfs_move_does_not_stall(gcs_emulator):
    fs = gcs_emulator.fs()
    src, dst = _unique(gcs_emulator, "mv") + "/a", _unique(gcs_emulator, "mv") + "/b"
    fs.pipe(src, b"data")
    t0 = time.monotonic()
    fs.mv(src, dst)
    assert time.monotonic() - t0 < 5
    assert fs.cat(dst) == b"data" and not fs.exists(src)


ENV_ONLY = """
import sys, time, uuid
import fsspec, pyarrow as pa
from deltalake import DeltaTable, write_deltalake
from reelbeam.store import LeaseHeld, acquire
for base in sys.argv[1:]:
    out = f"{base}/env-{uuid.uuid4().hex[:6]}"
    with fsspec.open(f"{out}/hello.txt", "wb") as f:
        f.write(b"hi")
    assert fsspec.open(f"{out}/hello.txt", "rb").open().read() == b"hi"
    write_deltalake(f"{out}/t", pa.table({"a": [1, 2]}))
    assert DeltaTable(f"{out}/t").to_pyarrow_dataset().count_rows() == 2
    with acquire(out, "env-run") as lease:
        assert lease.atomic
        try:
            acquire(out, "other")
            raise SystemExit("second acquire not refused")
        except LeaseHeld:
            pass
    print("ok", base, flush=True)
"""


def test_environment_variables_alone_configure_every_client(gcs_emulator, s3_emulator):
    """What a Beam worker or `reelbeam` subprocess gets: no storage options, only the environment."""
    env = {**os.environ, **gcs_emulator.env, **s3_emulator.env}
    bases = [gcs_emulator.url("").rstrip("/"), s3_emulator.url("").rstrip("/")]
    done = subprocess.run([sys.executable, "-c", ENV_ONLY, *bases], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["ok", bases[0], "ok", bases[1]]


def test_emulators_start_quickly(gcs_emulator, s3_emulator):
    # start-up: process start to a bucket ready (moto loads its S3 backend on the first request)
    assert gcs_emulator.started_s < 10 and s3_emulator.started_s < 15
    print(f"gcs emulator {gcs_emulator.started_s:.2f} s, s3 emulator {s3_emulator.started_s:.2f} s")


def test_gcs_emulator_enforces_generation_preconditions(gcs_emulator):
    """What delta-rs' commits rely on (the emulator alone ignores both: 200 and an overwrite)."""
    import urllib.error
    import urllib.request

    key = uuid.uuid4().hex
    xml = f"{gcs_emulator.endpoint}/{gcs_emulator.bucket}/_delta_log%2F{key}.json"

    def put(body, match):
        req = urllib.request.Request(xml, data=body, method="PUT", headers={"x-goog-if-generation-match": match})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.headers["x-goog-generation"]
        except urllib.error.HTTPError as e:
            return e.code, None

    status, generation = put(b"first", "0")
    assert status == 200
    assert put(b"second", "0") == (412, None)
    assert put(b"third", "1") == (412, None)
    assert put(b"fourth", generation)[0] == 200
    with urllib.request.urlopen(xml, timeout=10) as r:
        assert r.read() == b"fourth"


def test_files_over_one_upload_part_written_by_delta_rs(emulator):
    """delta-rs uploads a data file over 5 MiB in parts (XML multipart on GCS, multipart on S3)."""
    import numpy as np

    url = _unique(emulator, "big")
    values = np.random.default_rng(0).random(800_000)  # 6.4 MB of incompressible doubles
    write_deltalake(url, pa.table({"x": values}), storage_options=emulator.delta_options)
    size = pa.table(DeltaTable(url, storage_options=emulator.delta_options).get_add_actions())["size_bytes"]
    assert size[0].as_py() > 5 * 2**20
    assert DeltaTable(url, storage_options=emulator.delta_options).to_pyarrow_dataset().count_rows() == 800_000
