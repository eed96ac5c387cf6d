"""Reading reelbeam's tables from Python: `reelbeam.read(OUTPUT, "shots")`.

OUTPUT is what `reelbeam run --output` was given: a local folder or any fsspec URL (`gs://`,
`s3://`, ...). Every table is read with its schema from `reelbeam.schemas`, never with types
inferred from the files, so an empty table still has its columns and files written before a
nullable column was added read with that column as nulls.

Only pyarrow and fsspec are imported here: reading a table never imports Beam or torch.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence

import fsspec
import pyarrow as pa
import pyarrow.dataset as ds

from reelbeam.schemas.tables import TABLES, schema_for

__all__ = ["TableNotFound", "dataset", "read", "tables_present"]


class TableNotFound(FileNotFoundError):
    """The output has no Parquet file for the table (the stage that writes it did not run)."""


def _fs_root(output: str):
    fs, root = fsspec.core.url_to_fs(str(output))
    return fs, root.rstrip("/")


def _files(fs, root: str, table: str) -> list[str]:
    return sorted(fs.glob(posixpath.join(root, table, "*.parquet")))


def tables_present(output: str) -> list[str]:
    """Names of the tables that have at least one Parquet file under `output`, in schema order."""
    fs, root = _fs_root(output)
    return [t for t in TABLES if _files(fs, root, t)]


def dataset(output: str, table: str) -> ds.Dataset:
    """A pyarrow Dataset over `OUTPUT/<table>/*.parquet` with the table's schema, for tables too
    large to read whole: `.to_batches(columns=[...], filter=...)` streams them.

    Raises KeyError for a name that is not a reelbeam table, TableNotFound when the output holds
    no file of the table.
    """
    schema = schema_for(table)  # KeyError naming the known tables
    fs, root = _fs_root(output)
    if not fs.exists(root):
        raise TableNotFound(f"no reelbeam output at {output!r}")
    files = _files(fs, root, table)
    if not files:
        present = [t for t in TABLES if _files(fs, root, t)]
        raise TableNotFound(
            f"table {table!r} is not in {output!r} (no {table}/*.parquet); tables present: {present or 'none'}"
        )
    return ds.dataset(files, schema=schema, format="parquet", filesystem=fs)


def read(
    output: str,
    table: str,
    columns: Sequence[str] | None = None,
    filter: ds.Expression | None = None,
) -> pa.Table:
    """Read one table of a reelbeam output as a pyarrow Table with the table's schema.

    Args:
      output: the run's output folder or URL (`out`, `gs://bucket/tables`).
      table: a table name from `reelbeam.schemas.TABLES` ('videos', 'shots', 'frames', ...).
      columns: read only these columns (all by default).
      filter: a pyarrow.dataset expression, e.g. `pyarrow.dataset.field("video_id") == vid`.

    Raises KeyError for an unknown table name (the message lists the known ones) and
    TableNotFound (a FileNotFoundError) when the output holds no file of that table.

    >>> shots = reelbeam.read("out", "shots").to_pandas()
    """
    return dataset(output, table).to_table(columns=list(columns) if columns else None, filter=filter)
