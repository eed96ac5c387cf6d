"""What a run reports: the end-of-run summary lines (videos ok and failed, rows per table, files,
notes and failures), the run manifest (`OUTPUT/_runs/<run id>.json`) and what goes into it (the
runner's counters, stage times, notices, table versions), and the marking of runs a crash left
'running'. The CLI calls these around the pipeline (`reelbeam.pipelines.cli`)."""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Sequence

from reelbeam import __version__

LOG = logging.getLogger("reelbeam")


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def summary(plan, counts: dict[str, int], failure_rows: list[dict], files: dict[str, int] | None = None,
            ledger_rows: list[dict] | None = None) -> str:
    """The end-of-run lines: videos ok and failed in this run, stage failures apart, rows per table,
    and the files of stages that write files (folder -> how many videos got theirs).

    ledger_rows: this run's `stage_runs` rows (video_id, stage, status): a video counts as ok when a
    stage of this run did its work on it, also where its own rows were done before (a resume that
    adds a stage); without them, the `videos` rows this run wrote."""
    decode = plan.input_stage
    video_failed = {f["video_id"] for f in failure_rows if f["stage"] in ("list", "decode", "assemble", "transition_model", "shot_detection")}
    stage_failed = [f for f in failure_rows if f["video_id"] not in video_failed]
    ok = counts.get("videos", 0)
    added: dict[str, set] = {}  # video done before -> the stages this run added to it
    if ledger_rows is not None:
        done: dict[str, set] = {}
        for row in ledger_rows:
            if row["status"] == "ok" and row["video_id"] not in video_failed:
                done.setdefault(row["video_id"], set()).add(row["stage"])
        ok = len(done)
        added = {v: stages for v, stages in done.items() if decode.name not in stages} if decode is not None else {}
    if decode is not None:
        head = f"reelbeam: {_count(ok, 'video')} ok, {len(video_failed)} failed"
        if added:
            stages = set().union(*added.values())
            names = ", ".join(n for n in plan.stage_names if n in stages)
            which = "done before" if len(added) == ok else f"{len(added)} of them done before"
            head += f" ({which}: this run added {names})"
    else:
        head = f"reelbeam: stages {', '.join(plan.stage_names)} (from {plan.source})"
    if stage_failed:
        head += f"; {_count(len({f['video_id'] for f in stage_failed}), 'video')} with a failed later stage"
    counters = getattr(plan, "counters", {})
    skipped = counters.get("videos_skipped", 0)
    if skipped:
        head += f"; {skipped} done earlier (skipped)"
    not_videos = dict(decode.listing.skipped) if decode is not None and decode.listing is not None else {}
    if not_videos:
        listed = ", ".join(f"{ext or '(none)'} x{n}" for ext, n in sorted(not_videos.items(), key=lambda kv: -kv[1]))
        head += f"; {_count(sum(not_videos.values()), 'file')} in folders skipped as not videos by extension ({listed})"
    lines = [f"{head}; tables under {plan.output}/ (run {plan.run_id})"]
    for table, n in counts.items():
        if n:
            lines.append(f"  {table:<18}{n:>10} {'row ' if n == 1 else 'rows'}   {posixpath.join(plan.output, table)}/")
    for folder, n in (files or {}).items():
        if n:
            lines.append(f"  {folder + '/':<18}{n:>10} {'video' if n == 1 else 'videos'}  {posixpath.join(plan.output, folder)}/")
    if not any(n for t, n in counts.items() if t not in ("failures", "stage_runs")) and not any((files or {}).values()):
        lines.append("  nothing new: everything asked for was done before")
    for note in getattr(getattr(plan, "env", None), "notes", ()):
        lines.append(f"  {note}")
    for notice in getattr(plan, "notices", ()):
        lines.append(f"  note: {notice}")
    by_type: dict[tuple, list] = {}
    for f in failure_rows:
        by_type.setdefault((f["stage"], f["error_type"]), []).append(f["uri"] or f["video_id"])
    for (stage, error_type), uris in sorted(by_type.items()):
        shown = ", ".join(sorted(uris)[:3]) + (f" and {len(uris) - 3} more" if len(uris) > 3 else "")
        lines.append(f"  failed: {stage}/{error_type} x{len(uris)}: {shown}")
    return "\n".join(lines)


def ledger_rows(plan) -> list[dict]:
    """This run's `stage_runs` rows (video_id, stage, status): the work it committed, per video and stage."""
    from reelbeam.store.tables import LEDGER, active_files, read_file

    rows = []
    for part in active_files(plan.output, LEDGER):
        if part.run_id == plan.run_id:
            rows += read_file(part.path, LEDGER, ["video_id", "stage", "status"]).to_pylist()
    return rows


def files_written(plan, ledger_rows: list[dict]) -> dict[str, int]:
    """folder -> videos whose files this run's file-writing stages wrote (their ok ledger rows)."""
    folders = {s.name: s.files_folder for s in plan.stages if s.files_folder}
    counts = dict.fromkeys(folders.values(), 0)
    for row in ledger_rows:
        if row["stage"] in folders and row["status"] == "ok":
            counts[folders[row["stage"]]] += 1
    return counts


def failure_rows(output: str, run_id: str) -> list[dict]:
    """This run's failures rows (the committed files it wrote to the failures log)."""
    from reelbeam.store.tables import active_files, read_file

    rows = []
    for part in active_files(output, "failures"):
        if part.run_id == run_id:
            rows += read_file(part.path, "failures", ["video_id", "uri", "stage", "error_type"]).to_pylist()
    return rows


def run_manifest(plan, argv: Sequence[str], beam_args: Sequence[str]) -> dict:
    from reelbeam.models.checkpoints import CheckpointError, sha256
    from reelbeam.pipelines.outputs import now

    checkpoints = {}
    for stage in plan.stages:
        for flag, path in stage.checkpoints().items():
            try:
                checkpoints[flag] = {"path": path, "sha256": sha256(path)}
            except CheckpointError as e:
                checkpoints[flag] = {"path": path, "error": str(e)}
    from reelbeam.pipelines.options import runner_name

    runner = runner_name(beam_args)
    return {
        "run_id": plan.run_id,
        "reelbeam_version": __version__,
        "argv": list(argv),
        "options": {k: v for k, v in vars(plan.options).items() if not k.startswith("_")},
        "runner": runner or "DirectRunner",
        "beam_args": list(beam_args),
        "stages": {s.name: s.settings() for s in plan.stages},
        "read_from": plan.source if plan.stored else None,
        "tables_read": {t: len(parts) for t, parts in plan.stored.items()},
        "checkpoints": checkpoints,
        "inputs": _inputs_of(plan),
        "started": now(),
        "status": "running",
    }


def counters(result) -> dict[str, int]:
    """The pipeline's `reelbeam` counters (summed over steps), where the runner reports them."""
    try:
        from apache_beam.metrics.metric import MetricsFilter

        found = result.metrics().query(MetricsFilter().with_namespace("reelbeam"))["counters"]
    except Exception:  # noqa: BLE001 - a runner without metrics: the summary does without
        return {}
    out: dict[str, int] = {}
    for c in found:
        out[c.key.metric.name] = out.get(c.key.metric.name, 0) + int(c.committed or c.attempted or 0)
    return out


def _inputs_of(plan) -> dict:
    decode = plan.input_stage
    if decode is None or decode.listing is None:
        return {}
    return {
        "specs": list(decode.inputs),
        "listed": decode.listing.count,
        "files_passed_over_by_extension": decode.listing.skipped,
    }


def split_counters(counters: dict[str, int], plan) -> tuple[dict[str, int], dict[str, dict]]:
    """(the run's counters, its `stage_times`): the timing counters (`reelbeam.transforms.timing`)
    are folded into seconds per stage; empty when the runner reported no counters."""
    from reelbeam.transforms.timing import is_timing_counter, stage_times

    timing = {k: v for k, v in counters.items() if is_timing_counter(k)}
    rest = {k: v for k, v in counters.items() if not is_timing_counter(k)}
    if not timing:
        return rest, {}
    passes = [s.name for s in plan.stages if s.in_decode_pass]
    return rest, stage_times(timing, plan.stage_names, passes)


def notices(plan) -> list[str]:
    """What the run did that its row counts do not tell (reelbeam.notices): copied scene clips much
    longer than their scenes, summaries that selected nothing."""
    from reelbeam.notices import notices_of_run

    try:
        return notices_of_run(plan.output, plan.run_id)
    except Exception:
        LOG.debug("could not gather the run's notices", exc_info=True)
        return []


def table_versions(plan) -> dict[str, int]:
    """table -> the last version this run committed (what `reelbeam.read(..., as_of_run=)` reads)."""
    from reelbeam.store.tables import history_of_run

    try:
        return {t: v[-1] for t, v in history_of_run(plan.output, plan.run_id).items()}
    except Exception:  # noqa: BLE001 - a manifest of a failed run is best effort
        return {}


def try_write_manifest(plan, manifest: dict) -> None:
    from reelbeam.pipelines.outputs import write_manifest

    try:
        write_manifest(plan.output, plan.run_id, manifest)
    except OSError as e:
        LOG.warning("could not record the run's failure in %s/_runs/%s.json (%s)", plan.output, plan.run_id, e)


def abandon_earlier_runs(output: str, run_id: str, taken_over: dict | None) -> None:
    """Holding the lease, no other run is writing: manifests still saying 'running' are of runs
    that were killed (or lost their machine); mark them abandoned, with when that was found."""
    import fsspec

    from reelbeam.pipelines.outputs import list_manifests, now, write_manifest

    fs, root = fsspec.core.url_to_fs(output)
    for leftover in fs.glob(posixpath.join(root, "_runs", ".*.json.tmp")):
        try:
            fs.rm(leftover)  # a manifest write that a killed run never finished
        except OSError:
            pass
    for other_id, manifest in list_manifests(output):
        if other_id == run_id or manifest.get("status") != "running":
            continue
        manifest.update(status="abandoned", abandoned=now(),
                        reason=f"found unfinished by run {run_id}" + (
                            " (its lease's heartbeat had stopped)" if taken_over and taken_over.get("run_id") == other_id else ""))
        try:
            write_manifest(output, other_id, manifest)
        except OSError as e:
            LOG.warning("could not mark run %s abandoned: %s", other_id, e)
