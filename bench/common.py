"""Shared by the bench scripts: where to find the test helpers, and how results are reported."""

import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
for path in (os.path.join(HERE, "..", "tests"), os.path.join(HERE, "..")):
    if path not in sys.path:
        sys.path.insert(0, path)


def report(summary: dict, path: str) -> int:
    """Write the JSON summary to `path` and print it (the bench's output)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps(summary, indent=1))
    return 0


def bench_parser(doc: str, name: str):
    """argparse parser with the flags every bench takes: --workdir (generated corpus) and --out."""
    import argparse

    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default=os.path.join(HERE, "out", f"{name}_corpus"))
    parser.add_argument("--out", default=os.path.join(HERE, "out", f"{name}.json"))
    return parser


def best_of(fn, repeat: int = 3):
    """(fn()'s result, its best wall time in seconds over `repeat` calls)."""
    best, out = None, None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t
        best = dt if best is None or dt < best else best
    return out, best
