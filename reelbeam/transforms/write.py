"""WriteTables: every table to `OUTPUT/<table>/part-SSSSS-of-NNNNN.parquet` with its schema.

Beam's file sinks write to a temporary folder and rename on finalize, so readers never see a
partial Parquet file. Small tables arrive as row dicts (Beam buffers them into row groups); large
per-video tables (frames) arrive as pyarrow Tables and are written as they are.
"""

from __future__ import annotations

import json
import posixpath
import time
import uuid
from typing import Optional

import apache_beam as beam
import fsspec

from reelbeam.schemas.tables import TABLES, schema_for

CODECS = ("zstd", "snappy", "gzip", "none")


def table_prefix(output: str, table: str, run_id: str = "") -> str:
    """OUTPUT/<table>/part[-<run_id>]: each run writes its own files, so a resumed run
    (--skip-existing) adds files next to the earlier run's instead of replacing them."""
    name = f"part-{run_id}" if run_id else "part"
    return posixpath.join(output.rstrip("/"), table, name)


def new_run_id() -> str:
    """UTC time plus 4 random hex digits, e.g. 20261122T031500Z-9f3a."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:4]


def existing_tables(output: str) -> list[str]:
    """Tables that already have Parquet files under `output`."""
    fs, root = fsspec.core.url_to_fs(output)
    return [t for t in TABLES if fs.glob(posixpath.join(root, t, "*.parquet"))]


def remove_tables(output: str) -> None:
    """Delete every table folder (and the JSON and scene clip folders) under `output` (for
    --overwrite)."""
    fs, root = fsspec.core.url_to_fs(output)
    for name in (*TABLES, "json", "clips"):
        path = posixpath.join(root, name)
        if fs.exists(path):
            fs.rm(path, recursive=True)


class WriteTables(beam.PTransform):
    """Write each named PCollection as its table.

    rows: table name -> PCollection of dicts (fields of the table's schema).
    batches: table name -> PCollection of pyarrow Tables with the table's schema.
    """

    def __init__(
        self,
        output: str,
        rows: Optional[dict] = None,
        batches: Optional[dict] = None,
        codec: str = "zstd",
        run_id: str = "",
    ) -> None:
        super().__init__()
        self._run_id = run_id
        if codec not in CODECS:
            raise ValueError(f"parquet codec must be one of {CODECS}, got {codec!r}")
        self._output = output
        self._rows = rows or {}
        self._batches = batches or {}
        self._codec = codec

    def expand(self, pbegin):
        results = {}
        for table, pcoll in sorted(self._rows.items()):
            results[table] = pcoll | f"Write_{table}" >> beam.io.WriteToParquet(
                table_prefix(self._output, table, self._run_id),
                schema_for(table),
                codec=self._codec,
                file_name_suffix=".parquet",
            )
        for table, pcoll in sorted(self._batches.items()):
            results[table] = pcoll | f"Write_{table}" >> beam.io.WriteToParquetBatched(
                table_prefix(self._output, table, self._run_id),
                schema_for(table),
                codec=self._codec,
                file_name_suffix=".parquet",
            )
        return results


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
    """ModelScope-shaped per-video JSON documents under OUTPUT/json/."""

    def __init__(self, output: str) -> None:
        super().__init__()
        self._folder = posixpath.join(output.rstrip("/"), "json")

    def expand(self, docs):
        fs, path = fsspec.core.url_to_fs(self._folder)
        fs.makedirs(path, exist_ok=True)
        return docs | "WriteJsonFiles" >> beam.ParDo(_WriteJsonFn(self._folder))
