"""Live progress of a run.

Workers report events as they happen: a video decoded (its frames and duration) or failed, and a
table's rows written; also, on local runs only, the frames of a video still being decoded (every
250, so frames/s moves during a long video) and notes to show once (a worker's choice of
precision). Each video event is

- logged at INFO by the worker (`reelbeam.progress`), one line per video: what a remote runner's
  worker logs show (Dataflow's Logs Explorer, a Flink task manager's log);
- appended, on local runs, as one JSON line to the file named by REELBEAM_PROGRESS, which the
  launcher sets before the workers start (they are its child processes and inherit it) and
  watches from a thread (`Watcher`). On a terminal it redraws one status line (videos done of total,
  frames/s, hours of video, failures, rows written by the latest table); elsewhere (CI, a log file)
  it prints one line per video and a total every `interval` seconds.

Beam's DirectRunner runs the whole job inside `pipeline.run()`, so its metrics cannot be read while
it runs; the file is the channel. A line is one `write` in append mode, so lines of concurrent
workers do not interleave.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import threading
import time
from typing import TextIO

ENV = "REELBEAM_PROGRESS"
LOG = logging.getLogger(__name__)


def report(event: dict) -> None:
    """Report one event from a worker (see the module docstring); never raises."""
    path = os.environ.get(ENV)
    if event.get("event") == "video" and not path:  # a local run's launcher prints it instead
        if event.get("ok"):
            LOG.info("decoded %s: %d frames, %.1f s of video", event.get("uri"), event.get("frames", 0),
                     event.get("seconds", 0.0))
        else:
            LOG.info("failed %s: %s", event.get("uri"), event.get("error_type"))
    if event.get("event") == "note" and not path:
        LOG.info("%s", event.get("message"))
    if not path:
        return
    try:
        line = json.dumps({**event, "t": time.time()}) + "\n"
        with open(path, "a", encoding="utf-8") as f:
            f.write(line)
    except (OSError, TypeError, ValueError):
        pass  # progress is best effort: it must never fail a video


def video_done(uri: str, frames: int, seconds: float) -> None:
    report({"event": "video", "ok": True, "uri": uri, "frames": int(frames), "seconds": float(seconds or 0.0)})


def frames_decoded(uri: str, frames: int) -> None:
    """Frames a video being decoded has got through since its last report (for frames/s while
    it runs; its `video_done` carries the total)."""
    report({"event": "frames", "uri": uri, "frames": int(frames)})


def note(message: str) -> None:
    """Something a worker decided that the user should see once (a local run's launcher prints it
    once however many worker processes report it; elsewhere an INFO log line on the worker)."""
    report({"event": "note", "message": str(message)})


def video_failed(uri: str, stage: str, error_type: str) -> None:
    report({"event": "video", "ok": False, "uri": uri, "stage": stage, "error_type": error_type})


def rows_written(table: str, rows: int) -> None:
    report({"event": "rows", "table": table, "rows": int(rows)})


class Watcher:
    """Follows the progress file of a local run from a thread and prints progress to `stream`."""

    def __init__(self, path: str, total: int | None, stream: TextIO | None = None, interval: float = 30.0,
                 poll: float = 0.5, remove: bool = True) -> None:
        self.path = path
        self.remove = remove  # the file and its folder, at the end
        self.total = total
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval
        self.poll = poll
        self.ok = self.failed = self.frames = 0
        self.video_seconds = 0.0
        self.rows: dict[str, int] = {}
        self.notes: set[str] = set()
        self._live: dict[str, int] = {}  # frames reported by videos still being decoded
        self._done: set[str] = set()  # videos counted (once each, however often a runner retries)
        self.last_table: str | None = None
        self._offset = 0
        self._started = time.monotonic()
        self._last_total = self._started
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reelbeam-progress", daemon=True)
        self._drawn = False

    def __enter__(self):
        open(self.path, "a").close()
        os.environ[ENV] = self.path
        if self.tty:  # a log line printed while the status line is drawn starts on a clean line
            for handler in logging.getLogger().handlers:
                handler.addFilter(self._clear_before_log)
        self._thread.start()
        return self

    def _clear_before_log(self, record) -> bool:
        if self._drawn:
            self.stream.write("\r\x1b[K")
        return True

    def _line(self) -> str:
        """The status line for a terminal: cut to its width, the rest of the old line erased."""
        width = shutil.get_terminal_size((100, 20)).columns
        return "\r" + self.status()[: max(20, width - 1)] + "\x1b[K"

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.read()
        if self.tty:
            for handler in logging.getLogger().handlers:
                handler.removeFilter(self._clear_before_log)
        if self.tty and self._drawn:
            self.stream.write(self._line() + "\n")
            self.stream.flush()
        os.environ.pop(ENV, None)
        if self.remove:
            try:
                os.remove(self.path)
                os.rmdir(os.path.dirname(self.path))
            except OSError:
                pass

    def _run(self) -> None:
        while not self._stop.wait(self.poll):
            self.read()
            now = time.monotonic()
            if self.tty:
                self.stream.write(self._line())
                self.stream.flush()
                self._drawn = True
            elif now - self._last_total >= self.interval:
                self.stream.write(self.status() + "\n")
                self.stream.flush()
                self._last_total = now

    def read(self) -> list[dict]:
        """Take in the events appended since the last read; print per-video lines off a terminal."""
        try:
            with open(self.path, encoding="utf-8") as f:
                f.seek(self._offset)
                chunk = f.read()
        except OSError:
            return []
        complete = chunk[: chunk.rfind("\n") + 1]
        self._offset += len(complete.encode("utf-8"))
        events = []
        for line in complete.splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
        for e in events:
            self.add(e)
        return events

    def add(self, e: dict) -> None:
        if e.get("event") == "video":
            live = self._live.pop(e.get("uri"), 0)
            if e.get("uri") in self._done:  # a recomputed task (Dask after a lost worker) reports again
                return
            self._done.add(e.get("uri"))
            if e.get("ok"):
                self.ok += 1
                self.frames += max(0, int(e.get("frames", 0)) - live)
                self.video_seconds += float(e.get("seconds", 0.0))
            else:
                self.failed += 1
            if not self.tty:
                what = (f"{e.get('frames', 0)} frames" if e.get("ok")
                        else f"failed ({e.get('stage')}/{e.get('error_type')})")
                self.stream.write(f"reelbeam: [{self.ok + self.failed}/{self.total or '?'}] {e.get('uri')}: {what}\n")
                self.stream.flush()
        elif e.get("event") == "frames":
            if e.get("uri") in self._done:
                return
            n = int(e.get("frames", 0))
            self._live[e.get("uri")] = self._live.get(e.get("uri"), 0) + n
            self.frames += n
        elif e.get("event") == "note":
            message = e.get("message", "")
            if message not in self.notes:
                self.notes.add(message)
                self.stream.write(("\r\x1b[K" if self.tty and self._drawn else "") + f"reelbeam: {message}\n")
                self.stream.flush()
        elif e.get("event") == "rows":
            self.rows[e["table"]] = self.rows.get(e["table"], 0) + int(e.get("rows", 0))
            self.last_table = e["table"]

    def status(self) -> str:
        elapsed = max(1e-6, time.monotonic() - self._started)
        done = self.ok + self.failed
        parts = [f"videos {done}/{self.total if self.total is not None else '?'}",
                 f"{self.frames / elapsed:.0f} frames/s", f"{self.video_seconds / 3600:.2f} h of video"]
        if self.failed:
            parts.append(f"{self.failed} failed")
        if self.last_table:
            parts.append(f"{self.last_table}: {self.rows[self.last_table]} rows")
        parts.append(f"{elapsed:.0f} s")
        return "reelbeam: " + ", ".join(parts)
