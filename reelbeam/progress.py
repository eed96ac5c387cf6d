"""Live progress of a run.

Workers report events as they happen: a video decoded (its frames and duration) or failed, and a
table's rows written; also, on local runs only, a video's decode starting (with the frames its
stream header promises), the frames of a video still being decoded (every 250 frames or half a
second, so its bar and frames/s move during a long video), the stage a worker is busy with (at
most once a second per stage and process: `working`, from the stage timing of
`reelbeam.transforms.timing`), each video a stage takes up (`processed`, as its ledger rows say: its work on it under way or
done), and notes to show
once (a worker's choice of precision). Each video event is

- logged at INFO by the worker (`reelbeam.progress`), one line per video: what a remote runner's
  worker logs show (Dataflow's Logs Explorer, a Flink task manager's log);
- appended, on local runs, as one JSON line to the file named by REELBEAM_PROGRESS, which the
  launcher sets before the workers start (they are its child processes and inherit it) and
  watches from a thread (`Watcher`). On a terminal it redraws a few lines: a status line (videos
  done of total, frames/s, hours of video, failures, rows written by the latest table), a bar per
  video being decoded (frames done of its total, percent, frames/s, ETA: tqdm's bar), and, once a
  stage other than the decode is at work (or the decode pass has no video left to read), the
  stages at work and their own progress (videos each has taken up of those decoded, the rows its
  tables got). Elsewhere (CI, a log file) it prints one line per video and a total every `interval`
  seconds, as remote runners' workers log one line per video.

Beam's DirectRunner runs the whole job inside `pipeline.run()`, so its metrics cannot be read while
it runs; the file is the channel. A line is one `write` in append mode, so lines of concurrent
workers do not interleave.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
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


def video_started(uri: str, total_frames: int | None) -> None:
    """A video's decode began; `total_frames`: what its stream's header promises (None: unknown)."""
    report({"event": "start", "uri": uri, "total": int(total_frames) if total_frames else None})


WORKING_EVERY_S = 1.0
_working: dict[str, float] = {}  # stage -> when this process last said it was at work on it


def working(stage: str) -> None:
    """This process is at work on `stage` (at most one event per stage a second; nothing off a
    local run: a remote worker has no progress file, and this costs it a dict lookup)."""
    if not os.environ.get(ENV):
        return
    now = time.monotonic()
    if now - _working.get(stage, -WORKING_EVERY_S) < WORKING_EVERY_S:
        return
    _working[stage] = now
    report({"event": "working", "stage": stage})


def processed(stage: str, video_id: str) -> None:
    """`stage` has taken up a video (its ledger's `processed`: the work under way or done; local
    runs only, like `working`)."""
    if os.environ.get(ENV):
        report({"event": "processed", "stage": stage, "video_id": str(video_id)})


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


def rows_written(table: str, rows: int, stage: str | None = None) -> None:
    report({"event": "rows", "table": table, "rows": int(rows), "stage": stage})


MAX_BARS = 8  # videos shown with a bar at once; the rest as "and N more being decoded"
MAX_STAGES = 4  # stages shown at once
ACTIVE_S = 3.0  # a stage that said it was at work this recently is shown
RATE_WINDOW_S = 10.0  # a bar's frames/s (and ETA) are over this much of the latest progress


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
        # uri -> [frames done, total or None, when it started, recent (when, frames done) for the rate]
        self._decoding: dict[str, list] = {}
        self._done: set[str] = set()  # videos counted (once each, however often a runner retries)
        self.last_table: str | None = None
        self.stage: str | None = None  # the stage a worker said last it is at work on
        self._stage_since: dict[str, float] = {}  # stage -> when it was first at work
        self._stage_last: dict[str, float] = {}  # stage -> when it last said so
        self._processed: dict[str, set] = {}  # stage -> videos it finished
        self._stage_tables: dict[str, list] = {}  # stage -> tables it wrote rows to, in order
        self._offset = 0
        self._started = time.monotonic()
        self._last_total = self._started
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reelbeam-progress", daemon=True)
        self._lock = threading.Lock()  # drawing, and a log line taking the block's place
        self._drawn = 0  # lines of the block on the terminal now (the cursor at the end of the last)
        self._filters: list = []

    def __enter__(self):
        open(self.path, "a").close()
        os.environ[ENV] = self.path
        if self.tty:  # a log line printed while the block is drawn takes its place (redrawn below it)
            for handler in logging.getLogger().handlers:
                f = _LogAboveBlock(self, handler)
                handler.addFilter(f)
                self._filters.append((handler, f))
        self._thread.start()
        return self

    def _clear(self) -> str:
        """What erases the block drawn (the cursor back at the start of its first line)."""
        if not self._drawn:
            return ""
        return "\r" + (f"\x1b[{self._drawn - 1}A" if self._drawn > 1 else "") + "\x1b[J"

    def _print_above(self, text: str) -> None:
        """Write `text` (whole lines) where the block is, on a terminal; the block is redrawn below it."""
        with self._lock:
            self.stream.write(self._clear() + text)
            self._drawn = 0
            self.stream.flush()

    def _draw(self) -> None:
        size = shutil.get_terminal_size((100, 20))
        lines = self.lines(time.monotonic(), size.columns, size.lines)
        with self._lock:
            self.stream.write(self._clear() + "\n".join(line + "\x1b[K" for line in lines))
            self.stream.flush()
            self._drawn = len(lines)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.read()
        for handler, f in self._filters:
            handler.removeFilter(f)
        self._filters = []
        if self.tty and self._drawn:
            self._draw()
            self.stream.write("\n")
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
                self._draw()
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

    def add(self, e: dict, now: float | None = None) -> None:
        """Take in one event; `now` (time.monotonic()) is when it arrived (tests give it)."""
        now = time.monotonic() if now is None else now
        kind = e.get("event")
        if kind == "video":
            live = self._live.pop(e.get("uri"), 0)
            self._decoding.pop(e.get("uri"), None)
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
        elif kind == "start":
            if e.get("uri") not in self._done:
                total = e.get("total")
                self._decoding[e.get("uri")] = [0, int(total) if total else None, now, [(now, 0)]]
        elif kind == "frames":
            if e.get("uri") in self._done:
                return
            n = int(e.get("frames", 0))
            self._live[e.get("uri")] = self._live.get(e.get("uri"), 0) + n
            video = self._decoding.setdefault(e.get("uri"), [0, None, now, [(now, 0)]])
            video[0] += n
            recent = [(t, done) for t, done in video[3] if now - t <= RATE_WINDOW_S] or video[3][-1:]
            video[3] = [*recent, (now, video[0])]
            self.frames += n
        elif kind == "working":
            stage = e.get("stage")
            if stage:
                self.stage = stage
                self._stage_since.setdefault(stage, now)
                self._stage_last[stage] = now
        elif kind == "processed":
            self._processed.setdefault(e.get("stage"), set()).add(e.get("video_id"))
        elif kind == "note":
            message = e.get("message", "")
            if message not in self.notes:
                self.notes.add(message)
                if self.tty:
                    self._print_above(f"reelbeam: {message}\n")
                else:
                    self.stream.write(f"reelbeam: {message}\n")
                    self.stream.flush()
        elif kind == "rows":
            self.rows[e["table"]] = self.rows.get(e["table"], 0) + int(e.get("rows", 0))
            self.last_table = e["table"]
            tables = self._stage_tables.setdefault(e.get("stage"), [])
            if e["table"] not in tables:
                tables.append(e["table"])

    def status(self, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        elapsed = max(1e-6, now - self._started)
        done = self.ok + self.failed
        parts = [f"videos {done}/{self.total if self.total is not None else '?'}",
                 f"{self.frames / elapsed:.0f} frames/s", f"{self.video_seconds / 3600:.2f} h of video"]
        if self.failed:
            parts.append(f"{self.failed} failed")
        if self.last_table:
            parts.append(f"{self.last_table}: {self.rows[self.last_table]} rows")
        parts.append(f"{elapsed:.0f} s")
        return "reelbeam: " + ", ".join(parts)

    def lines(self, now: float, width: int = 100, height: int = 20) -> list[str]:
        """The block a terminal shows (see the module docstring), each line cut to `width` - 1
        (a wrapped line would throw the redraw off)."""
        from tqdm import tqdm

        cut = max(20, width - 1)
        out = [self.status(now)]
        room = max(1, min(MAX_BARS, height - 3))
        decoding = list(self._decoding.items())
        for uri, (done, total, since, recent) in decoding[:room]:
            name = posixpath.basename(str(uri).rstrip("/")) or str(uri)
            if len(name) > 32:
                name = name[:14] + "..." + name[-15:]
            if total is not None and done > total:
                total = None  # a header that promised too few frames: a count, no bar
            # The rate (and so the ETA) over the last RATE_WINDOW_S up to now: the first frames of a
            # video wait for the models to load and the first batch to fill, and a stall slows it.
            t_first, n_first = ([(t, n) for t, n in recent if now - t <= RATE_WINDOW_S] or recent[-1:])[0]
            rate = (done - n_first) / (now - t_first) if now > t_first and done > n_first else None
            out.append("  " + tqdm.format_meter(  # tqdm pads the rate to 5 characters
                done, total, max(1e-6, now - since), ncols=cut - 2, prefix=name, unit=" frames", rate=rate,
                bar_format=("{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} frames, {rate_noinv_fmt}, "
                            "ETA {remaining}" if total else "{desc}: {n_fmt} frames, {rate_noinv_fmt}"),
            ).replace(",  ", ", "))
        if len(decoding) > room:
            out.append(f"  and {len(decoding) - room} more being decoded")
        out += ["  " + self.stage_line(stage, now) for stage in self.stages_at_work(now, bool(decoding))]
        return [line[:cut] for line in out]

    def stages_at_work(self, now: float, decoding: bool) -> list[str]:
        """The stages to show: those at work in the last ACTIVE_S (several run at once on a local
        run's workers) and always the latest, in the order they started; the decode's own steps
        only once no video is being decoded (its bars say the rest)."""
        active = [s for s, last in self._stage_last.items() if now - last <= ACTIVE_S or s == self.stage]
        active = [s for s in active if not (s == "decode" and decoding)]
        return sorted(active, key=self._stage_since.get)[-MAX_STAGES:]

    def stage_line(self, stage: str, now: float) -> str:
        """'stage NAME: running 34 s, on 1/2 videos, keyframes 36 rows'."""
        parts = [f"running {now - self._stage_since.get(stage, now):.0f} s"]
        taken = len(self._processed.get(stage, ()))
        if taken:  # videos the stage has taken up (its ledger's: its work on them under way or done)
            parts.append(f"on {taken}/{self.ok or '?'} videos")
        parts += [f"{t} {self.rows[t]} rows" for t in self._stage_tables.get(stage, ())]
        return f"stage {stage}: " + ", ".join(parts)


class _LogAboveBlock(logging.Filter):
    """On a terminal, a log record of `handler` is written above the progress block (which is
    redrawn under it at the next poll) instead of across it."""

    def __init__(self, watcher: Watcher, handler: logging.Handler) -> None:
        super().__init__()
        self._watcher, self._handler = watcher, handler

    def filter(self, record) -> bool:
        if not self._watcher._drawn or getattr(self._handler, "stream", None) is not self._watcher.stream:
            return True
        try:
            self._watcher._print_above(self._handler.format(record) + "\n")
        except Exception:  # noqa: BLE001 - the handler then writes it as it would have
            return True
        return False
