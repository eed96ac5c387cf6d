"""The pipeline as a fold over the plan's stages (`reelbeam.stages.REGISTRY` order): `apply_stages`,
then `write_outputs`; `build_pipeline` adds both to a Beam pipeline.

Each stage gets its reads as a dict of PCollections: the rows a stage earlier in this job made,
plus, when the plan reads an earlier run, that run's committed rows (`ReadTable`), leaving out the
videos the stage must not redo. The decode stage runs the single decode pass with every running
pass stage's consumers and hands back their tables too. A Reshuffle sits before each stage that asks
for one (`Stage.reshuffle_inputs`: the shot encoders, the boundary model and CMD, whose work per
element is large), and failures of every stage are flattened once, their uris filled from
`videos`.

`write_outputs` adds the writers: every (stage, table) to its own data files, then per stage (the
decode pass with the stages inside it counting as one) one step that commits them to the Delta
tables and, last, the stage's ledger rows (`stage_runs`; see `reelbeam.store.tables`).

Step labels are stable: they are Dataflow step names, and a job update needs them unchanged.
"""

from __future__ import annotations

import dataclasses
import logging

import apache_beam as beam

from reelbeam.pipelines.plan import Plan
from reelbeam.schemas.tables import TABLES
from reelbeam.stages import STREAMS, Stage
from reelbeam.transforms.failures import FillFailureUris
from reelbeam.transforms.read import ReadTable
from reelbeam.transforms.timing import COMMIT
from reelbeam.transforms.write import WriteTable


@dataclasses.dataclass
class StageResult:
    """One stage's outputs in this job: its tables (rows of the videos it did), failures rows,
    the video_ids it handled (ok or failed) and, for stages that write files themselves, `written`."""

    stage: Stage
    tables: dict
    failures: beam.PCollection | None = None
    processed: beam.PCollection | None = None
    written: beam.PCollection | None = None


@dataclasses.dataclass
class Fold:
    results: list
    tables: dict  # table -> PCollection of this job's rows (all stages)
    failures: beam.PCollection  # every stage's failures rows, uris filled


def _drop_videos(pcoll, skip: frozenset, label: str):
    if not skip:
        return pcoll
    return pcoll | label >> beam.Filter(lambda row, s=skip: _row_video_id(row) not in s)


def _row_video_id(row) -> str:
    if isinstance(row, str):  # a video_id itself
        return row
    if isinstance(row, dict):
        return row["video_id"]
    if hasattr(row, "video_id"):
        return row.video_id
    if hasattr(row, "column"):  # a pyarrow Table of one video
        return row.column("video_id")[0].as_py() if row.num_rows else ""
    return row[0]  # (video_id, ...) streams


class _Inputs:
    """Where each table a stage reads comes from (see the module docstring)."""

    def __init__(self, pbegin, plan: Plan) -> None:
        self._pbegin = pbegin
        self._plan = plan
        self.made: dict[str, list] = {}

    def add(self, table: str, pcoll) -> None:
        self.made.setdefault(table, []).append(pcoll)

    def stored(self, table: str, consumer: str, label: str):
        """Reads of `table`'s stored rows for `consumer` (a stage name), leaving out the videos it skips."""
        plan = self._plan
        parts = plan.stored.get(table, [])
        running = {s.name for s in plan.stages}
        makers = [s.name for s in plan.stages if table in s.writes]
        groups: dict[frozenset | None, list[str]] = {}
        for part in parts:
            if part.stage in running:
                keep = plan.skip.get(part.stage, frozenset())  # made again in this job except for these
            elif part.stage is None and makers:
                keep = frozenset.intersection(*(plan.skip.get(m, frozenset()) for m in makers))
            else:
                keep = None
            if keep is not None and not keep:
                continue
            groups.setdefault(keep, []).append(part.path)
        exclude = plan.skip.get(consumer, frozenset())
        out = []
        for i, (keep, files) in enumerate(groups.items()):
            step = f"Read_{table}_for_{label}" + (f"_{i}" if i else "")
            rows = self._pbegin | step >> ReadTable(table, files, exclude, timed_as=consumer if consumer in running else None)
            if keep is not None:
                rows = rows | f"{step}_DoneBefore" >> beam.Filter(lambda r, k=keep: _row_video_id(r) in k)
            out.append(rows)
        return out

    def all_of(self, table: str, consumer: str, label: str) -> list:
        """This job's rows of `table` plus the stored ones."""
        return list(self.made.get(table, [])) + (self.stored(table, consumer, label) if table not in STREAMS else [])

    def for_stage(self, stage: Stage) -> dict:
        inputs = {}
        for table in (*stage.reads, *stage.optional_reads):
            sources = self.all_of(table, stage.name, stage.label_of())
            if not sources:
                continue
            pcoll = sources[0] if len(sources) == 1 else sources | f"Join_{table}_for_{stage.label_of()}" >> beam.Flatten()
            if stage.reshuffle_inputs and table in stage.reads:
                pcoll = pcoll | f"Reshuffle_{table}_for_{stage.label_of()}" >> beam.Reshuffle()
            inputs[table] = pcoll
        return inputs


def apply_stages(pbegin, plan: Plan) -> Fold:
    """Apply every stage of `plan` in order; return each stage's outputs and the merged tables."""
    inputs = _Inputs(pbegin, plan)
    results: list[StageResult] = []
    for stage in plan.stages:
        if stage.in_decode_pass:
            continue  # runs inside the decode stage
        label = stage.label_of()
        skip = plan.skip.get(stage.name, frozenset())
        if stage.reads_inputs:
            out = pbegin | label >> stage
            videos_all = out["videos"]
            tables = {t: _drop_videos(out[t], skip, f"{label}_Skip_{t}") for t in ("videos", "frames")}
            processed = _drop_videos(out["processed"], skip, f"{label}_SkipProcessed")
            results.append(StageResult(stage, tables, out["failures"], processed))
            for t, pc in tables.items():
                inputs.add(t, pc)
            for tag in STREAMS:
                if tag in out:
                    inputs.add(tag, out[tag])
            for p in plan.stages:
                if not p.in_decode_pass:
                    continue
                p_skip = plan.skip.get(p.name, frozenset())
                p_tables = {
                    t: _drop_videos(out[f"{p.name}/{t}"], p_skip, f"{p.label_of()}_Skip_{t}") for t in p.writes
                }
                ok = videos_all | f"{p.label_of()}_OkIds" >> beam.Map(lambda r: r["video_id"])
                results.append(StageResult(p, p_tables, None, _drop_videos(ok, p_skip, f"{p.label_of()}_SkipIds")))
                for t, pc in p_tables.items():
                    inputs.add(t, pc)
            continue
        out = inputs.for_stage(stage) | label >> stage
        tables = {t: out[t] for t in stage.writes if t in out}
        results.append(StageResult(stage, tables, out.get("failures"), out.get("processed"), out.get("written")))
        for t, pc in tables.items():
            inputs.add(t, pc)

    merged = {}
    for table in TABLES:
        pcolls = [r.tables[table] for r in results if table in r.tables]
        if len(pcolls) == 1:
            merged[table] = pcolls[0]
        elif pcolls:
            merged[table] = pcolls | f"All_{table}" >> beam.Flatten()
    failures = [r.failures for r in results if r.failures is not None]
    failures = failures | "FlattenFailures" >> beam.Flatten() if failures else pbegin | "NoFailures" >> beam.Create([])
    videos = inputs.all_of("videos", "failures", "FillFailureUris")
    if videos:
        videos = videos[0] if len(videos) == 1 else videos | "VideosForFailures" >> beam.Flatten()
        failures = (videos, failures) | "FillFailureUris" >> FillFailureUris()
    pipeline = getattr(pbegin, "pipeline", pbegin)
    time_stage_steps(pipeline.transforms_stack[-1])
    return Fold(results, merged, failures)


def time_stage_steps(applied) -> None:
    """Make every timed DoFn inside a stage's composite under `applied` (a node of the graph being
    built) count toward that stage (its `timed_as`; the innermost stage for a pass stage's step
    inside the decode stage). Steps keep a stage given explicitly (reads, writes)."""
    from apache_beam.transforms.core import ParDo

    def walk(node, stage: str | None) -> None:
        if isinstance(node.transform, Stage):
            stage = node.transform.name
        fn = getattr(node.transform, "fn", None) if isinstance(node.transform, ParDo) else None
        if stage is not None and fn is not None and hasattr(fn, "timed_as") and fn.timed_as is None:
            fn.timed_as = stage
        for part in node.parts:
            walk(part, stage)

    walk(applied, None)


class _CommitFn(beam.DoFn):
    """All of a commit group's files and outcomes (one element, after a GroupByKey: a barrier every
    runner keeps) -> the stages' Delta commits (`reelbeam.store.tables.commit_stages`): the intent,
    each table, then the ledger. Yields one line per table committed. Its time counts as `commit`
    (`reelbeam.transforms.timing`)."""

    def __init__(self, output: str, run_id: str, parts: list[dict], codec: str, log: bool = False) -> None:
        from reelbeam.transforms.timing import StageClock

        self._output = output
        self._run_id = run_id
        self._parts = parts
        self._codec = codec
        self._log = log
        self._timed_as = COMMIT
        self._clock = StageClock()

    def process(self, element):
        results = self._clock.call(self._timed_as, self._commit, element)
        self._clock.flush()
        for r in results:
            if r.version is not None:
                yield f"{r.table}@{r.version}"

    def _commit(self, element) -> list:
        from reelbeam.store import tables as store

        _, items = element
        files: dict[tuple, list] = {}
        processed: dict[str, set] = {}
        failed: dict[str, set] = {}
        for kind, stage, value in items:
            if kind == "file":
                table, path = value
                files.setdefault((stage, table), []).append(path)
            elif kind == "processed":
                processed.setdefault(stage, set()).add(value)
            elif kind == "failed":
                failed.setdefault(stage, set()).add(value)
        if self._log:
            (part,) = self._parts
            changes = [store.Change(part["stage"], files.get((part["stage"], t), ())) for t in part["writes"]]
            results = [store.commit(self._output, t, [c], run_id=self._run_id, append_only=True)
                       for t, c in zip(part["writes"], changes)]
        else:
            commits = [
                store.StageCommit(
                    p["stage"], p["settings"], p["writes"],
                    {t: files.get((p["stage"], t), ()) for t in p["writes"]},
                    processed.get(p["stage"], set()), failed.get(p["stage"], set()) & processed.get(p["stage"], set()),
                    p["replaces"], p["whole"],
                )
                for p in self._parts
            ]
            results = store.commit_stages(self._output, self._run_id, commits, self._codec)
        return list(results)


def _tagged(pcoll, kind: str, stage: str, label: str):
    """(None, (kind, stage, value)): keyed for the commit group's GroupByKey in the same step."""
    if kind == "file":
        return pcoll | label >> beam.Map(lambda x, s=stage: (None, ("file", s, (x[1], x[2]))))
    if kind == "failed":
        return pcoll | label >> beam.Map(lambda f, s=stage: (None, ("failed", s, f["video_id"])))
    return pcoll | label >> beam.Map(lambda v, s=stage, k=kind: (None, (k, s, v)))


def _commit_groups(fold: Fold) -> list[list[StageResult]]:
    """The decode pass and the stages inside it commit together (they finish together); every
    other stage on its own."""
    groups, decode_group = [], []
    for r in fold.results:
        if r.stage.reads_inputs or r.stage.in_decode_pass:
            decode_group.append(r)
        else:
            groups.append([r])
    return ([decode_group] if decode_group else []) + groups


def _part_spec(stage: Stage, plan: Plan) -> dict:
    rivals = [c.name for c in stages_registry() if stage.exclusive and c.exclusive == stage.exclusive]
    return {
        "stage": stage.name,
        "settings": stage.settings(),
        "writes": [t for t in TABLES if t in stage.writes],
        "replaces": sorted({stage.name, *rivals}) if plan.overwrite else [stage.name],
        "whole": bool(plan.overwrite),
    }


def stages_registry():
    from reelbeam.stages import REGISTRY

    return REGISTRY


def write_outputs(fold: Fold, plan: Plan):
    """Write every stage's tables and commit them, stage by stage (each commit group: its data
    files, then one step committing its tables and, last, its ledger rows), and the failures log.
    Returns the PCollection of "table@version" of every commit; the job's last step depends on it."""
    committed = []
    for group in _commit_groups(fold):
        label = group[0].stage.label_of()
        items = []
        for r in group:
            name, lbl = r.stage.name, r.stage.label_of()
            for table, pc in sorted(r.tables.items()):
                files = pc | f"Write_{table}_{lbl}" >> WriteTable(plan.output, table, plan.run_id, name, plan.codec)
                items.append(_tagged(files, "file", name, f"{lbl}_{table}_Files"))
            if r.processed is not None:
                items.append(_tagged(r.processed, "processed", name, f"{lbl}_Processed"))
            if r.failures is not None:
                items.append(_tagged(r.failures, "failed", name, f"{lbl}_Failed"))
            if r.written is not None:
                items.append(_tagged(r.written, "written", name, f"{lbl}_Written"))
        parts = [_part_spec(r.stage, plan) for r in group]
        if plan.overwrite and group[0].stage.reads_inputs:
            parts += _stale_parts(plan)
        committed.append(
            items
            | f"{label}_Outcome" >> beam.Flatten()
            | f"{label}_Gather" >> beam.GroupByKey()
            | f"Commit_{label}" >> beam.ParDo(_CommitFn(plan.output, plan.run_id, parts, plan.codec))
        )
    files = fold.failures | "Write_failures" >> WriteTable(plan.output, "failures", plan.run_id, "run", plan.codec,
                                                          timed_as=COMMIT)
    log = {"stage": "run", "settings": "", "writes": ["failures"], "replaces": [], "whole": False}
    committed.append(
        _tagged(files, "file", "run", "Failures_Files")
        | "Failures_Gather" >> beam.GroupByKey()
        | "Commit_failures" >> beam.ParDo(_CommitFn(plan.output, plan.run_id, [log], plan.codec, log=True))
    )
    return committed | "AllCommits" >> beam.Flatten()


def _stale_parts(plan: Plan) -> list[dict]:
    """With --overwrite of a whole run (the decode pass runs): every other stage's rows go too, in
    the decode pass's commit (a full re-run leaves no table of the earlier one behind)."""
    running = set(plan.stage_names)
    return [
        {"stage": c.name, "settings": "", "writes": [t for t in TABLES if t in c.writes], "replaces": [c.name],
         "whole": True}
        for c in stages_registry() if c.name not in running and c.writes
    ]


def _log_files(n: int) -> int:
    logging.getLogger("reelbeam").debug("%d files written", n)
    return n


def build_pipeline(pipeline, plan):
    """Add the stages and the writers to `pipeline`; return the fold (each stage's outputs)."""
    fold = apply_stages(pipeline, plan)
    files = write_outputs(fold, plan)
    # The job's last step depends on every file it writes: runners that compute only what the
    # final step needs (Beam's DaskRunner) then run the whole job.
    _ = (
        files
        | "OneKey" >> beam.Map(lambda path: (None, path))
        | "EveryFile" >> beam.GroupByKey()
        | "RunComplete" >> beam.Map(lambda kv: _log_files(len(list(kv[1]))))
    )
    return fold
