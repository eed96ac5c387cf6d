"""One writer per output: a lease file, OUTPUT/_lease.json (placeholder: local folders only; the
remote-storage version replaces this module)."""

from __future__ import annotations

import datetime
import json
import os
import socket
import threading
import time

import fsspec


class LeaseHeld(RuntimeError):
    """Another live run holds the output's lease."""


class LeaseLost(RuntimeError):
    """This run's lease was taken over (its heartbeat stopped for too long)."""


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


class Lease:
    def __init__(self, path: str, record: dict, taken_over_from: dict | None) -> None:
        self.path = path
        self.record = record
        self.taken_over_from = taken_over_from
        self._stop = threading.Event()
        self._thread = None

    def heartbeat(self) -> None:
        with open(self.path) as f:
            current = json.load(f)
        if current.get("run_id") != self.record["run_id"]:
            raise LeaseLost(f"the lease of {self.path} was taken over by run {current.get('run_id')}")
        self.record["heartbeat"] = _now()
        tmp = f"{self.path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump(self.record, f)
        os.replace(tmp, self.path)

    def start_heartbeats(self, interval_s: float = 10.0) -> None:
        def beat():
            while not self._stop.wait(interval_s):
                try:
                    self.heartbeat()
                except (OSError, LeaseLost, ValueError):
                    return

        self._thread = threading.Thread(target=beat, name="reelbeam-lease", daemon=True)
        self._thread.start()

    def release(self) -> None:
        self._stop.set()
        try:
            with open(self.path) as f:
                if json.load(f).get("run_id") == self.record["run_id"]:
                    os.remove(self.path)
        except (OSError, ValueError):
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
        return False


def acquire(output: str, run_id: str, *, wait: bool = False, wait_timeout_s: float | None = None,
            stale_after_s: float = 60.0, heartbeat_interval_s: float = 10.0, storage_options=None) -> Lease:
    _, root = fsspec.core.url_to_fs(output)
    path = os.path.join(root, "_lease.json")
    os.makedirs(root, exist_ok=True)
    record = {"run_id": run_id, "host": socket.gethostname(), "pid": os.getpid(), "started": _now(),
              "heartbeat": _now(), "heartbeat_interval_s": heartbeat_interval_s}
    deadline = None if wait_timeout_s is None else time.monotonic() + wait_timeout_s
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            with os.fdopen(fd, "w") as f:
                json.dump(record, f)
            return Lease(path, record, None)
        except FileExistsError:
            pass
        try:
            with open(path) as f:
                holder = json.load(f)
        except (OSError, ValueError):
            holder = {}
        beat = holder.get("heartbeat")
        age = (datetime.datetime.now(datetime.UTC) - datetime.datetime.fromisoformat(beat)).total_seconds() if beat else 1e9
        if age > stale_after_s:
            tmp = f"{path}.{os.getpid()}.take"
            with open(tmp, "w") as f:
                json.dump(record, f)
            os.replace(tmp, path)
            return Lease(path, record, holder)
        if not wait or (deadline is not None and time.monotonic() > deadline):
            raise LeaseHeld(
                f"{output!r} is being written by run {holder.get('run_id')} (host {holder.get('host')}, pid "
                f"{holder.get('pid')}, since {holder.get('started')}, last heartbeat {int(age)} s ago); wait for it "
                f"(--wait), or it is taken over once its heartbeat stops for {int(stale_after_s)} s"
            )
        time.sleep(1.0)
