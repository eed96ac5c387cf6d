"""The stage contract: the unit of the pipeline.

A stage is one module under `reelbeam/stages/` that declares

- `reads` / `optional_reads` / `writes`: table names from `reelbeam.schemas.TABLES` (reads may also
  name an in-job stream from `STREAMS`, which exists only inside one job and is never written);
- `add_flags(group)`: its command-line flags, shown under its own heading in `reelbeam run --help`;
- `configure(options, env)`: the stage built from the validated options, or None when it was not
  asked for; a bad value raises `ConfigError` saying what to change (before the pipeline starts).
  It reads its own flags and `env` (`RunEnv`: run-wide options and the decode pass's shared
  settings), never another stage's flags;
- optionally `on_demand(options, env, reader)`: the stage built because a running stage reads a
  table it writes (the plan asks), and `exclusive` / `precedence` when it shares a role;
- `settings()`: what changes the rows it writes (recorded per video in `stage_runs`, so
  `--skip-existing` can tell finished work from work done differently);
- `expand(tables)`: a dict of table PCollections (its reads) -> a dict with its tables, `failures`
  rows and `processed` (the video_ids it handled, for the resume ledger).

Stages that work on frames run inside the single decode pass instead (`PassStage`): they add
`FrameConsumer`s to it and declare the per-video `parts` those consumers emit; the decode stage's
per-video assembly hands each stage its parts (`assemble`), and an undeclared part kind is an error
when the pipeline is built.

A stage whose rows come from a model subclasses `ModelStage` (checkpoint flag, model id, device,
precision, model copies, checkpoint errors, handler override).

`reelbeam.stages.REGISTRY` lists the stages in order; the pipeline is a fold over the enabled ones
(`reelbeam.pipelines.video_pipeline.apply_stages`).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import glob
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import apache_beam as beam

# In-job streams a stage may read besides tables: made by one stage for another inside the same job,
# never written (they hold decoded pixels or per-frame data that tables store differently).
STREAMS = {
    "shot_frames": "frames the decode pass JPEG-encoded because they may be shot keyframes (CapturedFrame)",
    "shot_frames_index": "per video, the frame indices in `shot_frames` ((video_id, [frame_idx]))",
    "scene_frames": "frames the decode pass captured for the scene grouping, 224x224 JPEG with their histogram (SceneFrame)",
    "scene_frames_index": "per video, the frame indices in `scene_frames` ((video_id, [frame_idx]))",
    "clip_frames": "the frames sampled for CLIP, resized in the decode pass (ClipFrame)",
    "clip_frames_count": "per video, how many frames were sampled for CLIP ((video_id, n))",
}


class ConfigError(ValueError):
    """Bad configuration, detected before the pipeline starts."""


def weights_error(flag: str, error: Exception | str) -> ConfigError:
    """A checkpoint flag's problem (a CheckpointError: missing, unreadable, another model's file) as
    one line naming the flag and ending with where to get the right file (docs/weights.md)."""
    from reelbeam.models.checkpoints import WEIGHTS_HELP

    return ConfigError(f"{flag}: {error}; {WEIGHTS_HELP}")


def checked(flag: str, fn: Callable, *args):
    """`fn(*args)` (a checkpoint inspection, a model id), a CheckpointError translated into the
    one-line ConfigError of `weights_error`: the one place that translation is made."""
    from reelbeam.models.checkpoints import CheckpointError

    try:
        return fn(*args)
    except CheckpointError as e:
        raise weights_error(flag, e) from e


def add_flag(parser, name: str, *aliases: str, **kwargs) -> None:
    """`--name` (and `--alias` for older names), stored under `na_me`; Beam's underscore spellings
    (`--na_me`, `--no_na_me` for a boolean pair) are accepted too but not listed in the help.

    The help text gets the default appended, so `--help` shows every default (pass
    show_default=False where the help text already says it)."""
    show_default = kwargs.pop("show_default", True)
    dest = name.replace("-", "_")
    names = [name, *aliases]
    default = kwargs.get("default")
    action = kwargs.get("action")
    help_text = kwargs.get("help")
    if show_default and help_text and help_text is not argparse.SUPPRESS and action not in ("store_true", "store_false"):
        shown = "off" if default is None else default
        if isinstance(shown, bool):
            shown = "on" if shown else "off"
        kwargs["help"] = f"{help_text} (default: {shown})"
    parser.add_argument(f"--{name}", dest=dest, **kwargs)
    hidden = [f"--{a}" for a in aliases] + [f"--{n.replace('-', '_')}" for n in names if "-" in n]
    if action is argparse.BooleanOptionalAction:
        hidden += [f"--no_{n.replace('-', '_')}" for n in names] + [f"--no-{a}" for a in aliases]
        negations = [h for h in hidden if h.startswith(("--no_", "--no-"))]
        parser.add_argument(*negations, dest=dest, action="store_false", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        hidden = [h for h in hidden if h not in negations]
    if hidden:
        alias = {k: v for k, v in kwargs.items() if k != "help"}
        alias["default"] = argparse.SUPPRESS
        if action is argparse.BooleanOptionalAction:
            alias["action"] = "store_true"
        parser.add_argument(*hidden, dest=dest, help=argparse.SUPPRESS, **alias)


@dataclasses.dataclass
class Hardware:
    """What this process's machine can do, probed once and only when asked (torch is imported on
    first use, so `--help` and configuration errors stay fast)."""

    @functools.cached_property
    def cuda(self) -> bool:
        if sys.platform.startswith("linux") and not (
            os.path.exists("/proc/driver/nvidia/version") or glob.glob("/dev/nvidia[0-9]*") or os.path.exists("/dev/dxg")
        ):
            return False  # no NVIDIA driver: no CUDA, known without importing torch (~1.5 s, ~0.3 GB)
        import torch

        return bool(torch.cuda.is_available())

    @functools.cached_property
    def onednn_bf16(self) -> bool:
        from reelbeam.models.device import native_bf16

        return native_bf16()


@dataclasses.dataclass
class RunEnv:
    """What every stage's `configure` may consult besides its own flags: the run-wide options and
    the hardware (probed once for all stages).

    device: 'auto', 'cpu' or 'cuda' as asked (`--device`).
    accelerator: the Beam accelerator hint of `--gpu-accelerator` (GPUs on the model steps only).
    local: whether the workers are processes of this machine (only then is its GPU looked at).
    model_copies: model copies per worker process (None: Beam's default).
    model_precision: the precision asked for the models other than TransNetV2.

    Settings of the decode pass that several stages follow (their flags are listed under the stage
    they mostly shape, but no stage reads another one's flags: they read these):
    keyframes_only: the pass decodes only keyframes (`--iframes-only`): stages that need every frame
      stay off or say so.
    small_frame_scaler: the swscale interpolation of the 48x27 frames (`--small-frame-scaler`), shared
      by every consumer of them (one conversion per frame).
    jpeg_quality: the quality of keyframe JPEGs, shot and I-frame alike (`--jpeg-quality`).
    keyframe_buffer_mb: decoded frames held per video while the pass captures frames for later
      stages (`--keyframe-buffer-mb`).
    """

    device: str = "auto"
    model_copies: int | None = None
    model_precision: str = "auto"
    accelerator: str | None = None
    local: bool = True
    keyframes_only: bool = False
    small_frame_scaler: str = "AREA"
    jpeg_quality: int = 90
    keyframe_buffer_mb: int = 512
    hardware: Hardware = dataclasses.field(default_factory=Hardware)
    notes: list = dataclasses.field(default_factory=list)

    def note(self, message: str) -> None:
        """Something the run summary should say once (a stage that is off for want of weights, say),
        rather than a log line before the run starts."""
        if message not in self.notes:
            self.notes.append(message)

    @property
    def on_gpu(self) -> bool:
        """Whether the model steps are expected on GPUs (the pipeline's layout and batch sizes follow
        it): from the flags, and from this machine's GPU only when its processes are the workers."""
        if self.device != "auto":
            return self.device == "cuda"
        if self.accelerator:
            return True
        return self.local and self.hardware.cuda

    @property
    def model_device(self) -> str:
        """The device a RunInference step asks its worker for: 'cuda' on the steps --gpu-accelerator
        attaches GPUs to (a worker without one fails on loading, saying so), else `--device`."""
        return "cuda" if self.accelerator else self.device

    @property
    def cpu_step_device(self) -> str:
        """The device of models run inside ordinary steps (they get no GPU from --gpu-accelerator)."""
        return "auto" if self.accelerator else self.device

    def resource_hints(self, device: str) -> dict:
        """Beam resource hints for a model step on `device` (the accelerator on CUDA steps)."""
        return {"accelerator": self.accelerator} if self.accelerator and device == "cuda" else {}

    def precision(self) -> str:
        """`--model-precision` for a model stage other than TransNetV2 ('auto' is resolved on the
        worker, `reelbeam.models.device.resolve_precision`); an explicit bf16 that this machine's CPU
        would emulate is refused here."""
        self.refuse_emulated_bf16("--model-precision", self.model_precision)
        return self.model_precision

    def refuse_emulated_bf16(self, flag: str, precision: str, alternatives: str = "fp32 or auto") -> None:
        """ConfigError for an explicit bf16 that this machine's CPU would emulate (~50x slower than
        fp32): on a local run whose models run on the CPU. Remote workers' CPUs are not known here;
        one that lacks native bf16 runs fp32 and says so (`reelbeam.models.device.resolve_precision`)."""
        if precision != "bf16" or not self.local or self.on_gpu or self.hardware.onednn_bf16:
            return
        from reelbeam.models.device import BF16_EMULATED

        raise ConfigError(f"{flag} bf16: {BF16_EMULATED}; use {alternatives}")


class Stage(beam.PTransform):
    """One stage of the pipeline (see the module docstring)."""

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""  # heading of its flags in `reelbeam run --help`
    reads: ClassVar[tuple[str, ...]] = ()
    optional_reads: ClassVar[tuple[str, ...]] = ()
    writes: ClassVar[tuple[str, ...]] = ()
    # How a user turns the stage on (named in errors when a table it writes is needed but missing).
    enabled_by: ClassVar[str] = ""
    # Stages with the same key fill the same role in a table (e.g. 'scenes' from colour histograms or
    # from BaSSL): one output holds the rows of only one of them.
    exclusive: ClassVar[str | None] = None
    in_decode_pass: ClassVar[bool] = False
    # A model stage: a Reshuffle before it breaks fusion with the CPU work upstream, so its workers
    # (GPU ones on Dataflow) get the elements, not the tail of the decode pass's bundles.
    reshuffle_inputs: ClassVar[bool] = False
    # Its outputs are files it replaces per video (no table rows): running it again duplicates
    # nothing, so a later job may redo it without --skip-existing or --overwrite.
    replaces_its_files: ClassVar[bool] = False
    # The folder of OUTPUT it writes files into besides tables (scene clips, JSON documents), if any.
    files_folder: ClassVar[str | None] = None
    # It lists and reads the inputs (--input): the first stage, whose videos every later one follows.
    reads_inputs: ClassVar[bool] = False
    # Of enabled stages with the same `exclusive` role, those of the highest precedence run (a model
    # given explicitly, say, over a training-free default).
    precedence: ClassVar[int] = 0
    # Beam resource hints for its model step (the accelerator of --gpu-accelerator), set in configure.
    resource_hints: Mapping[str, str] = {}

    @classmethod
    def label_of(cls) -> str:
        """The stage's step label (a Dataflow step name: stable)."""
        return "".join(part.capitalize() for part in cls.name.split("_"))

    @staticmethod
    def add_flags(group) -> None:
        """Add the stage's flags to its argparse group (use `add_flag`)."""

    @classmethod
    def configure(cls, options: argparse.Namespace, env: RunEnv) -> Stage | None:
        """The stage configured from the parsed options, or None when not asked for."""
        raise NotImplementedError

    @classmethod
    def on_demand(cls, options: argparse.Namespace, env: RunEnv, reader: Stage) -> Stage | None:
        """The stage configured because `reader`, which runs, reads a table it writes and its own flags
        left it off (the plan asks); None: it runs only when its flags ask for it. A ConfigError says
        why it cannot run for `reader` (its `enabled_by` names what asked)."""
        return None

    def frame_capture(self) -> Mapping[str, int]:
        """How the frames it reads from an in-job stream of the decode pass are to be captured (the
        JPEG size and quality of shot keyframes, say): the stream's maker reads it in `connect`."""
        return {}

    def settings(self) -> str:
        """A short description of the settings that change what the stage writes."""
        return ""

    def checkpoints(self) -> Mapping[str, str]:
        """Flag -> checkpoint path the stage loads (recorded with a sha256 in the run manifest)."""
        return {}

    def connect(self, plan) -> None:
        """Called once the plan knows which stages run in this job (a stage may adapt, e.g. the shot
        detector captures shot keyframes in the decode pass only when the keyframe stage runs)."""

    def hinted(self, env: RunEnv) -> Stage:
        """The stage with the resource hints its model device calls for (its `device` attribute)."""
        self.resource_hints = env.resource_hints(self.device)
        return self

    def placed(self, handler):
        """`handler` for RunInference with the stage's `resource_hints`: its model step, and no other
        step of the stage, gets the accelerator (Beam sets the hints on RunInference's model ParDo).
        Its loading and batches count toward the stage's time (`reelbeam.transforms.timing`)."""
        from reelbeam.transforms.portable import GuardedModelHandler

        return GuardedModelHandler(handler, self.resource_hints, stage=self.name)

    def expand(self, tables):
        raise NotImplementedError


class PassStage(Stage):
    """A stage that runs inside the single decode pass (see the module docstring).

    parts: per-video part kinds its consumers (or `expand`) emit; the assembly hands them to
      `assemble` as {kind: [payload, ...]}.
    streams: decode-pass output tags its consumers use -> the table rows they are (None: an in-job
      stream named in `STREAMS`). Table rows are kept only for videos that end with a `videos` row.
    assembled: the tables its `assemble` fills (rows of ok videos).
    frame_columns: the `frames` columns its `assemble` fills (nulls when the stage is off).
    """

    in_decode_pass: ClassVar[bool] = True
    parts: ClassVar[tuple[str, ...]] = ()
    streams: ClassVar[Mapping[str, str | None]] = {}
    assembled: ClassVar[tuple[str, ...]] = ()
    frame_columns: ClassVar[tuple[str, ...]] = ()
    # In-job streams kept only for videos that end with a `videos` row (small per-video records
    # that gate a later stage; bulky streams are filtered by joining with those instead).
    gated_streams: ClassVar[tuple[str, ...]] = ()

    def frame_consumers(self) -> Sequence[Callable[[], Any]]:
        """Zero-argument factories (classes or functools.partial: picklable) of FrameConsumers."""
        return ()

    def has_step_before_assembly(self) -> bool:
        """Whether `expand` adds a step between the decode pass and the assembly."""
        return type(self).expand is not PassStage.expand

    def expand(self, decoded):
        """Between the decode pass and the assembly: `decoded` is a dict of the decode pass's
        outputs by tag ('per_video' and the consumers' tags); return {'parts': PCollection of
        (video_id, VideoPart)}."""
        raise NotImplementedError

    def assemble(self, video: VideoAssembly, parts: Mapping[str, list]) -> None:
        """Add this stage's rows / frame columns / videos fields for one video."""


class ModelStage(Stage):
    """A stage whose rows come from a model: it owns what every model stage shares.

    checkpoint_flag: the flag giving its weights (named in every error about them), or None for
      weights that ship in a package.
    model_kind: the prefix of its model id (`reelbeam.models.checkpoints.model_id`: kind:file@hash),
      which is its settings by default (a run with other weights is told apart by the ledger).
    checkpoint / device / precision / model_copies: where its model loads from and how it runs
      (device and precision as asked; 'auto' is resolved on the worker, `reelbeam.models.device`).
    handler_override: a ModelHandler replacing the stage's model (tests, custom models).

    A subclass builds its ModelHandler in `make_handler()` and wraps it with `placed(self.handler())`.
    Mixed with `PassStage` (the model runs in or right after the decode pass) it works the same.
    """

    checkpoint_flag: ClassVar[str | None] = None
    model_kind: ClassVar[str | None] = None

    def __init__(self, checkpoint: str | None = None, device: str = "auto", precision: str | None = None,
                 model_copies: int | None = None) -> None:
        super().__init__()
        self.checkpoint = checkpoint
        self.device = device
        self.precision = precision
        self.model_copies = model_copies
        self.handler_override = None
        self.model_id = self.checked(model_id_of, self.model_kind, checkpoint) if self.model_kind and checkpoint else None

    @classmethod
    def checked(cls, fn: Callable, *args):
        """`fn(*args)` with a CheckpointError said as a one-line ConfigError naming `checkpoint_flag`."""
        return checked(cls.checkpoint_flag or cls.name, fn, *args)

    @staticmethod
    def model_args(env: RunEnv, precision: bool = True) -> dict:
        """device, precision (`--model-precision`, an emulated bf16 refused here) and model copies of a
        model step that gets the GPUs of --gpu-accelerator."""
        return {"device": env.model_device, "precision": env.precision() if precision else None,
                "model_copies": env.model_copies}

    def settings(self) -> str:
        return self.model_id or ""

    def checkpoints(self) -> Mapping[str, str]:
        return {self.checkpoint_flag: self.checkpoint} if self.checkpoint_flag and self.checkpoint else {}

    def handler(self):
        """The ModelHandler of its model step: `handler_override` when set, else `make_handler()`."""
        return self.handler_override if self.handler_override is not None else self.make_handler()

    def make_handler(self):
        raise NotImplementedError


def model_id_of(kind: str, path: str) -> str:
    from reelbeam.models.checkpoints import model_id

    return model_id(kind, path)


@dataclasses.dataclass
class VideoAssembly:
    """One video being assembled from its decode-pass parts, handed to each pass stage in order.

    meta: the `videos` row (stages may add fields: num_shots, shot_detector, num_scenes).
    index: the frame index columns (frame_idx, pts, pts_time, is_keyframe, pict_type, duration).
    columns: extra `frames` columns (pyarrow arrays) filled by pass stages.
    rows: table -> rows added by pass stages (e.g. 'shots', 'scenes').
    spans: the shots as inclusive (start, end) frame spans, once the shot stage set them.
    """

    video_id: str
    meta: dict
    index: dict
    columns: dict = dataclasses.field(default_factory=dict)
    rows: dict = dataclasses.field(default_factory=dict)
    spans: list = dataclasses.field(default_factory=list)

    @property
    def num_frames(self) -> int:
        return len(self.index["frame_idx"])

    @property
    def keyframes_only(self) -> bool:
        return bool(self.meta.get("keyframes_only"))

    def end_time(self, end: int) -> float:
        """End of frame `end` in seconds: the next frame's PTS, or the frame's PTS plus its duration
        (or 1/fps) for the last frame."""
        pts_time, durations = self.index["pts_time"], self.index["duration"]
        if end + 1 < self.num_frames:
            return float(pts_time[end + 1])
        fps = self.meta.get("nominal_fps") or self.meta.get("avg_fps") or 25.0
        d = durations[end]
        return float(pts_time[end] + (d if d == d and d > 0 else 1.0 / fps))
