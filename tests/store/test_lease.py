"""The output lease on a local folder: create, refuse, wait, heartbeat, stale takeover, races."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from remote_storage import race

from reelbeam.store import LEASE_FILE, LeaseHeld, LeaseLost, OutputNotWritable, acquire, read_holder

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_acquire_writes_the_holder_record(tmp_path):
    out = str(tmp_path / "out")
    with acquire(out, "run-1", heartbeat_interval_s=5, stale_after_s=30) as lease:
        record = json.loads((tmp_path / "out" / LEASE_FILE).read_text())
        assert lease.atomic
        assert lease.taken_over_from is None
    for key in ("run_id", "host", "pid", "started", "heartbeat", "heartbeat_interval_s"):
        assert key in record
    assert record["run_id"] == "run-1" and record["pid"] == os.getpid()
    assert record["started"].endswith("Z") and record["heartbeat_interval_s"] == 5
    assert not (tmp_path / "out" / LEASE_FILE).exists(), "release deletes the lease"


def test_second_writer_is_refused_in_one_line(tmp_path):
    out = str(tmp_path)
    with acquire(out, "run-1"), pytest.raises(LeaseHeld) as err:
        acquire(out, "run-2")
    message = str(err.value)
    assert "\n" not in message
    for part in ("run-1", f"pid {os.getpid()}", "started", "last heartbeat", "--wait", "60 s"):
        assert part in message, message
    assert err.value.holder["run_id"] == "run-1"


def test_wait_takes_the_lease_when_released(tmp_path):
    first = acquire(str(tmp_path), "run-1")
    timer = threading.Timer(0.3, first.release)
    timer.start()
    t0 = time.monotonic()
    second = acquire(str(tmp_path), "run-2", wait=True, poll_s=0.05)
    assert 0.25 < time.monotonic() - t0 < 5
    assert second.taken_over_from is None and read_holder(str(tmp_path))["run_id"] == "run-2"
    second.release()


def test_wait_gives_up_after_its_timeout(tmp_path):
    with acquire(str(tmp_path), "run-1"), pytest.raises(LeaseHeld, match="still in use after waiting"):
        acquire(str(tmp_path), "run-2", wait=True, wait_timeout_s=0.3, poll_s=0.05)


def test_stale_lease_is_taken_over_and_its_holder_learns_it(tmp_path):
    out = str(tmp_path)
    old = acquire(out, "run-old", heartbeat_interval_s=0.05, stale_after_s=0.2)
    time.sleep(0.3)  # no heartbeats: stale
    new = acquire(out, "run-new", stale_after_s=0.2)
    assert new.taken_over_from["run_id"] == "run-old"
    assert "heartbeat stopped" in new.taken_over_from["reason"]
    assert new.taken_over_from["taken_over_at"] == new.record["started"]
    with pytest.raises(LeaseLost) as lost:
        old.heartbeat()
    assert "run-new" in str(lost.value) and "\n" not in str(lost.value)
    with pytest.raises(LeaseLost):
        old.check()
    assert old.release() is False, "a lost lease is not deleted"
    assert read_holder(out)["run_id"] == "run-new"
    assert new.release() is True


def test_heartbeats_keep_a_lease_alive(tmp_path):
    out = str(tmp_path)
    lease = acquire(out, "run-1", heartbeat_interval_s=0.05, stale_after_s=0.3)
    lease.start_heartbeats()
    first = read_holder(out)["heartbeat"]
    time.sleep(0.6)  # twice the stale time
    with pytest.raises(LeaseHeld):
        acquire(out, "run-2", stale_after_s=0.3)
    assert read_holder(out)["heartbeat"] > first
    assert lease.last_error is None and lease.lost is None
    lease.release()
    assert read_holder(out) is None


def test_heartbeat_thread_reports_a_lost_lease(tmp_path):
    out = str(tmp_path)
    lease = acquire(out, "run-1", heartbeat_interval_s=0.05)
    lost = []
    lease.start_heartbeats(on_lost=lost.append)
    (tmp_path / LEASE_FILE).unlink()  # someone removed it by hand
    deadline = time.monotonic() + 5
    while not lost and time.monotonic() < deadline:
        time.sleep(0.02)
    assert lost and isinstance(lost[0], LeaseLost) and "removed" in str(lost[0])
    with pytest.raises(LeaseLost):
        lease.check()
    assert lease.release() is False


def _holder_process(out, stale_after_s="3600"):
    code = ("import sys, time; from reelbeam.store import acquire; "
            "acquire(sys.argv[1], 'run-killed', stale_after_s=float(sys.argv[2])); print('held', flush=True); "
            "time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, out, stale_after_s], stdout=subprocess.PIPE, text=True,
                            cwd=REPO)
    assert proc.stdout.readline().strip() == "held"
    return proc


@pytest.mark.skipif(not os.path.exists("/proc/self/ns/pid"), reason="the dead-process check needs Linux /proc")
def test_lease_of_a_killed_process_is_taken_over_at_once(tmp_path):
    out = str(tmp_path)
    proc = _holder_process(out)
    with pytest.raises(LeaseHeld, match="run-killed"):
        acquire(out, "run-2", stale_after_s=3600)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    lease = acquire(out, "run-2", stale_after_s=3600)
    assert lease.taken_over_from["run_id"] == "run-killed"
    assert f"process {proc.pid}" in lease.taken_over_from["reason"]
    lease.release()


def test_threads_racing_for_a_stale_lease_one_wins(tmp_path):
    out = str(tmp_path)
    acquire(out, "run-dead", stale_after_s=0.1, heartbeat_interval_s=0.03)
    time.sleep(0.2)
    results = race(8, lambda i: acquire(out, f"run-{i}", stale_after_s=0.1))
    winners = [r for r in results if not isinstance(r, LeaseHeld)]
    assert len(winners) == 1, results
    assert winners[0].taken_over_from["run_id"] == "run-dead"
    assert read_holder(out)["run_id"] == winners[0].run_id


RACER = """
import sys, time
from reelbeam.store import LeaseHeld, acquire
out, name, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
time.sleep(max(start - time.time(), 0))
try:
    lease = acquire(out, name, stale_after_s=0.1)
    print("won", lease.taken_over_from["run_id"], flush=True)
except LeaseHeld as e:
    print("held", e.holder["run_id"], flush=True)
"""


def test_processes_racing_for_a_stale_lease_one_wins(tmp_path):
    out = str(tmp_path)
    acquire(out, "run-dead", stale_after_s=0.1, heartbeat_interval_s=0.03)
    time.sleep(0.2)
    start = time.time() + 1.5  # all start together, after their imports
    procs = [subprocess.Popen([sys.executable, "-c", RACER, out, f"racer-{i}", str(start)], stdout=subprocess.PIPE,
                              text=True, cwd=REPO) for i in range(4)]
    outputs = [p.communicate(timeout=30)[0].split() for p in procs]
    winners = [o for o in outputs if o[0] == "won"]
    assert len(winners) == 1, outputs
    assert winners[0][1] == "run-dead"
    holder = read_holder(out)["run_id"]
    assert all(o == ["held", holder] for o in outputs if o[0] == "held"), outputs


def test_corrupt_lease_is_held_until_unchanged_for_the_stale_time(tmp_path):
    out = str(tmp_path)
    (tmp_path / LEASE_FILE).write_text("{ half a lea")
    with pytest.raises(LeaseHeld):
        acquire(out, "run-1", stale_after_s=0.3)
    lease = acquire(out, "run-1", stale_after_s=0.3, wait=True, poll_s=0.05)
    assert lease.taken_over_from["corrupt"] is True and "not changed" in lease.taken_over_from["reason"]
    lease.release()


def test_output_that_cannot_be_written_is_one_line(tmp_path):
    (tmp_path / "a-file").write_text("")
    with pytest.raises(OutputNotWritable) as err:
        acquire(str(tmp_path / "a-file" / "out"), "run-1")
    assert "\n" not in str(err.value) and str(err.value).startswith(f"cannot write to {tmp_path}/a-file/out: ")


def test_a_released_lease_cannot_heartbeat(tmp_path):
    lease = acquire(str(tmp_path), "run-1")
    assert lease.release() is True
    assert lease.release() is False
    with pytest.raises(LeaseLost):
        lease.heartbeat()


def test_a_renewal_whose_answer_was_lost_is_not_a_lost_lease(tmp_path):
    lease = acquire(str(tmp_path), "run-1")
    real = lease._obj.replace

    def lands_then_fails(data, token):
        real(data, token)
        raise ConnectionError("connection reset before the answer")

    lease._obj.replace = lands_then_fails
    with pytest.raises(ConnectionError):
        lease.heartbeat()
    lease._obj.replace = real
    lease.heartbeat()  # finds its own earlier write in the file, and carries on from it
    assert lease.lost is None
    assert lease.release() is True
