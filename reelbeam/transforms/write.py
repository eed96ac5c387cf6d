"""Writing tables: every (stage, table) to its own part files, with its schema.

Files: `OUTPUT/<table>/part-<run id>-<stage>-SSSSS-of-NNNNN.parquet`. The run id and the stage in
the name say which run and stage made each file, so a run adds files beside earlier runs' instead
of replacing them, `--overwrite` can remove exactly one stage's files, and files of a stage whose
ledger rows (`stage_runs`) never landed can be told from finished work.

Beam's file sinks write to a temporary folder and rename on finalize, so readers never see a
partial Parquet file. Small tables arrive as row dicts (Beam buffers them into row groups); large
per-video tables (frames) arrive as pyarrow Tables and are written as they are.
"""

from __future__ import annotations

import json
import posixpath
import re
import time
import uuid
from typing import NamedTuple, Optional

import apache_beam as beam
import fsspec

from reelbeam.schemas.tables import TABLES, schema_for

CODECS = ("zstd", "snappy", "gzip", "none")
BATCHED_TABLES = frozenset({"frames"})  # arrive as one pyarrow Table per video
_PART = re.compile(
    r"^part-(?P<run>\d{8}T\d{6}Z-[0-9a-f]{4})(?:-(?P<stage>[a-z][a-z0-9_]*))?-\d{5}-of-\d{5}\.parquet$"
)


def new_run_id() -> str:
    """UTC time plus 4 random hex digits, e.g. 20261122T031500Z-9f3a."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:4]


def table_prefix(output: str, table: str, run_id: str = "", stage: str = "") -> str:
    """OUTPUT/<table>/part[-<run_id>[-<stage>]] (Beam appends -SSSSS-of-NNNNN.parquet)."""
    name = "-".join(["part", *(x for x in (run_id, stage) if x)])
    return posixpath.join(output.rstrip("/"), table, name)


class PartFile(NamedTuple):
    """A table's part file: its path (with the URL's protocol), run id and stage (None for files
    of reelbeam versions before stages were named in files)."""

    path: str
    run_id: Optional[str]
    stage: Optional[str]


def table_files(output: str, table: str) -> list[PartFile]:
    """The Parquet files of `table` under `output`, sorted by name."""
    fs, root = fsspec.core.url_to_fs(output)
    out = []
    for path in sorted(fs.glob(posixpath.join(root, table, "*.parquet"))):
        m = _PART.match(posixpath.basename(path))
        full = path if "://" not in output else fs.unstrip_protocol(path)
        out.append(PartFile(full, m["run"] if m else None, m["stage"] if m else None))
    return out


def existing_tables(output: str) -> list[str]:
    """Tables that already have Parquet files under `output`."""
    fs, root = fsspec.core.url_to_fs(output)
    return [t for t in TABLES if fs.glob(posixpath.join(root, t, "*.parquet"))]


def remove_tables(output: str) -> None:
    """Delete every table folder (and the JSON, scene clip, run manifest and quarantine folders)
    under `output` (--overwrite of a full run)."""
    fs, root = fsspec.core.url_to_fs(output)
    for name in (*TABLES, "json", "clips", "_runs", "_incomplete"):
        path = posixpath.join(root, name)
        if fs.exists(path):
            fs.rm(path, recursive=True)


def remove_stage_files(output: str, stage: str, tables) -> int:
    """Delete the part files `stage` wrote into `tables` (and its ledger files); returns how many."""
    fs, _ = fsspec.core.url_to_fs(output)
    removed = 0
    for table in (*tables, "stage_runs"):
        for part in table_files(output, table):
            if part.stage == stage:
                fs.rm(fsspec.core.url_to_fs(part.path)[1])
                removed += 1
    return removed


class WriteTable(beam.PTransform):
    """One table's PCollection -> its part files (none when it is empty); returns the PCollection of
    written file names (available once the files are final: a barrier for what must come after them).

    Rows are dicts with the table's fields; `frames` arrives as pyarrow Tables (one per video).
    """

    def __init__(self, output: str, table: str, run_id: str, stage: str, codec: str = "zstd") -> None:
        super().__init__()
        if codec not in CODECS:
            raise ValueError(f"parquet codec must be one of {CODECS}, got {codec!r}")
        self._prefix = table_prefix(output, table, run_id, stage)
        self._table = table
        self._codec = codec

    def expand(self, pcoll):
        sink = beam.io.WriteToParquetBatched if self._table in BATCHED_TABLES else beam.io.WriteToParquet
        write = sink(self._prefix, schema_for(self._table), codec=self._codec, file_name_suffix=".parquet")
        # No rows, no file: a resumed run that had nothing to do for a stage leaves no empty files.
        write._sink.skip_if_empty = True  # noqa: SLF001 - Beam's Parquet transforms do not pass it through
        return pcoll | "WriteParquet" >> write


class _WriteJsonFn(beam.DoFn):
    """(video_id, document) -> OUTPUT/json/<video_id>.json, written atomically (temp + rename)."""

    def __init__(self, folder: str) -> None:
        self._folder = folder.rstrip("/")

    def process(self, element):
        video_id, document = element
        # video_id is hex (see make_video_id): it cannot escape the folder.
        if not video_id.isalnum():
            raise ValueError(f"refusing to write a JSON file for unsafe id {video_id!r}")
        path = f"{self._folder}/{video_id}.json"
        tmp = f"{self._folder}/.{video_id}.json.tmp"
        fs, _ = fsspec.core.url_to_fs(path)
        with fsspec.open(tmp, "w", encoding="utf-8") as f:
            json.dump(document, f, indent=1)
        fs.mv(fsspec.core.url_to_fs(tmp)[1], fsspec.core.url_to_fs(path)[1])
        yield path


class WriteJson(beam.PTransform):
    """ModelScope-shaped per-video JSON documents under OUTPUT/json/; returns the written paths."""

    def __init__(self, output: str) -> None:
        super().__init__()
        self._folder = posixpath.join(output.rstrip("/"), "json")

    def expand(self, docs):
        fs, path = fsspec.core.url_to_fs(self._folder)
        fs.makedirs(path, exist_ok=True)
        return docs | "WriteJsonFiles" >> beam.ParDo(_WriteJsonFn(self._folder))
