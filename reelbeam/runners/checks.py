"""Checks of the runner's flags made before anything is built, so that a job that cannot start says
why in one line instead of failing in the runner (or, for a portable runner without a reachable
job service, waiting for minutes)."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Sequence

from reelbeam.runners.flags import flag_value, runner_name
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


_BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]")


def _check_gcs_locations(args: Sequence[str]) -> None:
    """Beam's validator replaces an invalid bucket name by a default bucket it looks up (or
    creates) on Cloud Storage: minutes of credential retries on a launcher without them."""
    for flag in ("--temp_location", "--staging_location"):
        value = flag_value(args, flag)
        if value and value.startswith("gs://"):
            bucket = value[len("gs://"):].split("/", 1)[0]
            if not _BUCKET.fullmatch(bucket):
                raise ConfigError(f"{flag} {value}: {bucket!r} is not a Cloud Storage bucket name (3-63 lowercase "
                                  "letters, digits, '-', '_' or '.', starting and ending with a letter or digit)")


def check_runner(args: Sequence[str], dry_run: bool) -> None:
    """ConfigError for a runner that cannot start with these flags (see the module docstring)."""
    runner = _short(args)
    if is_dataflow(args):
        _check_gcs_locations(args)
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

        if not any(flag_value(args, f) for f in ("--setup_file", "--sdk_container_image", "--extra_package")):
            import logging

            logging.getLogger(__name__).warning(
                "Dataflow: neither --setup_file nor --sdk_container_image (nor --extra_package) is given, so the workers "
                "will not have reelbeam; ./run_dataflow.sh passes both (docs/dataflow.md)")
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
        if endpoint == "embed":
            _check_embedded_environment(args)
        if endpoint and endpoint != "embed" and not _reachable(endpoint):
            raise ConfigError(f"--job_endpoint {endpoint}: nothing answers there; start the job service first "
                              "(docs/flink.md)")
        if not endpoint and runner in ("flinkrunner", "sparkrunner"):
            _check_job_server_jar(args, runner)


def _check_job_server_jar(args: Sequence[str], runner: str) -> None:
    """FlinkRunner and SparkRunner without --job_endpoint start Beam's job server from a jar, which
    Beam fetches from Maven Central on first use, and run it with Java: both checked here (a missing
    jar otherwise fails after the run is recorded, in a 30-line traceback)."""
    import shutil

    from apache_beam.options.pipeline_options import (
        FlinkRunnerOptions,
        JobServerOptions,
        PipelineOptions,
        SparkRunnerOptions,
    )

    options = PipelineOptions(list(args))
    name, flag = ("Flink", "--flink_job_server_jar") if runner == "flinkrunner" else ("Spark", "--spark_job_server_jar")
    if runner == "flinkrunner":
        if options.view_as(FlinkRunnerOptions).flink_submit_uber_jar:
            return
        from apache_beam.runners.portability.flink_runner import FlinkJarJobServer as Server
    else:
        if options.view_as(SparkRunnerOptions).spark_submit_uber_jar:
            return
        from apache_beam.runners.portability.spark_runner import SparkJarJobServer as Server
    java = options.view_as(JobServerOptions).job_server_java_launcher or "java"
    if shutil.which(java) is None:
        raise ConfigError(f"--runner {name}Runner starts Beam's {name} job server, a Java program, and there is no "
                          f"{java!r} here: install a JRE (11 or newer), or pass --job_endpoint HOST:PORT of a job "
                          "service already running (docs/flink.md)")
    jar = flag_value(list(args), flag)
    if jar and "://" not in jar and not os.path.exists(jar):
        raise ConfigError(f"{flag} {jar}: no such file")
    import logging

    server = Server(options)
    # Beam prints a 6-line warning box for each URL it tries; the outcome is said below.
    beam_log = logging.getLogger("apache_beam.utils.subprocess_server")
    level = beam_log.level
    beam_log.setLevel(logging.ERROR)
    try:
        server.local_jar(server.path_to_jar(), options.view_as(JobServerOptions).jar_cache_dir)
    except (RuntimeError, ValueError, OSError) as e:
        reason = str(e).split(". ")[0].split(": <urlopen")[0]
        raise ConfigError(f"--runner {name}Runner: {reason}. Pass {flag} PATH (a local copy of that jar), or "
                          "--job_endpoint HOST:PORT of a job service already running (docs/flink.md)") from e
    finally:
        beam_log.setLevel(level)


def _check_embedded_environment(args: Sequence[str]) -> None:
    """`--job_endpoint embed` runs the job service in this process, so its SDK workers start here:
    in Docker containers unless --environment_type says otherwise."""
    import shutil

    env_type = (flag_value(list(args), "--environment_type") or "DOCKER").upper()
    if env_type == "DOCKER" and shutil.which("docker") is None:
        raise ConfigError("--job_endpoint embed starts the SDK workers on this machine, in Docker containers "
                          "(--environment_type DOCKER, the default), and there is no `docker` here: pass "
                          "--environment_type=LOOPBACK (workers in this process) or PROCESS (docs/flink.md)")
