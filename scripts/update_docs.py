"""Regenerate the generated parts of the docs from the code: docs/tables.md (schemas and the stage
registry), the stage graph, the decode-pass consumers and the package layout in
docs/architecture.md, and the flag reference in docs/cli.md. The tests
fail until this has been run after a change to a schema, a stage or a flag.

Usage: .venv/bin/python scripts/update_docs.py
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from reelbeam.pipelines import code_docs
from reelbeam.pipelines.cli import flags_markdown, tables_markdown
from reelbeam.stages import graph_markdown


def replace_section(path: str, begin: str, end: str, text: str) -> None:
    with open(path, encoding="utf-8") as f:
        doc = f.read()
    start = doc.index(begin) + len(begin)
    doc = doc[:start] + text + doc[doc.index(end, start) :]
    with open(path, "w", encoding="utf-8") as f:
        f.write(doc)


def main() -> int:
    docs = os.path.join(ROOT, "docs")
    with open(os.path.join(docs, "tables.md"), "w", encoding="utf-8") as f:
        f.write(tables_markdown())
    replace_section(os.path.join(docs, "architecture.md"), "<!-- stage graph: generated -->\n", "<!-- end of stage graph -->", graph_markdown())
    path = os.path.join(docs, "architecture.md")
    with open(path, encoding="utf-8") as f:
        doc = f.read()
    doc = code_docs.replace_section(doc, code_docs.LAYOUT_MARKERS, code_docs.layout_markdown())
    doc = code_docs.replace_section(doc, code_docs.CONSUMER_MARKERS, code_docs.consumers_markdown())
    with open(path, "w", encoding="utf-8") as f:
        f.write(doc)
    replace_section(os.path.join(docs, "cli.md"), "<!-- flags: generated -->\n", "<!-- end of flags -->", flags_markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
