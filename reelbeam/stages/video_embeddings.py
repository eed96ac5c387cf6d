"""Stage `video_embeddings`: CMD R(2+1)D-26 clip embeddings (ModelScope's
`damo/cv_r2p1d_video_embedding` checkpoint) per video (the reference: 10 clips spread over the video,
averaged) and per shot (clips inside each shot of `shots`, so shots can be searched by content),
from `videos`, `frames` and `shots` of this job or an earlier run. The clip frames are fetched by
seeking, not by a second full decode."""

from __future__ import annotations

import logging
from typing import ClassVar

from reelbeam.stages.base import ConfigError, ModelStage, add_flag

LOG = logging.getLogger(__name__)


class VideoEmbeddingsStage(ModelStage):
    name: ClassVar[str] = "video_embeddings"
    title: ClassVar[str] = "CMD video embeddings (R(2+1)D-26, per video and per shot)"
    reads: ClassVar[tuple[str, ...]] = ("videos", "frames")
    optional_reads: ClassVar[tuple[str, ...]] = ("shots",)
    writes: ClassVar[tuple[str, ...]] = ("video_embeddings",)
    enabled_by: ClassVar[str] = "--cmd-checkpoint"
    reshuffle_inputs: ClassVar[bool] = True
    checkpoint_flag: ClassVar[str | None] = "--cmd-checkpoint"
    model_kind: ClassVar[str | None] = "cmd-r2plus1d26"

    def __init__(self, checkpoint: str, granularities: tuple[str, ...], batch: int, **model) -> None:
        super().__init__(checkpoint, **model)
        self.granularities = granularities
        self.batch = batch
        if "shot" in granularities:
            self.reads = (*type(self).reads, "shots")  # the shot granularity needs them
            self.optional_reads = ()

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
        if env.keyframes_only:
            raise ConfigError("--cmd-checkpoint needs every frame decoded: drop --iframes-only")
        from reelbeam.models.r2plus1d import check_checkpoint

        cls.checked(check_checkpoint, options.cmd_checkpoint)
        batch = options.cmd_batch_size or (32 if env.on_gpu else 8)
        return cls(options.cmd_checkpoint, granularities, batch, **cls.model_args(env)).hinted(env)

    def settings(self) -> str:
        return f"{self.model_id} granularity={','.join(self.granularities)}"

    def make_handler(self):
        from reelbeam.models.r2plus1d import CMDEmbeddingHandler

        return CMDEmbeddingHandler(
            self.checkpoint, self.device, self.precision, max_batch_size=self.batch, model_copies=self.model_copies
        )

    def expand(self, tables):
        from reelbeam.transforms.video_embeddings import EmbedClips

        return tables | "EmbedClips" >> EmbedClips(self.placed(self.handler()), self.model_id, self.granularities)
