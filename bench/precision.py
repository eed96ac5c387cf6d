"""TransNetV2's CPU precision chosen by figures: F1 of the shot rules on the development corpus
(bench/corpus.py) and model speed per core, for fp32, bf16 and int8.

    .venv/bin/python bench/precision.py [--cache-dir bench/out]   # JSON; bench/out/precision.json
    .venv/bin/python bench/precision.py --speed-only   # model speed per precision, this CPU and AVX2-capped

`--speed-only` times the model alone (no corpus) as oneDNN runs it on this CPU and with
`ONEDNN_MAX_CPU_ISA=AVX2` (oneDNN then behaves as on a CPU without AVX-512, VNNI or bf16, such as
an AMD EPYC before Zen 4), each in its own process, with each precision's speed as a ratio to fp32's
in the same process; bf16 is not timed where it would be emulated (~50x slower than fp32).

The rule it checks (docs/BENCHMARKS.md, "CPU precision"): the default `--transnetv2-precision` is
the fastest precision whose improved-rule F1 is not below fp32's (`fastest_not_below_fp32`);
under `--shot-rule reference`, `auto` means fp32 (the reference's exact cuts).
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from common import bench_parser, report  # noqa: E402
from scaling import per_core  # noqa: E402
from shots import evaluate_rule, rule_variants  # noqa: E402

import corpus  # noqa: E402
import signals as bench_signals  # noqa: E402

PRECISIONS = ("fp32", "bf16", "int8")


def speed(precision: str) -> float:
    import numpy as np
    import torch

    from reelbeam.models.transnetv2 import TransNetV2ModelHandler

    torch.set_num_threads(1)
    window = np.random.default_rng(0).integers(0, 256, (100, 27, 48, 3), dtype=np.uint8)
    handler = TransNetV2ModelHandler(device="cpu", precision=precision, heads=2)
    model = handler.load_model()
    list(handler.run_inference([window], model))
    s, _ = per_core(lambda: [list(handler.run_inference([window], model)) for _ in range(4)])
    return round(4 * 50 / s, 1)


def cpu_facts() -> dict:
    """This CPU's model name and the flags that decide the fast precisions."""
    facts = {"model": "", "avx512f": False, "avx512_vnni": False, "avx_vnni": False, "avx512_bf16": False, "amx_bf16": False}
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            text = f.read()
        names = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")]
        flags = set(next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []))
        facts["model"] = names[0] if names else ""
        for flag in list(facts)[1:]:
            facts[flag] = flag in flags
    return facts


def speeds() -> dict:
    """Frames per core-second of each precision oneDNN runs natively here, and ratios to fp32."""
    from reelbeam.models.transnetv2 import auto_precision, int8_available, onednn_bf16, weight_levels

    out = {"onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "(native)"), "onednn_bf16": bool(onednn_bf16()),
           "int8_unavailable": int8_available(), "int8_weight_levels": weight_levels() if not int8_available() else None,
           "auto": auto_precision("auto", "cpu"), "frames_per_core_s": {}}
    for precision in PRECISIONS:
        if precision == "bf16" and not onednn_bf16():
            out["frames_per_core_s"]["bf16"] = "not timed: emulated (~50x slower than fp32)"
        elif precision == "int8" and int8_available():
            out["frames_per_core_s"]["int8"] = "unavailable"
        else:
            out["frames_per_core_s"][precision] = speed(precision)
    fp32 = out["frames_per_core_s"]["fp32"]
    out["vs_fp32"] = {p: round(v / fp32, 2) for p, v in out["frames_per_core_s"].items() if isinstance(v, float)}
    return out


def speed_only(args) -> int:
    import json
    import subprocess

    code = f"import json, sys; sys.path.insert(0, {HERE!r}); import precision; print(json.dumps(precision.speeds()))"
    out = {"cpu": cpu_facts(), "runs": []}
    for isa in (None, "AVX2"):
        env = {k: v for k, v in os.environ.items() if k != "ONEDNN_MAX_CPU_ISA"}
        if isa:
            env["ONEDNN_MAX_CPU_ISA"] = isa
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        out["runs"].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return report(out, args.out)


def main(argv=None) -> int:
    from reelbeam.models.transnetv2 import int8_available, load_transnetv2, onednn_bf16
    from reelbeam.transforms.shot_rule import ShotRuleConfig

    parser = bench_parser(__doc__, "precision")
    parser.add_argument("--cache-dir", default=os.path.join(HERE, "out"))
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--videos", type=int, default=40)
    parser.add_argument("--speed-only", action="store_true", help="time the model per precision, native and AVX2-capped")
    args = parser.parse_args(argv)
    if args.speed_only:
        return speed_only(args)
    items = corpus.build_corpus(os.path.join(args.cache_dir, "corpus"), corpus.CorpusConfig(seed=args.seed, videos=args.videos),
                                log=lambda m: print(m, file=sys.stderr))
    cache_dir = os.path.join(args.cache_dir, "signals_cache")
    model = load_transnetv2(None, "cpu")
    rules = {k: v for k, v in rule_variants(ShotRuleConfig()).items() if k in ("improved", "reference")}
    out = {"cpu": {"onednn_bf16": bool(onednn_bf16()), "int8_unavailable": int8_available()}, "precisions": {}}
    starts = {}
    for precision in PRECISIONS:
        if precision == "int8" and int8_available():
            continue
        for it in items:
            it["signals"] = bench_signals.video_signals(it["path"], model, cache_dir, precision)
        figures = {name: {k: evaluate_rule(items, fn)[k] for k in ("precision", "recall", "f1", "tp", "fp", "fn")}
                   for name, fn in rules.items()}
        starts[precision] = [tuple(rules["improved"](it["signals"])) for it in items]
        figures["frames_per_core_s"] = speed(precision)
        out["precisions"][precision] = figures
    for precision in starts:
        moved = sum(len(set(a) ^ set(b)) for a, b in zip(starts[precision], starts["fp32"]))
        out["precisions"][precision]["improved_cuts_differing_from_fp32"] = moved
    f1_fp32 = out["precisions"]["fp32"]["improved"]["f1"]
    eligible = [p for p in out["precisions"] if out["precisions"][p]["improved"]["f1"] >= f1_fp32]
    out["fastest_not_below_fp32"] = max(eligible, key=lambda p: out["precisions"][p]["frames_per_core_s"])
    out["corpus"] = corpus.summary(items)
    return report(out, args.out)


if __name__ == "__main__":
    sys.exit(main())
