"""One writer per output: a lease file, `OUTPUT/_lease.json`, created and renewed atomically.

    lease = acquire(output, run_id)            # LeaseHeld if a live run holds it
    lease.start_heartbeats()                   # a daemon thread renews it every heartbeat_interval_s
    ...                                        # lease.check() before each commit: LeaseLost if taken
    lease.release()                            # deletes the file, only if it is still ours

or `with acquire(output, run_id) as lease: ...`.

The file holds {run_id, host, pid, started, heartbeat (UTC ISO 8601), heartbeat_interval_s,
stale_after_s} and, for the lease's own use, a nonce that changes with each write and an id of the
machine and process (to notice a holder whose process is gone). Every write is a compare-and-swap
through `reelbeam.store.conditional`: create only if absent, renew, take over or delete only if the
file is unchanged since it was read (O_EXCL/flock locally, generation match on GCS, ETag match on S3).
So two runs can never both hold it, and a run whose lease was taken over learns it at its next
heartbeat (`LeaseLost`).

A lease is **stale**, and the next `acquire` takes it over (replacing it only if still unchanged), when

- its heartbeat is older than `stale_after_s` (at least three of its holder's heartbeat intervals) by
  this machine's clock (the run was killed, or hangs; clocks are assumed to agree to within a few
  seconds), or
- it was written on this machine (same boot and pid namespace) by a process that no longer exists
  (`kill -9`, a crash): taken over at once, or
- while `acquire(wait=True)` polls, it has not changed at all for `stale_after_s` of this process's
  own time (a holder whose clock runs ahead, or a file that is not a lease).

`Lease.taken_over_from` is then the record of the run it replaced, plus `reason` and `taken_over_at`,
for the caller to mark that run's manifest `abandoned`.

Errors are `LeaseError`s whose `str()` is one line saying what happened and what to do.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from datetime import UTC, datetime

from reelbeam.store.conditional import (
    ConditionalObject,
    NotWritable,
    PreconditionFailed,
    Versioned,
    conditional_object,
)

log = logging.getLogger(__name__)

LEASE_FILE = "_lease.json"
DEFAULT_HEARTBEAT_INTERVAL_S = 10.0
DEFAULT_STALE_AFTER_S = 60.0
FORMAT = 1


class LeaseError(RuntimeError):
    """A lease problem; `str()` is one line."""


class LeaseHeld(LeaseError):
    """Another live run holds the output's lease. `holder` is its record."""

    def __init__(self, output: str, holder: dict, stale_after_s: float, waited_s: float | None = None):
        self.output, self.holder, self.stale_after_s, self.waited_s = output, holder, stale_after_s, waited_s
        super().__init__(_held_message(output, holder, stale_after_s, waited_s))


class LeaseLost(LeaseError):
    """The lease this run held was taken over or removed. `holder` is the new holder's record, if any."""

    def __init__(self, output: str, run_id: str, holder: dict | None):
        self.output, self.run_id, self.holder = output, run_id, holder
        if holder:
            what = (f"run {holder.get('run_id')} (host {holder.get('host')}, pid {holder.get('pid')}) "
                    f"took it over at {holder.get('started')}")
        else:
            what = "the lease file was removed"
        super().__init__(f"run {run_id} lost its lease on {output}: {what}, probably because this run's "
                         "heartbeat stopped for too long; this run stops writing, rerun it to finish the work")


class OutputNotWritable(LeaseError):
    def __init__(self, output: str, reason: str):
        self.output, self.reason = output, reason
        super().__init__(f"cannot write to {output}: {reason}; check that the folder or bucket exists and "
                         "that this account may create, overwrite and delete files in it")


# ------------------------------------------------------------------------------------- records


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_iso(text) -> datetime | None:
    try:
        t = datetime.fromisoformat(str(text))
    except (TypeError, ValueError):
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _machine_id() -> str | None:
    """This boot of this machine and this pid namespace: a pid means the same process only within it."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
        ns = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None
    return f"{boot}/{ns}"


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (tells a reused pid apart), Linux only."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _process_gone(record: dict) -> bool:
    """True only when the record was written on this machine by a process that no longer runs."""
    machine = _machine_id()
    if machine is None or record.get("machine") != machine:
        return False
    try:
        pid = int(record["pid"])
    except (KeyError, TypeError, ValueError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, another user's
    started = record.get("process_start")
    now = _process_start(pid)
    return bool(started and now and started != now)  # the pid was reused


def _new_record(run_id: str, heartbeat_interval_s: float, stale_after_s: float, started: str | None = None) -> dict:
    now = _iso(_utcnow())
    return {
        "format": FORMAT,
        "run_id": run_id,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": started or now,
        "heartbeat": now,
        "heartbeat_interval_s": heartbeat_interval_s,
        "stale_after_s": stale_after_s,
        "nonce": uuid.uuid4().hex,
        "machine": _machine_id(),
        "process_start": _process_start(os.getpid()),
    }


def _encode(record: dict) -> bytes:
    return (json.dumps(record, indent=1) + "\n").encode()


def _decode(data: bytes) -> dict | None:
    try:
        record = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    return record if isinstance(record, dict) else None


def _age_s(record: dict, now: datetime | None = None) -> float | None:
    beat = _parse_iso(record.get("heartbeat"))
    return None if beat is None else ((now or _utcnow()) - beat).total_seconds()


def _threshold_s(record: dict, stale_after_s: float) -> float:
    try:
        interval = float(record.get("heartbeat_interval_s") or 0)
    except (TypeError, ValueError):
        interval = 0.0
    return max(stale_after_s, 3 * interval)


def _secs(x: float) -> str:
    return f"{x:.1f} s" if abs(x) < 10 else f"{x:.0f} s"


def _held_message(output: str, holder: dict, stale_after_s: float, waited_s: float | None) -> str:
    age = _age_s(holder)
    threshold = _threshold_s(holder, stale_after_s)
    beat = holder.get("heartbeat", "?")
    if age is not None:
        beat = f"{beat}, {_secs(max(age, 0))} ago"
    who = (f"run {holder.get('run_id', '?')} (host {holder.get('host', '?')}, pid {holder.get('pid', '?')}, "
           f"started {holder.get('started', '?')}, last heartbeat {beat})")
    if waited_s is not None:
        head = f"{output} is still in use after waiting {_secs(waited_s)}, by {who}"
    else:
        head = f"{output} is in use by {who}"
    due = "" if age is None else f" (in {_secs(max(threshold - age, 0))})"
    return (f"{head}: wait for it with --wait, or, if that run was killed, its lease is taken over once its "
            f"heartbeat has stopped for {_secs(threshold)}{due}")


# --------------------------------------------------------------------------------------- lease


class Lease:
    """A held lease. Renew it with `heartbeat()` or `start_heartbeats()`; `release()` when done."""

    def __init__(self, output: str, obj: ConditionalObject, record: dict, token: str,
                 taken_over_from: dict | None):
        self.output = output
        self.url = obj.url
        self.record = record
        self.taken_over_from = taken_over_from
        self.lost: LeaseLost | None = None
        self.last_error: Exception | None = None
        self._obj = obj
        self._token = token
        self._lock = threading.Lock()
        self._released = False
        self._pending: set[str] = set()  # nonces of renewals that failed without an answer
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    run_id = property(lambda self: self.record["run_id"])
    heartbeat_interval_s = property(lambda self: self.record["heartbeat_interval_s"])
    atomic = property(lambda self: self._obj.atomic, doc="False where the backend has no conditional writes")
    mechanism = property(lambda self: self._obj.mechanism)

    def __repr__(self):
        return f"Lease({self.output!r}, run_id={self.run_id!r}, heartbeat={self.record['heartbeat']!r})"

    def heartbeat(self) -> None:
        """Renew the heartbeat, only if the lease is still ours; LeaseLost otherwise."""
        with self._lock:
            if self.lost:
                raise self.lost
            if self._released:
                raise LeaseLost(self.output, self.run_id, None)
            record = {**self.record, "heartbeat": _iso(_utcnow()), "nonce": uuid.uuid4().hex}
            try:
                try:
                    token = _write(self._obj, record, self._token)
                except PreconditionFailed:
                    if not self._resync():
                        raise
                    token = _write(self._obj, record, self._token)
            except PreconditionFailed:
                current = self._obj.read()
                self.lost = LeaseLost(self.output, self.run_id, _decode(current.data) if current else None)
                raise self.lost from None
            except NotWritable as e:
                raise OutputNotWritable(self.output, str(e)) from None
            except Exception:
                self._pending.add(record["nonce"])  # it may have landed with its answer lost
                raise
            self.record, self._token = record, token
            self._pending.clear()

    def _resync(self) -> bool:
        """After a failed renewal whose write landed anyway, the file holds one of our own nonces."""
        current = self._obj.read()
        record = _decode(current.data) if current else None
        if not record or record.get("nonce") not in self._pending:
            return False
        self.record, self._token = record, current.token
        self._pending.clear()
        return True

    def check(self) -> None:
        """Raise LeaseLost if a heartbeat found the lease taken; call it before committing."""
        if self.lost:
            raise self.lost

    def start_heartbeats(self, interval_s: float | None = None, on_lost=None) -> None:
        """Renew every `interval_s` (default: the lease's heartbeat_interval_s) on a daemon thread.

        A lost lease stops the thread, is kept in `lease.lost` (raised by `check()`) and is passed to
        `on_lost(error)` if given. Other errors (a network blip) are kept in `last_error` and retried.
        """
        if self._thread is not None:
            return
        interval = float(interval_s or self.heartbeat_interval_s)
        if interval != self.record["heartbeat_interval_s"]:
            self.record = {**self.record, "heartbeat_interval_s": interval}

        def loop():
            while not self._stop.wait(interval):
                try:
                    self.heartbeat()
                    self.last_error = None
                except LeaseLost as e:
                    log.error("%s", e)
                    if on_lost is not None:
                        on_lost(e)
                    return
                except Exception as e:  # noqa: BLE001 - transient: retried until the lease goes stale
                    self.last_error = e
                    log.warning("lease heartbeat on %s failed: %s", self.output, e)

        self._thread = threading.Thread(target=loop, name=f"lease-heartbeat-{self.run_id}", daemon=True)
        self._thread.start()

    def stop_heartbeats(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        self._stop = threading.Event()

    def release(self) -> bool:
        """Delete the lease file if it is still ours. True if deleted; False if it was not ours anymore."""
        self.stop_heartbeats()
        with self._lock:
            if self._released:
                return False
            self._released = True
            if self.lost:
                return False
            try:
                try:
                    self._obj.delete(self._token)
                except PreconditionFailed:
                    if not self._resync():
                        raise
                    self._obj.delete(self._token)
            except PreconditionFailed:
                return False
            except NotWritable as e:
                raise OutputNotWritable(self.output, str(e)) from None
            return True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
        return False


def _write(obj: ConditionalObject, record: dict, token: str | None) -> str:
    """Create (token None) or replace; a write that landed but whose answer was lost still counts."""
    data = _encode(record)
    try:
        return obj.create(data) if token is None else obj.replace(data, token)
    except PreconditionFailed:
        current = obj.read()  # a retried request may have found its own first attempt's write
        if current is not None and (_decode(current.data) or {}).get("nonce") == record["nonce"]:
            return current.token
        raise


def lease_url(output: str) -> str:
    return output.rstrip("/") + "/" + LEASE_FILE


def read_holder(output: str, storage_options: dict | None = None) -> dict | None:
    """The record of the run holding `output`'s lease (stale or not), or None."""
    try:
        current = conditional_object(lease_url(output), storage_options).read()
    except NotWritable as e:
        raise OutputNotWritable(output, str(e)) from None
    return None if current is None else (_decode(current.data) or {"corrupt": True})


def acquire(output: str, run_id: str, *, wait: bool = False, wait_timeout_s: float | None = None,
            stale_after_s: float = DEFAULT_STALE_AFTER_S,
            heartbeat_interval_s: float = DEFAULT_HEARTBEAT_INTERVAL_S,
            poll_s: float | None = None, storage_options: dict | None = None) -> Lease:
    """Take the lease on `output` for `run_id`, or raise LeaseHeld (OutputNotWritable if it cannot write).

    wait: poll (every `poll_s`, default min(heartbeat_interval_s, 5 s)) until the lease is free or
    stale, for at most `wait_timeout_s` (None: no limit). `stale_after_s`: see the module docstring.
    """
    obj = conditional_object(lease_url(output), storage_options)
    poll = poll_s if poll_s is not None else min(heartbeat_interval_s, 5.0)
    t0 = time.monotonic()
    seen: dict[str, float] = {}  # token -> when this call first saw it
    while True:
        try:
            lease = _try_acquire(obj, output, run_id, stale_after_s, heartbeat_interval_s, seen)
        except NotWritable as e:
            raise OutputNotWritable(output, str(e)) from None
        except PreconditionFailed:  # the lease file kept changing under us
            lease = {"run_id": "?", "contended": True}
        if isinstance(lease, Lease):
            if not obj.atomic:
                log.warning("%s: %s, so two runs starting at the same moment could both take this lease",
                            output, obj.mechanism)
            return lease
        holder = lease
        waited = time.monotonic() - t0
        if not wait:
            raise LeaseHeld(output, holder, stale_after_s)
        if wait_timeout_s is not None and waited >= wait_timeout_s:
            raise LeaseHeld(output, holder, stale_after_s, waited_s=waited)
        pause = poll if wait_timeout_s is None else min(poll, max(wait_timeout_s - waited, 0.01))
        time.sleep(pause)


def _stale_reason(current: Versioned, holder: dict | None, stale_after_s: float, seen: dict) -> str | None:
    if holder is None:
        holder = {}
    if _process_gone(holder):
        return f"its process {holder.get('pid')} on {holder.get('host')} is gone"
    age = _age_s(holder)
    threshold = _threshold_s(holder, stale_after_s)
    if age is not None and age > threshold:
        return f"its heartbeat stopped {_secs(age)} ago"
    first_seen = seen.setdefault(current.token, time.monotonic())
    unchanged = time.monotonic() - first_seen
    if unchanged > threshold:
        return f"its lease file has not changed for {_secs(unchanged)}"
    return None


def _try_acquire(obj, output, run_id, stale_after_s, heartbeat_interval_s, seen) -> Lease | dict:
    """One attempt: a Lease, or the record of the live holder."""
    for _ in range(20):  # each lost race re-reads; a run of 20 lost races means heavy contention
        current = obj.read()
        record = _new_record(run_id, heartbeat_interval_s, stale_after_s)
        taken = None
        if current is None:
            try:
                _write(obj, record, None)
            except PreconditionFailed:
                continue
        else:
            holder = _decode(current.data)
            reason = _stale_reason(current, holder, stale_after_s, seen)
            if reason is None:
                return holder if holder is not None else {"run_id": "?", "corrupt": True}
            try:
                _write(obj, record, current.token)
            except PreconditionFailed:
                continue
            taken = {**(holder or {"corrupt": True}), "reason": reason, "taken_over_at": record["started"]}
            log.warning("took over the lease on %s from run %s: %s", output, (holder or {}).get("run_id"), reason)
        # Read back: on a backend without conditional writes another run may have written after us.
        check = obj.read()
        if check is None or (_decode(check.data) or {}).get("nonce") != record["nonce"]:
            continue
        return Lease(output, obj, record, check.token, taken)
    current = obj.read()  # lost 20 races in a row: report whoever holds it now
    return (_decode(current.data) if current else None) or {"run_id": "?", "contended": True}
