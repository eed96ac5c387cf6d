"""Helpers shared by the ground-truth readers: the error they raise, file listing, number parsing."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator


class TruthFormatError(ValueError):
    """A ground-truth file is missing, unreadable, or not in the format it was read as.

    The message is one line naming the file (and line, where there is one) and what was expected.
    """


def require_path(path: str) -> None:
    if not os.path.exists(path):
        raise TruthFormatError(f"{path}: no such file or directory")


def read_json(path: str):
    require_path(path)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise TruthFormatError(f"{path}: not valid JSON ({e})") from None


def text_lines(path: str) -> Iterator[tuple[int, str]]:
    """(1-based line number, stripped line) for each non-empty line."""
    require_path(path)
    try:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                line = line.strip()
                if line:
                    yield n, line
    except UnicodeDecodeError:
        raise TruthFormatError(f"{path}: not a text file") from None


def ints(path: str, n: int, line: str, count: int | None = None, sep: str | None = None) -> list[int]:
    """The integers of `line` (split on whitespace, or on `sep`); `count` of them when given."""
    parts = [p for p in (line.split(sep) if sep else line.split()) if p.strip()]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise TruthFormatError(f"{path}:{n}: expected integers, got {line!r}") from None
    if count is not None and len(values) != count:
        raise TruthFormatError(f"{path}:{n}: expected {count} integers, got {line!r}")
    return values


def files_in(path: str, suffix: str) -> list[str]:
    """`path` itself if it is a file, else the files in directory `path` ending with `suffix`, sorted."""
    require_path(path)
    if os.path.isfile(path):
        return [path]
    files = sorted(os.path.join(path, f) for f in os.listdir(path) if f.endswith(suffix))
    if not files:
        raise TruthFormatError(f"{path}: no *{suffix} files in this directory")
    return files


def strip_suffixes(name: str, suffixes: tuple[str, ...]) -> str:
    """`name` without the first of `suffixes` it ends with."""
    for s in suffixes:
        if s and name.endswith(s):
            return name[: -len(s)]
    return name
