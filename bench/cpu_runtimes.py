"""Whether OpenVINO pays for TransNetV2 on CPU workers (issue #24 item 6): the whole model (both
heads, fp32) converted with OpenVINO, against reelbeam's own torch paths, one thread per process
as the workers run.

    pip install openvino        # not a reelbeam dependency; the bench exits with a message without it
    .venv/bin/python bench/cpu_runtimes.py [--video samples/sintel_trailer_30s.mp4] [--rounds 7]
    # JSON; bench/results/openvino.json

(Not named openvino.py: bench/ goes on sys.path, and a bench/openvino.py would shadow the package,
tests/test_bench_names.py.)

Each CPU kind runs in its own process: this CPU as it is, and with `ONEDNN_MAX_CPU_ISA=AVX2` (torch's
oneDNN then behaves as on a CPU without AVX-512, VNNI or bf16, such as an AMD EPYC before Zen 4;
whether OpenVINO's CPU plugin follows the variable too is read from its compiled graph's primitive
types, recorded under `openvino_kernels`). In each process:

- the sample's windows are made by the pipeline's own decode consumer (`TransNetV2WindowConsumer`,
  [1, 100, 27, 48, 3] uint8 each) and every window is scored by each contender: torch through
  `TransNetV2ModelHandler(precision=...)` (fp32, the default; bf16 where oneDNN runs it natively;
  int8 where oneDNN runs it), and OpenVINO compiled from `torch.export` of the fused fp32 model with
  `INFERENCE_NUM_THREADS=1` and `INFERENCE_PRECISION_HINT=f32` (its default hint is bf16 on CPUs
  with AMX or AVX512-BF16; that setting is timed too, as `openvino_bf16_hint`);
- parity: max |p - p_torch_fp32| over every frame of the sample for both heads, and the cuts of the
  reference rule (single head > 0.5) and of the default improved rule (both heads and the decode
  pass's frame-difference signals) compared with torch fp32's;
- speed: rounds in which every contender scores the same window once, in turn (A B C ..., A B C
  ...), timed in CPU seconds of the process (wall seconds recorded too: the machine is shared);
  each round gives the ratio torch_time / openvino_time, reported as the median over rounds.

The colour histograms' `torch.bincount` (and the `<<`/`>>` bin arithmetic) have no OpenVINO
conversion; `scatter_histograms` computes the same histograms with a scatter-add (exact: the counts
are small integers in float32), tests/test_cpu_runtimes_bench.py checks it against the original.
The similarity lookups' `as_strided` band converts as it is.

The decision rule (issue #24): keep an OpenVINO path only if the whole model is at least 1.3x
faster than reelbeam's default torch path at parity (probabilities within 1e-5, same cuts). Each
run's `decision` applies it to that CPU kind; the top-level `qualifies` is true only when every CPU
kind run qualifies. Figures and the decision taken: docs/BENCHMARKS.md, "Optional CPU runtimes".
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from common import report  # noqa: E402

ROOT = os.path.dirname(HERE)
SAMPLE = os.path.join(ROOT, "samples", "sintel_trailer_30s.mp4")
NEEDED_RATIO = 1.3
PARITY = 1e-5
NOT_INSTALLED = ("bench/cpu_runtimes.py measures OpenVINO, which is not installed here "
                 "(it is not a reelbeam dependency): `pip install openvino`, then run it again")


def openvino_missing() -> str | None:
    """None when `import openvino` works, else the message to exit with."""
    try:
        import openvino  # noqa: F401
    except ImportError as e:
        return f"{NOT_INSTALLED} ({type(e).__name__}: {e})"
    return None


def scatter_histograms(frames):
    """`_ColorHistograms.histograms` without `torch.bincount` or shifts, which OpenVINO does not
    convert: uint8 [B, T, H, W, 3] -> L2-normalised 512-bin RGB histograms [B, T, 512]. Bin
    r//32 * 64 + g//32 * 8 + b//32 as the original's (r >> 5 << 6) + (g >> 5 << 3) + (b >> 5);
    counts by scatter-add of ones, exact in float32 (at most H * W = 1,296 per bin)."""
    import torch
    import torch.nn.functional as F

    b, t = frames.shape[:2]
    x = torch.div(frames.reshape(b * t, -1, 3).to(torch.int64), 32, rounding_mode="floor")
    bins = x[..., 0] * 64 + x[..., 1] * 8 + x[..., 2]
    ones = torch.ones(bins.shape, dtype=torch.float32, device=frames.device)
    hist = torch.zeros(b * t, 512, dtype=torch.float32, device=frames.device).scatter_add(1, bins, ones)
    return F.normalize(hist.view(b, t, 512), p=2, dim=2)


def exportable(model):
    """A copy of the (fused, fp32) TransNetV2 whose forward gives both heads' logits [B, T, 2] and
    whose colour histograms are `scatter_histograms`: what `torch.export` and OpenVINO convert."""
    import copy

    import torch

    class BothHeads(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, frames):
            return self.net(frames, 2)

    net = copy.deepcopy(model)
    net.color_hist_layer.histograms = scatter_histograms  # an instance attribute shadows the staticmethod
    return BothHeads(net).eval()


def convert_openvino(model, example):
    """The model through torch.export and `openvino.convert_model` (an openvino.Model)."""
    import openvino as ov
    import torch

    with torch.no_grad():
        program = torch.export.export(exportable(model), (example,))
    return ov.convert_model(program)


def compile_openvino(converted, precision_hint: str = "f32"):
    """The converted model compiled for the CPU, one thread (as a worker process runs)."""
    import openvino as ov

    return ov.Core().compile_model(converted, "CPU", {"INFERENCE_NUM_THREADS": 1, "INFERENCE_PRECISION_HINT": precision_hint})


def openvino_predict(compiled, window):
    """uint8 [100, 27, 48, 3] -> kept probabilities [50, 2], the sigmoid taken as
    `TransNetV2.predict_windows` takes it (so only the network's arithmetic differs)."""
    import numpy as np
    import torch

    from reelbeam.transforms.transnetv2_windows import PAD_START, STRIDE

    logits = torch.from_numpy(np.asarray(compiled([window[None]])[0]))
    keep = slice(PAD_START, PAD_START + STRIDE)
    return torch.stack([torch.sigmoid(logits[..., h].contiguous()[:, keep]) for h in range(2)], -1)[0].numpy()


def kernel_kinds(compiled) -> dict:
    """Primitive type -> count in OpenVINO's compiled graph (e.g. brgconv_avx512_f32, jit_avx2_f32)."""
    from collections import Counter

    kinds = Counter()
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        if "primitiveType" in info:
            kinds[str(info["primitiveType"].astype(str))] += 1
    return dict(kinds.most_common())


def decoded(video: str):
    """(windows uint8 [W, 100, 27, 48, 3] as the pipeline makes them, frame count, the decode pass's
    frame-difference signals for the improved rule)."""
    import numpy as np
    from signals import _difference_signals

    from reelbeam.schemas.records import VideoRef
    from reelbeam.transforms.decode import FrameIndexConsumer, decode_video
    from reelbeam.transforms.shots import TransNetV2WindowConsumer

    windows, n = {}, 0
    consumers = [FrameIndexConsumer(), TransNetV2WindowConsumer()]
    for tag, value in decode_video(VideoRef("bench", video, os.path.getsize(video)), consumers):
        if tag == "windows":
            (_, idx), window = value
            windows[idx] = window
        elif tag == "per_video" and value.kind == "meta":
            n = value.payload["frame_count"]
    return np.stack([windows[i] for i in range(len(windows))]), n, _difference_signals(video)


def cuts(probs, n: int, signals: dict) -> dict:
    from reelbeam.transforms.shot_rule import ShotRuleConfig, improved_shot_starts
    from reelbeam.transforms.shots import transnetv2_shot_starts

    single, many_hot = probs[:n, 0], probs[:n, 1]
    return {"reference": transnetv2_shot_starts(single),
            "improved": improved_shot_starts(single, many_hot, signals, ShotRuleConfig())}


def cpu_s() -> float:
    """CPU seconds of this process, all its threads."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def measure(video: str, rounds: int) -> dict:
    """One CPU kind (this process's environment): parity on the whole sample, then alternated timing."""
    import numpy as np
    import torch

    from reelbeam.models.transnetv2 import TransNetV2ModelHandler, int8_available, onednn_bf16
    from reelbeam.transforms.transnetv2_windows import STRIDE

    torch.set_num_threads(1)
    windows, n, signals = decoded(video)
    contenders, kernels = {}, {}
    for precision in ("fp32", "bf16", "int8"):
        if (precision == "bf16" and not onednn_bf16()) or (precision == "int8" and int8_available()):
            continue  # emulated bf16 (~50x slower) or no oneDNN int8: not a path reelbeam takes here
        handler = TransNetV2ModelHandler(device="cpu", precision=precision, heads=2)
        model = handler.load_model()
        contenders[f"torch_{precision}"] = (lambda w, h=handler, m=model: h.run_inference([w], m)[0].inference)
        if precision == "fp32":
            fp32_model = model
    c0, w0 = cpu_s(), time.perf_counter()
    converted = convert_openvino(fp32_model, torch.from_numpy(windows[:1]))
    setup = {"export_and_convert": (cpu_s() - c0, time.perf_counter() - w0)}
    for hint in ("f32", "bf16"):
        c0, w0 = cpu_s(), time.perf_counter()
        try:
            compiled = compile_openvino(converted, hint)
        except RuntimeError as e:
            if hint == "f32":
                raise
            # Seen with ONEDNN_MAX_CPU_ISA=AVX2: the plugin still picks bf16 from the CPU's flags,
            # and the capped oneDNN then has no bf16 pooling kernel.
            kernels[hint] = f"not compiled: {str(e).strip().splitlines()[-1]}"
            continue
        setup[f"compile_{hint}"] = (cpu_s() - c0, time.perf_counter() - w0)
        kernels[hint] = kernel_kinds(compiled)
        contenders["openvino_fp32" if hint == "f32" else "openvino_bf16_hint"] = (lambda w, c=compiled: openvino_predict(c, w))

    probs = {name: np.concatenate([fn(w) for w in windows])[:n] for name, fn in contenders.items()}
    ref = probs["torch_fp32"]
    ref_cuts = cuts(ref, n, signals)
    parity = {}
    for name, p in probs.items():
        c = cuts(p, n, signals)
        parity[name] = {"max_abs_diff_single": float(np.abs(p[:, 0] - ref[:, 0]).max()),
                        "max_abs_diff_many_hot": float(np.abs(p[:, 1] - ref[:, 1]).max()),
                        **{f"{rule}_cuts_same": c[rule] == ref_cuts[rule] for rule in c},
                        **{f"{rule}_cuts_differing": len(set(c[rule]) ^ set(ref_cuts[rule])) for rule in c}}

    window = windows[len(windows) // 2]
    for fn in contenders.values():
        fn(window)  # warm-up
    cpu = {name: [] for name in contenders}
    wall = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            c0, w0 = cpu_s(), time.perf_counter()
            fn(window)
            cpu[name].append(cpu_s() - c0)
            wall[name].append(time.perf_counter() - w0)
    ov = cpu["openvino_fp32"]
    ratios = {name: [round(a / b, 3) for a, b in zip(cpu[name], ov)] for name in contenders if name != "openvino_fp32"}
    return {
        "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "(native)"),
        "torch_threads": torch.get_num_threads(),
        "frames": n, "windows": len(windows), 
        "openvino_setup_s": {k: {"cpu": round(c, 1), "wall": round(w, 1)} for k, (c, w) in setup.items()},
        "openvino_kernels": kernels,
        "parity_vs_torch_fp32": parity,
        "cuts_torch_fp32": ref_cuts,
        "median_cpu_s_per_window": {k: round(statistics.median(v), 4) for k, v in cpu.items()},
        "median_wall_s_per_window": {k: round(statistics.median(v), 4) for k, v in wall.items()},
        "frames_per_core_s": {k: round(STRIDE / statistics.median(v), 1) for k, v in cpu.items()},
        "ratio_to_openvino_fp32_per_round": ratios,
        "median_ratio_to_openvino_fp32": {k: statistics.median(v) for k, v in ratios.items()},
    }


def decide(run: dict) -> dict:
    """The issue's rule on one CPU kind's figures."""
    p = run["parity_vs_torch_fp32"]["openvino_fp32"]
    at_parity = (max(p["max_abs_diff_single"], p["max_abs_diff_many_hot"]) <= PARITY
                 and p["reference_cuts_same"] and p["improved_cuts_same"])
    speedup = run["median_ratio_to_openvino_fp32"]["torch_fp32"]
    fastest = min(run["median_cpu_s_per_window"], key=lambda k: run["median_cpu_s_per_window"][k] if k.startswith("torch_") else float("inf"))
    return {"at_parity": at_parity, "speedup_vs_default_torch_fp32": speedup,
            "fastest_torch_path": fastest,
            "speedup_vs_fastest_torch_path": round(run["median_cpu_s_per_window"][fastest] / run["median_cpu_s_per_window"]["openvino_fp32"], 3),
            "qualifies": bool(at_parity and speedup >= NEEDED_RATIO)}


def cpu_model() -> str:
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    return ""


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", default=SAMPLE)
    parser.add_argument("--rounds", type=int, default=7, help="timing rounds (every contender once per round)")
    parser.add_argument("--out", default=os.path.join(HERE, "results", "openvino.json"))
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a child: this process's CPU kind only
    args = parser.parse_args(argv)
    missing = openvino_missing()
    if missing:
        print(missing, file=sys.stderr)
        return 2
    if args.one:
        print(json.dumps(measure(args.video, args.rounds)))
        return 0
    from precision import cpu_facts

    out = {"cpu": cpu_facts(), "video": os.path.relpath(args.video, ROOT), "rule": f">= {NEEDED_RATIO}x torch fp32 at parity (|dp| <= {PARITY}, same cuts)",
           "openvino": __import__("openvino").__version__, "runs": []}
    import torch

    out["torch"] = torch.__version__
    for isa in (None, "AVX2"):
        env = {k: v for k, v in os.environ.items() if k != "ONEDNN_MAX_CPU_ISA"}
        if isa:
            env["ONEDNN_MAX_CPU_ISA"] = isa
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--one", "--video", args.video, "--rounds", str(args.rounds)],
                              check=False, env=env, capture_output=True, text=True)
        if proc.returncode:
            sys.stderr.write(proc.stderr)
            return proc.returncode
        run = json.loads(proc.stdout.strip().splitlines()[-1])
        run["decision"] = decide(run)
        out["runs"].append(run)
    out["qualifies"] = all(r["decision"]["qualifies"] for r in out["runs"])
    return report(out, args.out)


if __name__ == "__main__":
    sys.exit(main())
