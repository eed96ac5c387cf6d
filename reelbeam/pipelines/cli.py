"""The `reelbeam` command line: `reelbeam run --input ... --output ... [Beam options]`.

`run(argv, test_pipeline)` builds and runs the pipeline (tests pass a TestPipeline); `main` is the
console script. Flags reelbeam does not know are handed to Beam and the runner; a flag that no
Beam options class knows either is an error, before anything runs.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence

from reelbeam import __version__
from reelbeam.pipelines import code_docs, run_report

LOG = logging.getLogger("reelbeam")

_DESCRIPTION = """\
Run reelbeam over a corpus of videos and write Parquet tables under OUTPUT/<table>/.

The pipeline is a sequence of stages (each heading below names one); each writes its tables, and
any later run can start from them (--start-from, --stages). Any option not listed here is passed
to Apache Beam and its runner, e.g.
  --runner=DataflowRunner --project=P --region=R --temp_location=gs://B/tmp
  --direct_running_mode=multi_processing --direct_num_workers=2
"""


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage dump) that points to --help."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n(see `{self.prog} --help`)\n")


def run_parser() -> argparse.ArgumentParser:
    from reelbeam.pipelines.options import ReelbeamOptions

    parser = _Parser(prog="reelbeam run", description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    ReelbeamOptions._add_argparse_args(parser)
    return parser


def _progress(plan, beam_args):
    """Live progress while a local run runs (reelbeam.progress); nothing for remote runners,
    whose workers log a line per video instead."""
    import contextlib
    import tempfile

    from reelbeam.pipelines.options import is_local_runner
    from reelbeam.progress import Watcher

    if not is_local_runner(beam_args) or not plan.progress:
        return contextlib.nullcontext()
    decode = plan.input_stage
    total = decode.listing.count if decode is not None and decode.listing is not None else None
    folder = tempfile.mkdtemp(prefix="reelbeam-progress-")
    return Watcher(os.path.join(folder, "events.jsonl"), total)


def run(argv: Sequence[str] | None = None, test_pipeline=None, progress: bool = False,
        listed: Listed | None = None):
    """Parse `argv`, validate, take the output's lease, build and run the pipeline; return the plan.

    Raises ConfigError (before anything runs) on bad flags, inputs, checkpoints or output, and
    reelbeam.store.LeaseHeld when another run is writing to the output. `listed`: the inputs
    `main` listed before importing Beam (its line printed here, once the checks passed, where
    `main` did not print it).
    """
    from apache_beam.options.pipeline_options import PipelineOptions

    from reelbeam.pipelines.options import (
        ConfigError,
        is_dry_run,
        normalize_dry_run,
        runner_args,
        unknown_beam_args,
        unknown_flags_message,
    )
    from reelbeam.pipelines.plan import build_plan, prepare_output
    from reelbeam.runners.checks import check_runner

    argv = normalize_dry_run(list(sys.argv[1:] if argv is None else argv))
    parser = run_parser()
    _, beam_args = parser.parse_known_args(argv)
    beam_args = runner_args(beam_args)
    unknown = unknown_beam_args(beam_args)
    if unknown:
        raise ConfigError(unknown_flags_message(unknown, parser))
    dry_run = is_dry_run(beam_args)
    check_runner(beam_args, dry_run)
    plan = build_plan(PipelineOptions(argv), beam_args=beam_args, dry_run=dry_run, prepare=False)
    plan.progress = progress
    if listed is not None and not dry_run:
        _take_listing(plan, listed)
    if dry_run or test_pipeline is not None:
        prepare_output(plan)
        if not dry_run:
            _print_listing(listed)
        return _build_and_run(plan, argv, beam_args, dry_run, test_pipeline)
    from reelbeam.store import lease

    # One writer per output: the lease is taken before the output's state is read, so a run that
    # waited for another (--wait) plans from what that one committed.
    held = lease.acquire(plan.output, plan.run_id, wait=bool(getattr(plan.options, "wait", False)))
    try:
        held.start_heartbeats()
        prepare_output(plan)
        _print_listing(listed)
        run_report.abandon_earlier_runs(plan.output, plan.run_id, held.taken_over_from)
        return _build_and_run(plan, argv, beam_args, dry_run, test_pipeline)
    finally:
        try:
            held.release()
        except (OSError, lease.LeaseError) as e:
            # The output may have become unwritable: the lease is then taken over by the next run
            # (its heartbeat has stopped); the run's own error is what the user needs to see.
            LOG.debug("could not release the lease of %s: %s", plan.output, e)


def _take_listing(plan, listed: Listed) -> None:
    """The decode takes the inputs `main` listed (where they are the ones it reads, and the run
    does not wait for another first: the folder may change meanwhile). Where the run reads other
    inputs, or none, the listing's line is not printed."""
    decode = plan.running("decode")
    if decode is None or list(decode.inputs) != listed.specs:
        listed.printed = True  # (nothing to print: not this run's inputs)
        return
    if not getattr(plan.options, "wait", False):
        from reelbeam.inputs import log_skipped

        decode.listing = listed.listing
        log_skipped(listed.specs, listed.listing)  # its record, in the run's log now


def _print_listing(listed: Listed | None) -> None:
    """The listing's line, once (on a terminal `main` printed it before Beam was imported); elsewhere
    after the output's checks, so that a refused run prints its error alone."""
    if listed is not None and not listed.printed:
        print(listed.line, file=sys.stderr, flush=True)
        listed.printed = True


def _build_and_run(plan, argv, beam_args, dry_run, test_pipeline):
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from reelbeam.pipelines.outputs import now, rows_written, write_manifest
    from reelbeam.pipelines.video_pipeline import build_pipeline
    from reelbeam.runners.checks import is_dataflow
    from reelbeam.runners.local import direct_layout, limit_threads, without_prism

    decode = plan.input_stage
    if decode is not None and not dry_run:
        beam_args = direct_layout(beam_args, decode.list_inputs().count)
    limit_threads(beam_args)
    beam_args = without_prism(beam_args)
    # The runner gets only Beam's flags: reelbeam's live in the plan, captured by the stages.
    pipeline = test_pipeline if test_pipeline is not None else beam.Pipeline(options=PipelineOptions(beam_args))
    build_pipeline(pipeline, plan)  # lists the inputs
    if dry_run:
        from reelbeam.pipelines.jobgraph import job_graph

        proto = pipeline.to_runner_api()
        if is_dataflow(beam_args) and test_pipeline is None:
            # Dataflow's runner with --dry_run=True builds the job (its steps, environments and staged
            # packages) and submits nothing.
            pipeline.run().wait_until_finish()
            proto = pipeline.runner.proto_pipeline
        plan.graph = job_graph(proto)
        return plan
    manifest = run_report.run_manifest(plan, argv, beam_args)
    write_manifest(plan.output, plan.run_id, manifest)
    if test_pipeline is not None:
        return plan
    started = time.perf_counter()
    try:
        with _progress(plan, beam_args):
            result = pipeline.run()
            result.wait_until_finish()
    except BaseException as e:
        from reelbeam.pipelines.faults import describe

        fault = describe(e, plan.output)
        manifest.update(status="failed", finished=now(), wall_s=round(time.perf_counter() - started, 3),
                        reason=fault.message, exit_code=fault.exit_code, table_versions=run_report.table_versions(plan))
        run_report.try_write_manifest(plan, manifest)
        raise
    wall = time.perf_counter() - started
    plan.counters, plan.stage_times = run_report.split_counters(run_report.counters(result), plan)
    plan.notices = run_report.notices(plan)
    manifest.update(status="succeeded", finished=now(), wall_s=round(wall, 3), stage_times=plan.stage_times,
                    notices=plan.notices,
                    rows_written=rows_written(plan.output, plan.run_id), counters=plan.counters,
                    table_versions=run_report.table_versions(plan))
    write_manifest(plan.output, plan.run_id, manifest)
    return plan


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from reelbeam.pipelines.runlog import configure_logging

    # Before any command imports Beam (whose import logs through the root logger).
    configure_logging(verbose=_verbose(argv[1:]) if argv[:1] == ["run"] else False)
    top = _Parser(prog="reelbeam", description="Video corpus -> Parquet tables of shots, scenes and embeddings, on Apache Beam.")
    top.add_argument("--version", action="version", version=f"reelbeam {__version__}")
    sub = top.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("run", help="run the pipeline (see `reelbeam run --help`)", add_help=False)
    sub.add_parser("report", help="write a static HTML report of an output folder (see `reelbeam report --help`)", add_help=False)
    sub.add_parser("export", help="export scenes as CSV, keyframes as JPEG files, ModelScope JSON", add_help=False)
    sub.add_parser("evaluate", help="score an output against ground truth (shots, scenes, summaries)", add_help=False)
    sub.add_parser("train", help="train the scene or summary model on an output's features (docs/training.md)", add_help=False)
    sub.add_parser("migrate", help="convert an output of an earlier reelbeam to Delta tables, in place", add_help=False)
    sub.add_parser("vacuum", help="delete data files no table version needs any more", add_help=False)
    sub.add_parser("repair", help="take unreadable committed files out of the tables (they are then redone)",
                   add_help=False)
    sub.add_parser("weights", help="check model weights: `reelbeam weights check PATH...` says which model each file "
                   "holds (docs/weights.md says where to get them)", add_help=False)
    schemas = sub.add_parser("schemas", help="print every table's schema (--markdown: as docs/tables.md)")
    schemas.add_argument("--markdown", action="store_true")
    if not argv:
        top.print_help()
        return 2
    if argv[0] in ("-h", "--help", "--version"):
        top.parse_args(argv)
        return 0
    command, rest = argv[0], argv[1:]
    if command == "schemas":
        print(code_docs.tables_markdown() if "--markdown" in rest else code_docs.schemas_text(), end="" if "--markdown" in rest else "\n")
        return 0
    if command == "report":
        from reelbeam.report import main as report_main

        return report_main(rest)
    if command == "export":
        from reelbeam.export import main as export_main

        return export_main(rest)
    if command in ("migrate", "vacuum", "repair"):
        from reelbeam.store import commands

        return getattr(commands, f"{command}_main")(rest)
    if command == "evaluate":
        from reelbeam.evaluate import main as evaluate_main

        return evaluate_main(rest)
    if command == "train":
        from reelbeam.train.cli import main as train_main

        return train_main(rest)
    if command == "weights":
        from reelbeam.weights import main as weights_main

        return weights_main(rest)
    if command != "run":
        top.error(f"unknown command {command!r} (commands: run, report, export, evaluate, train, migrate, vacuum, repair, "
                  "weights, schemas)")
    if "-h" in rest or "--help" in rest:
        run_parser().print_help()
        return 0
    # The first line, before Beam's import (over a second) and the checks: what the inputs name.
    # Off a terminal it waits for the checks to pass (a wrong invocation prints its error alone).
    listed = list_first(rest)
    if listed is not None and sys.stderr.isatty():
        print(listed.line, file=sys.stderr, flush=True)
        listed.printed = True
    run_parser().parse_known_args(rest)  # a bad value or choice ends here, in one line
    verbose = _verbose(rest)
    from reelbeam.pipelines.runlog import RunLog

    with RunLog(verbose) as log:
        if not verbose:
            quiet_third_party_logs()
        code = _run_command(rest, verbose, log, listed)
    return code


class Listed:
    """The inputs listed before Beam is imported (`list_first`): the run's decode takes this
    listing rather than list them again."""

    def __init__(self, specs: list[str], listing) -> None:
        from reelbeam.inputs import describe

        self.specs = specs
        self.listing = listing
        self.line = describe(listing)
        self.printed = False


def list_first(args: Sequence[str]) -> Listed | None:
    """List the `--input` specs of `reelbeam run ARGS` without importing Beam, or None where the
    run will not list them itself (a dry run, --start-from or --stages, no --input) or the listing
    names no video or a missing one (the checks that follow say what is wrong)."""
    early = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    early.add_argument("--input", action="append", default=[])
    for flag in ("--start-from", "--start_from", "--stages"):
        early.add_argument(flag)
    try:
        known, _ = early.parse_known_args(list(args))
    except SystemExit:  # left to the real parser's one-line error
        return None
    if (known.start_from or known.stages or not known.input
            or any(a.split("=")[0] in ("--dry_run", "--dry-run") for a in args)):
        return None
    try:
        from reelbeam.inputs import list_inputs

        listing = list_inputs(list(known.input))
    except Exception:  # noqa: BLE001 - the run's own checks report the input's problem
        return None
    if not listing.count or any(error for _, _, error in listing.entries):
        return None
    return Listed(list(known.input), listing)


def _verbose(args: Sequence[str]) -> bool:
    return any(a in ("--verbose", "--verbose=True", "--verbose=true") for a in args)


def _run_command(rest, verbose: bool, log, listed: Listed | None = None) -> int:
    from reelbeam.pipelines.options import ConfigError
    from reelbeam.pipelines.outputs import rows_written

    try:
        plan = run(rest, progress=True, listed=listed)
    except ConfigError as e:
        print(f"reelbeam: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:
        from reelbeam.pipelines.faults import describe

        fault = describe(e)
        log.failed = True
        LOG.debug("the run failed", exc_info=True)
        if verbose:
            LOG.exception("the run failed")
        print(f"reelbeam: error: {fault.message}{log.where()}", file=sys.stderr)
        return fault.exit_code
    if plan.dry_run:
        print("dry run: the job was built and not run (no input listed, nothing read or written)")
        print("stages, in order:")
        for stage in plan.stages:
            gpu = stage.resource_hints.get("accelerator")
            print(f"  {stage.name:<18} {'model step on GPU workers: ' + gpu if gpu else ''}".rstrip())
        print("\n".join(plan.graph.lines()))
        return 0
    ledger = run_report.ledger_rows(plan)
    print(run_report.summary(plan, rows_written(plan.output, plan.run_id), run_report.failure_rows(plan.output, plan.run_id),
                  run_report.files_written(plan, ledger), ledger))
    return 0


def quiet_third_party_logs() -> None:
    """Hide the warnings of libraries that a user cannot act on (--verbose shows them): Beam's notes
    on its own options and workers, and the Google API client's on every start."""
    import warnings

    for name in ("apache_beam.options.pipeline_options", "apache_beam.runners.worker.sdk_worker_main",
                 "apache_beam.runners.portability", "apache_beam.io.filebasedsink", "apitools", "absl"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="apitools")
    warnings.filterwarnings("ignore", category=FutureWarning)


def entry() -> None:
    """The `reelbeam` command: `main`, then an exit that skips the interpreter's teardown.

    Once a run has printed its summary everything is written and flushed; tearing down the native
    libraries' thread pools (the DirectRunner's gRPC, torch, FFmpeg) then aborted the process about
    one run in six ("terminate called without an active exception", exit status -6) after a
    successful run. Exiting here keeps the exit status the run's own."""
    try:
        code = main()
    except SystemExit as e:  # argparse's --help / errors
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
        if not isinstance(e.code, (int, type(None))):
            print(e.code, file=sys.stderr)
    except KeyboardInterrupt:
        code = 130
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

