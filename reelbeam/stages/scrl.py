"""Stage `scrl_encoder`: SCRL's shot encoder (ResNet-50, the shot's 3 keyframes fused on channels)
-> `shot_embeddings` rows (model `scrl-resnet50:<file>@<hash>`), alone or beside BaSSL's. SCRL
publishes no temporal model for inference, so scenes are unchanged by it.
"""

from __future__ import annotations

from typing import ClassVar

from reelbeam.stages.base import ModelStage, add_flag


class SCRLEncoderStage(ModelStage):
    name: ClassVar[str] = "scrl_encoder"
    title: ClassVar[str] = "SCRL shot encoder"
    reads: ClassVar[tuple[str, ...]] = ("keyframes",)
    writes: ClassVar[tuple[str, ...]] = ("shot_embeddings",)
    enabled_by: ClassVar[str] = "--scrl-checkpoint"
    reshuffle_inputs: ClassVar[bool] = True
    checkpoint_flag: ClassVar[str | None] = "--scrl-checkpoint"
    model_kind: ClassVar[str | None] = "scrl-resnet50"

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
        from reelbeam.models.scrl import inspect_scrl

        cls.checked(inspect_scrl, options.scrl_checkpoint)
        return cls(options.scrl_checkpoint, **cls.model_args(env)).hinted(env)

    def make_handler(self):
        from reelbeam.models.scrl import SCRLEncoderHandler

        return SCRLEncoderHandler(self.checkpoint, self.device, self.precision, model_copies=self.model_copies)

    def expand(self, tables):
        from reelbeam.transforms.scene_model import EncodeShots

        out = tables["keyframes"] | "EncodeShotsSCRL" >> EncodeShots(self.placed(self.handler()), self.model_id, "scrl_encoder")
        return {"shot_embeddings": out["embeddings"], "failures": out["failures"], "processed": out["processed"]}
