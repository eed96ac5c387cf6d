"""ReelbeamOptions: the app's flags, grouped by stage, for `reelbeam run`.

The run-wide flags (inputs, output, what to run, resuming, models) are here; every stage adds its
own under its own heading (`Stage.add_flags`), in registry order. Every flag also accepts Beam's
underscore spelling (`--shot_detector`), so options survive Beam's round trip through its options
dictionary. `reelbeam.pipelines.plan.build_plan` validates them into a plan before the pipeline
is built.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence

from apache_beam.options.pipeline_options import PipelineOptions

from reelbeam import stages
from reelbeam.runners.flags import flag_value, is_local_runner, runner_name  # noqa: F401 - imported from here too
from reelbeam.stages.base import ConfigError, add_flag

__all__ = ["ConfigError", "ReelbeamOptions", "add_run_flags", "unknown_beam_args"]

CODECS = ("zstd", "snappy", "gzip", "none")


def add_run_flags(group) -> None:
    add_flag(group, "input", action="append", default=None, show_default=False,
             help="video file, folder (recursive), glob, manifest (.txt/.csv/.parquet of URIs) or fsspec URL "
             "(gs://, s3://, memory://). Repeat the flag for several inputs")
    add_flag(group, "output", default=None, show_default=False,
             help="output folder or URL; tables go to OUTPUT/<table>/")
    add_flag(group, "start-from", default=None, show_default=False,
             help="TABLE[,TABLE]: read these tables from an earlier run (--from) and run only the stages "
             "downstream of them, e.g. keyframes (shot encoders, boundaries and scenes on GPU workers) or "
             "shot_embeddings (scenes again with another threshold)")
    add_flag(group, "stages", default=None, show_default=False,
             help="NAME[,NAME]: run exactly these stages (names as in the headings below, e.g. "
             "decode,shot_keyframes); tables they need and do not make are read from --from")
    add_flag(group, "from", default=None, show_default=False,
             help="where --start-from/--stages read earlier tables (any fsspec URL) (default: --output)")
    add_flag(group, "skip-existing", default=False, action="store_true",
             help="resume: do only the work the ledger (OUTPUT/stage_runs) does not show as done, per video and "
             "stage; the rest of the tables stay as committed")
    add_flag(group, "overwrite", default=False, action="store_true",
             help="replace what this run's stages wrote before (every table, for a run that decodes): its commits "
             "remove the earlier rows as they add the new ones, so readers see one or the other")
    add_flag(group, "wait", default=False, action="store_true",
             help="when another run is writing to --output (it holds OUTPUT/_lease.json), wait for it to end "
             "instead of refusing to start")
    add_flag(group, "verbose", default=False, action="store_true",
             help="also show the INFO logs of Beam, its runners and other libraries (hidden by default: they "
             "report the machinery, not your videos)")
    add_flag(group, "parquet-codec", default="zstd", choices=CODECS, help="Parquet compression")
    add_flag(group, "device", default="auto", choices=("auto", "cpu", "cuda"),
             help="device for the models, decided on each worker (auto: a GPU where the worker has one). "
             "The pipeline's layout (TransNetV2 in the decode pass or batched on its own, batch sizes) follows "
             "this flag and --gpu-accelerator; only local runners also look at the launcher's own GPU")
    add_flag(group, "gpu-accelerator", default=None, show_default=False, metavar="TYPE[:COUNT]|HINT",
             help="attach GPUs to the model steps only (Beam resource hint `accelerator`, Dataflow right fitting): "
             "a GPU type such as nvidia-l4 or nvidia-tesla-t4, optionally :COUNT, or a whole hint "
             "'type:nvidia-l4;count:1;machine_type:g2-standard-8;install-nvidia-driver'. Model steps then "
             "ask their workers for CUDA (failing on a worker without one) and run batched, the "
             "encoders in bf16 (--model-precision auto; TransNetV2 follows --transnetv2-precision); the decode pass and the writers stay on CPU workers")
    add_flag(group, "model-precision", default="auto", choices=("auto", "fp32", "bf16"),
             help="precision of the shot encoders and other models besides TransNetV2 (auto: bf16 on a GPU, "
             "fp32 on a CPU); bf16 on a CPU without native bf16 (no AVX-512/AMX) is refused, as it would be "
             "emulated ~50x slower; TransNetV2 has --transnetv2-precision")
    add_flag(group, "model-copies", type=int, default=None, show_default=False,
             help="model copies per worker (bound GPU memory: one SDK process per core shares them) "
             "(default: 1 with --gpu-accelerator, else Beam's)")


class ReelbeamOptions(PipelineOptions):
    """reelbeam's own flags; any other flag goes to Beam and the runner."""

    @classmethod
    def _add_argparse_args(cls, parser) -> None:
        add_run_flags(parser.add_argument_group("Run"))
        for stage in stages.REGISTRY:
            group = parser.add_argument_group(f"{stage.title} [stage {stage.name}]")
            stage.add_flags(group)


DASK_RUNNER = "reelbeam.runners.dask.DaskRunner"  # Beam's DaskRunner, one defect fixed
_RUNNER_NAMES = {"dask": DASK_RUNNER, "daskrunner": DASK_RUNNER, "apache_beam.runners.dask.dask_runner.daskrunner": DASK_RUNNER}


def runner_args(args: Sequence[str]) -> list[str]:
    """Beam's flags with reelbeam's runner short names resolved (`--runner dask` / `DaskRunner`, or
    Beam's module path: Beam's DaskRunner as `reelbeam.runners.dask` adapts it) and, on Dask, one
    video per partition unless the flags size the partitions (Dask parallelises by partition only)."""
    out, runner, i = [], None, 0
    args = list(args)
    while i < len(args):
        a = args[i]
        if a == "--runner" and i + 1 < len(args):
            runner = _RUNNER_NAMES.get(args[i + 1].lower(), args[i + 1])
            out += ["--runner", runner]
            i += 2
            continue
        if a.startswith("--runner="):
            runner = _RUNNER_NAMES.get(a.split("=", 1)[1].lower(), a.split("=", 1)[1])
            a = f"--runner={runner}"
        out.append(a)
        i += 1
    if runner == DASK_RUNNER and not any(a.startswith(("--dask_npartitions", "--dask_partition_size")) for a in out):
        out.append("--dask_partition_size=1")
    return out


_GPU_TYPE = re.compile(r"^nvidia-[a-z0-9-]+$")
_HINT_KEYS = {"type", "count", "machine_type", "install-nvidia-driver"}


def accelerator_hint(value: str | None) -> str | None:
    """`--gpu-accelerator` as a Beam accelerator hint ('type:T;count:N;install-nvidia-driver'), or a
    ConfigError saying what a valid value looks like."""
    if not value:
        return None
    value = value.strip()
    example = "e.g. nvidia-l4, nvidia-tesla-t4:2 or 'type:nvidia-l4;count:1;install-nvidia-driver'"
    if ";" not in value and not value.startswith("type:"):
        gpu, _, count = value.partition(":")
        if _GPU_TYPE.match(gpu) and count and not (count.isdigit() and int(count) >= 1):
            raise ConfigError(f"--gpu-accelerator {value!r}: the count after ':' must be a whole number >= 1")
        if not _GPU_TYPE.match(gpu) or count and not count.isdigit():
            raise ConfigError(f"--gpu-accelerator {value!r}: expected TYPE[:COUNT] with an nvidia-* GPU type ({example})")
        return f"type:{gpu};count:{count or 1};install-nvidia-driver"
    parts = [p.strip() for p in value.split(";") if p.strip()]
    fields = {key: v for key, _, v in (p.partition(":") for p in parts)}
    unknown = sorted(set(fields) - _HINT_KEYS)
    if unknown or not _GPU_TYPE.match(fields.get("type", "")):
        what = f"unknown key {unknown[0]!r}" if unknown else "no nvidia-* type"
        raise ConfigError(f"--gpu-accelerator {value!r}: {what} ({example})")
    if "count" in fields and not (fields["count"].isdigit() and int(fields["count"]) >= 1):
        raise ConfigError(f"--gpu-accelerator {value!r}: count must be a whole number >= 1")
    if "install-nvidia-driver" not in fields:
        parts.append("install-nvidia-driver")  # without it the GPU has no driver on Dataflow's images
    return ";".join(parts)


def normalize_dry_run(args: Sequence[str]) -> list[str]:
    """One `--dry_run=True`, or none, in place of every `--dry_run` / `--dry-run` form: alone it
    means True, with a value that value (true/false, any case); the last one wins, as with
    Beam's own flags. Beam reads any other string, "False" included, as true, so a false dry run
    is dropped and any other value refused."""
    out: list[str] = []
    value = None
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("--dry_run", "--dry-run"):
            nxt = args[i + 1] if i + 1 < len(args) else ""
            if nxt.lower() in ("true", "false"):
                value, i = nxt.lower(), i + 2
            else:
                value, i = "true", i + 1
            continue
        if a.startswith(("--dry_run=", "--dry-run=")):
            v = a.split("=", 1)[1]
            if v.lower() not in ("true", "false"):
                raise ConfigError(f"--dry_run={v}: give --dry_run (or --dry_run=True) to build the job without "
                                  "running it, or leave it out")
            value, i = v.lower(), i + 1
            continue
        out.append(a)
        i += 1
    if value == "true":
        out.append("--dry_run=True")
    return out


def is_dry_run(args: Sequence[str]) -> bool:
    return (flag_value(args, "--dry_run") or "").lower() == "true"


def _beam_parser() -> argparse.ArgumentParser:
    """A parser of every flag that reelbeam or a Beam/runner options class knows."""
    from apache_beam.options.pipeline_options import _BeamArgumentParser

    try:  # runner options classes register themselves when their module is imported
        import apache_beam.runners.dask.dask_runner  # noqa: F401
    except ImportError:
        pass

    parser = _BeamArgumentParser(allow_abbrev=False)
    seen = set()
    stack = list(PipelineOptions.__subclasses__())
    while stack:
        cls = stack.pop()
        if cls in seen:
            continue
        seen.add(cls)
        stack.extend(cls.__subclasses__())
        try:
            cls._add_argparse_args(parser)
        except argparse.ArgumentError:
            continue  # a flag two option classes both define
    return parser


def unknown_beam_args(args: Sequence[str]) -> list[str]:
    """The flags in `args` that neither reelbeam nor any Beam/runner options class knows."""
    _, unknown = _beam_parser().parse_known_args(list(args))
    return [a for a in unknown if a.startswith("--")]


def unknown_flags_message(unknown: Sequence[str], run_parser: argparse.ArgumentParser) -> str:
    """'unknown option(s): --scene-treshold (did you mean --scene-threshold?); see ...': each unknown
    flag with the nearest flag reelbeam (its listed spelling) or Beam knows, where one is near."""
    import difflib

    known: dict[str, str] = {}  # spelling compared (dashes, lower case) -> the flag as listed
    for parser in (run_parser, _beam_parser()):
        for action in parser._actions:
            if action.help is not argparse.SUPPRESS:
                for flag in action.option_strings:
                    known.setdefault(flag.replace("_", "-").lower(), flag)
    said = []
    for flag in unknown:
        near = difflib.get_close_matches(flag.split("=", 1)[0].replace("_", "-").lower(), list(known), n=1, cutoff=0.8)
        said.append(f"{flag} (did you mean {known[near[0]]}?)" if near else flag)
    return f"unknown option(s): {' '.join(said)}; see `reelbeam run --help` (and Beam's runner options)"
