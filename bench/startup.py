"""Launch to first lines: how long a user at a terminal waits for `reelbeam run` to say something.

    .venv/bin/python bench/startup.py [--repeat 5] [--baseline /path/to/other/checkout]

Runs `python -m reelbeam run --input samples/sintel_trailer_30s.mp4 --output TMP --overwrite` under
a pseudo-terminal (so the run draws what a terminal gets) and stops it once it has what it measures:
- first_line_s: launch to the first output (the listing's result, printed before Beam is imported;
  target under 1.5 s, issue #24; before, the first progress line);
- first_progress_s: launch to the first progress block (`reelbeam: videos ...`), drawn once Beam
  is imported, the run checked and the pipeline built and started.
Median of --repeat launches each (the spread in the JSON). With --baseline, the same figures for
another checkout (its `reelbeam` package on PYTHONPATH), alternated launch by launch with this one
so both see the same machine load. JSON: bench/out/startup.json.
"""

import os
import pty
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from common import bench_parser, report

ROOT = os.path.dirname(HERE)
SAMPLE = os.path.join(ROOT, "samples", "sintel_trailer_30s.mp4")
PROGRESS = b"reelbeam: videos"


def launch(root: str, out: str, timeout: float = 300.0) -> dict:
    """One launch under a pty: seconds to the first line and to the first progress block."""
    main_fd, child_fd = pty.openpty()
    env = {**os.environ, "PYTHONPATH": root, "COLUMNS": "120", "LINES": "30"}
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "reelbeam", "run", "--input", SAMPLE, "--output", out,
                             "--overwrite"], stdin=child_fd, stdout=child_fd, stderr=child_fd, env=env,
                            cwd=root, start_new_session=True)
    os.close(child_fd)
    seen, first_line, first_progress, first_text = b"", None, None, ""
    try:
        while first_progress is None and time.monotonic() - t0 < timeout:
            ready, _, _ = select.select([main_fd], [], [], 1.0)
            if not ready:
                continue
            try:
                data = os.read(main_fd, 65536)
            except OSError:
                break
            if not data:
                break
            now = time.monotonic() - t0
            seen += data
            if first_line is None:  # the first output (a redrawn status line has no newline)
                first_line = now
            if not first_text and (b"\n" in seen or b"\r" in seen[1:]):
                first_text = seen.lstrip(b"\r").replace(b"\r", b"\n").split(b"\n", 1)[0]
                first_text = first_text.replace(b"\x1b[K", b"").decode("utf-8", "replace").strip()
            if PROGRESS in seen:
                first_progress = now
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the launch and the workers it started, nothing else
        except ProcessLookupError:
            pass
        proc.wait()
        os.close(main_fd)
    if not first_text and seen:  # stopped before the first line ended
        first_text = seen.lstrip(b"\r").split(b"\r", 1)[0].split(b"\x1b", 1)[0].decode("utf-8", "replace").strip()
    return {"first_line_s": first_line, "first_progress_s": first_progress, "first_line": first_text}


def summary(runs: list[dict]) -> dict:
    out = {"first_line": runs[-1]["first_line"]}
    for key in ("first_line_s", "first_progress_s"):
        values = [r[key] for r in runs if r[key] is not None]
        out[key] = round(statistics.median(values), 3) if values else None
        out[key.replace("_s", "_all_s")] = [round(v, 3) for v in values]
    return out


def main() -> int:
    parser = bench_parser(__doc__, "startup")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--baseline", default=None, help="another checkout to time the same way")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="reelbeam-startup-")
    roots = {"this": ROOT, **({"baseline": os.path.abspath(args.baseline)} if args.baseline else {})}
    runs: dict[str, list] = {name: [] for name in roots}
    try:
        for i in range(args.repeat):
            for name, root in roots.items():
                runs[name].append(launch(root, os.path.join(work, f"{name}-{i}")))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {"sample": os.path.relpath(SAMPLE, ROOT), "repeat": args.repeat, "cpus": os.cpu_count(),
              **{name: summary(r) for name, r in runs.items()}}
    return report(result, args.out)


if __name__ == "__main__":
    sys.exit(main())
