"""From flags to a plan: which stages run, which tables come from an earlier run, and which videos
each stage must leave alone. Everything here runs on the launcher, before the pipeline is built,
and every problem is a ConfigError saying what to change.

- Stages configure themselves from the options (`Stage.configure`); a stage that an enabled one
  reads from and that its own flags left off is asked to run for it (`Stage.on_demand`: shot
  keyframes for a shot encoder); of stages filling one role (`Stage.exclusive`) those of the highest
  `precedence` stay. The enabled ones run, or, with `--start-from TABLE[,...]`, those downstream of
  the named tables, or exactly `--stages NAME[,...]`.
- A stage needs its `reads`: made by a stage running earlier in this job, or read (committed files
  only) from `--from` (default `--output`) when starting from an earlier run. A table neither made
  nor readable fails here, naming the flag that would make it.
- The output: a run into tables that this run's stages already wrote needs `--skip-existing`
  (resume: the ledger in `stage_runs` says, per video and stage, what is done; work done with other
  settings is refused) or `--overwrite` (this run's commits replace every row its stages wrote
  before). An output in the layout of reelbeam versions before Delta tables is read, not written:
  `reelbeam migrate` converts it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

import fsspec
from apache_beam.options.pipeline_options import PipelineOptions

from reelbeam import stages
from reelbeam.pipelines import outputs
from reelbeam.pipelines.options import ReelbeamOptions, accelerator_hint
from reelbeam.runners.flags import is_local_runner
from reelbeam.schemas.tables import TABLES
from reelbeam.stages import STREAMS, ConfigError, RunEnv, Stage
from reelbeam.stages.base import Hardware
from reelbeam.store import legacy
from reelbeam.store.tables import LEDGER, PartFile, active_files, new_run_id

LOG = logging.getLogger(__name__)


@dataclasses.dataclass
class Plan:
    """A validated run: the stages that run, in order, and where their inputs come from.

    stored: table -> committed data files (PartFile) to read from `source`: tables no running stage
      makes, and, when resuming, the rows of videos whose producing stage is done.
    skip: stage name -> videos it must not write rows for (done before, per the ledger).
    skip_listing: videos the decode pass need not read at all.
    """

    options: object
    env: RunEnv
    stages: list
    output: str
    source: str
    run_id: str
    codec: str = "zstd"
    stored: dict = dataclasses.field(default_factory=dict)
    skip: dict = dataclasses.field(default_factory=dict)
    skip_listing: frozenset = frozenset()
    skip_existing: bool = False
    overwrite: bool = False
    dry_run: bool = False  # the job is built, not run: inputs are not listed
    graph: object | None = None  # a dry run's JobGraph
    progress: bool = False  # print live progress while a local run runs (the command line's)
    counters: dict = dataclasses.field(default_factory=dict)  # the pipeline's counters, after a run
    stage_times: dict = dataclasses.field(default_factory=dict)  # seconds per stage, after a run (reelbeam.transforms.timing)
    notices: list = dataclasses.field(default_factory=list)  # what the run did that its counts do not say (reelbeam.notices)
    checked_paths: bool = False  # inputs and output were checked (not a dry run)

    def running(self, name: str) -> Stage | None:
        return next((s for s in self.stages if s.name == name), None)

    @property
    def input_stage(self) -> Stage | None:
        """The stage that reads the inputs (`Stage.reads_inputs`), when it runs in this job."""
        return next((s for s in self.stages if s.reads_inputs), None)

    def stage(self, name: str) -> Stage:
        stage = self.running(name)
        if stage is None:
            raise KeyError(f"stage {name!r} does not run in this plan ({', '.join(self.stage_names)})")
        return stage

    @property
    def stage_names(self) -> list[str]:
        return [s.name for s in self.stages]

    @property
    def written_tables(self) -> list[str]:
        """Tables this run writes rows into, in schema order."""
        made = {t for s in self.stages for t in s.writes} | {"failures", LEDGER}
        return [t for t in TABLES if t in made]


def check_stored(stored: dict) -> None:
    """Each file a stage will read must hold its table in this version's schema (ConfigError)."""
    from reelbeam.transforms.read import check_schema

    for table, parts in stored.items():
        for part in parts:
            problem = check_schema(table, part.path)
            if problem:
                raise ConfigError(f"cannot read `{table}` from an earlier run: {problem}")


def _split(value: str | None) -> list[str]:
    return [x.strip() for x in (value or "").split(",") if x.strip()]


def producers(table: str) -> list[type[Stage]]:
    return [cls for cls in stages.REGISTRY if table in cls.writes]


def _who_makes(table: str) -> str:
    makers = producers(table)
    if not makers:
        return "no stage writes it"
    return "; ".join(f"stage {c.name} writes it ({c.enabled_by})" for c in makers)


def configure_stages(o, env: RunEnv) -> list[Stage]:
    """The enabled stages, in registry order: each configured from its flags; then, of the stages of
    one `exclusive` role, only those of the highest `precedence`; then, for every table an enabled
    stage reads, the stages writing it that its flags left off but that run on demand (repeated
    for what those read). A stage that cannot run for its reader raises ConfigError."""
    enabled = {cls: stage for cls in stages.REGISTRY if (stage := cls.configure(o, env)) is not None}
    top: dict[str, int] = {}
    for cls in enabled:
        if cls.exclusive:
            top[cls.exclusive] = max(top.get(cls.exclusive, cls.precedence), cls.precedence)
    enabled = {cls: s for cls, s in enabled.items() if not cls.exclusive or cls.precedence == top[cls.exclusive]}
    pending = list(enabled.values())
    while pending:
        reader = pending.pop(0)
        for table in reader.reads:
            for cls in producers(table):
                if cls not in enabled and (not cls.exclusive or cls.exclusive not in top):
                    stage = cls.on_demand(o, env, reader)
                    if stage is not None:
                        enabled[cls] = stage
                        pending.append(stage)
    return [enabled[cls] for cls in stages.REGISTRY if cls in enabled]


def select_stages(o, enabled: list[Stage]) -> tuple[list[Stage], str]:
    """(running stages, mode): mode is 'full', 'start_from' or 'stages'."""
    start_from, named = _split(o.start_from), _split(o.stages)
    if start_from and named:
        raise ConfigError("--start-from and --stages both choose what runs; give one of them")
    by_name = {s.name: s for s in enabled}
    if named:
        known = {cls.name: cls for cls in stages.REGISTRY}
        first = next((c.name for c in stages.REGISTRY if c.reads_inputs), None)
        for name in named:
            cls = known.get(name)
            if cls is None:
                raise ConfigError(f"--stages: unknown stage {name!r}; stages: {', '.join(known)}")
            if cls.in_decode_pass:
                raise ConfigError(f"--stages: {name} runs inside the decode pass; name `{first}` to run the pass")
            if name not in by_name:
                raise ConfigError(f"--stages: stage {name} is off with these flags; turn it on with {cls.enabled_by}")
        running = [s for s in enabled if s.name in named or (s.in_decode_pass and first in named)]
        return running, "stages"
    if start_from:
        for table in start_from:
            if table not in TABLES:
                raise ConfigError(f"--start-from: unknown table {table!r}; tables: {', '.join(TABLES)}")
        fresh = set(start_from)
        running = []
        for stage in enabled:
            if stage.reads_inputs or stage.in_decode_pass:
                continue
            if fresh & set(stage.reads + stage.optional_reads):
                running.append(stage)
                fresh |= set(stage.writes)
        if not running:
            raise ConfigError(
                f"--start-from {','.join(start_from)}: no enabled stage reads {'it' if len(start_from) == 1 else 'them'}; "
                "turn on a stage downstream (e.g. --scene-checkpoint, --scrl-checkpoint, --save-scene-clips)"
            )
        return running, "start_from"
    return list(enabled), "full"


def resolve_inputs(running: list[Stage], mode: str, source: str, start_from: list[str],
                   placeholders: bool = False, enabled: list[Stage] | None = None) -> dict[str, list]:
    """table -> committed files of `source` to read; ConfigError for a table a stage needs that is
    neither made in this job nor readable. placeholders: nothing is listed (a dry run): each table
    reads one placeholder path, `source/<table>/*.parquet`."""
    made: set[str] = set()
    stored: dict[str, list[str]] = {}

    def readable(table: str) -> list[str]:
        if table not in stored:
            stored[table] = (
                [PartFile(f"{source}/{table}/*.parquet", None, "earlier-run")] if placeholders
                else active_files(source, table)
            )
        return stored[table]

    for table in start_from:
        if not readable(table):
            raise ConfigError(f"--start-from {table}: {source!r} holds no committed `{table}` files (--from says where to read)")
    for stage in running:
        for table in stage.reads:
            if table in made:
                continue
            if table in STREAMS:
                raise ConfigError(f"stage {stage.name} needs the in-job stream {table!r}, which no running stage makes")
            if mode == "full":
                raise ConfigError(f"stage {stage.name} needs table `{table}`, which no enabled stage writes: {_who_makes(table)}")
            if not readable(table):
                raise ConfigError(
                    f"stage {stage.name} needs table `{table}`: this run does not make it and {source!r} holds no "
                    f"committed `{table}` files; {_who_makes(table)}"
                )
        for table in stage.optional_reads:
            if table not in made and table not in STREAMS and mode != "full":
                readable(table)
        made |= set(stage.writes)
        if stage.in_decode_pass:
            made |= {tag for tag, t in stage.streams.items() if t is None and tag in STREAMS}
    if mode != "full" and "videos" not in made:
        readable("videos")  # failures rows of later stages take their video's uri from it
    out = {t: files for t, files in stored.items() if files and t not in made}
    for table, files in out.items():
        _check_producers(table, files, enabled or running, source)
    if mode == "start_from" and not placeholders:
        # A table these flags make inside the decode pass (which does not run here) and that a
        # running stage reads must come from the earlier run: without it, it would be silently missing.
        wanted = {t for s in running for t in (*s.reads, *s.optional_reads)}
        for stage in enabled or ():
            for table in sorted((set(stage.writes) & wanted) - made - set(out)) if stage.in_decode_pass else ():
                raise ConfigError(
                    f"--start-from {','.join(start_from)}: these flags make `{table}` with stage {stage.name}, which runs "
                    f"inside the decode pass (not run when starting from earlier tables), and {source!r} holds no "
                    f"`{table}`: run from the videos (--input, without --start-from)"
                )
    return out


def _check_producers(table: str, files: list, enabled: list[Stage], source: str) -> None:
    """ConfigError when `source`'s rows of `table` were made by a stage that these flags replace
    with another one filling the same role (e.g. scenes by the grouping while --scenes histogram)."""
    mine = {s.exclusive: s.name for s in enabled if s.exclusive and table in s.writes}
    by_name = {c.name: c for c in stages.REGISTRY}
    for stage in sorted({f.stage for f in files if f.stage}):
        cls = by_name.get(stage)
        if cls is not None and cls.exclusive in mine and mine[cls.exclusive] != stage:
            raise ConfigError(
                f"{source!r} holds `{table}` made by stage {stage}, and these flags make it with stage "
                f"{mine[cls.exclusive]}: start from an earlier table so that this run makes `{table}` itself, or run "
                f"with {cls.enabled_by} as the earlier run did"
            )


def _existing_work(output: str, running: list[Stage], ledger: outputs.Ledger) -> list[str]:
    """What this run's stages (or stages filling the same role) already wrote into `output`."""
    found = []
    names = {s.name for s in running}
    exclusive = {s.exclusive for s in running if s.exclusive}
    for cls in stages.REGISTRY:
        if cls.replaces_its_files:
            continue
        mine = cls.name in names
        rival = cls.exclusive in exclusive and not mine
        if not (mine or rival):
            continue
        if ledger.videos(cls.name) or any(f.stage == cls.name for t in cls.writes for f in active_files(output, t)):
            found.append(f"stage {cls.name}" + (" (fills the same table)" if rival else ""))
    for stage in running:
        for table in stage.writes:
            if any(f.stage is None for f in active_files(output, table)):
                found.append(f"table {table} (from an earlier reelbeam version)")
    return sorted(set(found))


def _remove_for_overwrite(output: str, running: list[Stage]) -> None:
    """--overwrite: the files that stages write outside tables (scene clips, JSON documents) are
    removed now; table rows are replaced by the run's commits (readers keep the earlier rows until
    then)."""
    exclusive = {s.exclusive for s in running if s.exclusive}
    names = {s.name for s in running} | {c.name for c in stages.REGISTRY if c.exclusive in exclusive}
    if any(s.reads_inputs for s in running):
        names = {c.name for c in stages.REGISTRY}
    fs, root = fsspec.core.url_to_fs(output)
    for cls in stages.REGISTRY:
        folder = getattr(cls, "files_folder", None)
        if cls.name in names and folder and fs.exists(f"{root}/{folder}"):
            fs.rm(f"{root}/{folder}", recursive=True)


def _skip_sets(running: list[Stage], ledger: outputs.Ledger) -> dict[str, frozenset]:
    """Per stage, the videos it must not redo: done per the ledger, and every upstream stage that
    runs in this job done for them too (a video an upstream stage redoes is redone downstream)."""
    eff: dict[str, frozenset] = {}
    makers: dict[str, list[str]] = {}
    decode = next((s for s in running if s.reads_inputs), None)
    for stage in running:
        skip = ledger.videos(stage.name)
        if stage.in_decode_pass and decode is not None:
            skip &= eff[decode.name]
        for table in (*stage.reads, *stage.optional_reads):
            for maker in makers.get(table, []):
                skip &= eff[maker]
        eff[stage.name] = frozenset(skip)
        for table in (*stage.writes, *(stage.streams if stage.in_decode_pass else ())):
            makers.setdefault(table, []).append(stage.name)
    return eff


def _check_settings(running: list[Stage], ledger: outputs.Ledger) -> None:
    for stage in running:
        recorded = ledger.settings(stage.name) - {""}
        current = stage.settings()
        other = sorted(recorded - {current})
        if other:
            raise ConfigError(
                f"--skip-existing: stage {stage.name} already ran here with other settings (earlier → this run: "
                f"{settings_diff(other[0], current)}). Keep the earlier settings, write to another --output (with "
                "--from to reuse earlier tables), or --overwrite"
            )


_CLOSERS = {"(": ")", "[": "]", "{": "}"}


def _split_top(text: str, separators: str) -> list[str] | None:
    """`text` split at the `separators` outside brackets; None when its brackets do not balance."""
    parts, depth, start = [], [], 0
    for i, c in enumerate(text):
        if c in _CLOSERS:
            depth.append(_CLOSERS[c])
        elif c in _CLOSERS.values():
            if not depth or depth.pop() != c:
                return None
        elif not depth and (c in separators or (" " in separators and c.isspace())):
            parts.append(text[start:i])
            start = i + 1
    if depth:
        return None
    return [p for p in (*parts, text[start:]) if p.strip()]


def _settings_entries(text: str, path: tuple = (), out: dict | None = None) -> dict | None:
    """A stage's settings string as {key: (value, text)}: `k=v` gives key path+(k,); `name(...)`
    a kind (key (path, "()"), value name) whose contents are keyed under the same path;
    `name[...]` a group whose contents are keyed under path+(name,); runs of other words a phrase
    (key (path, "#i"), in order). Items are separated by `,` `;` or spaces outside brackets.
    None when the text does not parse (unbalanced brackets)."""
    out = {} if out is None else out
    segments = _split_top(text, ",;")
    if segments is None:
        return None
    phrases = 0
    for segment in segments:
        words: list[str] = []

        def flush(words=words):
            nonlocal phrases
            if words:
                out[(path, f"#{phrases}")] = (" ".join(words), " ".join(words))
                phrases += 1
                words.clear()

        for token in _split_top(segment, " ") or []:
            opener = next((i for i, c in enumerate(token) if c in _CLOSERS), None)
            equals = token.find("=")
            if equals > 0 and (opener is None or equals < opener):
                flush()
                out[((*path, token[:equals]), "")] = (token[equals + 1 :], token)
            elif opener and token.endswith(_CLOSERS[token[opener]]) and _split_top(token[opener + 1 : -1], "") is not None:
                flush()
                name, inner = token[:opener], token[opener + 1 : -1]
                if token[opener] == "(":
                    out[(path, "()")] = (name, token)
                    inner_path = path
                else:
                    inner_path = (*path, name)
                if _settings_entries(inner, inner_path, out) is None:
                    return None
            else:
                words.append(token)
        flush()
    return out


def settings_diff(earlier: str, now: str) -> str:
    """What differs between two settings strings of a stage, key by key:
    'threshold: 0.5 → 0.3' (a nested key as 'shots.threshold'; a changed kind, such as another
    detector, as its whole text). The two strings whole when they do not parse or differ only in order."""
    a, b = _settings_entries(earlier), _settings_entries(now)
    if a is None or b is None:
        return f"{earlier or '(defaults)'} → {now or '(defaults)'}"
    changed_kinds = {k[0] for k in (*a, *b) if k[1] == "()" and a.get(k, (None,))[0] != b.get(k, (None,))[0]}

    def whole(entries: dict, path: tuple) -> str:
        if (path, "()") in entries:
            return entries[(path, "()")][1]
        inside = [text for (p, _), (_, text) in entries.items() if p[: len(path)] == path]
        return " ".join(inside) or "(none)"

    lines = []
    for path, kind in dict.fromkeys((*a, *b)):
        name = ".".join(path)
        if any(path[: len(p)] == p for p in changed_kinds):
            if kind == "()":  # another kind (a detector, say): its whole text
                lines.append(f"{name + ': ' if name else ''}{whole(a, path)} → {whole(b, path)}")
            continue
        old, new = a.get((path, kind), ("(none)",))[0], b.get((path, kind), ("(none)",))[0]
        if old != new:
            lines.append(f"{name}: {old} → {new}" if name else f"{old} → {new}")
    return ", ".join(lines) or f"{earlier} → {now}"


def build_plan(options: PipelineOptions, check_paths: bool = True, beam_args: Sequence[str] = (),
               dry_run: bool = False, prepare: bool = True) -> Plan:
    """Validate the options into a Plan; raise ConfigError saying what to change.

    prepare: also read the output's state (`prepare_output`); `reelbeam run` does that once it
    holds the output's lease, so that what it reads is not being changed by another run.

    beam_args: the runner's flags (whether the workers are this machine's processes).
    dry_run: build the job without touching inputs or output (nothing is listed, probed or written;
      tables an earlier run made are read from placeholder paths).
    """
    o = options.view_as(ReelbeamOptions)
    if not o.output:
        raise ConfigError("--output is required: the folder (or gs://, s3:// URL) to write tables to")
    if o.model_copies is not None and o.model_copies < 1:
        raise ConfigError(f"--model-copies must be >= 1, got {o.model_copies}")
    if o.skip_existing and o.overwrite:
        raise ConfigError("--skip-existing and --overwrite contradict each other; choose one")
    output = o.output.rstrip("/")
    from reelbeam.runners.checks import is_dataflow

    if is_dataflow(beam_args) and "://" not in output:
        raise ConfigError(f"--output {o.output}: Dataflow's workers cannot write to a folder of this machine; give a "
                          "gs:// URL")
    source = (getattr(o, "from") or output).rstrip("/")
    accelerator = accelerator_hint(o.gpu_accelerator)
    if accelerator and o.device == "cpu":
        raise ConfigError("--gpu-accelerator attaches GPUs to the model steps, --device cpu keeps the models off them; "
                          "drop one of them")
    local = is_local_runner(beam_args)
    if accelerator and local and not dry_run and check_paths and not Hardware().cuda:
        raise ConfigError("--gpu-accelerator asks a cluster (Dataflow) for GPUs on the model steps; this run's "
                          "workers are this machine's processes and it has no CUDA device: drop the flag (or "
                          "add --dry_run to see the job it would make)")
    model_copies = o.model_copies if o.model_copies is not None else (1 if accelerator else None)
    # The decode pass's settings that several stages follow (RunEnv says which flags).
    env = RunEnv(device=o.device, model_copies=model_copies, model_precision=o.model_precision,
                 accelerator=accelerator, local=local, keyframes_only=o.iframes_only,
                 small_frame_scaler=o.small_frame_scaler, jpeg_quality=o.jpeg_quality,
                 keyframe_buffer_mb=o.keyframe_buffer_mb)
    if o.device == "cuda" and local and check_paths and not dry_run and not env.hardware.cuda:
        raise ConfigError("--device cuda: this run's workers are this machine's processes and it sees no CUDA device "
                          "(no NVIDIA driver, or a CPU build of torch): use --device auto or cpu")
    check_paths = check_paths and not dry_run
    enabled = configure_stages(o, env)
    running, mode = select_stages(o, enabled)
    decode = next((s for s in running if s.reads_inputs), None)
    if decode is not None and not o.input:
        raise ConfigError("--input is required: a video, folder, glob, manifest or URL")
    if decode is None and o.input:
        env.note("--input is not read: this run starts from earlier tables")
    stored = (
        resolve_inputs(running, mode, source, _split(o.start_from), placeholders=dry_run, enabled=enabled)
        if check_paths or mode != "full" else {}
    )
    plan = Plan(o, env, running, output, source, new_run_id(), o.parquet_codec, stored,
                skip_existing=o.skip_existing, overwrite=o.overwrite, dry_run=dry_run)
    for stage in running:
        stage.connect(plan)
    if check_paths:
        if decode is not None:
            from reelbeam.inputs import check_input_spec

            for spec in o.input:
                try:
                    check_input_spec(spec)
                except ValueError as e:
                    raise ConfigError(str(e)) from e
        try:
            outputs.check_output(output)
        except ValueError as e:
            raise ConfigError(str(e)) from e
    plan.checked_paths = check_paths
    if prepare:
        prepare_output(plan)
    return plan


def prepare_output(plan: Plan) -> None:
    """What the run does about the output's current state (resume sets, refusals, stored inputs);
    ConfigError saying what to change."""
    if plan.checked_paths:
        _prepare_output(plan)
    if not plan.dry_run:
        check_stored(plan.stored)


def _prepare_output(plan: Plan) -> None:
    output, running = plan.output, plan.stages
    if legacy.is_legacy(output):
        if legacy.unnamed_files(output):
            raise ConfigError(
                f"--output {output!r} holds tables written by a reelbeam older than the stage ledger, which cannot be "
                "converted or written into; write to a new --output (this one reads as it is, e.g. with --from)"
            )
        raise ConfigError(
            f"--output {output!r} holds tables written by an earlier reelbeam (plain Parquet files, no Delta log); "
            f"convert them in place with `reelbeam migrate {output}` (no data is copied), or write to another "
            "--output (reading it with --from works as it is)"
        )
    ledger = outputs.read_ledger(output)
    existing = _existing_work(output, running, ledger)
    if existing and not (plan.skip_existing or plan.overwrite):
        raise ConfigError(
            f"--output {output!r} already holds what this run writes ({'; '.join(existing)}); pass --skip-existing "
            "to resume (do only what is not done yet), --overwrite to replace it, or choose another folder"
        )
    if plan.overwrite:
        _remove_for_overwrite(output, running)
        return
    if not plan.skip_existing:
        return
    exclusive = {s.exclusive: s.name for s in running if s.exclusive}
    for cls in stages.REGISTRY:
        if cls.exclusive in exclusive and exclusive[cls.exclusive] != cls.name and ledger.videos(cls.name):
            raise ConfigError(
                f"--skip-existing: {output!r} holds rows of stage {cls.name}, and this run's {exclusive[cls.exclusive]} "
                "writes the same table; --overwrite to replace them or choose another --output"
            )
    _check_settings(running, ledger)
    plan.skip = _skip_sets(running, ledger)
    decode = plan.input_stage
    if decode is not None:
        listing = plan.skip[decode.name]
        for stage in running:
            if stage.in_decode_pass:
                listing &= plan.skip[stage.name]
        plan.skip_listing = listing
    if any(plan.skip.values()):
        # The rows of videos a stage does not redo come from the committed tables.
        wanted = {t for s in running for t in (*s.reads, *s.optional_reads) if t not in STREAMS} | {"videos"}
        for table in sorted(wanted - set(plan.stored)):
            parts = active_files(output, table)
            if parts:
                plan.stored[table] = parts
