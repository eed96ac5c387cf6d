"""Threads for local runs: the worker processes of one machine share its cores.

Every worker process of a local run (DirectRunner in multi_processing mode, a Dask LocalCluster)
would otherwise start one torch/OpenMP thread per core, so N workers ran N x cores threads on
cores cores, and TransNetV2, the encoders and the frame decoders fought over them. The launcher
sets the budget (cores / worker processes, at least 1) before the workers start; they inherit it
through the environment (OMP_NUM_THREADS and MKL_NUM_THREADS, which torch reads when it starts)
and the launcher's own torch, for in-process runners, gets it directly. A value the user already
exported wins. docs/scaling.md has the measurement.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

from reelbeam.runners.flags import flag_value, is_local_runner, runner_name

LOG = logging.getLogger(__name__)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def cores() -> int:
    """The cores this process may run on (its affinity: a container's or taskset's limit)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def worker_processes(args: Sequence[str]) -> int:
    """How many processes of this machine run the job's work with these Beam flags."""
    runner = (runner_name(args) or "DirectRunner").rsplit(".", 1)[-1].lower()
    if runner in ("dask", "daskrunner"):
        return cores()  # dask.distributed's LocalCluster: one single-threaded worker per core here
    mode = flag_value(args, "--direct_running_mode") or "in_memory"
    if mode != "multi_processing":
        return 1
    n = int(flag_value(args, "--direct_num_workers") or 1)
    return cores() if n == 0 else max(1, n)  # Beam: 0 means one worker per core


def direct_layout(args: Sequence[str], videos: int | None) -> list[str]:
    """Beam's DirectRunner flags for a run of `videos` videos, where the user gave neither
    --direct_running_mode nor --direct_num_workers (their flags are kept as they are):

    - at most one video (or a run that reads earlier tables only): in_memory, the job in this
      process. Starting worker processes (each importing Beam and torch and loading the models)
      costs more than it saves on one video;
    - more videos: multi_processing with one worker process per core, at most one per video.
    """
    args = list(args)
    runner = (runner_name(args) or "DirectRunner").rsplit(".", 1)[-1].lower()
    if runner not in ("directrunner", "switchingdirectrunner"):
        return args
    if flag_value(args, "--direct_running_mode") is not None or flag_value(args, "--direct_num_workers") is not None:
        return args
    if not videos or videos <= 1:
        return [*args, "--direct_running_mode=in_memory"]
    return [*args, "--direct_running_mode=multi_processing", f"--direct_num_workers={min(cores(), videos)}"]


def without_prism(args: Sequence[str]) -> list[str]:
    """Beam's DirectRunner flags that keep it on its in-process FnApiRunner.

    Beam 2.77's DirectRunner first tries its Prism runner, a Go binary it downloads from GitHub at
    run time: offline it falls back after a failed download, online it runs the job there, where
    the layouts above, the thread budget and the progress watcher do not apply. Beam skips Prism
    for pipelines that allow unsafe triggers; reelbeam uses only default triggers, on which that
    flag has no other effect (Beam's own combiner tests set it for the same reason).
    """
    args = list(args)
    runner = (runner_name(args) or "DirectRunner").rsplit(".", 1)[-1].lower()
    if runner in ("directrunner", "switchingdirectrunner") and "--allow_unsafe_triggers" not in args:
        args.append("--allow_unsafe_triggers")
    return args


def thread_budget(args: Sequence[str]) -> int | None:
    """Intra-op threads per worker process for a local run; None for remote workers (their
    processes and cores are the runner's business: docs/scaling.md)."""
    if not is_local_runner(args):
        return None
    return max(1, cores() // worker_processes(args))


def limit_threads(args: Sequence[str]) -> int | None:
    """Apply `thread_budget` to this process and to the workers it starts; returns it."""
    threads = thread_budget(args)
    if threads is None:
        return None
    for var in THREAD_VARIABLES:
        os.environ.setdefault(var, str(threads))
    try:
        threads = max(1, int(os.environ["OMP_NUM_THREADS"]))
    except ValueError:
        os.environ["OMP_NUM_THREADS"] = str(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    LOG.debug("%d torch threads per worker process (%d cores, %d processes)", threads, cores(), worker_processes(args))
    return threads
