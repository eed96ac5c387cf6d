"""Every table of an output folder as comparable rows, and a comparison that lets model floats move.

Two runs of the same model on the same inputs agree only to float32 rounding once anything about
the arithmetic differs: another batch composition (RunInference batches across videos), another
thread count, another process. `assert_same_output` compares every non-float value exactly and
floats (also inside lists and JSON documents) to a relative 1e-4 and an absolute 1e-6.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable

import pyarrow.parquet as pq

from reelbeam.schemas.tables import TABLES
from reelbeam.store.tables import active_files

REL, ABS = 1e-4, 1e-6


def _key(row: dict) -> tuple:
    """What orders rows: every value but floats, which may differ in their last bits."""
    return tuple(sorted((k, repr(v)) for k, v in row.items() if not _has_float(v)))


def _has_float(v) -> bool:
    return isinstance(v, float) or (isinstance(v, list) and any(isinstance(x, float) for x in v))


def snapshot(out: str, skip_columns=(), edit: Callable[[str, dict], dict] | None = None, skip_tables=()) -> dict:
    """{"tables": {name: [row dicts in a stable order]}, "json": {file: document}}."""
    tables = {}
    for name in TABLES:
        if name in skip_tables:
            continue
        rows = []
        for part in active_files(out, name):
            for row in pq.read_table(part.path).to_pylist():
                row = {k: v for k, v in row.items() if k not in skip_columns}
                rows.append(edit(name, row) if edit else row)
        if rows:
            tables[name] = sorted(rows, key=_key)
    folder = os.path.join(out, "json")
    docs = {p: json.load(open(os.path.join(folder, p))) for p in sorted(os.listdir(folder))} if os.path.isdir(folder) else {}
    return {"tables": tables, "json": docs}


def differences(got, want, where: str = "") -> list[str]:
    """Where two values differ beyond float rounding (empty when they agree)."""
    if isinstance(want, float) and isinstance(got, (float, int)) and not isinstance(got, bool):
        if math.isnan(want) and math.isnan(got):
            return []
        return [] if math.isclose(got, want, rel_tol=REL, abs_tol=ABS) else [f"{where}: {got!r} != {want!r}"]
    if isinstance(want, dict) and isinstance(got, dict):
        if got.keys() != want.keys():
            return [f"{where}: keys {sorted(got)} != {sorted(want)}"]
        return [d for k in want for d in differences(got[k], want[k], f"{where}.{k}")]
    if isinstance(want, (list, tuple)) and isinstance(got, (list, tuple)):
        if len(got) != len(want):
            return [f"{where}: {len(got)} items != {len(want)}"]
        return [d for i, (g, w) in enumerate(zip(got, want)) for d in differences(g, w, f"{where}[{i}]")]
    return [] if got == want else [f"{where}: {got!r} != {want!r}"]


def assert_same_output(got: dict, want: dict) -> None:
    assert got["tables"].keys() == want["tables"].keys()
    for table in want["tables"]:
        diff = differences(got["tables"][table], want["tables"][table], table)
        assert not diff, "\n".join(diff[:10])
    diff = differences(got["json"], want["json"], "json")
    assert not diff, "\n".join(diff[:10])
