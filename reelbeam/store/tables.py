"""Every table of an output is a Delta Lake table: `OUTPUT/<table>/` holds Parquet data files and
the `_delta_log/` that says which of them are the table.

Workers write data files (`part-<run id>-<stage>-<uuid>.parquet`, named so that the run and stage
that made each file can be told from its name); nothing they write is visible to a Delta reader
until the stage commits. One commit per stage and table adds the stage's new files and removes the
rows that they replace, atomically (`commit`):

- the rows of the same videos that the same stage (or a stage filling the same role, with
  `--overwrite`) wrote before: a re-run, a resumed run or a retried bundle never duplicates a row.
  A file that also holds other videos' rows is rewritten without the replaced ones (copy on write);
- files of runs that died after committing a table but before their ledger ("orphans": rows of a
  stage with no ledger row for that stage and run) are removed whole.

Which files can hold a video's rows is known without reading data: the ledger (`stage_runs`, a Delta
table with one row per video and stage, replaced like the others) names the run that last wrote
them, and file names carry the run. A video the ledger does not list for the stage has no rows yet,
so committing new videos reads no earlier file at all.

Each commit carries two application transactions (Delta's `txn` action): `reelbeam:<run>:<stage>`,
so a commit that is retried after it succeeded is recognised and skipped, and `reelbeam:<stage>`,
so two writers committing the same stage's rows at the same time collide (`CommitConflict`) instead
of both appending. A run holds the output's lease (`reelbeam.store.lease`) besides.

Readers (`reelbeam.read`, the report, export, evaluate, `--from`, `--skip-existing`) list the
committed files of a table version (`active_files`) and read those only. The data files of a table
can also be read by any Delta Lake reader (Spark, Polars, DuckDB's delta extension, delta-rs);
a plain Parquet glob over the folder also sees files that are not (or no longer) part of the table:
see docs/analytics.md and `vacuum`.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import os
import posixpath
import re
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from reelbeam.schemas.tables import SCHEMA_VERSION, TABLES, schema_for

LOG = logging.getLogger(__name__)

LEDGER = "stage_runs"
# Append-only logs: every commit adds its rows, none is replaced (a video that failed in two runs
# has two failures rows).
LOGS = frozenset({"failures"})
DELTA_LOG = "_delta_log"
# Data file names: part-<run id>-<stage>-<anything>.parquet. Files of reelbeam versions before the
# stage was named in files have no stage; older still, no run.
_PART = re.compile(r"^part-(?P<run>\d{8}T\d{6}Z-[0-9a-f]{4})(?:-(?P<stage>[a-z][a-z0-9_]*))?-[0-9a-z-]+\.parquet$")
# Files of a worker that is still writing them (local folders only: object stores publish a
# file when its upload completes).
INPROGRESS = ".inprogress"
# In ledger file names: the intent rows a commit writes before the stage's tables.
PENDING = "-pending-"


class CommitConflict(RuntimeError):
    """Another writer committed the same stage's rows of a table at the same time."""


class CorruptTable(RuntimeError):
    """A table's log or one of its committed files cannot be read."""


class PartFile(NamedTuple):
    """A committed data file of a table: its full path or URL, and the run and stage that made it
    (None for files of reelbeam versions that did not name them)."""

    path: str
    run_id: str | None
    stage: str | None


def new_run_id() -> str:
    """UTC time plus 4 random hex digits, e.g. 20261122T031500Z-9f3a."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:4]


def part_name(run_id: str, stage: str, kind: str = "") -> str:
    """A new data file's name (unique: a uuid, so retried bundles never overwrite each other)."""
    return f"part-{run_id}-{stage}{kind or '-'}{uuid.uuid4().hex}.parquet"


def parse_part(name: str) -> tuple[str | None, str | None]:
    m = _PART.match(posixpath.basename(name))
    return (m["run"], m["stage"]) if m else (None, None)


def table_uri(output: str, table: str) -> str:
    return posixpath.join(str(output).rstrip("/"), table)


def _fs(url: str):
    return fsspec.core.url_to_fs(url)


def _delta_uri(uri: str) -> str:
    """What delta-rs takes: an absolute local path, or the URL as given."""
    return uri if "://" in uri else os.path.abspath(uri)


def storage_options(uri: str) -> dict | None:
    """delta-rs' object-store settings for `uri` from the environment: `REELBEAM_DELTA_STORAGE_OPTIONS`
    (a JSON object) when set, else None (delta-rs reads the usual AWS_*/GOOGLE_* variables itself;
    docs/remote-storage.md)."""
    if "://" not in uri or uri.startswith("file://"):
        return None
    raw = os.environ.get("REELBEAM_DELTA_STORAGE_OPTIONS")
    return json.loads(raw) if raw else None


def _open(uri: str, version: int | None = None):
    from deltalake import DeltaTable

    return DeltaTable(_delta_uri(uri), version=version, storage_options=storage_options(uri))


def is_delta(output: str, table: str) -> bool:
    """Whether the table has a log with at least one commit (a creation that failed half-way, on a
    full disk say, leaves an empty log folder: no table yet)."""
    fs, root = _fs(table_uri(output, table))
    log = posixpath.join(root, DELTA_LOG)
    try:
        names = fs.ls(log, detail=False)
    except (FileNotFoundError, NotADirectoryError):
        return False
    return any(n.endswith((".json", ".checkpoint.parquet")) and not posixpath.basename(n).startswith((".", "_"))
               for n in names)


def open_table(output: str, table: str, version: int | None = None):
    """The table's DeltaTable (at `version`, default the latest), or None when it has no log."""
    uri = table_uri(output, table)
    if not is_delta(output, table):
        return None
    try:
        return _open(uri, version)
    except Exception as e:
        if version is not None and "version" in str(e).lower():
            raise ValueError(f"table {table!r} of {output!r} has no version {version}") from e
        raise CorruptTable(f"{uri}: the table's log cannot be read ({type(e).__name__}: {_first_line(e)})") from e


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:300]


def _full(uri: str, name: str) -> str:
    return posixpath.join(uri, name)


def active_files(output: str, table: str, version: int | None = None) -> list[PartFile]:
    """The committed data files of `table` (at `version`), sorted by name; an output written before
    tables were Delta tables is read as before (`reelbeam.store.legacy`)."""
    dt = open_table(output, table, version)
    uri = table_uri(output, table)
    if dt is None:
        from reelbeam.store import legacy

        return legacy.committed_parts(output, table) if version is None else []
    out = []
    for name in sorted(_file_names(dt)):
        run, stage = parse_part(name)
        out.append(PartFile(_full(uri, name), run, stage))
    return out


def _file_names(dt) -> list[str]:
    return [a["path"] for a in _add_actions(dt)]


def _add_actions(dt) -> list[dict]:
    return pa.table(dt.get_add_actions(flatten=True)).to_pylist()


def tables_present(output: str) -> list[str]:
    """Tables of `output` that exist (Delta tables, or an earlier version's Parquet files)."""
    from reelbeam.store import legacy

    return [t for t in TABLES if is_delta(output, t) or legacy.committed_parts(output, t)]


def row_counts(output: str, version_of: Mapping[str, int] | None = None) -> dict[str, int]:
    """Rows per table, from the log's per-file statistics (no data read)."""
    counts = {}
    for table in TABLES:
        dt = open_table(output, table, (version_of or {}).get(table))
        if dt is None:
            from reelbeam.store import legacy

            parts = legacy.committed_parts(output, table)
            if parts:
                counts[table] = sum(_footer(p.path).num_rows for p in parts)
            continue
        counts[table] = sum(int(a["num_records"] or 0) for a in _add_actions(dt))
    return counts


def _footer(path: str) -> pq.FileMetaData:
    with fsspec.open(path, "rb") as f:
        return pq.ParquetFile(f).metadata


# ------------------------------------------------------------------------------------------------
# Commits


@dataclasses.dataclass
class CommitResult:
    table: str
    version: int | None  # the table version made by the commit (None: nothing to commit)
    added: int = 0  # files
    removed: int = 0
    rewritten: int = 0
    rows: int = 0  # rows added
    skipped: bool = False  # this run's commit of the stage had been made already (a retried step)


def _stats(path: str) -> tuple[int, int, dict]:
    """(size in bytes, rows, Delta stats JSON fields) of a Parquet file, from its footer."""
    fs, p = _fs(path)
    size = fs.size(p)
    meta = _footer(path)
    lo = hi = None
    names = meta.schema.names
    if "video_id" in names and meta.num_rows:
        col = names.index("video_id")
        for g in range(meta.num_row_groups):
            s = meta.row_group(g).column(col).statistics
            if s is None or not s.has_min_max:
                lo = hi = None
                break
            lo = s.min if lo is None or s.min < lo else lo
            hi = s.max if hi is None or s.max > hi else hi
    stats = {"numRecords": meta.num_rows}
    if lo is not None:
        stats.update(minValues={"video_id": lo}, maxValues={"video_id": hi}, nullCount={"video_id": 0})
    return size, meta.num_rows, stats


def _add_action(uri: str, path: str):
    from deltalake.transaction import AddAction

    name = posixpath.basename(path)
    if posixpath.dirname(_fs(path)[1].rstrip("/")) != _fs(uri)[1].rstrip("/"):
        raise ValueError(f"data file {path} is not in the table folder {uri}")
    size, rows, stats = _stats(path)
    return AddAction(name, size, {}, int(time.time() * 1000), True, json.dumps(stats)), rows


def _remove_action(row: dict):
    from deltalake.transaction import RemoveAction

    return RemoveAction(row["path"], True, int(time.time() * 1000), int(row["size_bytes"]))


def ledger_state(output: str, stages: Iterable[str]) -> dict[str, dict[str, list[tuple[str, str]]]]:
    """stage -> video_id -> [(run_id, status), ...]: the ledger rows of those stages. After a
    finished commit a video has one row per stage; a run that stopped between its intent and its
    final ledger commit leaves a 'pending' row beside the earlier one."""
    import pyarrow.dataset as ds

    stages = set(stages)
    state: dict[str, dict[str, list]] = {s: {} for s in stages}
    for part in active_files(output, LEDGER):
        if part.stage is not None and part.stage not in stages:
            continue
        t = read_file(part.path, LEDGER, columns=["video_id", "stage", "run_id", "status"],
                      filter=ds.field("stage").isin(sorted(stages)))
        for row in t.to_pylist():
            state[row["stage"]].setdefault(row["video_id"], []).append((row["run_id"], row["status"]))
    return state


def parquet_format():
    """How data files are read: with their pages' CRC checksums verified (the writers store them),
    so a damaged page is an error, never wrong values."""
    import pyarrow.dataset as ds

    return ds.ParquetFileFormat(default_fragment_scan_options=ds.ParquetFragmentScanOptions(page_checksum_verification=True))


def read_file(path: str, table: str, columns: Sequence[str] | None = None, filter=None) -> pa.Table:
    """One committed data file with the table's schema; CorruptTable naming it when unreadable."""
    import pyarrow.dataset as ds

    fs, p = _fs(path)
    try:
        return ds.dataset([p], schema=schema_for(table), format=parquet_format(), filesystem=fs).to_table(
            columns=list(columns) if columns else None, filter=filter)
    except (OSError, pa.ArrowException) as e:
        if isinstance(e, FileNotFoundError):
            raise CorruptTable(f"{path}: a committed file of table {table!r} is missing") from e
        raise CorruptTable(f"{path}: a committed file of table {table!r} cannot be read ({_first_line(e)})") from e


@dataclasses.dataclass
class Change:
    """One stage's part of a commit to a table.

    paths: its new data files, already in the table folder.
    videos: the videos this run's stage processed: their earlier rows are replaced, whether or not
      the new files hold rows for them (a video with no rows now has none after the commit).
    replaces: the stages whose rows it replaces (default: its own; with --overwrite also the
      stages that fill the same table role).
    whole: replace every row of those stages (--overwrite), not only the rows of `videos`.
    """

    stage: str
    paths: Sequence[str] = ()
    videos: Iterable[str] = ()
    replaces: Sequence[str] = ()
    whole: bool = False


def commit(output: str, table: str, changes: Sequence[Change], *, run_id: str, app: str = "",
           ledger: Mapping[str, Mapping[str, list]] | None = None, append_only: bool = False,
           _retries: int = 0) -> CommitResult:
    """Commit the stages' new files to `table`, replacing the rows they supersede (see the module
    docstring), in one Delta commit; skipped when this run made it already.

    app: names this commit among the run's commits to the table (default: the stages').
    ledger: `ledger_state` of the stages (read here when not given).
    append_only: add files, replace nothing (the logs, and the ledger's intent rows).
    """
    from deltalake import Schema
    from deltalake.exceptions import CommitFailedError
    from deltalake.transaction import CommitProperties, Transaction, create_table_with_add_actions

    uri = table_uri(output, table)
    stages = sorted({c.stage for c in changes})
    app_id = f"reelbeam:{run_id}:{app or '+'.join(stages)}"
    dt = open_table(output, table)
    if dt is not None and dt.transaction_version(app_id) is not None:
        return CommitResult(table, dt.version(), skipped=True)
    adds, rows = [], 0
    for path in sorted({p for c in changes for p in c.paths}):
        action, n = _add_action(uri, path)
        adds.append(action)
        rows += n
    removes, rewritten = [], []
    if dt is not None and not append_only and table not in LOGS:
        if ledger is None:
            ledger = ledger_state(output, {s for c in changes for s in (c.replaces or (c.stage,))})
        removes, rewritten = _replacements(output, table, dt, run_id, changes, ledger)
        for path in rewritten:
            adds.append(_add_action(uri, path)[0])
    if dt is not None and not adds and not removes:
        return CommitResult(table, None)
    videos = len({v for c in changes for v in c.videos})
    props = CommitProperties(
        app_transactions=[Transaction(app_id, 1)] + [Transaction(f"reelbeam:{s}", int(time.time() * 1000)) for s in stages],
        custom_metadata={"reelbeam.run_id": run_id, "reelbeam.stages": ",".join(stages), "reelbeam.videos": str(videos),
                         "reelbeam.rows": str(0 if append_only and table == LEDGER else rows)},
    )
    schema = schema_for(table)
    try:
        if dt is None:
            try:
                create_table_with_add_actions(
                    _delta_uri(uri), Schema.from_arrow(schema), adds, mode="error", name=table,
                    description=table_description(table), storage_options=storage_options(uri), commit_properties=props,
                )
            except Exception as e:
                if "already exists" not in str(e):
                    raise
                return commit(output, table, changes, run_id=run_id, app=app, ledger=ledger, append_only=append_only)
        else:
            dt.create_write_transaction([*removes, *adds], "append", schema, commit_properties=props)
    except CommitFailedError as e:
        if _raced_own_run(output, table, dt, run_id, stages) and _retries < 8:
            # Another commit group of this run (other stages: a runner that commits groups in
            # parallel, as Dask does) committed first. Rows of other stages are never replaced
            # here, so the commit is redone against the new version.
            time.sleep(0.05 * (_retries + 1))
            return commit(output, table, changes, run_id=run_id, app=app, ledger=ledger,
                          append_only=append_only, _retries=_retries + 1)
        raise CommitConflict(
            f"table {table!r} of {output!r}: another writer committed rows of {', '.join(stages)} at the same "
            f"time ({_first_line(e)}); nothing of this commit is visible"
        ) from e
    version = open_table(output, table).version()
    return CommitResult(table, version, len(adds) - len(rewritten), len(removes), len(rewritten), rows)


def _raced_own_run(output: str, table: str, read, run_id: str, stages: Sequence[str]) -> bool:
    """Whether every commit made to `table` since version `read` (a DeltaTable) came from run
    `run_id` and from stages other than `stages`: a race between commit groups of one run."""
    now = open_table(output, table)
    if now is None or read is None or now.version() <= read.version():
        return False
    entries = [e for e in now.history(limit=now.version() - read.version()) if int(e["version"]) > read.version()]
    return bool(entries) and all(
        e.get("reelbeam.run_id") == run_id and not set(str(e.get("reelbeam.stages", "")).split(",")) & set(stages)
        for e in entries)


def table_description(table: str) -> str:
    return f"reelbeam table {table}, schema version {SCHEMA_VERSION}: {schema_for(table).metadata[b'doc'].decode()}"


def _replacements(output, table, dt, run_id, changes, ledger):
    """(remove actions, rewritten files to add) for a commit (see `commit`)."""
    import pyarrow.compute as pc

    removes, rewritten = [], []
    uri = table_uri(output, table)
    by_stage = {}
    for c in changes:
        for s in (c.replaces or (c.stage,)):
            by_stage[s] = c
    # Who wrote what, once per commit (not once per file: that made a commit O(files x videos)).
    runs_of: dict[str, set] = {}  # stage -> the runs its ledger rows name
    videos_of: dict[tuple, set] = {}  # (stage, run) -> the videos whose ledger rows name that run
    for stage, state in ledger.items():
        for video, entries in state.items():
            for r, _ in entries:
                runs_of.setdefault(stage, set()).add(r)
                videos_of.setdefault((stage, r), set()).add(video)
    videos = {id(c): set(c.videos) for c in changes}
    for row in _add_actions(dt):
        run, stage = parse_part(row["path"])
        if run is None:
            raise CorruptTable(
                f"{uri}: the table holds {row['path']}, a file reelbeam did not write (another tool rewrote the table, "
                "e.g. OPTIMIZE/compaction): which run and stage its rows come from is lost, so a commit cannot "
                "replace them; write this output again (or restore the table's earlier version)"
            )
        change = by_stage.get(stage)
        if change is None:
            continue
        if run == run_id:
            if table == LEDGER and PENDING in row["path"]:
                removes.append(_remove_action(row))  # this run's intent rows, now final
            continue
        if change.whole:
            removes.append(_remove_action(row))
            continue
        if run not in runs_of.get(stage, ()):
            removes.append(_remove_action(row))  # an orphan: no ledger row names its run
            continue
        redone = videos[id(change)] & videos_of.get((stage, run), set())
        lo, hi = row.get("min.video_id"), row.get("max.video_id")
        if lo is not None and hi is not None:
            redone = {v for v in redone if lo <= v <= hi}
        if not redone:
            continue
        path = _full(uri, row["path"])
        data = read_file(path, table)
        kept = data.filter(pc.invert(pc.is_in(data.column("video_id"), value_set=pa.array(sorted(redone)))))
        if kept.num_rows == data.num_rows:
            continue
        removes.append(_remove_action(row))
        if kept.num_rows:
            rewritten.append(write_data_file(uri, table, kept, run, stage))
    return removes, rewritten


def write_data_file(uri: str, table: str, data: pa.Table, run_id: str, stage: str, codec: str = "zstd",
                    kind: str = "") -> str:
    """Write `data` (the table's schema) as one new data file of the table folder; returns its path.
    The file is complete before it has its final name (local: rename; object stores publish on close)."""
    path = _full(uri, part_name(run_id, stage, kind))
    with open_data_file(path) as f:
        pq.write_table(data.cast(schema_for(table)), f, compression=None if codec == "none" else codec,
                       write_page_checksum=True)
    return path


class open_data_file:
    """A writable binary file that appears under `path` only once closed without error: locally it
    is written as `.<name>.inprogress` and renamed; on object stores the upload is the publish."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fs, self._p = _fs(path)
        self._local = "://" not in path or path.startswith("file://")
        self._tmp = posixpath.join(posixpath.dirname(self._p), "." + posixpath.basename(self._p) + INPROGRESS)

    def __enter__(self):
        self._fs.makedirs(posixpath.dirname(self._p), exist_ok=True)
        self._file = self._fs.open(self._tmp if self._local else self._p, "wb")
        return self._file

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            try:
                self._file.close()
                if self._local:
                    os.remove(self._tmp)
            except OSError:
                pass
            return False
        self._file.close()
        if self._local:
            os.replace(self._tmp, self._p)
        return False


def ledger_rows(stage: str, run_id: str, settings: str, processed: Iterable[str], failed: Iterable[str] = (),
                pending: bool = False) -> list[dict]:
    """The ledger rows of a stage's videos: 'ok' or 'failed', or 'pending' for the intent that a
    commit writes first (see `commit_stages`)."""
    failed = set(failed)
    t = datetime.datetime.now(datetime.UTC)
    return [
        {"video_id": v, "stage": stage, "run_id": run_id,
         "status": "pending" if pending else ("failed" if v in failed else "ok"), "settings": settings, "time": t}
        for v in sorted(set(processed))
    ]


@dataclasses.dataclass
class StageCommit:
    """What one stage of a run hands to `commit_stages`.

    writes: the tables the stage writes (each is committed, files or not: its videos' earlier
      rows are replaced either way); files: table -> its new data files.
    processed / failed: the videos it handled in this run / those of them that failed.
    """

    stage: str
    settings: str
    writes: Sequence[str]
    files: Mapping[str, Sequence[str]]
    processed: Iterable[str]
    failed: Iterable[str] = ()
    replaces: Sequence[str] = ()
    whole: bool = False


def commit_stages(output: str, run_id: str, parts: Sequence[StageCommit], codec: str = "zstd") -> list[CommitResult]:
    """Commit stages of one run that finished together (the decode pass and the stages inside it,
    or one later stage), in this order:

    1. intent: 'pending' ledger rows for every processed video (appended), so that a run that dies
       before step 3 leaves a ledger that says the videos are not done and which run may hold rows;
    2. each table the stages write, one commit each (replacing what the new rows supersede);
    3. the ledger: the final 'ok'/'failed' rows replace the intent and the videos' earlier rows.

    A stage is done for a video only once step 3 is committed. Every step is skipped when this run
    made it already, so the whole sequence can be retried after a failure at any point."""
    uri = table_uri(output, LEDGER)
    stages = [p.stage for p in parts]
    app = "+".join(stages)
    results = []
    check_lease(output, run_id)
    _fault("before-intent")
    intent = [Change(p.stage, [write_data_file(uri, LEDGER, _ledger_table(
        ledger_rows(p.stage, run_id, p.settings, p.processed, pending=True)), run_id, p.stage, codec, PENDING)])
        for p in parts if set(p.processed)]
    if intent:
        results.append(commit(output, LEDGER, intent, run_id=run_id, app=f"intent:{app}", append_only=True))
    _fault("after-intent")
    state = ledger_state(output, {s for p in parts for s in (p.replaces or (p.stage,))})
    tables = [t for t in TABLES if any(t in p.writes for p in parts)]
    for i, table in enumerate(tables):
        changes = [Change(p.stage, p.files.get(table, ()), set(p.processed), p.replaces, p.whole)
                   for p in parts if table in p.writes]
        results.append(commit(output, table, changes, run_id=run_id, app=app, ledger=state))
        if i == 0:
            _fault("between-tables")
    _fault("before-ledger")
    final = []
    for p in parts:
        rows = ledger_rows(p.stage, run_id, p.settings, p.processed, p.failed)
        paths = [write_data_file(uri, LEDGER, _ledger_table(rows), run_id, p.stage, codec)] if rows else []
        final.append(Change(p.stage, paths, {r["video_id"] for r in rows}, p.replaces, p.whole))
    results.append(commit(output, LEDGER, final, run_id=run_id, app=app, ledger=state))
    _fault("after-ledger")
    return results


def check_lease(output: str, run_id: str) -> None:
    """LeaseLost when another run holds the output's lease: this run was taken for dead (its
    heartbeat stopped) and must not commit. No lease file: a caller outside `reelbeam run`."""
    from reelbeam.store.lease import LeaseLost, read_holder

    holder = read_holder(output, storage_options(table_uri(output, LEDGER)))
    if holder is not None and holder.get("run_id") not in (None, run_id):
        raise LeaseLost(output, run_id, holder)


def _ledger_table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=schema_for(LEDGER))


def fault_point(point: str) -> None:
    """Tests of crash safety only: REELBEAM_FAULT=kill:<point> kills this process (SIGKILL) at
    `point`; killonce:<point>:<marker file> does so only where the marker does not exist yet
    (creating it first: one lost worker, its tasks then rerun elsewhere); sleep:<point>:<seconds>
    pauses there (so a test can act meanwhile)."""
    spec = os.environ.get("REELBEAM_FAULT")
    if not spec:
        return
    action, _, rest = spec.partition(":")
    where, _, arg = rest.partition(":")
    if where != point:
        return
    if action == "killonce":
        try:
            os.close(os.open(arg, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
        action = "kill"
    LOG.warning("REELBEAM_FAULT: %s at %s", action, point)
    if action == "kill":
        import signal

        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "sleep":
        time.sleep(float(arg or 5))


_fault = fault_point


def history_of_run(output: str, run_id: str) -> dict[str, list[int]]:
    """table -> the versions that run `run_id` committed (from each table's commit info)."""
    out: dict[str, list[int]] = {}
    for table in TABLES:
        dt = open_table(output, table)
        if dt is None:
            continue
        for entry in dt.history(limit=200):
            if entry.get("reelbeam.run_id") == run_id:
                out.setdefault(table, []).append(int(entry["version"]))
    return {t: sorted(v) for t, v in out.items()}


def history_rows(output: str, run_id: str) -> dict[str, int]:
    """table -> rows run `run_id` added to it (its commits' records; the ledger's intent rows not
    counted); tables the run did not commit to are left out."""
    out: dict[str, int] = {}
    for table in TABLES:
        dt = open_table(output, table)
        if dt is None:
            continue
        for entry in dt.history(limit=200):
            if entry.get("reelbeam.run_id") == run_id:
                out[table] = out.get(table, 0) + int(entry.get("reelbeam.rows") or 0)
    return out


def legacy_files(output: str, table: str) -> list[PartFile]:
    """The table's Parquet files in the layout of reelbeam versions before Delta tables."""
    from reelbeam.store import legacy

    return legacy.part_files(output, table)


def read_manifest(output: str, run_id: str) -> dict | None:
    fs, root = _fs(output)
    path = posixpath.join(root, "_runs", f"{run_id}.json")
    if not fs.exists(path):
        return None
    with fs.open(path, "r") as f:
        return json.load(f)


def version_as_of_run(output: str, table: str, run_id: str, dt=None) -> int | None:
    """The table's version when run `run_id` ended (see `reelbeam.api.table_version`)."""
    dt = dt if dt is not None else open_table(output, table)
    if dt is None:
        return None
    manifest = read_manifest(output, run_id)
    if manifest is None:
        raise ValueError(f"no run {run_id!r} in {output!r} (no _runs/{run_id}.json)")
    committed = (manifest.get("table_versions") or {}).get(table)
    if committed is not None:
        return int(committed)
    mine = history_of_run(output, run_id).get(table)
    if mine:
        return mine[-1]
    end = manifest.get("finished") or manifest.get("started")
    end_ms = datetime.datetime.fromisoformat(end).timestamp() * 1000 if end else float("inf")
    before = [int(h["version"]) for h in dt.history() if h.get("timestamp", 0) <= end_ms]
    return max(before) if before else None


# ------------------------------------------------------------------------------------------------
# Upkeep


def check_file(path: str, table: str) -> str | None:
    """None when every page of the committed file reads, else what is wrong (one line)."""
    import pyarrow.dataset as ds

    fs, p = _fs(path)
    try:
        for _ in ds.dataset([p], schema=schema_for(table), format=parquet_format(), filesystem=fs).to_batches(batch_size=65536):
            pass
    except (OSError, pa.ArrowException) as e:
        return f"{path}: {_first_line(e)}"
    return None


def repair(output: str, run_id: str, dry_run: bool = False) -> list[str]:
    """Take unreadable committed files out of the tables (`reelbeam repair`). Each bad file belongs
    to a run and a stage (its name); that whole unit of work is taken out: every file of that run
    and stage in every table, and the ledger rows naming them, so that --skip-existing redoes those
    videos and no reader sees part of them. The ledger goes first: a repair that is stopped half-way
    leaves rows of no ledger entry, which the stage's next commit removes. Returns one line per bad
    file."""
    from deltalake.transaction import CommitProperties, Transaction

    bad, units = [], set()
    for table in TABLES:
        for part in active_files(output, table):
            problem = check_file(part.path, table)
            if problem:
                bad.append(problem)
                units.add((part.run_id, part.stage, None if part.stage else part.path))
    if dry_run or not bad:
        return bad
    order = [LEDGER] + [t for t in TABLES if t != LEDGER]
    for table in order:
        dt = open_table(output, table)
        if dt is None:
            continue
        removes = []
        for row in _add_actions(dt):
            run, stage = parse_part(row["path"])
            path = _full(table_uri(output, table), row["path"])
            if (run, stage, None) in units and stage is not None or (None, None, path) in units:
                removes.append(_remove_action(row))
        if removes:
            props = CommitProperties(app_transactions=[Transaction(f"reelbeam:{run_id}:repair", 1)],
                                     custom_metadata={"reelbeam.run_id": run_id, "reelbeam.stages": "repair",
                                                      "reelbeam.rows": "0"})
            dt.create_write_transaction(removes, "append", schema_for(table), commit_properties=props)
    return bad


def vacuum(output: str, retention_hours: int = 168, dry_run: bool = False) -> dict[str, list[str]]:
    """Delete the data files no table version newer than `retention_hours` needs (Delta's vacuum):
    files a commit replaced or removed, and files of runs that never committed them. Time travel to
    versions older than the retention stops working. Returns table -> files (deleted or, with
    dry_run, that would be). In-progress files (hidden) of a running writer are left alone."""
    out = {}
    for table in TABLES:
        dt = open_table(output, table)
        if dt is None:
            continue
        # full: also the files no version ever named (a killed run's), not only those a commit removed.
        files = dt.vacuum(retention_hours=int(retention_hours), dry_run=dry_run, enforce_retention_duration=False,
                          full=True)
        out[table] = sorted(files)
    return out
