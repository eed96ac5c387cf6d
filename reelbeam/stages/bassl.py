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

from reelbeam.stages.base import ConfigError, Stage, add_flag, weights_error

LOG = logging.getLogger(__name__)


@functools.lru_cache(maxsize=8)
def scene_checkpoint_layout(path: str) -> str:
    """'full' (encoder, CRN and head) or 'encoder' (no boundary head), read from the checkpoint's
    tensor names and shapes alone; ConfigError naming the flag otherwise."""
    from reelbeam.models.bassl import inspect_bassl
    from reelbeam.models.checkpoints import CheckpointError

    try:
        return inspect_bassl(path)
    except CheckpointError as e:
        raise weights_error("--scene-checkpoint", e) from e


def _model_id(kind: str, path: str) -> str:
    from reelbeam.models.checkpoints import CheckpointError, model_id

    try:
        return model_id(kind, path)
    except CheckpointError as e:
        raise weights_error("--scene-checkpoint", e) from e


class BaSSLEncoderStage(Stage):
    name: ClassVar[str] = "bassl_encoder"
    title: ClassVar[str] = "BaSSL scene model (ModelScope's checkpoint): shot encoder, CRN boundaries, scenes"
    reads: ClassVar[tuple[str, ...]] = ("keyframes",)
    writes: ClassVar[tuple[str, ...]] = ("shot_embeddings",)
    enabled_by: ClassVar[str] = "--scene-checkpoint"
    reshuffle_inputs: ClassVar[bool] = True

    def __init__(self, checkpoint: str, device: str, precision: str, model_copies: int | None) -> None:
        super().__init__()
        self.checkpoint = checkpoint
        self.device = device
        self.precision = precision
        self.model_copies = model_copies
        self.model_id = _model_id("bassl-resnet50", checkpoint)

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
        return cls(options.scene_checkpoint, env.model_device, env.precision(), env.model_copies).hinted(env)

    def settings(self) -> str:
        return self.model_id

    def checkpoints(self):
        return {"--scene-checkpoint": self.checkpoint}

    def expand(self, tables):
        from reelbeam.models.bassl import ShotEncoderHandler
        from reelbeam.transforms.scene_model import EncodeShots

        handler = ShotEncoderHandler(self.checkpoint, self.device, self.precision, model_copies=self.model_copies)
        out = tables["keyframes"] | "EncodeShots" >> EncodeShots(self.placed(handler), self.model_id, "shot_encoder")
        return {"shot_embeddings": out["embeddings"], "failures": out["failures"], "processed": out["processed"]}


class BoundariesStage(Stage):
    name: ClassVar[str] = "boundaries"
    title: ClassVar[str] = "BaSSL CRN boundaries (from --scene-checkpoint)"
    reads: ClassVar[tuple[str, ...]] = ("shot_embeddings",)
    writes: ClassVar[tuple[str, ...]] = ("boundaries",)
    enabled_by: ClassVar[str] = "--scene-checkpoint (a fine-tuned checkpoint with the boundary head)"
    reshuffle_inputs: ClassVar[bool] = True

    def __init__(self, checkpoint: str, device: str, model_copies: int | None) -> None:
        super().__init__()
        self.checkpoint = checkpoint
        self.device = device
        self.model_copies = model_copies
        self.model_id = _model_id("bassl-crn", checkpoint)

    @classmethod
    def configure(cls, options, env) -> BoundariesStage | None:
        if not options.scene_checkpoint or scene_checkpoint_layout(options.scene_checkpoint) != "full":
            return None
        return cls(options.scene_checkpoint, env.model_device, env.model_copies).hinted(env)

    def settings(self) -> str:
        return self.model_id

    def checkpoints(self):
        return {"--scene-checkpoint": self.checkpoint}

    def expand(self, tables):
        from reelbeam.models.bassl import BoundaryHandler
        from reelbeam.transforms.scene_model import ScoreBoundaries

        handler = BoundaryHandler(self.checkpoint, self.device, model_copies=self.model_copies)
        return tables["shot_embeddings"] | "ScoreBoundaries" >> ScoreBoundaries(self.placed(handler), self.model_id)


class ModelScenesStage(Stage):
    name: ClassVar[str] = "model_scenes"
    title: ClassVar[str] = "BaSSL scenes (from --scene-checkpoint's boundaries)"
    reads: ClassVar[tuple[str, ...]] = ("shots", "boundaries")
    writes: ClassVar[tuple[str, ...]] = ("scenes",)
    enabled_by: ClassVar[str] = "--scene-checkpoint (a fine-tuned checkpoint with the boundary head)"
    exclusive: ClassVar[str | None] = "scenes"

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
