"""The state of an output folder, read on the launcher before a run: which part files are
committed, what the resume ledger says is done, and the run manifests.

A (run, stage)'s files are committed once that stage's `stage_runs` file of that run exists: the
ledger is written only after the stage's own files are final. Files of a (run, stage) without it
come from a run that stopped before the stage finished; readers of `--start-from` skip them and
`--skip-existing` moves them to OUTPUT/_incomplete/<run id>/ before redoing that work.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import posixpath
import uuid

import fsspec

from reelbeam.schemas.tables import TABLES
from reelbeam.transforms.write import PartFile, table_files

LOG = logging.getLogger(__name__)
LEDGER = "stage_runs"
LOGS = frozenset({"failures", LEDGER})  # append-only logs: every run adds its own files


def committed_pairs(output: str) -> set[tuple[str, str]]:
    """(run_id, stage) pairs whose ledger file exists."""
    return {(f.run_id, f.stage) for f in table_files(output, LEDGER) if f.run_id and f.stage}


def is_committed(part: PartFile, committed: set, table: str) -> bool:
    """Files of earlier reelbeam versions (no stage in the name) and of the logs count as committed."""
    return part.stage is None or table in LOGS or (part.run_id, part.stage) in committed


def committed_parts(output: str, table: str, committed: set | None = None) -> list[PartFile]:
    """The committed part files of `table` under `output`."""
    committed = committed_pairs(output) if committed is None else committed
    return [f for f in table_files(output, table) if is_committed(f, committed, table)]


def has_legacy_files(output: str) -> bool:
    """Whether `output` holds tables written before the ledger existed (no stage in file names)."""
    return any(f.stage is None for t in TABLES for f in table_files(output, t))


@dataclasses.dataclass
class Ledger:
    """The ok rows of `stage_runs`: stage -> {video_id: settings}."""

    done: dict[str, dict[str, str]]

    def videos(self, stage: str) -> frozenset:
        return frozenset(self.done.get(stage, {}))

    def settings(self, stage: str) -> set[str]:
        return set(self.done.get(stage, {}).values())


def read_ledger(output: str) -> Ledger:
    import pyarrow.parquet as pq

    done: dict[str, dict[str, str]] = {}
    for part in table_files(output, LEDGER):
        with fsspec.open(part.path, "rb") as f:
            rows = pq.read_table(f, columns=["video_id", "stage", "status", "settings"]).to_pylist()
        for row in rows:
            if row["status"] == "ok":
                done.setdefault(row["stage"], {})[row["video_id"]] = row["settings"] or ""
    return Ledger(done)


def legacy_ledger(output: str, stages) -> Ledger:
    """For outputs of reelbeam versions without the ledger: every stage counts as done for the
    videos with an ok `videos` row (those versions resumed whole videos)."""
    import pyarrow.parquet as pq

    ok = set()
    for part in table_files(output, "videos"):
        with fsspec.open(part.path, "rb") as f:
            t = pq.read_table(f, columns=["video_id", "status"]).to_pylist()
        ok.update(r["video_id"] for r in t if r["status"] == "ok")
    return Ledger({s.name: {v: "" for v in ok} for s in stages})


def quarantine_uncommitted(output: str) -> list[str]:
    """Move the part files of (run, stage)s without a ledger file to OUTPUT/_incomplete/<run id>/
    <table>/; returns the moved files."""
    fs, root = fsspec.core.url_to_fs(output)
    committed = committed_pairs(output)
    moved = []
    for table in TABLES:
        for part in table_files(output, table):
            if is_committed(part, committed, table):
                continue
            src = fsspec.core.url_to_fs(part.path)[1]
            dst = posixpath.join(root, "_incomplete", part.run_id, table, posixpath.basename(src))
            fs.makedirs(posixpath.dirname(dst), exist_ok=True)
            fs.mv(src, dst)
            moved.append(part.path)
    if moved:
        LOG.warning(
            "--skip-existing: %d files of stages that did not finish (runs %s) moved to %s/_incomplete/; "
            "that work is done again", len(moved), ", ".join(sorted({m.split('part-')[-1][:21] for m in moved})), output,
        )
    return moved


def check_output(output: str) -> None:
    """Create the output folder and prove it is writable with a probe file; ValueError saying why not."""
    try:
        fs, path = fsspec.core.url_to_fs(output)
    except (ValueError, ImportError) as e:
        raise ValueError(f"--output {output!r}: cannot use this location ({e})") from e
    probe = posixpath.join(path, f".reelbeam-write-probe-{uuid.uuid4().hex}")
    if fs.exists(path) and not fs.isdir(path):
        raise ValueError(f"--output {output!r} is a file; give a folder")
    try:
        fs.makedirs(path, exist_ok=True)
        with fs.open(probe, "wb") as f:
            f.write(b"ok")
        fs.rm(probe)
    except Exception as e:
        raise ValueError(
            f"--output {output!r} is not writable ({type(e).__name__}: {e}); choose a folder you can write to"
        ) from e


def write_manifest(output: str, run_id: str, manifest: dict) -> str:
    """OUTPUT/_runs/<run_id>.json (written atomically: temp file, then rename)."""
    fs, root = fsspec.core.url_to_fs(output)
    folder = posixpath.join(root, "_runs")
    fs.makedirs(folder, exist_ok=True)
    path = posixpath.join(folder, f"{run_id}.json")
    tmp = posixpath.join(folder, f".{run_id}.json.tmp")
    with fs.open(tmp, "w") as f:
        json.dump(manifest, f, indent=1, default=str)
    fs.mv(tmp, path)
    return path


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def rows_written(output: str, run_id: str) -> dict[str, int]:
    """Rows per table in the files run `run_id` wrote (from Parquet footers)."""
    import pyarrow.parquet as pq

    counts: dict[str, int] = {}
    for table in TABLES:
        n = 0
        found = False
        for part in table_files(output, table):
            if part.run_id == run_id:
                found = True
                with fsspec.open(part.path, "rb") as f:
                    n += pq.ParquetFile(f).metadata.num_rows
        if found:
            counts[table] = n
    return counts


def table_row_counts(output: str) -> dict[str, int]:
    """Rows per table under `output` (all runs, committed files), from Parquet footers."""
    import pyarrow.parquet as pq

    counts: dict[str, int] = {}
    committed = committed_pairs(output)
    for table in TABLES:
        parts = [p for p in table_files(output, table) if is_committed(p, committed, table)]
        if parts:
            total = 0
            for part in parts:
                with fsspec.open(part.path, "rb") as f:
                    total += pq.ParquetFile(f).metadata.num_rows
            counts[table] = total
    return counts
