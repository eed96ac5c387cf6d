"""Checks of the runner's flags made before anything is built, so that a job that cannot start says
why in one line instead of failing in the runner (or, for a portable runner without a reachable
job service, waiting for minutes)."""

from __future__ import annotations

import socket
from collections.abc import Sequence

from reelbeam.pipelines.options import flag_value, runner_name
from reelbeam.stages.base import ConfigError

PORTABLE = {"portablerunner", "flinkrunner", "sparkrunner", "prismrunner"}


def _short(args: Sequence[str]) -> str:
    return (runner_name(args) or "DirectRunner").rsplit(".", 1)[-1].lower()


def is_dataflow(args: Sequence[str]) -> bool:
    return _short(args) in ("dataflowrunner", "testdataflowrunner")


def _reachable(endpoint: str, timeout: float = 5.0) -> bool:
    host, _, port = endpoint.rpartition(":")
    try:
        with socket.create_connection((host or "localhost", int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def check_runner(args: Sequence[str], dry_run: bool) -> None:
    """ConfigError for a runner that cannot start with these flags (see the module docstring)."""
    runner = _short(args)
    if is_dataflow(args):
        try:
            import google.cloud.storage  # noqa: F401 - Beam's gcp extra
            from apache_beam.runners.dataflow.dataflow_runner import DataflowRunner
        except ImportError as e:
            raise ConfigError(
                f"--runner DataflowRunner needs Beam's Google Cloud packages ({e.name} is missing): "
                "pip install '.[gcp]' (or reelbeam[gcp])"
            ) from e
        from apache_beam.options.pipeline_options import PipelineOptions
        from apache_beam.options.pipeline_options_validator import PipelineOptionsValidator

        errors = PipelineOptionsValidator(PipelineOptions(list(args)), DataflowRunner()).validate()
        if errors:
            raise ConfigError("Dataflow: " + "; ".join(e.strip().rstrip(".") for e in errors)
                              + " (see ./run_dataflow.sh --help)")
        return
    if dry_run:
        return
    if runner in PORTABLE and runner != "prismrunner":
        endpoint = flag_value(args, "--job_endpoint")
        if runner == "portablerunner" and not endpoint:
            raise ConfigError("--runner PortableRunner needs --job_endpoint HOST:PORT of a running Beam job service "
                              "(docs/flink.md shows how to start one)")
        if endpoint and endpoint != "embed" and not _reachable(endpoint):
            raise ConfigError(f"--job_endpoint {endpoint}: nothing answers there; start the job service first "
                              "(docs/flink.md)")
