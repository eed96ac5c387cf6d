"""ReelbeamOptions: the app's flags, grouped by stage, for `reelbeam run`.

The run-wide flags (inputs, output, what to run, resuming, models) are here; every stage adds its
own under its own heading (`Stage.add_flags`), in registry order. Every flag also accepts Beam's
underscore spelling (`--shot_detector`), so options survive Beam's round trip through its options
dictionary. `reelbeam.pipelines.plan.build_plan` validates them into a plan before the pipeline
is built.
"""

from __future__ import annotations

import argparse
from typing import Sequence

from apache_beam.options.pipeline_options import PipelineOptions

from reelbeam import stages
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
             "stage, and add this run's files beside the earlier runs'")
    add_flag(group, "overwrite", default=False, action="store_true",
             help="delete what this run would write before running (everything, for a run that decodes)")
    add_flag(group, "parquet-codec", default="zstd", choices=CODECS, help="Parquet compression")
    add_flag(group, "device", default="auto", choices=("auto", "cpu", "cuda"),
             help="device for the models (auto: a GPU where the worker has one)")
    add_flag(group, "model-precision", default="auto", choices=("auto", "fp32", "bf16"),
             help="precision of the shot encoders and other models besides TransNetV2 (auto: bf16 on a GPU, "
             "fp32 on a CPU); TransNetV2 has --transnetv2-precision")
    add_flag(group, "model-copies", type=int, default=None, show_default=False,
             help="model copies per worker (bound GPU memory: one SDK process per core shares them) "
             "(default: Beam's)")


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


def unknown_beam_args(args: Sequence[str]) -> list[str]:
    """The flags in `args` that neither reelbeam nor any Beam/runner options class knows."""
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
    _, unknown = parser.parse_known_args(list(args))
    return [a for a in unknown if a.startswith("--")]
