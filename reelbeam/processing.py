"""`reelbeam.process(video)`: the pipeline from Python, for notebooks and scripts.

    import reelbeam
    result = reelbeam.process("film.mp4")                         # one video -> its result dict
    results = reelbeam.process(["a.mp4", "b.mkv"], shot_keyframes=True, scene_checkpoint="bassl.pt")
    shots = reelbeam.read(results_output, "shots")                 # every table, as pyarrow

It runs the same stages as `reelbeam run` on Beam's DirectRunner in this process and returns
ModelScope-style results (the documents `OUTPUT/json/<video_id>.json` holds: `shot_num`,
`shot_meta_list`, `scene_num`, `scene_meta_list`, and `summary_list` with CLIP weights), each with
the video's `uri`, `video_id` and the `output` folder its tables are in. Options are `reelbeam run`'s
flags with underscores: `shot_detector="lgss"` is `--shot-detector lgss`, `shot_keyframes=True` is
`--shot-keyframes`, a list repeats a flag (`query=["a dog", "a car"]`).
"""

from __future__ import annotations

import json
import posixpath
import shutil
import tempfile
from collections.abc import Sequence
from typing import Any

from reelbeam.stages.base import ConfigError

__all__ = ["ProcessingError", "process"]


class ProcessingError(RuntimeError):
    """A video could not be processed (its `failures` row says why: `.failure`)."""

    def __init__(self, uri: str, failure: dict) -> None:
        super().__init__(f"{uri}: {failure.get('stage')}/{failure.get('error_type')}: {failure.get('message')}")
        self.uri = uri
        self.failure = failure


def _flags(options: dict[str, Any]) -> list[str]:
    flags: list[str] = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            flags.append(flag)
        elif isinstance(value, (list, tuple)):
            for v in value:
                flags += [flag, str(v)]
        else:
            flags += [flag, str(value)]
    return flags


def _check_choices(argv: list[str]) -> None:
    """The command line's parser on `argv`, raising ConfigError where it would print a usage error
    and exit (an invalid choice, a value of the wrong type)."""
    from reelbeam.pipelines.cli import run_parser

    parser = run_parser()

    def error(message: str):
        raise ConfigError(message)

    parser.error = error
    parser.parse_known_args(argv)


def process(videos: str | Sequence[str], output: str | None = None, **options: Any) -> dict:
    """Process one video (-> its result dict) or several (-> {uri: result dict}).

    output: where the tables go (default: a new temporary folder, named in each result's `output`).
    A video that fails raises ProcessingError for a single video; with several, its entry is
    {"uri", "video_id", "failure": {...}} and the others are returned as usual. A video read whole
    whose later stage failed has its result with `stage_failures`.
    Bad options raise reelbeam's ConfigError before anything runs.
    """
    import fsspec

    from reelbeam.api import TableNotFound, read
    from reelbeam.pipelines.cli import run
    from reelbeam.transforms.listing import canonical_uri

    single = isinstance(videos, str)
    inputs = [videos] if single else list(videos)
    if not inputs:
        raise ValueError("process() needs at least one video")
    if options.get("dry_run"):
        raise ConfigError("dry_run builds a job without running it, and process() runs it: use "
                          "`reelbeam run --dry_run` to see the job")
    out = output or tempfile.mkdtemp(prefix="reelbeam-")
    argv = [a for v in inputs for a in ("--input", str(v))] + ["--output", out, *_flags(options)]
    try:
        _check_choices(argv)
        run(argv)
    except ConfigError:
        if output is None:
            shutil.rmtree(out, ignore_errors=True)
        raise
    by_uri: dict[str, dict] = {}
    try:
        ok_rows = read(out, "videos", columns=["video_id", "uri"]).to_pylist()
    except TableNotFound:  # no video was read whole
        ok_rows = []
    for row in ok_rows:
        path = posixpath.join(out, "json", f"{row['video_id']}.json")
        doc = {}
        try:
            with fsspec.open(path, "r", encoding="utf-8") as f:
                doc = json.load(f)
        except FileNotFoundError:
            pass
        by_uri[row["uri"]] = {**doc, "uri": row["uri"], "video_id": row["video_id"], "output": out}
    try:
        failures = read(out, "failures").to_pylist()
    except TableNotFound:
        failures = []
    for f in failures:
        failure = {k: f[k] for k in ("stage", "error_type", "message")}
        if f["uri"] in by_uri:  # read whole, but a later stage failed for it (e.g. no shot embeddings)
            by_uri[f["uri"]].setdefault("stage_failures", []).append(failure)
        else:
            by_uri[f["uri"]] = {"uri": f["uri"], "video_id": f["video_id"], "output": out, "failure": failure}
    if not single:  # only the videos asked for, not every video an existing output holds
        from reelbeam.transforms.listing import list_inputs

        wanted = {uri for uri, _, _ in list_inputs(inputs).entries}
        by_uri = {uri: r for uri, r in by_uri.items() if uri in wanted}
    if single:
        uri = canonical_uri(inputs[0])
        result = by_uri.get(uri) or next(iter(by_uri.values()), None)
        if result is None:
            raise ProcessingError(uri, {"stage": "list", "error_type": "not_found", "message": "nothing was processed"})
        if "failure" in result:
            raise ProcessingError(result["uri"], result["failure"])
        return result
    return by_uri
