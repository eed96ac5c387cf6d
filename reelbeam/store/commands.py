"""`reelbeam migrate OUTPUT` and `reelbeam vacuum OUTPUT`: upkeep of an output's tables."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n(see `{self.prog} --help`)\n")


def migrate_main(argv: Sequence[str]) -> int:
    parser = _Parser(prog="reelbeam migrate", description=(
        "Convert an output written by a reelbeam before Delta tables (plain Parquet files and a stage_runs "
        "ledger of Parquet files) into Delta tables, in place: each table gets a log that adds exactly the files "
        "that version had committed (no data is copied). Runs can then write into it again."))
    parser.add_argument("output", help="the output folder or URL")
    args = parser.parse_args(argv)
    from reelbeam.store import legacy

    if not legacy.is_legacy(args.output):
        print(f"reelbeam migrate: {args.output!r} holds no tables in the earlier layout; nothing to do")
        return 0
    from reelbeam.store import lease
    from reelbeam.store.tables import new_run_id

    try:
        with lease.acquire(args.output, new_run_id()):  # one migration (or run) at a time
            added = legacy.migrate(args.output)
    except lease.LeaseError as e:
        print(f"reelbeam migrate: error: {e}", file=sys.stderr)
        return 3
    except ValueError as e:
        print(f"reelbeam migrate: error: {e}", file=sys.stderr)
        return 2
    for table, n in added.items():
        print(f"  {table:<18} {n:>6} files committed")
    print(f"reelbeam migrate: {args.output} now holds Delta tables; files that were never committed stay out of "
          "them (`reelbeam vacuum` deletes them)")
    return 0


def vacuum_main(argv: Sequence[str]) -> int:
    parser = _Parser(prog="reelbeam vacuum", description=(
        "Delete the data files that no table version within the retention needs: files a later commit "
        "replaced (a re-run, --overwrite) and files of runs that never committed them. Readers of the Delta tables "
        "never see such files; plain Parquet globs over OUTPUT/<table>/*.parquet do, until they are vacuumed. "
        "Time travel (reelbeam.read(..., version=)) to versions older than the retention stops working."))
    parser.add_argument("output", help="the output folder or URL")
    parser.add_argument("--retention-hours", type=int, default=168,
                        help="keep what versions of the last H hours need, in whole hours (default: 168, one week)")
    parser.add_argument("--dry-run", action="store_true", help="list the files, delete nothing")
    args = parser.parse_args(argv)
    if args.retention_hours < 0:
        parser.error(f"--retention-hours must be >= 0, got {args.retention_hours}")
    from reelbeam.store import lease
    from reelbeam.store.tables import new_run_id, vacuum

    try:
        # A run writing meanwhile would lose files it has written and not committed yet.
        with lease.acquire(args.output, f"{new_run_id()}"):
            files = vacuum(args.output, args.retention_hours, args.dry_run)
    except lease.LeaseError as e:
        print(f"reelbeam vacuum: error: {e}", file=sys.stderr)
        return 3
    verb = "would delete" if args.dry_run else "deleted"
    total = 0
    for table, paths in files.items():
        if paths:
            print(f"  {table:<18} {verb} {len(paths)} files")
        total += len(paths)
    print(f"reelbeam vacuum: {verb} {total} files under {args.output}")
    return 0


def repair_main(argv: Sequence[str]) -> int:
    parser = _Parser(prog="reelbeam repair", description=(
        "Read every committed data file of an output's tables and take the unreadable ones (truncated, corrupt "
        "pages) out of the tables, with the rest of the run and stage that wrote them and their ledger rows, so that "
        "`reelbeam run ... --skip-existing` redoes those videos. The earlier table versions keep the files "
        "(time travel) until `reelbeam vacuum`."))
    parser.add_argument("output", help="the output folder or URL")
    parser.add_argument("--dry-run", action="store_true", help="only list the unreadable files")
    args = parser.parse_args(argv)
    from reelbeam.store import lease
    from reelbeam.store.tables import CorruptTable, new_run_id, repair

    run_id = new_run_id()
    try:
        with lease.acquire(args.output, run_id):
            bad = repair(args.output, run_id, args.dry_run)
    except lease.LeaseError as e:
        print(f"reelbeam repair: error: {e}", file=sys.stderr)
        return 3
    except CorruptTable as e:
        print(f"reelbeam repair: error: {e} (a table's log is damaged: restore OUTPUT/<table>/_delta_log from a "
              "backup, or write the output again)", file=sys.stderr)
        return 6
    for line in bad:
        print(f"  unreadable: {line}")
    if not bad:
        print(f"reelbeam repair: every committed file of {args.output} reads")
    elif args.dry_run:
        print(f"reelbeam repair: {len(bad)} unreadable files (nothing changed: --dry-run)")
    else:
        print(f"reelbeam repair: {len(bad)} unreadable files taken out with their run's rows of the same stage; "
              "run again with --skip-existing to redo those videos")
    return 0
