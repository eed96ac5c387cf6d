"""Reading tables an earlier run wrote, in the form the stages exchange them in a job.

`ReadTable` turns part files into the same elements the producing stage emits: row dicts, or for
`frames` one pyarrow Table per video (sorted by frame). `check_schema` refuses, before the pipeline
starts, a file whose schema or schema version is not the one this reelbeam reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import apache_beam as beam
import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from reelbeam.schemas.tables import SCHEMA_VERSION, schema_for
from reelbeam.transforms.write import BATCHED_TABLES


def check_schema(table: str, path: str) -> str | None:
    """None when `path` holds `table` in this version's schema, else what is wrong (one line)."""
    try:
        with fsspec.open(path, "rb") as f:
            schema = pq.read_schema(f)
    except Exception as e:  # noqa: BLE001 - any unreadable footer is reported the same way
        return f"{path}: not a readable Parquet file ({type(e).__name__}: {e})"
    meta = schema.metadata or {}
    written = meta.get(b"reelbeam.table", b"").decode()
    version = meta.get(b"reelbeam.schema_version", b"").decode()
    if written and written != table:
        return f"{path}: holds table {written!r}, not {table!r}"
    if version != SCHEMA_VERSION:
        return (
            f"{path}: schema version {version or 'none'} (this reelbeam reads version {SCHEMA_VERSION}); "
            "re-run the stage that writes it with this reelbeam"
        )
    expected = schema_for(table)
    if not schema.equals(expected, check_metadata=False):
        got = {f.name: str(f.type) for f in schema}
        want = {f.name: str(f.type) for f in expected}
        diff = sorted(set(got.items()) ^ set(want.items()))
        return f"{path}: columns differ from the `{table}` schema: {diff[:4]}"
    return None


def _read_file(path: str, table: str) -> pa.Table:
    from reelbeam.store.tables import CorruptTable

    try:
        with fsspec.open(path, "rb") as f:
            return pq.read_table(f, schema=schema_for(table), page_checksum_verification=True)
    except (OSError, pa.ArrowException) as e:
        raise CorruptTable(f"{path}: a committed file of table {table!r} cannot be read ({e})") from e


class _ReadRowsFn(beam.DoFn):
    def __init__(self, table: str, exclude: frozenset, timed_as: str | None = None) -> None:
        from reelbeam.transforms.timing import StageClock

        self._table = table
        self._exclude = exclude
        self.timed_as = timed_as
        self._clock = StageClock()

    def process(self, path: str) -> Iterable[dict]:
        for rows in self._clock.timed(self.timed_as, self._batches, path):  # timed per batch, not per row
            yield from rows

    def finish_bundle(self):
        self._clock.flush()

    def _batches(self, path: str) -> Iterable[list[dict]]:
        data = _read_file(path, self._table)
        for batch in data.to_batches(max_chunksize=8192):
            yield [row for row in batch.to_pylist() if row["video_id"] not in self._exclude]


class _ReadVideoTablesFn(beam.DoFn):
    """A part file of a per-video batched table -> (video_id, slice) for each video in it."""

    def __init__(self, table: str, exclude: frozenset, timed_as: str | None = None) -> None:
        from reelbeam.transforms.timing import StageClock

        self._table = table
        self._exclude = exclude
        self.timed_as = timed_as
        self._clock = StageClock()

    def process(self, path: str):
        return self._clock.timed(self.timed_as, self._read, path)

    def finish_bundle(self):
        self._clock.flush()

    def _read(self, path: str):
        data = _read_file(path, self._table)
        if data.num_rows == 0:
            return
        ids = data.column("video_id")
        for video_id in pc.unique(ids).to_pylist():
            if video_id not in self._exclude:
                yield video_id, data.filter(pc.equal(ids, video_id))


def _concat_video(element) -> pa.Table:
    _video_id, pieces = element
    table = pa.concat_tables(list(pieces))
    return table.sort_by("frame_idx").combine_chunks()


class ReadTable(beam.PTransform):
    """PBegin -> the rows of `table` in `files` (row dicts; `frames`: one pyarrow Table per video),
    leaving out the videos in `exclude`. timed_as: the stage the reading counts toward."""

    def __init__(self, table: str, files: Sequence[str], exclude: frozenset = frozenset(),
                 timed_as: str | None = None) -> None:
        super().__init__()
        self._table = table
        self._files = list(files)
        self._exclude = frozenset(exclude)
        self._timed_as = timed_as

    def expand(self, pbegin):
        files = pbegin | "Files" >> beam.Create(self._files) | "SpreadFiles" >> beam.Reshuffle()
        if self._table in BATCHED_TABLES:
            return (
                files
                | "ReadVideoSlices" >> beam.ParDo(_ReadVideoTablesFn(self._table, self._exclude, self._timed_as))
                | "GroupByVideo" >> beam.GroupByKey()
                | "ConcatVideo" >> beam.Map(_concat_video)
            )
        return files | "ReadRows" >> beam.ParDo(_ReadRowsFn(self._table, self._exclude, self._timed_as))
