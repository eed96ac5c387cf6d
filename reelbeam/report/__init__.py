"""`reelbeam report OUTPUT`: a static HTML report of a run, from its tables alone.

See docs/report.md. `main(argv)` is the command; `write_report(output, out)` the function.
"""

from reelbeam.report.html import main, write_report

__all__ = ["main", "write_report"]
