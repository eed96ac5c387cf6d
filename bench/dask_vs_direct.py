"""`--runner dask` against the DirectRunner on the same inputs, as JSON.

    .venv/bin/python bench/dask_vs_direct.py   # ~4 min on 2 cores; bench/out/dask_vs_direct.json

(Not bench/dask.py: with bench/ on sys.path, as the tests that import the benches put it, that
name shadowed the dask package in Dask worker processes.)

Two corpora, each run by `reelbeam run` (the default stages) on the DirectRunner and on a local
Dask cluster (`--runner dask`: a LocalCluster of one single-threaded worker per core, made and
closed by the run), alternated `--repeat` times; whole-process wall seconds, medians, and the ratio
dask / direct per repeat:

- clips: two 4 s clips cut from the bundled sample (what issue #24 timed: 3 min 58 s vs 54 s);
- bad_inputs: a 4 s clip and the tests' broken files beside it (tests/synthetic.bad_inputs: empty,
  random bytes, text, truncated, audio only, a still image), each of which must end in `failures`
  (issue #24 timed a 16-file corpus of this kind: >1,175 s on Dask vs ~30 s).
"""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from common import bench_parser, report  # noqa: E402  (also puts tests/ and the repo on sys.path)

ROOT = os.path.dirname(HERE)
SAMPLE = os.path.join(ROOT, "samples", "sintel_trailer_30s.mp4")
REELBEAM = [sys.executable, "-m", "reelbeam"]


def cut(src: str, dst: str, start: float, seconds: float) -> None:
    import av

    with av.open(src) as inp, av.open(dst, "w") as out:
        vin = inp.streams.video[0]
        vout = out.add_stream("libx264", rate=vin.average_rate)
        vout.width, vout.height, vout.pix_fmt = vin.width, vin.height, "yuv420p"
        inp.seek(int(start / vin.time_base), stream=vin)
        for frame in inp.decode(vin):
            t = float(frame.pts * vin.time_base)
            if t < start:
                continue
            if t >= start + seconds:
                break
            for packet in vout.encode(frame.reformat(format="yuv420p")):
                out.mux(packet)
        for packet in vout.encode():
            out.mux(packet)


def corpora(workdir: str) -> dict[str, str]:
    import synthetic

    clips = os.path.join(workdir, "clips")
    if not os.path.isdir(clips):
        os.makedirs(clips)
        cut(SAMPLE, os.path.join(clips, "a.mp4"), 2.0, 4.0)
        cut(SAMPLE, os.path.join(clips, "b.mp4"), 15.0, 4.0)
    bad = os.path.join(workdir, "bad_inputs")
    if not os.path.isdir(bad):
        os.makedirs(bad)
        good = os.path.join(bad, "good.mp4")
        cut(SAMPLE, good, 5.0, 4.0)
        synthetic.bad_inputs(bad, good)
    return {"clips": clips, "bad_inputs": bad}


def timed(args: list[str]) -> float:
    t = time.perf_counter()
    done = subprocess.run(REELBEAM + args, check=False, cwd=ROOT, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if done.returncode not in (0, 1):  # 1: some videos failed, as the bad-input corpus must
        raise SystemExit(f"reelbeam {' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return dt


def main() -> int:
    parser = bench_parser(__doc__, "dask_vs_direct")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    summary = {"cores": os.cpu_count(), "repeat": args.repeat}
    for name, folder in corpora(args.workdir).items():
        runs = {"direct": [], "dask": []}
        for _ in range(args.repeat):
            for runner in ("direct", "dask"):
                out = tempfile.mkdtemp(prefix=f"dask-bench-{runner}-")
                try:
                    flags = ["--runner", "dask"] if runner == "dask" else []
                    runs[runner].append(timed(["run", "--input", folder, "--output", out, *flags]))
                finally:
                    shutil.rmtree(out, ignore_errors=True)
        ratios = [d / r for d, r in zip(runs["dask"], runs["direct"])]
        summary[name] = {
            "direct_s": [round(x, 1) for x in runs["direct"]], "dask_s": [round(x, 1) for x in runs["dask"]],
            "direct_median_s": round(statistics.median(runs["direct"]), 1),
            "dask_median_s": round(statistics.median(runs["dask"]), 1),
            "dask_over_direct": [round(x, 2) for x in ratios],
        }
    return report(summary, args.out)


if __name__ == "__main__":
    sys.exit(main())
