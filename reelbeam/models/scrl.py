"""SCRL shot encoder (TencentYoutuResearch/SceneSegmentation-SCRL): an alternative to BaSSL's.

Spec: reference/scene_seg.md section 2 ("SCRL differences") and SCRL's `extract_embeddings.py`:

- Early fusion: the shot's 3 keyframes (first, middle, last), each `Resize(224)` (PIL bilinear,
  short side) + `CenterCrop(224)` + ToTensor + ImageNet normalisation, are concatenated on
  channels into one [9, 224, 224] input.
- A torchvision-layout ResNet-50 whose `conv1` takes 9 channels; `forward(x, is_fc=False)` is the
  2048-d avgpool feature. One forward per shot (BaSSL instead averages 3 forwards).
- Checkpoints are MoCo training states: `{'state_dict': {'module.encoder_q.<resnet key>', ...,
  'module.encoder_q.fc.*' (projection head), 'module.encoder_k.*' (momentum encoder),
  'module.queue', 'module.queue_ptr'}, 'epoch', 'optimizer', ...}`. The reference keeps
  `encoder_q` without its fc; so does `load_scrl`. A plain encoder state_dict (torchvision keys,
  9-channel conv1, with or without `encoder_q.` / `module.` prefixes) is accepted too.

SCRL publishes no temporal model for inference (its BiLSTM is fine-tuned per protocol), so SCRL
gives `shot_embeddings` rows (model `scrl-resnet50:<file>`); scenes still come from BaSSL's CRN
(`--scene-checkpoint`) or from the training-free grouping.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torchvision
from torch import nn

from reelbeam.models.bassl import IMAGENET_MEAN, IMAGENET_STD, ShotEncoderHandler
from reelbeam.models.checkpoints import (
    CheckpointError,
    compare_keys,
    expected_shapes,
    load_state_dict,
    tensor_shapes,
)

KEYFRAMES = 3
IN_CHANNELS = 3 * KEYFRAMES


def preprocess_transform():
    """SCRL's transform for one keyframe (PIL RGB in): Resize(224) (bilinear), CenterCrop(224),
    ToTensor, ImageNet normalisation."""
    from torchvision import transforms as T

    return T.Compose([T.Resize(224), T.CenterCrop(224), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


class SCRLEncoder(torchvision.models.ResNet):
    """ResNet-50 v1.5 with a 9-channel conv1 and no fc: [B, 9, H, W] -> [B, 2048]."""

    def __init__(self) -> None:
        super().__init__(torchvision.models.resnet.Bottleneck, [3, 4, 6, 3])
        self.conv1 = nn.Conv2d(IN_CHANNELS, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.fc = nn.Identity()

    @torch.inference_mode()
    def encode_shots(self, keyframes: torch.Tensor) -> torch.Tensor:
        """[B, 3 keyframes, 3, H, W] -> [B, 2048]: keyframes fused on channels, one forward."""
        b, k, c, h, w = keyframes.shape
        return self(keyframes.reshape(b, k * c, h, w))


def _strip(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The query encoder's resnet keys of a MoCo state (or a bare encoder state), without fc."""
    out = {}
    has_query = any(k.startswith(("module.encoder_q.", "encoder_q.")) for k in state)
    for key, value in state.items():
        key = key.removeprefix("module.")
        if has_query:
            if not key.startswith("encoder_q."):
                continue  # encoder_k (momentum copy), queue, queue_ptr
            key = key[len("encoder_q.") :]
        if key.startswith("fc.") or key in ("queue", "queue_ptr"):
            continue
        out[key] = value
    return out


def _check_layout(path: str, raw: Mapping) -> dict:
    """The encoder's part of a checkpoint's keys -> values (tensors or shapes); CheckpointError
    (one line) when it is no SCRL encoder."""
    if any(k.startswith("shot_encoder.") for k in raw):
        raise CheckpointError(f"{path}: this is a BaSSL/ModelScope scene checkpoint ('shot_encoder.' keys); give it to --scene-checkpoint")
    state = _strip(raw)
    conv1 = state.get("conv1.weight")
    if conv1 is None:
        raise CheckpointError(f"{path}: no ResNet 'conv1.weight' (nor 'module.encoder_q.conv1.weight'); not an SCRL checkpoint")
    channels = tuple(getattr(conv1, "shape", conv1))[1]
    if channels != IN_CHANNELS:
        raise CheckpointError(
            f"{path}: conv1 takes {channels} channels; SCRL's encoder takes {IN_CHANNELS} "
            "(3 keyframes fused on channels). A 3-channel ResNet is a BaSSL encoder: use --scene-checkpoint"
        )
    return state


def inspect_scrl(path: str, shapes: Mapping[str, tuple] | None = None) -> None:
    """Check `path` by its tensor names and shapes alone (no weights read; `shapes`: its
    `tensor_shapes` when already read); CheckpointError (one line) when it is not an SCRL encoder."""
    state = _check_layout(path, tensor_shapes(path) if shapes is None else shapes)
    compare_keys(path, state, expected_shapes(SCRLEncoder), "SCRL ResNet-50 (9-channel conv1)")


def load_scrl(path: str, device: str = "cpu") -> SCRLEncoder:
    """Load an SCRL checkpoint (see module docstring) from a local path or fsspec URL, with
    weights_only=True. Raises CheckpointError naming what does not match."""
    state = _check_layout(path, load_state_dict(path))
    model = SCRLEncoder()
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: keys do not match SCRL's ResNet-50: {e}") from e
    if missing or unexpected:
        raise CheckpointError(f"{path}: keys do not match SCRL's ResNet-50: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return model.eval().to(device)


def save_moco_layout(model: SCRLEncoder, path: str, projection_dim: int = 128) -> None:
    """Write `model` as an SCRL MoCo training checkpoint (query and momentum encoders with an MLP
    head, the queue, epoch and optimizer entries), for tests of the real loader."""
    state = {}
    for key, value in model.state_dict().items():
        state[f"module.encoder_q.{key}"] = value
        state[f"module.encoder_k.{key}"] = torch.zeros_like(value)
    for enc in ("encoder_q", "encoder_k"):
        state[f"module.{enc}.fc.0.weight"] = torch.zeros(2048, 2048)
        state[f"module.{enc}.fc.0.bias"] = torch.zeros(2048)
        state[f"module.{enc}.fc.2.weight"] = torch.zeros(projection_dim, 2048)
        state[f"module.{enc}.fc.2.bias"] = torch.zeros(projection_dim)
    state["module.queue"] = torch.zeros(projection_dim, 16)
    state["module.queue_ptr"] = torch.zeros(1, dtype=torch.long)
    torch.save({"epoch": 100, "arch": "resnet50", "state_dict": state, "optimizer": {"state": {}, "param_groups": []}}, path)


class SCRLEncoderHandler(ShotEncoderHandler):
    """RunInference: a shot's 3 keyframe JPEGs -> its 2048-d SCRL feature (BaSSL's handler with
    SCRL's checkpoint loader and transform; `encode_shots` fuses the keyframes on channels)."""

    def _load(self, device: str) -> SCRLEncoder:
        return load_scrl(self._checkpoint, device)

    def _transform(self):
        return preprocess_transform()

    def get_metrics_namespace(self) -> str:
        return "reelbeam.scrl_encoder"
