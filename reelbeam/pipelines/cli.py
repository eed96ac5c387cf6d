"""The `reelbeam` command line: `reelbeam run --input ... --output ... [Beam options]`.

`run(argv, test_pipeline)` builds and runs the pipeline (tests pass a TestPipeline); `main` is the
console script. Flags reelbeam does not know are handed to Beam and the runner; a flag that no
Beam options class knows either is an error, before anything runs.
"""

from __future__ import annotations

import argparse
import logging
import posixpath
import sys
from typing import Optional, Sequence

import apache_beam as beam
import fsspec
import pyarrow.parquet as pq
from apache_beam.options.pipeline_options import PipelineOptions

from reelbeam import __version__
from reelbeam.pipelines.options import ConfigError, ReelbeamOptions, build_config, unknown_beam_args
from reelbeam.pipelines.video_pipeline import ProcessVideos, existing_ok_video_ids
from reelbeam.schemas.tables import TABLES
from reelbeam.transforms.write import WriteJson, WriteTables

LOG = logging.getLogger("reelbeam")

_DESCRIPTION = """\
Run reelbeam over a corpus of videos and write Parquet tables under OUTPUT/<table>/.

Any option not listed here is passed to Apache Beam and its runner, e.g.
  --runner=DataflowRunner --project=P --region=R --temp_location=gs://B/tmp
  --direct_running_mode=multi_processing --direct_num_workers=2
"""


def _run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reelbeam run",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ReelbeamOptions._add_argparse_args(parser)
    return parser


def build_pipeline(pipeline: beam.Pipeline, config, skip_ids=frozenset()) -> dict:
    """Add ProcessVideos and the writers to `pipeline`; return the table PCollections."""
    tables = pipeline | "ProcessVideos" >> ProcessVideos(config, skip_ids)
    _ = pipeline | "WriteTables" >> WriteTables(
        config.output,
        rows={"videos": tables["videos"], "failures": tables["failures"], "shots": tables["shots"]},
        batches={"frames": tables["frames"]},
        codec=config.parquet_codec,
    )
    if config.write_json:
        _ = tables["json"] | "WriteJson" >> WriteJson(config.output)
    return tables


def table_row_counts(output: str) -> dict[str, int]:
    """Rows per table present under `output`, from Parquet footers."""
    counts = {}
    fs, root = fsspec.core.url_to_fs(output)
    for table in TABLES:
        files = fs.glob(posixpath.join(root, table, "*.parquet"))
        if files:
            counts[table] = sum(pq.ParquetFile(fs.open(f, "rb")).metadata.num_rows for f in files)
    return counts


def summary(output: str) -> str:
    counts = table_row_counts(output)
    ok, failed = counts.get("videos", 0), counts.get("failures", 0)
    lines = [f"reelbeam: {ok} videos ok, {failed} failed; tables under {output}/"]
    for table, n in counts.items():
        lines.append(f"  {table:<18}{n:>10} rows   {posixpath.join(output, table)}/")
    return "\n".join(lines)


def run(argv: Optional[Sequence[str]] = None, test_pipeline: Optional[beam.Pipeline] = None):
    """Parse `argv`, validate, build and run the pipeline; return the config used.

    Raises ConfigError (before anything runs) on bad flags, inputs or output.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _run_parser()
    _, beam_args = parser.parse_known_args(argv)
    unknown = unknown_beam_args(beam_args)
    if unknown:
        raise ConfigError(
            f"unknown option(s): {' '.join(unknown)}; see `reelbeam run --help` "
            "(and Beam's runner options)"
        )
    options = PipelineOptions(argv)
    config = build_config(options)
    skip_ids = existing_ok_video_ids(config.output) if config.skip_existing else frozenset()
    if skip_ids:
        LOG.info("--skip-existing: %d videos already done", len(skip_ids))
    pipeline = test_pipeline if test_pipeline is not None else beam.Pipeline(options=options)
    build_pipeline(pipeline, config, skip_ids)
    if test_pipeline is None:
        pipeline.run().wait_until_finish()
    return config


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    top = argparse.ArgumentParser(
        prog="reelbeam",
        description="Video corpus -> Parquet tables of shots, scenes and embeddings, on Apache Beam.",
    )
    top.add_argument("--version", action="version", version=f"reelbeam {__version__}")
    sub = top.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("run", help="run the pipeline (see `reelbeam run --help`)", add_help=False)
    sub.add_parser("schemas", help="print every table's schema")
    if not argv:
        top.print_help()
        return 2
    if argv[0] in ("-h", "--help", "--version"):
        top.parse_args(argv)
        return 0
    command, rest = argv[0], argv[1:]
    if command == "schemas":
        for name, schema in TABLES.items():
            print(f"{name}\n{schema.to_string(show_schema_metadata=False)}\n")
        return 0
    if command != "run":
        top.error(f"unknown command {command!r} (commands: run, schemas)")
    if "-h" in rest or "--help" in rest:
        _run_parser().print_help()
        return 0
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = run(rest)
    except ConfigError as e:
        print(f"reelbeam: error: {e}", file=sys.stderr)
        return 2
    print(summary(config.output))
    return 0
