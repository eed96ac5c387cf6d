"""Outputs written by reelbeam before tables were Delta tables: plain Parquet part files under
`OUTPUT/<table>/` and a `stage_runs` ledger of Parquet files.

They are read as before: a (run, stage)'s files count as committed once that run wrote the stage's
`stage_runs` file (files of older versions, with no stage in their names, and the `failures` log
always count). `migrate` turns such an output into Delta tables in place with one commit per table
that adds exactly those committed files (no data is copied); files that were never committed stay
out of the tables (and `reelbeam vacuum` can delete them). A run refuses to write into an output
that still has this layout and says to migrate it first.
"""

from __future__ import annotations

import posixpath
import re

import fsspec

from reelbeam.schemas.tables import TABLES

LEDGER = "stage_runs"
LOGS = frozenset({"failures", LEDGER})
_NEW_PART = re.compile(r"^part-\d{8}T\d{6}Z-[0-9a-f]{4}-[a-z][a-z0-9_]*(-pending)?-[0-9a-f]{32}\.parquet$")
_OLD_PART = re.compile(
    r"^part-(?P<run>\d{8}T\d{6}Z-[0-9a-f]{4})(?:-(?P<stage>[a-z][a-z0-9_]*))?-\d{5}-of-\d{5}\.parquet$"
)


def _parquet_files(output: str, table: str):
    fs, root = fsspec.core.url_to_fs(str(output))
    paths = sorted(fs.glob(posixpath.join(root.rstrip("/"), table, "*.parquet")))
    return fs, [(p if "://" not in str(output) else fs.unstrip_protocol(p)) for p in paths]


def part_files(output: str, table: str):
    """Every Parquet file of `table` in the legacy layout, as PartFiles (committed or not)."""
    from reelbeam.store.tables import PartFile, is_delta

    # A Delta table only once its log has a commit: a creation that died first (a migration on a
    # full disk) leaves an empty log folder, and the table must still read (and migrate) as before.
    if is_delta(output, table):
        return []
    out = []
    for path in _parquet_files(output, table)[1]:
        if _NEW_PART.match(posixpath.basename(path)):
            continue  # written for a Delta table that was never created: not committed
        m = _OLD_PART.match(posixpath.basename(path))
        out.append(PartFile(path, m["run"] if m else None, m["stage"] if m else None))
    return out


def committed_pairs(output: str) -> set[tuple[str, str]]:
    """(run_id, stage) pairs whose ledger file exists."""
    return {(f.run_id, f.stage) for f in part_files(output, LEDGER) if f.run_id and f.stage}


def committed_parts(output: str, table: str, committed: set | None = None):
    committed = committed_pairs(output) if committed is None else committed
    return [f for f in part_files(output, table)
            if f.stage is None or table in LOGS or (f.run_id, f.stage) in committed]


def is_legacy(output: str) -> bool:
    """Whether `output` holds tables in the pre-Delta layout (Parquet files and no Delta log)."""
    return any(part_files(output, t) for t in TABLES)


def unnamed_files(output: str) -> list[str]:
    """Data files of reelbeam versions before the stage ledger (no stage in their names)."""
    return [f.path for t in TABLES for f in part_files(output, t) if f.stage is None and t not in LOGS]


def migrate(output: str) -> dict[str, int]:
    """Make every legacy table of `output` a Delta table of its committed files; returns table ->
    files added. Tables that are Delta tables already are left alone. Refused (ValueError, one line)
    for files of reelbeam versions that did not name the stage in file names: their rows cannot be
    told apart when a later run replaces a stage's rows."""
    from deltalake import Schema
    from deltalake.transaction import CommitProperties, create_table_with_add_actions

    from reelbeam.store.tables import (
        _add_action,
        _delta_uri,
        new_run_id,
        schema_for,
        storage_options,
        table_description,
        table_uri,
    )

    committed = committed_pairs(output)
    unnamed = unnamed_files(output)
    if unnamed:
        raise ValueError(
            f"{output!r} was written by a reelbeam older than the stage ledger ({unnamed[0]} names no stage); it "
            "cannot be converted: run the pipeline again into a new --output (this one still reads as it is)"
        )
    run_id = new_run_id()
    added = {}
    for table in TABLES:
        parts = [f for f in part_files(output, table) if table in LOGS or (f.run_id, f.stage) in committed]
        if not parts and not part_files(output, table):
            continue
        uri = table_uri(output, table)
        actions = [_add_action(uri, f.path)[0] for f in parts]
        create_table_with_add_actions(
            _delta_uri(uri), Schema.from_arrow(schema_for(table)), actions, mode="error", name=table,
            description=table_description(table), storage_options=storage_options(uri),
            commit_properties=CommitProperties(custom_metadata={"reelbeam.run_id": run_id, "reelbeam.stages": "migrate"}),
        )
        added[table] = len(actions)
    return added
