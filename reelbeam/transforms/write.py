"""Writing tables: each stage's rows as new data files of its Delta tables, committed by a
later step (`reelbeam.store.tables`).

Files: `OUTPUT/<table>/part-<run id>-<stage>-<uuid>.parquet`, one per bundle and table. The run
id and the stage in the name say which run and stage made each file; a file is published whole
(written under a hidden in-progress name and renamed locally; uploaded at once on object stores)
but is not part of its table until the stage's commit adds it, so a reader of the table never sees
a file of a bundle that failed and was retried, nor the files of a run that has not finished.

Each bundle writes one file per table and outputs its path when it opens it (no outputs from
`finish_bundle`, no side inputs: the same steps run on every runner, see
`reelbeam.transforms.portable`); the paths of a failed bundle are dropped with its other outputs.
Small tables arrive as row dicts, written in row groups of 8192; large per-video tables (frames)
arrive as pyarrow Tables and are written as they are.
"""

from __future__ import annotations

import json
import posixpath

import apache_beam as beam
import fsspec

from reelbeam import progress
from reelbeam.schemas.tables import schema_for
from reelbeam.store.tables import new_run_id, open_data_file, part_name, table_uri

__all__ = ["BATCHED_TABLES", "CODECS", "WriteJson", "WriteTable", "new_run_id"]

CODECS = ("zstd", "snappy", "gzip", "none")
BATCHED_TABLES = frozenset({"frames"})  # arrive as one pyarrow Table per video
_ROW_GROUP = 8192


class _WriteBundleFn(beam.DoFn):
    """Rows (dicts, or pyarrow Tables for batched tables) -> one data file per bundle in the
    table's folder; outputs ("file", table, path) as soon as the file is opened (a bundle that
    fails is retried as a whole, its outputs dropped, its file never committed). Its time counts
    toward the stage `timed_as` (`reelbeam.transforms.timing`)."""

    def __init__(self, uri: str, table: str, run_id: str, stage: str, codec: str, timed_as: str | None = None) -> None:
        from reelbeam.transforms.timing import StageClock

        self._uri = uri
        self._table = table
        self._run_id = run_id
        self._stage = stage
        self._codec = codec
        self.timed_as = timed_as
        self._clock = StageClock()

    def setup(self):
        self._schema = schema_for(self._table)
        self._writer = None

    def start_bundle(self):
        self._writer = None
        self._rows: list = []
        self._count = 0

    def _open(self) -> str:
        import pyarrow.parquet as pq

        path = posixpath.join(self._uri, part_name(self._run_id, self._stage))
        self._sink = open_data_file(path)
        self._file = self._sink.__enter__()
        compression = None if self._codec == "none" else self._codec
        self._writer = pq.ParquetWriter(self._file, self._schema, compression=compression, write_page_checksum=True)
        return path

    def _flush(self) -> None:
        import pyarrow as pa

        if self._rows:
            self._writer.write_table(pa.Table.from_pylist(self._rows, schema=self._schema))
            self._rows = []

    def process(self, element):
        # Timed where the work is (opening the file, writing row groups), not per row: most
        # rows only join a list, and timing each would cost more than that.
        clock, stage = self._clock, self.timed_as
        if self._writer is None:
            yield ("file", self._table, clock.call(stage, self._open))
        self._count += 1 if isinstance(element, dict) else element.num_rows
        if isinstance(element, dict):
            self._rows.append(element)
            if len(self._rows) >= _ROW_GROUP:
                clock.call(stage, self._flush)
        else:
            clock.call(stage, self._write_table, element)

    def _write_table(self, table) -> None:
        self._flush()
        self._writer.write_table(table.cast(self._schema))

    def finish_bundle(self):
        self._clock.call(self.timed_as, self._finish)
        self._clock.flush()

    def _finish(self) -> None:
        if self._writer is not None:
            self._flush()
            rows = self._count
            self._writer.close()
            self._writer = None
            self._sink.__exit__(None, None, None)
            progress.rows_written(self._table, rows, self.timed_as)

    def teardown(self):
        if getattr(self, "_writer", None) is not None:
            try:
                self._writer.close()
            except Exception:  # noqa: BLE001 - a failed bundle's file is never committed anyway
                pass
            self._sink.__exit__(RuntimeError, RuntimeError("bundle failed"), None)


class WriteTable(beam.PTransform):
    """One table's rows of one stage -> new data files of the table (none when it is empty);
    returns the PCollection of ("file", table, path) for the stage's commit step.

    Rows are dicts with the table's fields; `frames` arrives as pyarrow Tables (one per video).
    timed_as: the stage whose time the writing counts toward (default: `stage`).
    """

    def __init__(self, output: str, table: str, run_id: str, stage: str, codec: str = "zstd",
                 timed_as: str | None = None) -> None:
        super().__init__()
        if codec not in CODECS:
            raise ValueError(f"parquet codec must be one of {CODECS}, got {codec!r}")
        self._args = (table_uri(output, table), table, run_id, stage, codec, timed_as or stage)

    def expand(self, pcoll):
        return pcoll | "WriteFiles" >> beam.ParDo(_WriteBundleFn(*self._args))


class _WriteJsonFn(beam.DoFn):
    """(video_id, document) -> OUTPUT/json/<video_id>.json, written atomically (temp + rename).
    `timed_as`: the stage its time counts toward (set once the graph is built)."""

    def __init__(self, folder: str) -> None:
        from reelbeam.transforms.timing import StageClock

        self._folder = folder.rstrip("/")
        self.timed_as: str | None = None
        self._clock = StageClock()

    def setup(self) -> None:
        fs, path = fsspec.core.url_to_fs(self._folder)
        fs.makedirs(path, exist_ok=True)  # on the worker: building the job touches no output

    def process(self, element):
        return self._clock.timed(self.timed_as, self._write, element)

    def finish_bundle(self):
        self._clock.flush()

    def _write(self, element):
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
