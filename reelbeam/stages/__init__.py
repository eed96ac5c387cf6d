"""The pipeline's stages, in order (see `reelbeam.stages.base` for the contract).

Adding a stage: one module here with its `Stage` subclass, plus one line in REGISTRY. The pipeline
(`reelbeam.pipelines.video_pipeline`), the writers, `reelbeam run --help`, the run summary and the
stage graph in docs/architecture.md all come from this list.
"""

from reelbeam.stages.base import STREAMS, ConfigError, ModelStage, PassStage, RunEnv, Stage, VideoAssembly
from reelbeam.stages.bassl import BaSSLEncoderStage, BoundariesStage, ModelScenesStage
from reelbeam.stages.clip_scoring import ClipSamplingStage, FrameEmbeddingsStage, FrameScoresStage
from reelbeam.stages.decode import DecodeStage
from reelbeam.stages.grouping_scenes import GroupingScenesStage
from reelbeam.stages.histogram_scenes import HistogramScenesStage
from reelbeam.stages.modelscope_json import ModelScopeJsonStage
from reelbeam.stages.motion import IFramesStage, MotionMapsStage, MotionStatsStage
from reelbeam.stages.scene_clips import SceneClipsStage
from reelbeam.stages.scrl import SCRLEncoderStage
from reelbeam.stages.shot_keyframes import ShotKeyframesStage
from reelbeam.stages.shots import ShotsStage
from reelbeam.stages.summaries import SummariesStage
from reelbeam.stages.video_embeddings import VideoEmbeddingsStage

REGISTRY: tuple[type[Stage], ...] = (
    DecodeStage,
    ShotsStage,
    MotionStatsStage,
    MotionMapsStage,
    IFramesStage,
    HistogramScenesStage,
    ClipSamplingStage,
    GroupingScenesStage,
    ShotKeyframesStage,
    BaSSLEncoderStage,
    SCRLEncoderStage,
    BoundariesStage,
    ModelScenesStage,
    VideoEmbeddingsStage,
    FrameEmbeddingsStage,
    FrameScoresStage,
    SummariesStage,
    SceneClipsStage,
    ModelScopeJsonStage,
)

__all__ = ["REGISTRY", "STREAMS", "ConfigError", "ModelStage", "PassStage", "RunEnv", "Stage", "VideoAssembly"]


def graph_markdown() -> str:
    """The stage graph as Markdown (docs/architecture.md holds it between markers; a test keeps
    it in step with REGISTRY): each stage with the tables it reads and writes."""
    rows = [
        "| stage | runs | reads | writes | on when |",
        "| --- | --- | --- | --- | --- |",
    ]
    for cls in REGISTRY:
        where = "in the decode pass" if cls.in_decode_pass else ("first" if cls.reads_inputs else "after")
        reads = [f"`{t}`" for t in cls.reads] + [f"`{t}` (optional)" for t in cls.optional_reads]
        if cls.in_decode_pass:
            reads = ["decoded frames"]
        writes = [f"`{t}`" for t in cls.writes]
        if cls.in_decode_pass and cls.frame_columns:
            writes.append(f"`frames` columns {', '.join(cls.frame_columns[:2])}{', ...' if len(cls.frame_columns) > 2 else ''}")
        if cls.in_decode_pass:
            writes += [f"`{t}` (stream)" for t, d in cls.streams.items() if d is None and t in STREAMS]
        if cls.files_folder:
            writes.append(f"OUTPUT/{cls.files_folder}/")
        rows.append(
            f"| `{cls.name}` | {where} | {', '.join(reads) or 'the inputs (--input)'} | {', '.join(writes) or '-'} | {cls.enabled_by} |"
        )
    lines = ["```"]
    for cls in REGISTRY:
        if cls.in_decode_pass:
            made_here = list(cls.writes) or (["frames columns"] if cls.frame_columns else [])
            made_here += [f"{t} (stream)" for t, d in cls.streams.items() if d is None and t in STREAMS]
            lines.append(f"  decode pass + {cls.name:<18} -> {', '.join(made_here)}")
        elif cls.reads_inputs:
            lines.append(f"inputs -> {cls.name:<27} -> {', '.join(cls.writes)}")
        else:
            src = ", ".join((*cls.reads, *(f"[{t}]" for t in cls.optional_reads if t not in STREAMS)))
            lines.append(f"{src:<33} -> {cls.name:<18} -> {', '.join(cls.writes) or 'files'}")
    lines.append("```")
    return "\n".join(rows + [""] + lines) + "\n"
