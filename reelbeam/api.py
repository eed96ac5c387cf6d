"""Reading reelbeam's tables from Python: `reelbeam.read(OUTPUT, "shots")`.

OUTPUT is what `reelbeam run --output` was given: a local folder or any fsspec URL (`gs://`,
`s3://`, ...). Each table is a Delta Lake table; these functions read its committed data files
only (a run that is still writing, or one that was killed, is invisible until it commits), at the
latest version or at an earlier one (`version=`, or `as_of_run=` a run id: the table as that run
left it). Every table is read with its schema from `reelbeam.schemas`, never with types inferred
from the files, so an empty table still has its columns and files written before a nullable column
was added read with that column as nulls. Outputs of reelbeam versions before Delta tables are read
as those versions committed them.

Only pyarrow, fsspec and deltalake are imported here: reading a table never imports Beam or torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import fsspec
import pyarrow as pa
import pyarrow.dataset as ds

from reelbeam.schemas.tables import schema_for

__all__ = ["TableNotFound", "dataset", "read", "table_version", "tables_present"]


class TableNotFound(FileNotFoundError):
    """The output has no such table (the stage that writes it did not run, or the version asked
    for is older than the table)."""


def tables_present(output: str) -> list[str]:
    """Names of the tables that exist under `output`, in schema order."""
    from reelbeam.store.tables import tables_present as present

    return present(str(output))


def table_version(output: str, table: str, as_of_run: str | None = None) -> int | None:
    """The table's latest version, or its version when run `as_of_run` ended: the version the run
    committed last (its manifest, OUTPUT/_runs/<run id>.json, records them), else the latest one
    made before the run ended. None: the table did not exist then (or predates Delta tables)."""
    from reelbeam.store import tables as store

    dt = store.open_table(str(output), table)
    if dt is None:
        return None
    if as_of_run is None:
        return dt.version()
    return store.version_as_of_run(str(output), table, as_of_run, dt)


def dataset(output: str, table: str, version: int | None = None, as_of_run: str | None = None) -> ds.Dataset:
    """A pyarrow Dataset over the table's committed files with the table's schema, for tables too
    large to read whole: `.to_batches(columns=[...], filter=...)` streams them.

    Raises KeyError for a name that is not a reelbeam table, TableNotFound when the output holds
    no such table (or not at that version).
    """
    from reelbeam.store import tables as store

    schema = schema_for(table)  # KeyError naming the known tables
    output = str(output)
    fs, root = fsspec.core.url_to_fs(output)
    if not fs.exists(root):
        raise TableNotFound(f"no reelbeam output at {output!r}")
    if (version is not None or as_of_run is not None) and store.open_table(output, table) is None \
            and store.legacy_files(output, table):
        # Not an empty table: the layout of earlier versions keeps no versions to travel to.
        raise ValueError(
            f"table {table!r} of {output!r} was written by a reelbeam before Delta tables: it has no versions "
            f"(version=, as_of_run=); `reelbeam migrate {output}` converts it in place (its rows become version 0)"
        )
    if as_of_run is not None:
        if version is not None:
            raise ValueError("give version= or as_of_run=, not both")
        version = table_version(output, table, as_of_run)
        if version is None:
            raise TableNotFound(f"table {table!r} of {output!r} did not exist when run {as_of_run} ended")
    if store.open_table(output, table) is None and not store.legacy_files(output, table):
        present = tables_present(output)
        raise TableNotFound(f"table {table!r} is not in {output!r}; tables present: {present or 'none'}")
    files = [fsspec.core.url_to_fs(p.path)[1] for p in store.active_files(output, table, version)]
    return ds.dataset(files, schema=schema, format=store.parquet_format(), filesystem=fs)


def read(
    output: str,
    table: str,
    columns: Sequence[str] | None = None,
    filter: ds.Expression | None = None,
    version: int | None = None,
    as_of_run: str | None = None,
) -> pa.Table:
    """Read one table of a reelbeam output as a pyarrow Table with the table's schema.

    Args:
      output: the run's output folder or URL (`out`, `gs://bucket/tables`).
      table: a table name from `reelbeam.schemas.TABLES` ('videos', 'shots', 'frames', ...).
      columns: read only these columns (all by default).
      filter: a pyarrow.dataset expression, e.g. `pyarrow.dataset.field("video_id") == vid`.
      version: the table's Delta version to read (time travel; default the latest).
      as_of_run: read the table as run `as_of_run` (a run id, see OUTPUT/_runs/) left it.

    Raises KeyError for an unknown table name (the message lists the known ones) and
    TableNotFound (a FileNotFoundError) when the output holds no such table.

    >>> shots = reelbeam.read("out", "shots").to_pandas()
    """
    data = dataset(output, table, version, as_of_run)
    try:
        return data.to_table(columns=list(columns) if columns else None, filter=filter)
    except (OSError, pa.ArrowException) as e:
        if isinstance(e, FileNotFoundError):
            raise
        from reelbeam.store.tables import CorruptTable

        raise CorruptTable(
            f"table {table!r} of {output!r}: a committed file cannot be read ({str(e).splitlines()[0][:200]}); "
            f"`reelbeam repair {output}` takes unreadable files out of the tables"
        ) from e

