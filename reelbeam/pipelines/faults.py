"""What ended a run that did not finish, in one line, and the exit status that says which kind.

A run that fails never leaves a half-written table: what it committed is whole (each commit is
atomic), what it did not commit is invisible, and `reelbeam run ... --skip-existing` does the rest.
So every fault is reported as one line saying what happened and what to do, with an exit status
per kind (docs/reliability.md lists them); `--verbose` adds the traceback.
"""

from __future__ import annotations

import dataclasses
import errno

EXIT_CODES = {
    "config": 2,  # bad flags, inputs, checkpoints or output (before anything runs)
    "busy": 3,  # another run holds the output's lease
    "conflict": 4,  # a concurrent commit to the same table, or this run's lease was taken over
    "storage": 5,  # the output's disk is full, or the output cannot be written
    "corrupt": 6,  # a committed data file or a table's log cannot be read
    "worker": 7,  # a worker process was lost (killed, out of memory) or the runner failed
    "interrupted": 130,  # Ctrl-C
    "internal": 1,  # anything else: a bug, please report it with --verbose's traceback
}

RESUME = "the committed tables are intact; run the same command again with --skip-existing to finish the rest"


@dataclasses.dataclass
class Fault:
    kind: str
    message: str

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.kind]


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _text(exc: BaseException) -> str:
    return " ".join(f"{type(e).__name__}: {e}" for e in _chain(exc))


def _first_line(text: str, limit: int = 240) -> str:
    line = (text.strip().splitlines() or [""])[0]
    return line if len(line) <= limit else line[: limit - 3] + "..."


def describe(exc: BaseException, output: str = "") -> Fault:
    """The fault behind `exc` (an exception from building or running the pipeline)."""
    from reelbeam.store.lease import LeaseHeld, LeaseLost
    from reelbeam.store.tables import CommitConflict, CorruptTable

    chain = list(_chain(exc))
    text = _text(exc)
    where = f" ({output})" if output else ""
    for e in chain:
        if isinstance(e, KeyboardInterrupt):
            return Fault("interrupted", f"interrupted; {RESUME}")
        if isinstance(e, LeaseHeld):
            return Fault("busy", str(e))
        if isinstance(e, (CommitConflict, LeaseLost)):
            return Fault("conflict", f"{_first_line(str(e))}; make sure one run at a time writes to the output, then "
                                     "run again with --skip-existing")
        if isinstance(e, CorruptTable):
            return Fault("corrupt", f"{_first_line(str(e))}; {_corrupt_advice()}")
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return Fault("storage", f"the output's disk is full{where}; free space, then {_resume()}")
        if isinstance(e, OSError) and e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            return Fault("storage", f"the output cannot be written{where}: {_first_line(str(e))}; make it writable, then "
                                    f"{_resume()}")
    if "No space left on device" in text or "[Errno 28]" in text or "Disk quota exceeded" in text:
        return Fault("storage", f"the output's disk is full{where}; free space, then {_resume()}")
    if "Read-only file system" in text or "[Errno 30]" in text or "[Errno 13] Permission denied" in text:
        return Fault("storage", f"the output cannot be written{where}; make it writable, then {_resume()}")
    if any(p in text for p in ("Concurrent transaction failed", "CommitFailedError")):
        return Fault("conflict", "another writer committed to the same table at the same time; make sure one run at a "
                                 "time writes to the output, then run again with --skip-existing")
    if any(p in text for p in ("Parquet magic bytes", "Couldn't deserialize thrift", "Corrupt", "corrupt",
                               "Unexpected end of stream", "Invalid parquet", "page header")):
        return Fault("corrupt", f"a data file of the tables cannot be read ({_first_line(_last(chain))}); "
                                f"{_corrupt_advice()}")
    if any(p in text for p in ("Channel closed prematurely", "SDK worker", "Worker died", "KilledWorker",
                               "worker process", "BrokenProcessPool", "Socket closed", "StatusCode.UNAVAILABLE")):
        return Fault("worker", f"a worker process of the run was lost (killed, or out of memory): "
                               f"{_first_line(_last(chain), 160)}; {RESUME}")
    return Fault("internal", f"{type(exc).__name__}: {_first_line(str(exc))} (a reelbeam bug: run again with --verbose "
                             "for the traceback and report it)")


def _last(chain) -> str:
    e = chain[-1] if chain else None
    return f"{type(e).__name__}: {e}" if e is not None else ""


def _resume() -> str:
    return "run the same command again with --skip-existing to finish (the committed tables are intact)"


def _corrupt_advice() -> str:
    return ("`reelbeam repair OUTPUT` takes unreadable files out of the tables (their videos are then redone by a run "
            "with --skip-existing); docs/reliability.md, 'Corrupt files'")
