"""Stage times: the wall and CPU time each stage's code takes on the workers, as Beam counters.

Every runner reelbeam supports sums Beam counters by name across workers (the DaskRunner through
`reelbeam.runners.dask`), so the times travel as `reelbeam` counters whose names carry the stage,
in microseconds (a counter is an integer, and many steps take well under a millisecond per
element):

- `stage_wall_us:<stage>`: wall time in the stage's own code, summed over every worker. Time in
  a region nested inside another (a pass stage's `assemble` inside the assembly) counts toward the
  inner region's stage only;
- `stage_cpu_us:<stage>`: CPU time of the worker process over the same regions (every thread of
  it: the decoder's and torch's thread pools are the stage's work too);
- `stage_cpu_unknown_us:<stage>`: wall time of regions whose CPU could not be told apart because
  another thread of the same process was inside a timed region meanwhile (Dataflow's and Dask's
  threaded workers run several bundles per process); their CPU is in no counter;
- `stage_pass_us:<stage>`: wall time a pass stage's frame consumers took inside the decode pass.
  It is part of `stage_wall_us:decode` (the whole pass), not of the stage's own: the decoder's
  threads run ahead while a consumer runs, so CPU inside the pass is not split (it all counts
  toward `decode`). A pixel conversion that several consumers share (`FrameView`) counts toward
  the first that asks for it. Consumers run once per frame, so theirs is the cheapest timing:
  two clock reads per call and per output, nothing shared between threads.

What is timed: the steps that do a stage's work: DoFns that run through
`reelbeam.transforms.portable.split_outputs`, model calls (`GuardedModelHandler`: loading and
every batch), reading earlier tables for the stage, writing its tables' files; and the commits
(`commit`). A region is timed step by step: when a DoFn yields an element, the time the next
fused step spends on it is that step's, not the producer's. The small Map/Filter steps between
them are not timed. `stage_times` folds the counters into the run manifest's `stage_times`.

The same regions tell a local run's progress display which stage is at work (`progress.working`,
at most once a second per stage and process; nothing on remote workers).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from reelbeam import progress

NAMESPACE = "reelbeam"
WALL, CPU, CPU_UNKNOWN, IN_PASS = "stage_wall_us:", "stage_cpu_us:", "stage_cpu_unknown_us:", "stage_pass_us:"
PREFIXES = (WALL, CPU, CPU_UNKNOWN, IN_PASS)
COMMIT = "commit"  # the commit steps (every stage's tables and the failures log) and the failures log's files

_local = threading.local()  # .stack: the open regions of this thread, innermost last
_lock = threading.Lock()
_busy: dict[int, int] = {}  # thread -> its open CPU-measured regions
_entries = 0  # outermost CPU-measured regions entered so far, all threads


class _Region:
    """One timed stretch of one thread's work; regions nest (an inner one's time is its own)."""

    __slots__ = ("alone", "child_cpu", "child_wall", "cpu0", "entries0", "wall0")

    def __init__(self) -> None:
        global _entries
        self.child_wall = self.child_cpu = 0.0
        tid = threading.get_ident()
        with _lock:
            depth = _busy.get(tid, 0)
            self.alone = len(_busy) == (1 if depth else 0)  # no other thread inside a region
            _busy[tid] = depth + 1
            if not depth:
                _entries += 1
            self.entries0 = _entries
        self.cpu0 = time.process_time()
        _local.__dict__.setdefault("stack", []).append(self)
        self.wall0 = time.perf_counter()

    def close(self) -> tuple[float, float | None]:
        """(own wall seconds, own CPU seconds or None where another thread ran timed work meanwhile)."""
        wall = time.perf_counter() - self.wall0
        cpu = time.process_time() - self.cpu0
        stack = _local.stack
        if stack and stack[-1] is self:
            stack.pop()
        elif self in stack:
            stack.remove(self)
        tid = threading.get_ident()
        with _lock:
            alone = self.alone and _entries == self.entries0
            depth = _busy.get(tid, 1) - 1
            if depth:
                _busy[tid] = depth
            else:
                _busy.pop(tid, None)
        parent = stack[-1] if stack else None
        if parent is not None:
            parent.child_wall += wall
            parent.child_cpu += cpu
        return max(0.0, wall - self.child_wall), (max(0.0, cpu - self.child_cpu) if alone else None)


class StageClock:
    """Stage times accumulated by one owner (a DoFn instance, a model handler) between flushes.

    `timed(stage, fn, *args)` runs `fn(*args)` and iterates its result, timing each step;
    `flush()` adds what accumulated to the counters (call it where Beam has a step's metrics
    context: in `process` or `finish_bundle`). A stage of None times nothing.
    """

    def __init__(self) -> None:
        self._acc: dict[str, list[float]] = {}

    def __getstate__(self):
        return {"_acc": {}}  # a DoFn's clock travels to the workers empty

    def _figures(self, stage: str) -> list[float]:
        acc = self._acc.get(stage)
        if acc is None:
            acc = self._acc[stage] = [0.0, 0.0, 0.0, 0.0]  # wall, cpu, cpu unknown, in the pass
        return acc

    def _add(self, stage: str, own: tuple[float, float | None]) -> None:
        acc = self._figures(stage)
        wall, cpu = own
        acc[0] += wall
        if cpu is None:
            acc[2] += wall
        else:
            acc[1] += cpu

    def call(self, stage: str | None, fn: Callable, *args, **kwargs):
        """fn(*args, **kwargs), timed as `stage` (CPU measured)."""
        if stage is None:
            return fn(*args, **kwargs)
        progress.working(stage)
        region = _Region()
        try:
            return fn(*args, **kwargs)
        finally:
            self._add(stage, region.close())

    def timed(self, stage: str | None, fn: Callable[..., Iterable | None], *args, **kwargs) -> Iterator:
        """The outputs of `fn(*args, **kwargs)` (an iterable, or None for none), with the call and
        each step of the iteration timed as `stage`; the time between steps (the caller's, or the
        downstream steps' with the yielded element) is not."""
        if stage is None:
            yield from fn(*args, **kwargs) or ()
            return
        it = None
        try:
            while True:
                progress.working(stage)
                region = _Region()
                try:
                    if it is None:  # the call and the first step: one region
                        out = fn(*args, **kwargs)
                        it = iter(out) if out is not None else iter(())
                    item = next(it, _END)
                finally:
                    self._add(stage, region.close())
                if item is _END:
                    return
                yield item
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()  # a generator abandoned downstream runs its cleanup now

    def in_pass(self, stage: str, fn: Callable[..., Iterable | None], *args) -> Iterable:
        """`fn(*args)` of a decode-pass consumer: its wall time, and that of each step of the
        iteration of what it returns, counts as `stage`'s time inside the pass (`stage_pass_us`),
        and stays part of the enclosing decode region's."""
        acc = self._figures(stage)
        t0 = time.perf_counter()
        out = fn(*args)
        acc[3] += time.perf_counter() - t0
        if out is None:
            return ()
        if isinstance(out, (list, tuple)):
            return out
        return _pass_steps(iter(out), acc)

    def flush(self) -> None:
        """Add the accumulated times to the `reelbeam` counters and start again from zero."""
        if not self._acc:
            return
        from apache_beam.metrics import Metrics

        acc, self._acc = self._acc, {}
        for stage, values in acc.items():
            for prefix, seconds in zip(PREFIXES, values):
                if seconds > 0 or prefix == WALL:
                    Metrics.counter(NAMESPACE, prefix + stage).inc(round(seconds * 1e6))


_END = object()


def _pass_steps(it: Iterator, acc: list[float]) -> Iterator:
    clock = time.perf_counter
    try:
        while True:
            t0 = clock()
            item = next(it, _END)
            acc[3] += clock() - t0
            if item is _END:
                return
            yield item
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            close()


class TimedConsumer:
    """A decode-pass FrameConsumer whose calls count as `stage`'s time inside the pass."""

    __slots__ = ("_clock", "_inner", "_stage")

    def __init__(self, inner, stage: str, clock: StageClock) -> None:
        self._inner, self._stage, self._clock = inner, stage, clock

    def start(self, info):
        return self._clock.in_pass(self._stage, self._inner.start, info)

    def consume(self, view):
        return self._clock.in_pass(self._stage, self._inner.consume, view)

    def finish(self):
        return self._clock.in_pass(self._stage, self._inner.finish)


def is_timing_counter(name: str) -> bool:
    return name.startswith(PREFIXES)


def stage_times(counters: Mapping[str, int], stages: Sequence[str], pass_stages: Sequence[str] = ()) -> dict[str, dict]:
    """The manifest's `stage_times` from the job's counters: per stage that ran (in `stages`'
    order, then `commit`, then any other stage a counter names):

    {"wall_s": s, "cpu_s": s or None, ...}; `decode` adds "in_pass": {stage: wall seconds its
    consumers took inside the decode pass} (part of decode's wall_s), and each pass stage
    "in_decode_pass_s" (the same figure, not part of its own wall_s). cpu_s is None where some of
    the stage's time ran alongside other timed work in its worker process (see the module
    docstring), or where the runner reported no counters for it.
    """
    found: dict[str, list[float]] = {}
    for name, value in counters.items():
        for i, prefix in enumerate(PREFIXES):
            if name.startswith(prefix):
                found.setdefault(name[len(prefix):], [0.0, 0.0, 0.0, 0.0])[i] += value / 1e6
    order = [*stages, COMMIT, *sorted(set(found) - set(stages) - {COMMIT})]
    out: dict[str, dict] = {}
    in_pass = {s: found[s][3] for s in pass_stages if s in found and found[s][3] > 0}
    for stage in order:
        if stage not in found and stage not in stages:
            continue
        wall, cpu, unknown, _ = found.get(stage, (0.0, 0.0, 0.0, 0.0))
        entry: dict[str, Any] = {
            "wall_s": round(wall, 4),
            "cpu_s": round(cpu, 4) if stage in found and not unknown else None,
        }
        if stage == "decode" and in_pass:
            entry["in_pass"] = {s: round(v, 4) for s, v in in_pass.items()}  # part of its wall_s
        if stage in pass_stages:
            entry["in_decode_pass_s"] = round(in_pass.get(stage, 0.0), 4)
        out[stage] = entry
    return out
