"""Local runs share the machine's cores: torch threads per worker process = cores / processes, set
before the workers start (they inherit it), never for remote workers, and a user's own setting wins."""

import os
import subprocess
import sys

import pytest

from reelbeam.runners import local
from reelbeam.runners.checks import check_runner
from reelbeam.stages.base import ConfigError


@pytest.fixture
def four_cores(monkeypatch):
    import torch

    monkeypatch.setattr(local, "cores", lambda: 4)
    for var in local.THREAD_VARIABLES:
        monkeypatch.setenv(var, "unset")  # records the original, which the teardown restores
        monkeypatch.delenv(var)
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("args, threads", [
    ([], 4),  # in_memory: one process
    (["--direct_running_mode=multi_processing", "--direct_num_workers=2"], 2),
    (["--direct_running_mode", "multi_processing", "--direct_num_workers", "4"], 1),
    (["--direct_running_mode=multi_processing", "--direct_num_workers=8"], 1),  # never below 1
    (["--direct_running_mode=multi_processing", "--direct_num_workers=0"], 1),  # 0: a worker per core
    (["--runner", "dask"], 1),  # LocalCluster: one single-threaded worker per core
    (["--runner=DataflowRunner"], None),
    (["--runner", "dask", "--dask_client_address", "sched:8786"], None),
])
def test_thread_budget(four_cores, args, threads):
    assert local.thread_budget(args) == threads


def test_the_budget_reaches_worker_processes_and_a_users_setting_wins(four_cores, monkeypatch):
    local.limit_threads(["--direct_running_mode=multi_processing", "--direct_num_workers=2"])
    code = "import torch; print(torch.get_num_threads())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ)
    assert out.stdout.strip() == "2"
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert local.limit_threads(["--direct_running_mode=multi_processing", "--direct_num_workers=2"]) == 3


def test_a_remote_runner_leaves_threads_alone(four_cores):
    assert local.limit_threads(["--runner=FlinkRunner"]) is None
    assert "OMP_NUM_THREADS" not in os.environ


def test_a_portable_runner_without_a_job_service_fails_at_once():
    with pytest.raises(ConfigError, match="--job_endpoint HOST:PORT"):
        check_runner(["--runner", "PortableRunner"], dry_run=False)
    with pytest.raises(ConfigError, match="nothing answers there"):
        check_runner(["--runner", "PortableRunner", "--job_endpoint", "localhost:1"], dry_run=False)


@pytest.mark.parametrize("runner, flag", [("FlinkRunner", "--flink_job_server_jar"), ("SparkRunner", "--spark_job_server_jar")])
def test_flink_and_spark_without_their_job_server_jar_fail_at_once(runner, flag, monkeypatch, tmp_path):
    import shutil

    from apache_beam.runners.portability import job_server

    fetched = []

    def offline(url, cache_dir=None, user_agent=None):
        fetched.append(url)
        raise RuntimeError(f"Unable to fetch remote job server jar at {url}: <urlopen error offline>. Also failed")

    monkeypatch.setattr(job_server.JavaJarJobServer, "local_jar", staticmethod(offline))
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/java")
    with pytest.raises(ConfigError, match=f"Unable to fetch remote job server jar at https://.*jar. Pass {flag} PATH") as e:
        check_runner(["--runner", runner], dry_run=False)
    assert "urlopen" not in str(e.value) and len(fetched) == 1
    with pytest.raises(ConfigError, match=f"{flag} {tmp_path}/nope.jar: no such file"):
        check_runner(["--runner", runner, flag, str(tmp_path / "nope.jar")], dry_run=False)
    jar = tmp_path / "server.jar"
    jar.write_bytes(b"PK")
    monkeypatch.setattr(job_server.JavaJarJobServer, "local_jar", staticmethod(lambda url, cache_dir=None, user_agent=None: url))
    check_runner(["--runner", runner, flag, str(jar)], dry_run=False)  # a jar given: nothing to fetch
    check_runner(["--runner", runner, "--job_endpoint", "embed"], dry_run=False)  # a job service: no jar needed
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ConfigError, match="a Java program, and there is no 'java' here"):
        check_runner(["--runner", runner, flag, str(jar)], dry_run=False)


def test_the_direct_runner_is_kept_off_prism(tmp_path, short_video, caplog):
    """Beam's DirectRunner would try to download and run its Prism runner (offline it logs the
    failed download and falls back): reelbeam's local runs stay on the FnApiRunner."""
    import logging

    from reelbeam.pipelines.cli import run

    assert local.without_prism(["--runner", "DataflowRunner"]) == ["--runner", "DataflowRunner"]
    assert local.without_prism([]) == ["--allow_unsafe_triggers"]
    with caplog.at_level(logging.INFO):
        run(["--input", short_video, "--output", str(tmp_path / "out")])
    assert "PrismRunner" not in caplog.text and "prism" not in caplog.text.lower()


def test_an_embedded_job_service_without_docker_is_refused(monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ConfigError, match="there is no `docker` here: pass --environment_type=LOOPBACK"):
        check_runner(["--runner", "PortableRunner", "--job_endpoint", "embed"], dry_run=False)
    check_runner(["--runner", "PortableRunner", "--job_endpoint", "embed", "--environment_type", "LOOPBACK"], dry_run=False)
