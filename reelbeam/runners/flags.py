"""The runner's flags as Beam reads them (`--runner`, `--direct_running_mode`, ...): pure functions
on the argument list, shared by the launcher's checks and the local-runner setup. Kept here, beside
the runners, so `reelbeam.runners` needs nothing from `reelbeam.pipelines`."""

from __future__ import annotations

from collections.abc import Sequence

LOCAL_RUNNERS = {"directrunner", "switchingdirectrunner", "bundlebaseddirectrunner", "fnapirunner", "prismrunner",
                 "interactiverunner", "testdirectrunner"}


def flag_value(args: Sequence[str], flag: str) -> str | None:
    """The value of `flag` in a list of Beam flags (`--flag=v` or `--flag v`), None when absent;
    the last one when given more than once (as Beam's parser reads them)."""
    value = None
    for i, a in enumerate(args):
        if a.startswith(flag + "="):
            value = a.split("=", 1)[1]
        elif a == flag and i + 1 < len(args):
            value = args[i + 1]
    return value


def runner_name(args: Sequence[str]) -> str | None:
    """The `--runner` in `args` (None: Beam's default, the DirectRunner)."""
    return flag_value(args, "--runner")


def is_local_runner(args: Sequence[str]) -> bool:
    """Whether the workers of a run with these flags are processes of this machine (DirectRunner,
    Prism, or Dask without --dask_client_address): only then may the launcher's GPU shape the job."""
    runner = (runner_name(args) or "DirectRunner").rsplit(".", 1)[-1].lower()
    if runner in ("dask", "daskrunner"):
        return not any(a.startswith("--dask_client_address") for a in args)
    return runner in LOCAL_RUNNERS
