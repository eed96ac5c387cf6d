"""CLIP frame scoring as stages (the CLIP-It seed):

- `clip_sampling` (in the decode pass): every Nth frame (or R a second), resized for CLIP in the
  pass -> the in-job streams `clip_frames`, `clip_frames_count`;
- `frame_embeddings`: CLIP image features of those frames through RunInference -> `frame_embeddings`
  (a reshard point: the scoring below can start from it);
- `frame_scores`: per video, query and scorer (`clip`, and `clipit` with a CLIP-It checkpoint) ->
  `frame_scores`.

They run when CLIP weights are at hand (`--clip-model`: a Hugging Face id in the local cache, a
folder or an fsspec URL of one; default openai/clip-vit-base-patch32); without them the stages are
skipped with one log line naming the flag, and asking for a query without them is an error.
"""

from __future__ import annotations

import functools
import json
import logging
import weakref
from typing import ClassVar

from reelbeam.stages.base import ConfigError, ModelStage, PassStage, add_flag

LOG = logging.getLogger(__name__)
DEFAULT_CLIP_MODEL = "openai/clip-vit-base-patch32"


def _queries(options) -> list[str]:
    from reelbeam.transforms.clip_scoring import queries_of

    try:
        return queries_of(options.query, options.queries_file)
    except ValueError as e:
        raise ConfigError(str(e)) from e


@functools.lru_cache(maxsize=8)
def _problem(source: str) -> str | None:
    from reelbeam.models.clip_files import clip_problem

    return clip_problem(source)


def _projection_dim(source: str) -> int | None:
    """The model's feature width from its config.json (local, cached or remote; a small file)."""
    import fsspec

    from reelbeam.models.clip_files import locate_clip

    with fsspec.open(locate_clip(source).config, "r", encoding="utf-8") as f:
        return json.load(f).get("projection_dim")


_DECIDED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def clip_source(options, env=None) -> str | None:
    """The CLIP model the CLIP stages use, or None when they are off (with a note for the run
    summary saying which flag turns them on); ConfigError when they are asked for and cannot run. Decided once
    per parsed options (every CLIP stage asks)."""
    if options not in _DECIDED:
        _DECIDED[options] = _decide(options, env)
    return _DECIDED[options]


def _decide(options, env) -> str | None:
    source = options.clip_model or DEFAULT_CLIP_MODEL
    wanted = _queries(options) or options.clipit_checkpoint
    if options.clip_scoring == "off":
        if wanted:
            raise ConfigError("--query/--queries-file/--clipit-checkpoint need the CLIP stages: drop --clip-scoring off")
        return None
    if env is not None and env.keyframes_only:
        if wanted or options.clip_scoring == "on":
            raise ConfigError("CLIP frame scoring needs every frame decoded: drop --iframes-only")
        return None
    problem = _problem(source)
    if problem:
        from reelbeam.models.checkpoints import WEIGHTS_HELP

        # Name what asked for CLIP, and the model that is missing (the default one when no
        # --clip-model was given); an explicit --clip-model that is missing is an error by itself.
        given = "--clip-model" if options.clip_model else "the default --clip-model"
        if wanted or options.clip_scoring == "on" or options.save_summary_video:
            asked = "--query" if _queries(options) else (
                "--clipit-checkpoint" if options.clipit_checkpoint else
                "--clip-scoring on" if options.clip_scoring == "on" else "--save-summary-video")
            raise ConfigError(f"{asked} needs CLIP weights, and {given} {problem}; {WEIGHTS_HELP}")
        if source != DEFAULT_CLIP_MODEL:
            raise ConfigError(f"--clip-model {problem}; {WEIGHTS_HELP}")
        if env is not None:
            env.note(f"CLIP frame scoring and summaries skipped: no CLIP weights here ({given} {problem}); "
                     f"give --clip-model PATH ({WEIGHTS_HELP})")
        return None
    dim = _projection_dim(source)
    if dim is not None and dim != 512:
        raise ConfigError(
            f"--clip-model {source!r} gives {dim}-d features; frame_embeddings and CLIP-It take the 512-d features of "
            "ViT-B/32 class models (e.g. openai/clip-vit-base-patch32)"
        )
    return source


class ClipSamplingStage(PassStage):
    name: ClassVar[str] = "clip_sampling"
    title: ClassVar[str] = "CLIP frame sampling (in the decode pass)"
    enabled_by: ClassVar[str] = "CLIP weights at hand (--clip-model)"
    streams: ClassVar[dict] = {"clip_frames": None, "clip_frames_count": None}
    gated_streams: ClassVar[tuple[str, ...]] = ("clip_frames_count",)  # frames of failed videos go no further

    def __init__(self, sampling) -> None:
        super().__init__()
        self.sampling = sampling

    @staticmethod
    def add_flags(group) -> None:
        add_flag(group, "clip-sample", default="every:15",
                 help="which frames CLIP sees: every:N (every Nth frame, 15 as the reference, whatever the fps) "
                 "or fps:R (R a second)")

    @classmethod
    def configure(cls, options, env) -> ClipSamplingStage | None:
        from reelbeam.transforms.clip_scoring import ClipSampling

        try:
            sampling = ClipSampling.parse(options.clip_sample)
        except ValueError as e:
            raise ConfigError(str(e)) from e
        return cls(sampling) if clip_source(options, env) else None

    def settings(self) -> str:
        return str(self.sampling)

    def frame_consumers(self):
        from reelbeam.transforms.clip_scoring import ClipFrameConsumer

        return [functools.partial(ClipFrameConsumer, self.sampling)]


class FrameEmbeddingsStage(ModelStage):
    name: ClassVar[str] = "frame_embeddings"
    title: ClassVar[str] = "CLIP frame features and language-guided scores (the CLIP-It seed)"
    reads: ClassVar[tuple[str, ...]] = ("clip_frames", "clip_frames_count")
    writes: ClassVar[tuple[str, ...]] = ("frame_embeddings",)
    enabled_by: ClassVar[str] = "CLIP weights at hand (--clip-model)"
    checkpoint_flag: ClassVar[str | None] = "--clip-model"

    def __init__(self, source: str, batch: int, sampling: str, **model) -> None:
        super().__init__(**model)
        self.source = source  # a Hugging Face id or a folder: not a file the run manifest hashes
        self.batch = batch
        self.sampling = sampling

    @staticmethod
    def add_flags(group) -> None:
        add_flag(group, "clip-model", default=None, show_default=False,
                 help="CLIP weights: a Hugging Face id (in the local cache; nothing is downloaded), a folder written "
                 "by CLIPModel.save_pretrained or an fsspec URL of one (default: openai/clip-vit-base-patch32, the "
                 "reference's ViT-B/32); without weights the CLIP stages are skipped")
        add_flag(group, "clip-scoring", default="auto", choices=("auto", "on", "off"),
                 help="the CLIP stages (sampling, frame_embeddings, frame_scores, summaries): auto runs them when the "
                 "weights are at hand; on makes missing weights an error")
        add_flag(group, "query", action="append", default=None, show_default=False,
                 help="a language query to score every frame against (repeatable); several sentences in one query "
                 "are one CLIP-It sentence set")
        add_flag(group, "queries-file", default=None, show_default=False,
                 help="a text file of queries, one per line (local or fsspec). A CSV/Parquet --input manifest's "
                 "`query` column adds per-video queries (several separated by ' | ')")
        add_flag(group, "clipit-checkpoint", default=None, show_default=False,
                 help="CLIP-It's scoring transformer: ModelScope's pytorch_model.pt (loaded strict with weights_only); "
                 "adds the `clipit` scorer beside the plain CLIP cosine (`clip`)")
        add_flag(group, "clip-batch-size", type=int, default=None, show_default=False,
                 help="frames per CLIP RunInference batch (default 16 on CPU, 128 on GPU)")

    @classmethod
    def configure(cls, options, env) -> FrameEmbeddingsStage | None:
        if options.clip_batch_size is not None and options.clip_batch_size < 1:
            raise ConfigError(f"--clip-batch-size must be >= 1, got {options.clip_batch_size}")
        source = clip_source(options, env)
        if source is None:
            return None
        batch = options.clip_batch_size or (128 if env.on_gpu else 16)
        return cls(source, batch, options.clip_sample, **cls.model_args(env)).hinted(env)

    def settings(self) -> str:
        return f"clip={self.source} sample={self.sampling}"

    def make_handler(self):
        from reelbeam.models.clip import CLIPImageHandler

        return CLIPImageHandler(self.source, self.device, self.precision, self.batch, self.model_copies)

    def expand(self, tables):
        from reelbeam.transforms.clip_scoring import EmbedFrames

        return tables | "EmbedFrames" >> EmbedFrames(self.placed(self.handler()), self.source)


class FrameScoresStage(ModelStage):
    name: ClassVar[str] = "frame_scores"
    title: ClassVar[str] = "Language-guided frame scores (clip; clipit with --clipit-checkpoint)"
    reads: ClassVar[tuple[str, ...]] = ("frame_embeddings",)
    optional_reads: ClassVar[tuple[str, ...]] = ("videos",)
    writes: ClassVar[tuple[str, ...]] = ("frame_scores",)
    enabled_by: ClassVar[str] = "CLIP weights at hand (--clip-model)"
    checkpoint_flag: ClassVar[str | None] = "--clipit-checkpoint"
    model_kind: ClassVar[str | None] = "clipit"

    def __init__(self, source: str, clipit: str | None, queries: list[str], by_uri: dict, device: str) -> None:
        super().__init__(clipit, device)
        self.source = source
        self.queries = queries
        self.by_uri = by_uri

    @property
    def clipit(self) -> str | None:
        return self.checkpoint

    @property
    def clipit_id(self) -> str | None:
        return self.model_id

    @classmethod
    def configure(cls, options, env) -> FrameScoresStage | None:
        from reelbeam.transforms.clip_scoring import manifest_queries

        source = clip_source(options, env)
        if source is None:
            return None
        if options.clipit_checkpoint:
            from reelbeam.models.clipit import inspect_clipit

            cls.checked(inspect_clipit, options.clipit_checkpoint)
        try:
            by_uri = manifest_queries(options.input or ())
        except (OSError, ValueError) as e:
            raise ConfigError(f"--input manifest queries: {e}") from e
        # Queries and CLIP-It scores run in an ordinary step: no GPU from --gpu-accelerator there.
        return cls(source, options.clipit_checkpoint, _queries(options), by_uri, env.cpu_step_device)

    def settings(self) -> str:
        scorers = "clip,clipit" if self.clipit else "clip"
        queries = "; ".join(self.queries) or "query-less"
        per_video = f" + per-video queries of {len(self.by_uri)} videos" if self.by_uri else ""
        return f"scorers={scorers} clipit={self.clipit_id or '-'} queries=[{queries}]{per_video}"

    def expand(self, tables):
        from reelbeam.transforms.clip_scoring import ScoreFrames

        return tables | "ScoreFrames" >> ScoreFrames(
            self.source, self.clipit, self.clipit_id, self.device, self.queries, self.by_uri
        )
