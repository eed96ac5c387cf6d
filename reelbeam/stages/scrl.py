"""Stage `scrl_encoder`: SCRL's shot encoder (ResNet-50, the shot's 3 keyframes fused on channels)
-> `shot_embeddings` rows (model `scrl-resnet50:<file>@<hash>`), alone or beside BaSSL's. SCRL
publishes no temporal model for inference, so scenes are unchanged by it.
"""

from __future__ import annotations

from typing import ClassVar

from reelbeam.stages.base import Stage, add_flag, weights_error


class SCRLEncoderStage(Stage):
    name: ClassVar[str] = "scrl_encoder"
    title: ClassVar[str] = "SCRL shot encoder"
    reads: ClassVar[tuple[str, ...]] = ("keyframes",)
    writes: ClassVar[tuple[str, ...]] = ("shot_embeddings",)
    enabled_by: ClassVar[str] = "--scrl-checkpoint"
    reshuffle_inputs: ClassVar[bool] = True

    def __init__(self, checkpoint: str, device: str, precision: str, model_copies: int | None) -> None:
        from reelbeam.models.checkpoints import CheckpointError, model_id

        super().__init__()
        self.checkpoint = checkpoint
        self.device = device
        self.precision = precision
        self.model_copies = model_copies
        try:
            self.model_id = model_id("scrl-resnet50", checkpoint)
        except CheckpointError as e:
            raise weights_error("--scrl-checkpoint", e) from e

    @staticmethod
    def add_flags(group) -> None:
        add_flag(group, "scrl-checkpoint", default=None, show_default=False,
                 help="SCRL shot encoder (ResNet-50 with a 9-channel conv1): its MoCo training checkpoint or an "
                 "encoder state_dict; local path or fsspec URL. Adds shot_embeddings rows (model "
                 "scrl-resnet50:<file>@<hash>); implies --shot-keyframes; scenes are unchanged")

    @classmethod
    def configure(cls, options, env) -> SCRLEncoderStage | None:
        if not options.scrl_checkpoint:
            return None
        from reelbeam.models.checkpoints import CheckpointError
        from reelbeam.models.scrl import inspect_scrl

        try:
            inspect_scrl(options.scrl_checkpoint)
        except CheckpointError as e:
            raise weights_error("--scrl-checkpoint", e) from e
        return cls(options.scrl_checkpoint, env.model_device, env.precision(), env.model_copies).hinted(env)

    def settings(self) -> str:
        return self.model_id

    def checkpoints(self):
        return {"--scrl-checkpoint": self.checkpoint}

    def expand(self, tables):
        from reelbeam.models.scrl import SCRLEncoderHandler
        from reelbeam.transforms.scene_model import EncodeShots

        handler = SCRLEncoderHandler(self.checkpoint, self.device, self.precision, model_copies=self.model_copies)
        out = tables["keyframes"] | "EncodeShotsSCRL" >> EncodeShots(self.placed(handler), self.model_id, "scrl_encoder")
        return {"shot_embeddings": out["embeddings"], "failures": out["failures"], "processed": out["processed"]}
