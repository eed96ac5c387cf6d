"""Writing tables: every (stage, table) to its own part files, with its schema.

Files: `OUTPUT/<table>/part-<run id>-<stage>-SSSSS-of-NNNNN.parquet`. The run id and the stage in
the name say which run and stage made each file, so a run adds files beside earlier runs' instead
of replacing them, `--overwrite` can remove exactly one stage's files, and files of a stage whose
ledger rows (`stage_runs`) never landed can be told from finished work.

Each bundle writes one file into a hidden temporary folder of the table, and a final step renames
them all once every bundle is done, so readers never see a partial Parquet file (Beam's own file
sinks work the same way, but use side inputs, which not every runner supports well: see
`reelbeam.transforms.portable`). Small tables arrive as row dicts, written in row groups of 8192;
large per-video tables (frames) arrive as pyarrow Tables and are written as they are.
"""

from __future__ import annotations

import json
import posixpath
import re
import time
import uuid
from typing import NamedTuple

import apache_beam as beam
import fsspec

from reelbeam import progress
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
    run_id: str | None
    stage: str | None


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


class _WriteBundleFn(beam.DoFn):
    """Rows (dicts, or pyarrow Tables for batched tables) -> one temporary Parquet file per bundle
    in a hidden folder of the table; outputs the file's temporary path as soon as it is opened
    (a bundle that fails is retried as a whole, its output dropped, its file never renamed)."""

    def __init__(self, temp_dir: str, table: str, codec: str) -> None:
        self._temp_dir = temp_dir
        self._table = table
        self._codec = codec

    def setup(self):
        self._schema = schema_for(self._table)
        self._writer = None

    def start_bundle(self):
        self._writer = None
        self._rows: list = []
        self._count = 0

    def _open(self) -> str:
        import pyarrow.parquet as pq

        fs, _ = fsspec.core.url_to_fs(self._temp_dir)
        path = posixpath.join(self._temp_dir, f"{uuid.uuid4().hex}.parquet")
        fs.makedirs(fsspec.core.url_to_fs(self._temp_dir)[1], exist_ok=True)
        self._file = fsspec.open(path, "wb").open()
        compression = None if self._codec == "none" else self._codec
        self._writer = pq.ParquetWriter(self._file, self._schema, compression=compression)
        return path

    def _flush(self) -> None:
        import pyarrow as pa

        if self._rows:
            self._writer.write_table(pa.Table.from_pylist(self._rows, schema=self._schema))
            self._rows = []

    def process(self, element):
        if self._writer is None:
            yield self._open()
        self._count += 1 if isinstance(element, dict) else element.num_rows
        if isinstance(element, dict):
            self._rows.append(element)
            if len(self._rows) >= _ROW_GROUP:
                self._flush()
        else:
            self._flush()
            self._writer.write_table(element.cast(self._schema))

    def finish_bundle(self):
        if self._writer is not None:
            self._flush()
            rows = self._count
            self._writer.close()
            self._file.close()
            self._writer = None
            progress.rows_written(self._table, rows)

    def teardown(self):
        if getattr(self, "_writer", None) is not None:
            try:
                self._writer.close()
                self._file.close()
            except Exception:  # noqa: BLE001 - a failed bundle's file is discarded anyway
                pass


class _FinalizeFn(beam.DoFn):
    """All of a (run, stage, table)'s temporary files -> renamed to their part names
    (`<prefix>-SSSSS-of-NNNNN.parquet`, in a stable order), the temporary folder removed (with any
    file of a failed, retried bundle); outputs the final paths."""

    def __init__(self, prefix: str, temp_dir: str) -> None:
        self._prefix = prefix
        self._temp_dir = temp_dir

    def process(self, element):
        _, paths = element
        paths = sorted(set(paths))
        fs, _ = fsspec.core.url_to_fs(self._prefix)
        n = len(paths)
        for i, path in enumerate(paths):
            final = f"{self._prefix}-{i:05d}-of-{n:05d}.parquet"
            fs.mv(fsspec.core.url_to_fs(path)[1], fsspec.core.url_to_fs(final)[1])
            yield final
        try:
            fs.rm(fsspec.core.url_to_fs(self._temp_dir)[1], recursive=True)
        except (FileNotFoundError, OSError):
            pass


_ROW_GROUP = 8192


class WriteTable(beam.PTransform):
    """One table's PCollection -> its part files (none when it is empty); returns the PCollection
    of the final file names, available once every file is complete and renamed (a barrier for what
    must come after them).

    Rows are dicts with the table's fields; `frames` arrives as pyarrow Tables (one per video).
    Each bundle writes one temporary file in a hidden folder of the table (readers never list it);
    a GroupByKey then renames them all. No side inputs and no output from `finish_bundle`: the
    same steps run on every runner (see `reelbeam.transforms.portable`).
    """

    def __init__(self, output: str, table: str, run_id: str, stage: str, codec: str = "zstd") -> None:
        super().__init__()
        if codec not in CODECS:
            raise ValueError(f"parquet codec must be one of {CODECS}, got {codec!r}")
        self._prefix = table_prefix(output, table, run_id, stage)
        self._temp_dir = posixpath.join(output.rstrip("/"), table, f".tmp-{run_id}-{stage}")
        self._table = table
        self._codec = codec

    def expand(self, pcoll):
        return (
            pcoll
            | "WriteBundles" >> beam.ParDo(_WriteBundleFn(self._temp_dir, self._table, self._codec))
            | "OneKey" >> beam.Map(lambda path: (None, path))
            | "AllFiles" >> beam.GroupByKey()
            | "Rename" >> beam.ParDo(_FinalizeFn(self._prefix, self._temp_dir))
        )


class _WriteJsonFn(beam.DoFn):
    """(video_id, document) -> OUTPUT/json/<video_id>.json, written atomically (temp + rename)."""

    def __init__(self, folder: str) -> None:
        self._folder = folder.rstrip("/")

    def setup(self) -> None:
        fs, path = fsspec.core.url_to_fs(self._folder)
        fs.makedirs(path, exist_ok=True)  # on the worker: building the job touches no output

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
        return docs | "WriteJsonFiles" >> beam.ParDo(_WriteJsonFn(self._folder))
