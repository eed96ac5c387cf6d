"""The docs written from the code, so they cannot drift from it: docs/tables.md and `reelbeam
schemas` (from the schemas and the stage registry), the flag reference of docs/cli.md (from the
`reelbeam run` parser), and in docs/architecture.md the package layout (each package and module
with the first line of its docstring) and the decode pass's frame consumers.

The layout and the consumer list read the source with `ast` and import nothing (neither torch nor
Beam). `scripts/update_docs.py` writes every part; tests fail until it has been run after a change.
"""

from __future__ import annotations

import argparse
import ast
import os

PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

LAYOUT_MARKERS = ("<!-- package layout: generated -->\n", "<!-- end of package layout -->")
CONSUMER_MARKERS = ("<!-- decode-pass consumers: generated -->\n", "<!-- end of decode-pass consumers -->")


def _first_line(doc: str | None) -> str:
    """The docstring's first sentence (up to the first blank line), on one line."""
    if not doc:
        return ""
    paragraph = " ".join(doc.strip().split("\n\n")[0].split())
    end = paragraph.find(". ")
    return paragraph if end < 0 else paragraph[: end + 1]


def _parse(path: str) -> ast.Module:
    with open(path, encoding="utf-8") as f:
        return ast.parse(f.read(), filename=path)


def _modules(folder: str) -> list[str]:
    return sorted(n for n in os.listdir(folder) if n.endswith(".py") and n != "__init__.py")


def _packages() -> list[str]:
    return sorted(n for n in os.listdir(PACKAGE)
                  if os.path.isfile(os.path.join(PACKAGE, n, "__init__.py")))


def layout_markdown() -> str:
    """Every package of reelbeam and its modules, each with its docstring's first sentence."""
    lines = ["```"]
    top = [m for m in _modules(PACKAGE)]
    lines.append(f"reelbeam/  {_first_line(ast.get_docstring(_parse(os.path.join(PACKAGE, '__init__.py'))))}")
    for name in top:
        lines.append(f"  {name:<24}{_first_line(ast.get_docstring(_parse(os.path.join(PACKAGE, name))))}")
    for package in _packages():
        folder = os.path.join(PACKAGE, package)
        doc = _first_line(ast.get_docstring(_parse(os.path.join(folder, "__init__.py"))))
        lines.append("")
        lines.append(f"reelbeam/{package}/  {doc}")
        for name in _modules(folder):
            lines.append(f"  {name:<24}{_first_line(ast.get_docstring(_parse(os.path.join(folder, name))))}")
    lines.append("```")
    return "\n".join(lines) + "\n"


def _abstract(node: ast.ClassDef) -> bool:
    """Whether the class leaves a method to its subclasses (a body that raises NotImplementedError)."""
    for f in node.body:
        if isinstance(f, ast.FunctionDef) and len(f.body) == 1 and isinstance(f.body[0], ast.Raise):
            exc = f.body[0].exc
            if isinstance(exc, ast.Name) and exc.id == "NotImplementedError":
                return True
    return False


def _is_consumer(node: ast.ClassDef) -> bool:
    """A decode-pass consumer: a class named *Consumer that defines `consume` or inherits from one
    (bases that leave methods to subclasses are not listed)."""
    if not node.name.endswith("Consumer") or _abstract(node):
        return False
    if any(isinstance(b, ast.Name) and b.id == "Protocol" for b in node.bases):
        return False
    defines = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
    inherits = any(isinstance(b, ast.Name) and b.id.endswith("Consumer") for b in node.bases)
    return "consume" in defines or inherits


def consumers() -> list[tuple[str, str, str]]:
    """(class name, module path under reelbeam/, docstring's first sentence) of every consumer."""
    found = []
    for root, _dirs, files in os.walk(PACKAGE):
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            path = os.path.join(root, name)
            for node in _parse(path).body:
                if isinstance(node, ast.ClassDef) and _is_consumer(node):
                    rel = os.path.relpath(path, os.path.dirname(PACKAGE))
                    found.append((node.name, rel, _first_line(ast.get_docstring(node))))
    return sorted(found, key=lambda c: (c[1], c[0]))


def consumers_markdown() -> str:
    """The decode pass's consumers as a Markdown table."""
    lines = ["| consumer | module | what it takes from each frame |", "| --- | --- | --- |"]
    lines += [f"| `{name}` | `{module}` | {doc.replace('|', '/')} |" for name, module, doc in consumers()]
    return "\n".join(lines) + "\n"


def replace_section(doc: str, markers: tuple[str, str], text: str) -> str:
    """`doc` with the text between `markers` replaced by `text`."""
    begin, end = markers
    start = doc.index(begin) + len(begin)
    return doc[:start] + text + doc[doc.index(end, start):]


def section(doc: str, markers: tuple[str, str]) -> str:
    begin, end = markers
    start = doc.index(begin) + len(begin)
    return doc[start: doc.index(end, start)]


def writers_of(table: str) -> list[str]:
    """'stage (how to turn it on)' for every registered stage that writes `table`."""
    from reelbeam.stages import REGISTRY

    return [f"{c.name} ({c.enabled_by})" for c in REGISTRY if table in c.writes]


def tables_markdown() -> str:
    """docs/tables.md, generated from the schemas and the stage registry (a test keeps it in step)."""
    from reelbeam.schemas.tables import SCHEMA_VERSION, TABLES, field_docs

    out = [
        "# Tables",
        "",
        "Generated by `reelbeam schemas --markdown` from `reelbeam/schemas/tables.py` and the stage registry; do not edit.",
        f"Schema version {SCHEMA_VERSION} (in each file's Parquet metadata as `reelbeam.schema_version`).",
        "Each table is a Delta Lake table, `OUTPUT/<table>/` (data files `part-<run id>-<stage>-<uuid>.parquet` and",
        "the `_delta_log/` that says which of them are committed; docs/analytics.md says how to read them).",
        "Frame ranges are inclusive; times are seconds from the stream's PTS.",
        "",
    ]
    for name, schema in TABLES.items():
        writers = writers_of(name)
        if name == "failures":
            writers = ["every stage"]
        elif name == "stage_runs":
            writers = ["every stage, once its files are final"]
        written = f"Written by: {'; '.join(writers)}." if writers else "Not written yet: the contract of a stage to come."
        out += [f"## {name}", "", schema.metadata[b"doc"].decode() + ".", "", written, "",
                "| column | type | meaning |", "| --- | --- | --- |"]
        out += [f"| `{n}` | `{t}` | {d} |" for n, t, d in field_docs(name)]
        out.append("")
    return "\n".join(out)


def schemas_text() -> str:
    """`reelbeam schemas`: every table with its meaning, writers and columns (nothing truncated)."""
    from reelbeam.schemas.tables import TABLES, field_docs

    lines = []
    for name, schema in TABLES.items():
        writers = writers_of(name) or (["every stage"] if name in ("failures", "stage_runs") else [])
        lines.append(f"{name}: {schema.metadata[b'doc'].decode()}")
        lines.append(f"  written by: {'; '.join(writers) if writers else 'nothing yet (the contract of a stage to come)'}")
        for field, type_, doc in field_docs(name):
            lines.append(f"  {field:<22} {type_:<32} {doc}")
        lines.append("")
    return "\n".join(lines)


def flags_markdown(parser: argparse.ArgumentParser) -> str:
    """The flag reference of docs/cli.md, generated from `reelbeam run`'s parser
    (`reelbeam.pipelines.cli.run_parser()`; a test keeps it in step): one table per heading of
    `reelbeam run --help`, every flag with its default."""
    out = []
    for group in parser._action_groups:
        actions = [a for a in group._group_actions if a.help is not argparse.SUPPRESS and a.option_strings and a.dest != "help"]
        if not actions:
            continue
        out += [f"### {group.title}", "", "| flag | default | meaning |", "| --- | --- | --- |"]
        for action in actions:
            text = action.help or ""
            default = "-"
            marker = " (default: "
            if text.endswith(")") and marker in text:
                text, default = text[: text.rindex(marker)], text[text.rindex(marker) + len(marker) : -1]
            elif action.const is True and action.default is False:
                default = "off"
            flag = " / ".join(f"`{s}`" for s in action.option_strings)
            if action.choices:
                flag += f" `{{{','.join(map(str, action.choices))}}}`"
            out.append(f"| {flag} | {default} | {text.replace('|', '&#124;')} |")
        out.append("")
    return "\n".join(out)
