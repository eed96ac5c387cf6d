"""BaSSL scene segmentation as three stages, all from one `--scene-checkpoint`:

- `bassl_encoder`: `keyframes` (kind 'shot') -> `shot_embeddings` (ResNet-50, mean of the shot's 3
  keyframes' features; a reshard point);
- `boundaries`: `shot_embeddings` -> `boundaries` (the CRN over 17-shot windows: p that a scene ends
  after each shot);
- `model_scenes`: `shots` + `boundaries` -> `scenes` (p > --bassl-threshold ends a scene).

A checkpoint without the boundary head (BaSSL's pre-training .ckpt) runs `bassl_encoder` alone: the
shot embeddings are written and the scenes stay training-free.
"""

from __future__ import annotations

import functools
import logging
from typing import ClassVar

from reelbeam.stages.base import ConfigError, ModelStage, Stage, add_flag, checked

LOG = logging.getLogger(__name__)


@functools.lru_cache(maxsize=8)
def scene_checkpoint_layout(path: str) -> str:
    """'full' (encoder, CRN and head) or 'encoder' (no boundary head), read from the checkpoint's
    tensor names and shapes alone; ConfigError naming the flag otherwise."""
    from reelbeam.models.bassl import inspect_bassl

    return checked("--scene-checkpoint", inspect_bassl, path)


class BaSSLEncoderStage(ModelStage):
    name: ClassVar[str] = "bassl_encoder"
    title: ClassVar[str] = "BaSSL scene model (ModelScope's checkpoint): shot encoder, CRN boundaries, scenes"
    reads: ClassVar[tuple[str, ...]] = ("keyframes",)
    writes: ClassVar[tuple[str, ...]] = ("shot_embeddings",)
    enabled_by: ClassVar[str] = "--scene-checkpoint"
    reshuffle_inputs: ClassVar[bool] = True
    checkpoint_flag: ClassVar[str | None] = "--scene-checkpoint"
    model_kind: ClassVar[str | None] = "bassl-resnet50"

    @staticmethod
    def add_flags(group) -> None:
        add_flag(group, "scene-checkpoint", default=None, show_default=False,
                 help="BaSSL scene model, local path or fsspec URL: ModelScope's pytorch_model.pt (shot encoder, "
                 "CRN and boundary head: shot_embeddings, boundaries and model scenes) or a checkpoint without "
                 "the head, e.g. BaSSL's pre-training .ckpt (shot_embeddings only; scenes stay training-free). "
                 "Implies --shot-keyframes")

    @classmethod
    def configure(cls, options, env) -> BaSSLEncoderStage | None:
        if not options.scene_checkpoint:
            return None
        if scene_checkpoint_layout(options.scene_checkpoint) == "encoder":
            env.note("--scene-checkpoint has no boundary head: writing shot embeddings only; scenes stay training-free")
        return cls(options.scene_checkpoint, **cls.model_args(env)).hinted(env)

    def make_handler(self):
        from reelbeam.models.bassl import ShotEncoderHandler

        return ShotEncoderHandler(self.checkpoint, self.device, self.precision, model_copies=self.model_copies)

    def expand(self, tables):
        from reelbeam.transforms.scene_model import EncodeShots

        out = tables["keyframes"] | "EncodeShots" >> EncodeShots(self.placed(self.handler()), self.model_id, "shot_encoder")
        return {"shot_embeddings": out["embeddings"], "failures": out["failures"], "processed": out["processed"]}


class BoundariesStage(ModelStage):
    name: ClassVar[str] = "boundaries"
    title: ClassVar[str] = "BaSSL CRN boundaries (from --scene-checkpoint)"
    reads: ClassVar[tuple[str, ...]] = ("shot_embeddings",)
    writes: ClassVar[tuple[str, ...]] = ("boundaries",)
    enabled_by: ClassVar[str] = "--scene-checkpoint (a fine-tuned checkpoint with the boundary head)"
    reshuffle_inputs: ClassVar[bool] = True
    checkpoint_flag: ClassVar[str | None] = "--scene-checkpoint"
    model_kind: ClassVar[str | None] = "bassl-crn"

    @classmethod
    def configure(cls, options, env) -> BoundariesStage | None:
        if not options.scene_checkpoint or scene_checkpoint_layout(options.scene_checkpoint) != "full":
            return None
        return cls(options.scene_checkpoint, **cls.model_args(env, precision=False)).hinted(env)

    def make_handler(self):
        from reelbeam.models.bassl import BoundaryHandler

        return BoundaryHandler(self.checkpoint, self.device, model_copies=self.model_copies)

    def expand(self, tables):
        from reelbeam.transforms.scene_model import ScoreBoundaries

        return tables["shot_embeddings"] | "ScoreBoundaries" >> ScoreBoundaries(self.placed(self.handler()), self.model_id)


class ModelScenesStage(Stage):
    name: ClassVar[str] = "model_scenes"
    title: ClassVar[str] = "BaSSL scenes (from --scene-checkpoint's boundaries)"
    reads: ClassVar[tuple[str, ...]] = ("shots", "boundaries")
    writes: ClassVar[tuple[str, ...]] = ("scenes",)
    enabled_by: ClassVar[str] = "--scene-checkpoint (a fine-tuned checkpoint with the boundary head)"
    exclusive: ClassVar[str | None] = "scenes"
    precedence: ClassVar[int] = 1  # a scene model given explicitly replaces the training-free scenes

    def __init__(self, threshold: float) -> None:
        super().__init__()
        self.threshold = threshold

    @staticmethod
    def add_flags(group) -> None:
        add_flag(group, "bassl-threshold", type=float, default=0.8,
                 help="a scene ends after a shot whose boundary probability is above this (ModelScope's value)")

    @classmethod
    def configure(cls, options, env) -> ModelScenesStage | None:
        if not 0.0 < options.bassl_threshold < 1.0:
            raise ConfigError(f"--bassl-threshold must be in (0, 1), got {options.bassl_threshold:g}")
        if not options.scene_checkpoint or scene_checkpoint_layout(options.scene_checkpoint) != "full":
            return None
        return cls(options.bassl_threshold)

    def settings(self) -> str:
        return f"bassl(threshold={self.threshold:g})"

    def expand(self, tables):
        from reelbeam.transforms.scene_model import AssembleModelScenes

        return tables | "AssembleModelScenes" >> AssembleModelScenes(self.threshold)
