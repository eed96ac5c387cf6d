"""What a run shows on the terminal, and where the rest goes.

Without `--verbose` the terminal gets reelbeam's own lines (progress, notes, the summary, one line
per fault). Everything else that a run's libraries, Beam's runners and its worker processes print
(log records, warnings, exceptions of background threads, and whatever writes to file descriptor 2
directly, worker subprocesses included) goes to a log file instead: kept, and named in the error
line, when the run fails; deleted when it succeeds. `--verbose` shows it all on the terminal.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading

FORMAT = "%(levelname)s %(name)s: %(message)s"


class _OwnRecords(logging.Filter):
    """reelbeam's warnings and errors, and anything critical (reelbeam's INFO records, notes about
    the run, go to the log file; the run summary says what the user needs once)."""

    def filter(self, record: logging.LogRecord) -> bool:
        own = record.name == "reelbeam" or record.name.startswith("reelbeam.")
        return (own and record.levelno >= logging.WARNING) or record.levelno >= logging.CRITICAL


class _StartupNoise(logging.Filter):
    """Drops what Beam's import says on the root logger that no user can act on: without
    google-apitools (a plain `pip install reelbeam`, where gcsfs brings Google's client libraries but
    not Beam's `gcp` extra) `apache_beam.io.gcp...bigquery` logs "apitools not found, and bigquery
    client libraries are not available" through `logging.warning`, on every command."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name == "root" and str(record.msg).startswith("apitools not found"))


_STARTUP_NOISE = _StartupNoise()


def configure_logging(verbose: bool = False) -> None:
    """Before anything imports Beam: give the root logger reelbeam's format (a module-level
    `logging.warning` in a library otherwise installs Python's default one, `INFO:name:message`,
    for the whole process) and, unless `verbose`, drop the startup notes of `_StartupNoise`.
    Where the root logger has handlers already (an application's, pytest's), they are kept."""
    root = logging.getLogger()
    if not verbose:
        root.addFilter(_STARTUP_NOISE)  # once: addFilter skips a filter it holds
    logging.basicConfig(format=FORMAT)


class RunLog:
    """Context manager: while inside, fd 2 and the libraries' logs go to `path` (see the module docstring).
    `console` is the terminal's stderr."""

    def __init__(self, verbose: bool) -> None:
        self.verbose = verbose
        self.path: str | None = None
        self.console = sys.stderr
        self.failed = False

    def __enter__(self):
        root = logging.getLogger()
        if self.verbose:
            logging.basicConfig(format=FORMAT)  # where `configure_logging` has not run
            root.setLevel(logging.INFO)
            logging.getLogger("reelbeam").setLevel(logging.INFO)
            return self
        fd, self.path = tempfile.mkstemp(prefix="reelbeam-run-", suffix=".log")
        self._saved_fd = os.dup(2)
        os.dup2(fd, 2)
        os.close(fd)
        self._saved_stderr = sys.stderr
        try:
            on_fd2 = sys.stderr.fileno() == 2
        except (AttributeError, OSError, ValueError):
            on_fd2 = False
        # The terminal: what fd 2 was, unless stderr is something else already (a caller's capture).
        self.console = (os.fdopen(os.dup(self._saved_fd), "w", buffering=1, encoding="utf-8", errors="replace")
                        if on_fd2 else sys.stderr)
        sys.stderr = self.console
        self._file = open(self.path, "a", encoding="utf-8", errors="replace")
        self._saved_handlers = root.handlers[:]
        self._saved_level = root.level
        root.handlers.clear()
        console = logging.StreamHandler(self.console)
        console.setFormatter(logging.Formatter(FORMAT))
        console.addFilter(_OwnRecords())
        everything = logging.StreamHandler(self._file)
        everything.setFormatter(logging.Formatter("%(asctime)s " + FORMAT))
        root.addHandler(console)
        root.addHandler(everything)
        root.setLevel(logging.INFO)
        logging.getLogger("reelbeam").setLevel(logging.INFO)
        logging.captureWarnings(True)
        self._saved_hook = threading.excepthook
        threading.excepthook = self._thread_exception
        return self

    def _thread_exception(self, args) -> None:
        logging.getLogger("reelbeam.runlog.threads").debug(
            "exception in thread %s", getattr(args.thread, "name", "?"), exc_info=(args.exc_type, args.exc_value, args.exc_traceback))
        self._file.write(f"exception in thread {getattr(args.thread, 'name', '?')}: {args.exc_type.__name__}: {args.exc_value}\n")

    def where(self) -> str:
        """' (details: PATH)' for an error line, or '' when nothing was captured."""
        return f" (details: {self.path})" if self.path else ""

    def __exit__(self, exc_type, exc, tb) -> bool:
        if self.verbose or self.path is None:
            return False
        threading.excepthook = self._saved_hook
        logging.captureWarnings(False)
        root = logging.getLogger()
        root.handlers[:] = self._saved_handlers
        root.setLevel(self._saved_level)
        self._file.close()
        sys.stderr.flush()
        os.dup2(self._saved_fd, 2)
        os.close(self._saved_fd)
        sys.stderr = self._saved_stderr
        if not (self.failed or exc_type is not None):
            try:
                os.remove(self.path)
            except OSError:
                pass
            self.path = None
        return False
