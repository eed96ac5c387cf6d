"""Stage `video_embeddings`: CMD R(2+1)D-26 clip embeddings (ModelScope's
`damo/cv_r2p1d_video_embedding` checkpoint) per video (the reference: 10 clips spread over the video,
averaged) and per shot (clips inside each shot of `shots`, so shots can be searched by content),
from `videos`, `frames` and `shots` of this job or an earlier run. The clip frames are fetched by
seeking, not by a second full decode."""

from __future__ import annotations

import logging
from typing import ClassVar

from reelbeam.stages.base import ConfigError, Stage, add_flag, weights_error

LOG = logging.getLogger(__name__)


class VideoEmbeddingsStage(Stage):
    name: ClassVar[str] = "video_embeddings"
    title: ClassVar[str] = "CMD video embeddings (R(2+1)D-26, per video and per shot)"
    reads: ClassVar[tuple[str, ...]] = ("videos", "frames")
    optional_reads: ClassVar[tuple[str, ...]] = ("shots",)
    writes: ClassVar[tuple[str, ...]] = ("video_embeddings",)
    enabled_by: ClassVar[str] = "--cmd-checkpoint"
    reshuffle_inputs: ClassVar[bool] = True

    def __init__(self, checkpoint: str, granularities: tuple[str, ...], device: str, precision: str,
                 model_copies: int | None, batch: int) -> None:
        from reelbeam.models.checkpoints import CheckpointError, model_id

        super().__init__()
        self.checkpoint = checkpoint
        self.granularities = granularities
        self.device = device
        self.precision = precision
        self.model_copies = model_copies
        self.batch = batch
        if "shot" in granularities:
            self.reads = (*type(self).reads, "shots")  # the shot granularity needs them
            self.optional_reads = ()
        try:
            self.model_id = model_id("cmd-r2plus1d26", checkpoint)
        except CheckpointError as e:
            raise weights_error("--cmd-checkpoint", e) from e

    @staticmethod
    def add_flags(group) -> None:
        add_flag(group, "cmd-checkpoint", default=None, show_default=False,
                 help="CMD R(2+1)D-26 video embedding: ModelScope's pytorch_model.pt (flat state_dict, loaded strict "
                 "with weights_only), local path or fsspec URL; writes `video_embeddings`")
        add_flag(group, "cmd-granularity", default="video,shot",
                 help="video (the reference: 10 clips spread over the video, one vector), shot (clips inside each "
                 "shot, one vector per shot) or both, comma-separated")
        add_flag(group, "cmd-batch-size", type=int, default=None, show_default=False,
                 help="clips per RunInference batch (default 8 on CPU, 32 on GPU)")

    @classmethod
    def configure(cls, options, env) -> VideoEmbeddingsStage | None:
        from reelbeam.schemas.tables import VIDEO_EMBEDDING_GRANULARITIES as GRANULARITIES

        granularities = tuple(g.strip() for g in (options.cmd_granularity or "").split(",") if g.strip())
        unknown = sorted(set(granularities) - set(GRANULARITIES))
        if unknown or not granularities:
            raise ConfigError(f"--cmd-granularity must name video, shot or both (comma-separated), got {options.cmd_granularity!r}")
        if options.cmd_batch_size is not None and options.cmd_batch_size < 1:
            raise ConfigError(f"--cmd-batch-size must be >= 1, got {options.cmd_batch_size}")
        if not options.cmd_checkpoint:
            env.note("video embeddings (CMD) skipped: give --cmd-checkpoint PATH to write `video_embeddings` "
                     "(see docs/weights.md)")
            return None
        if options.iframes_only:
            raise ConfigError("--cmd-checkpoint needs every frame decoded: drop --iframes-only")
        from reelbeam.models.checkpoints import CheckpointError
        from reelbeam.models.r2plus1d import check_checkpoint

        try:
            check_checkpoint(options.cmd_checkpoint)
        except CheckpointError as e:
            raise weights_error("--cmd-checkpoint", e) from e
        batch = options.cmd_batch_size or (32 if env.on_gpu else 8)
        return cls(options.cmd_checkpoint, granularities, env.model_device, env.precision(), env.model_copies,
                   batch).hinted(env)

    def settings(self) -> str:
        return f"{self.model_id} granularity={','.join(self.granularities)}"

    def checkpoints(self):
        return {"--cmd-checkpoint": self.checkpoint}

    def expand(self, tables):
        from reelbeam.models.r2plus1d import CMDEmbeddingHandler
        from reelbeam.transforms.video_embeddings import EmbedClips

        handler = CMDEmbeddingHandler(
            self.checkpoint, self.device, self.precision, max_batch_size=self.batch, model_copies=self.model_copies
        )
        return tables | "EmbedClips" >> EmbedClips(self.placed(handler), self.model_id, self.granularities)
