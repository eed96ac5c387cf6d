"""The state of an output folder, read on the launcher: what the resume ledger says is done, the
run manifests, and whether the folder can be written.

Tables are Delta tables (`reelbeam.store.tables`): what a reader sees of them is committed; the
ledger (`stage_runs`) says, per video and stage, which run did the work and whether it finished.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import os
import posixpath
import uuid

import fsspec

from reelbeam.store.tables import LEDGER, history_rows, row_counts

LOG = logging.getLogger(__name__)
__all__ = ["LEDGER", "Ledger", "check_output", "now", "read_ledger", "rows_written", "table_row_counts", "write_manifest"]


@dataclasses.dataclass
class Ledger:
    """The finished work of `stage_runs`: stage -> {video_id: settings} of its 'ok' rows (a video
    whose stage a run left unfinished, 'pending', is not done)."""

    done: dict[str, dict[str, str]]

    def videos(self, stage: str) -> frozenset:
        return frozenset(self.done.get(stage, {}))

    def settings(self, stage: str) -> set[str]:
        return set(self.done.get(stage, {}).values())


def read_ledger(output: str) -> Ledger:
    from reelbeam.store import tables as store

    done: dict[str, dict[str, str]] = {}
    pending = set()
    for part in store.active_files(output, LEDGER):
        t = store.read_file(part.path, LEDGER, columns=["video_id", "stage", "status", "settings"])
        for row in t.to_pylist():
            if row["status"] == "ok":
                done.setdefault(row["stage"], {})[row["video_id"]] = row["settings"] or ""
            elif row["status"] == "pending":
                pending.add((row["stage"], row["video_id"]))
    for stage, video in pending:
        done.get(stage, {}).pop(video, None)
    return Ledger(done)


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
    """OUTPUT/_runs/<run_id>.json, replaced whole: locally through a temporary file and a rename
    (a run killed meanwhile leaves the earlier manifest, and the temporary file is removed on any
    error); on object stores an upload is published whole when it completes."""
    fs, root = fsspec.core.url_to_fs(output)
    folder = posixpath.join(root, "_runs")
    fs.makedirs(folder, exist_ok=True)
    path = posixpath.join(folder, f"{run_id}.json")
    data = json.dumps(manifest, indent=1, default=str).encode()
    if "://" in output and not output.startswith("file://"):
        fs.pipe_file(path, data)
        return path
    tmp = posixpath.join(folder, f".{run_id}.{uuid.uuid4().hex[:8]}.json.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def list_manifests(output: str) -> list[tuple[str, dict]]:
    """(run id, manifest) of every run recorded in OUTPUT/_runs/, oldest first (unreadable ones skipped)."""
    fs, root = fsspec.core.url_to_fs(output)
    out = []
    for path in sorted(fs.glob(posixpath.join(root, "_runs", "*.json"))):
        try:
            with fs.open(path, "r") as f:
                out.append((posixpath.basename(path)[: -len(".json")], json.load(f)))
        except (OSError, ValueError):
            continue
    return out


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def rows_written(output: str, run_id: str) -> dict[str, int]:
    """Rows per table that run `run_id` committed (from the tables' commit records)."""
    return history_rows(output, run_id)


def table_row_counts(output: str) -> dict[str, int]:
    """Rows per table under `output` (committed), from the tables' logs."""
    return row_counts(output)
