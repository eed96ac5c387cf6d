"""ProcessVideos: the pipeline as a fold over the plan's stages (`reelbeam.stages.REGISTRY` order).

Each stage gets its reads as a dict of PCollections: the rows a stage earlier in this job made,
plus, when the plan reads an earlier run, that run's committed rows (`ReadTable`), leaving out the
videos the stage must not redo. The decode stage runs the single decode pass with every running
pass stage's consumers and hands back their tables too. A Reshuffle sits before every model stage
(`Stage.reshuffle_inputs`), and failures of every stage are flattened once, their uris filled from
`videos`.

`write_outputs` adds the writers: every (stage, table) to its own part files, then per stage its
ledger rows (`stage_runs`), only after that stage's files are final.

Step labels are stable: they are Dataflow step names, and a job update needs them unchanged.
"""

from __future__ import annotations

import dataclasses
import datetime

import apache_beam as beam

from reelbeam.pipelines.plan import Plan
from reelbeam.schemas.tables import TABLES
from reelbeam.stages import STREAMS, Stage
from reelbeam.transforms.failures import FillFailureUris
from reelbeam.transforms.read import ReadTable
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
    after: tuple = ()  # stages whose files must be final before this stage's ledger rows


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
            rows = self._pbegin | step >> ReadTable(table, files, exclude)
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
        if stage.name == "decode":
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
                results.append(StageResult(p, p_tables, None, _drop_videos(ok, p_skip, f"{p.label_of()}_SkipIds"), after=("decode",)))
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
    return Fold(results, merged, failures)


class ProcessVideos(beam.PTransform):
    """PBegin -> dict of PCollections, one per table this job makes ('videos', 'frames' (pyarrow
    Tables, one per video), 'shots', ...) and 'failures' (every stage's, uris filled).

    transition_handler: a ModelHandler replacing TransNetV2 (uint8 windows [100, 27, 48, 3] ->
      probabilities [50]), for tests and for users plugging in their own transition model.
    """

    def __init__(self, plan: Plan, transition_handler=None) -> None:
        super().__init__()
        self._plan = plan
        self.fold: Fold | None = None
        shots = plan.running("shots")
        if transition_handler is not None and shots is not None:
            shots.transition_handler = transition_handler

    def expand(self, pbegin):
        self.fold = apply_stages(pbegin, self._plan)
        return {**self.fold.tables, "failures": self.fold.failures}


def _ledger_rows(stage_name: str, run_id: str, settings: str):
    def rows(element):
        video_id, g = element
        if not g["processed"]:
            return
        failed = bool(g["failed"])
        yield {
            "video_id": video_id,
            "stage": stage_name,
            "run_id": run_id,
            "status": "failed" if failed else "ok",
            "settings": settings,
            "time": datetime.datetime.now(datetime.UTC),
        }

    return rows


def _rows_after_files(element):
    _key, g = element
    yield from g["rows"]  # only now: the group exists once every file in g["files"] is final


def write_outputs(fold: Fold, plan: Plan):
    """Write every stage's tables, the failures, and each stage's ledger rows once its files are
    final (a CoGroupByKey with the final file names: a barrier every runner keeps). Returns the
    PCollection of every file written, the job's last step depending on all of them."""
    written: dict[str, list] = {}
    for r in fold.results:
        label = r.stage.label_of()
        files = [
            pc | f"Write_{table}_{label}" >> WriteTable(plan.output, table, plan.run_id, r.stage.name, plan.codec)
            for table, pc in sorted(r.tables.items())
        ]
        if r.written is not None:
            files.append(r.written)
        written[r.stage.name] = files
    everything = [pc for files in written.values() for pc in files]
    everything.append(fold.failures | "Write_failures" >> WriteTable(plan.output, "failures", plan.run_id, "run", plan.codec))
    for r in fold.results:
        if r.processed is None:
            continue
        label = r.stage.label_of()
        failed = (
            r.failures | f"{label}_FailedIds" >> beam.Map(lambda f: (f["video_id"], True))
            if r.failures is not None
            else r.processed.pipeline | f"{label}_NoFailedIds" >> beam.Create([])
        )
        ledger = (
            {"processed": r.processed | f"{label}_KeyProcessed" >> beam.Map(lambda v: (v, True)), "failed": failed}
            | f"{label}_JoinOutcome" >> beam.CoGroupByKey()
            | f"{label}_LedgerRows" >> beam.FlatMap(_ledger_rows(r.stage.name, plan.run_id, r.stage.settings()))
        )
        barrier = [pc for name in (r.stage.name, *r.after) for pc in written.get(name, [])]
        if barrier:
            files = barrier[0] if len(barrier) == 1 else barrier | f"{label}_ItsFiles" >> beam.Flatten()
            ledger = (
                {
                    "rows": ledger | f"{label}_KeyRows" >> beam.Map(lambda row: (None, row)),
                    "files": files | f"{label}_KeyFiles" >> beam.Map(lambda path: (None, path)),
                }
                | f"{label}_AfterItsFiles" >> beam.CoGroupByKey()
                | f"{label}_Rows" >> beam.FlatMap(_rows_after_files)
            )
        everything.append(
            ledger | f"Write_stage_runs_{label}" >> WriteTable(plan.output, "stage_runs", plan.run_id, r.stage.name, plan.codec)
        )
    return everything | "AllFilesWritten" >> beam.Flatten()
