"""Regenerate the generated parts of the docs from the code: docs/tables.md (schemas and the stage
registry), the stage graph, the decode-pass consumers and the package layout in
docs/architecture.md, the flag reference in docs/cli.md, and the sample's figures in docs/report.md
(from docs/sample_run.json). The tests fail until this has been run after a change to a schema, a
stage, a module, a flag or the stored figures.

Usage: .venv/bin/python scripts/update_docs.py [--sample OUTPUT]
  --sample OUTPUT: first store the figures of OUTPUT, a run of the bundled sample (./run_local.sh
  writes ./output), in docs/sample_run.json.
"""

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from reelbeam.pipelines import code_docs
from reelbeam.pipelines.cli import run_parser
from reelbeam.pipelines.code_docs import flags_markdown, tables_markdown
from reelbeam.report.figures import SAMPLE_FIGURES, figures_line, modelscope_example, run_figures
from reelbeam.stages import graph_markdown


def replace_section(path: str, begin: str, end: str, text: str) -> None:
    with open(path, encoding="utf-8") as f:
        doc = f.read()
    start = doc.index(begin) + len(begin)
    doc = doc[:start] + text + doc[doc.index(end, start) :]
    with open(path, "w", encoding="utf-8") as f:
        f.write(doc)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sample", metavar="OUTPUT", help="store the figures of this run of the sample first")
    args = parser.parse_args()
    docs = os.path.join(ROOT, "docs")
    if args.sample:
        with open(os.path.join(docs, SAMPLE_FIGURES), "w", encoding="utf-8") as f:
            json.dump(run_figures(args.sample), f, indent=1)
            f.write("\n")
    with open(os.path.join(docs, SAMPLE_FIGURES), encoding="utf-8") as f:
        figures = json.load(f)
    report = os.path.join(docs, "report.md")
    replace_section(report, "<!-- sample figures: generated -->\n", "<!-- end of sample figures -->", figures_line(figures))
    replace_section(report, "<!-- modelscope example: generated -->\n", "<!-- end of modelscope example -->",
                    modelscope_example(figures))
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
    replace_section(os.path.join(docs, "cli.md"), "<!-- flags: generated -->\n", "<!-- end of flags -->", flags_markdown(run_parser()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
