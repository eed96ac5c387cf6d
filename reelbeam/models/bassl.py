"""BaSSL scene segmentation: ResNet-50 shot encoder, CRN (BERT-style contextual relation network),
boundary head, and loading of the published checkpoints. Spec: reference/scene_seg.md sections 2-5.

- `ShotEncoder`: torchvision-layout ResNet-50 without fc, [B, 3, 224, 224] -> [B, 2048] (avgpool).
  A shot's feature is the mean of its 3 keyframes' features; each shot is encoded once (the
  reference re-encodes a shot once per window it appears in, ~17x; with BatchNorm in eval mode
  that is the same numbers).
- `CRN`: for each shot i, the window of 17 shots i-8..i+8 (indices clipped to the video, so edge
  shots repeat), a CLS token = mean of the 17 raw features, Linear(2048->768) + learned positions
  (18) + LayerNorm(eps 1e-12), a 2-layer HF `BertEncoder` (768, 8 heads, 3072, gelu), and the
  output token 9 (the centre shot) -> `head_sbd` Linear(768, 2) -> softmax[:, 1] = p(scene ends
  after shot i).
- `load_bassl`: the ModelScope `pytorch_model.pt` (flat state_dict, prefixes `shot_encoder.`,
  `crn.`, `head_sbd.`) or a BaSSL Lightning `.ckpt` (`state_dict` with `shot_encoder.`, `crn.`,
  `loss.*`; pre-training only, so no `head_sbd`), from any fsspec path, with weights_only=True.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import torch
import torchvision
from apache_beam.ml.inference.base import ModelHandler, PredictionResult
from torch import nn
from transformers.models.bert.modeling_bert import BertConfig, BertEncoder

from reelbeam.models.checkpoints import (
    CheckpointError,
    compare_keys,
    expected_shapes,
    load_state_dict,
    tensor_shapes,
)
from reelbeam.models.device import resolve_device, resolve_precision

FEATURE_DIM = 2048
HIDDEN = 768
NEIGHBORS = 8  # window = 2 * 8 + 1 = 17 shots
POSITIONS = 2 * NEIGHBORS + 2  # 17 shots + CLS
CENTER = POSITIONS // 2  # token 9: the centre shot (not CLS)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Buffers and pre-training heads that published files carry and inference never reads.
_UNUSED_KEYS = ("crn.attention_mask", "crn.shot_embedding.pos_ids", "crn.shot_embedding.mask_embedding.weight")


def preprocess_transform():
    """The reference's test transform: bicubic resize (short side 256), centre crop 224,
    ToTensor, ImageNet normalisation; applied to PIL RGB images."""
    from torchvision import transforms as T

    return T.Compose(
        [
            T.Resize(256, interpolation=T.InterpolationMode.BICUBIC),
            T.CenterCrop(224),
            T.ToTensor(),
            T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


class ShotEncoder(torchvision.models.ResNet):
    """ResNet-50 v1.5 (torchvision layout, so its state_dict keys are torchvision's) without fc:
    [B, 3, H, W] float -> [B, 2048] avgpool features."""

    def __init__(self) -> None:
        super().__init__(torchvision.models.resnet.Bottleneck, [3, 4, 6, 3])
        self.fc = nn.Identity()


class _ShotEmbedding(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.shot_embedding = nn.Linear(FEATURE_DIM, HIDDEN)
        self.position_embedding = nn.Embedding(POSITIONS, HIDDEN)
        self.LayerNorm = nn.LayerNorm(HIDDEN, eps=1e-12)
        self.dropout = nn.Dropout(0.1)

    def forward(self, shots: torch.Tensor) -> torch.Tensor:
        cls = shots.mean(dim=1, keepdim=True)  # CLS = mean of the raw 2048-d features
        x = self.shot_embedding(torch.cat([cls, shots], 1))
        x = x + self.position_embedding.weight[None, : x.shape[1]]
        return self.dropout(self.LayerNorm(x))


def bert_config() -> BertConfig:
    cfg = BertConfig(
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=8,
        intermediate_size=3072,
        hidden_act="gelu",
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        layer_norm_eps=1e-12,
    )
    cfg._attn_implementation = "eager"  # as the reference (transformers 4.40, no mask)
    return cfg


class CRN(nn.Module):
    """[B, 17, 2048] windows -> [B, 768] centre-token features."""

    def __init__(self) -> None:
        super().__init__()
        self.shot_embedding = _ShotEmbedding()
        self.encoder = BertEncoder(bert_config())

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(self.shot_embedding(windows)).last_hidden_state
        return hidden[:, CENTER]


class BaSSL(nn.Module):
    """Module tree named as the published files: `shot_encoder`, `crn`, `head_sbd`."""

    def __init__(self) -> None:
        super().__init__()
        self.shot_encoder = ShotEncoder()
        self.crn = CRN()
        self.head_sbd = nn.Linear(HIDDEN, 2)

    @torch.inference_mode()
    def encode_shots(self, keyframes: torch.Tensor) -> torch.Tensor:
        """Normalised keyframes [S, K, 3, 224, 224] -> shot features [S, 2048] (mean over K)."""
        s, k = keyframes.shape[:2]
        feats = self.shot_encoder(keyframes.reshape(s * k, *keyframes.shape[2:]))
        return feats.reshape(s, k, -1).mean(1)

    @torch.inference_mode()
    def score_windows(self, windows: torch.Tensor) -> torch.Tensor:
        """[B, 17, 2048] -> p(boundary after the centre shot) [B]."""
        return torch.softmax(self.head_sbd(self.crn(windows)), dim=-1)[:, 1]

    def boundary_probabilities(self, features: torch.Tensor, batch: int = 64) -> torch.Tensor:
        """All shots of one video [N, 2048] -> p [N], windows clipped at the edges."""
        idx = torch.from_numpy(window_indices(len(features)))
        out = [self.score_windows(features[idx[i : i + batch]]) for i in range(0, len(idx), batch)]
        return torch.cat(out) if out else torch.zeros(0)


def window_indices(num_shots: int, neighbors: int = NEIGHBORS) -> np.ndarray:
    """[N, 17] shot indices i-8..i+8 clipped to [0, N-1] (edge shots repeat; not shifted)."""
    i = np.arange(num_shots)[:, None] + np.arange(-neighbors, neighbors + 1)[None, :]
    return np.clip(i, 0, max(num_shots - 1, 0))


@dataclasses.dataclass(frozen=True)
class LoadedBaSSL:
    model: BaSSL
    has_head: bool
    source_format: str  # 'modelscope' | 'lightning'


def _split(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries under `prefix`, with it removed."""
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def load_bassl(path: str, device: str = "cpu") -> LoadedBaSSL:
    """Load a ModelScope `pytorch_model.pt` or a BaSSL Lightning `.ckpt` (see module docstring).

    Raises CheckpointError naming what is missing or unexpected.
    """
    raw = load_state_dict(path)
    source = "lightning" if any(k.startswith("loss.") for k in raw) else "modelscope"
    state = {k: v for k, v in raw.items() if not k.startswith("loss.") and k not in _UNUSED_KEYS}
    model = BaSSL()
    if not _split(state, "shot_encoder."):
        raise CheckpointError(f"{path}: no 'shot_encoder.' weights; is this a BaSSL/ModelScope scene checkpoint?")
    has_crn, has_head = bool(_split(state, "crn.")), bool(_split(state, "head_sbd."))
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches
        raise CheckpointError(f"{path}: keys do not match BaSSL (ResNet-50 + CRN + head): {e}") from e
    # A pre-training checkpoint has no head (and SimCLR ones no CRN): those may be missing.
    optional = ("head_sbd.",) if has_crn else ("crn.", "head_sbd.")
    missing = [k for k in missing if not k.startswith(optional)]
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: keys do not match BaSSL (ResNet-50 + CRN + head): missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}"
        )
    return LoadedBaSSL(model.eval().to(device), has_head=has_crn and has_head, source_format=source)


def save_modelscope_layout(model: BaSSL, path: str) -> None:
    """Write `model` as ModelScope's flat `pytorch_model.pt`, with the buffers that file carries
    (used by the tests to exercise the real loader)."""
    state = dict(model.state_dict())
    state["crn.attention_mask"] = torch.zeros(1, 1, 1, POSITIONS)
    state["crn.shot_embedding.pos_ids"] = torch.arange(POSITIONS)
    state["crn.shot_embedding.mask_embedding.weight"] = torch.zeros(2, FEATURE_DIM)
    torch.save(state, path)


def inspect_bassl(path: str, shapes: Mapping[str, tuple] | None = None) -> str:
    """Check `path` by its tensor names and shapes alone (no weights read; `shapes`: its
    `tensor_shapes` when already read): 'full' for a fine-tuned model (shot encoder, CRN and
    boundary head: ModelScope's pytorch_model.pt), 'encoder' for a checkpoint without the head
    (BaSSL's pre-training .ckpt: shot embeddings only). Raises CheckpointError (one line) otherwise."""
    shapes = tensor_shapes(path) if shapes is None else shapes
    if any(k.startswith(("module.encoder_q.", "encoder_q.")) for k in shapes):
        raise CheckpointError(f"{path}: this is an SCRL (MoCo) checkpoint; give it to --scrl-checkpoint")
    state = {k: v for k, v in shapes.items() if not k.startswith("loss.") and k not in _UNUSED_KEYS}
    if not any(k.startswith("shot_encoder.") for k in state):
        raise CheckpointError(f"{path}: no 'shot_encoder.' weights; not a BaSSL/ModelScope scene checkpoint")
    has_crn = any(k.startswith("crn.") for k in state)
    has_head = any(k.startswith("head_sbd.") for k in state)
    optional = ("head_sbd.",) if has_crn else ("crn.", "head_sbd.")
    compare_keys(path, state, expected_shapes(BaSSL), "BaSSL (ResNet-50 + CRN + head)", optional)
    return "full" if has_crn and has_head else "encoder"


# ------------------------------------------------------------------------------------------------
# Beam ModelHandlers: shot encoding (keyframes -> 2048-d) and boundary scoring (a video's shot
# features -> p per shot). Both load the same checkpoint once per worker process.


def _decode_jpeg(data: bytes):
    import io

    from PIL import Image

    return Image.open(io.BytesIO(data)).convert("RGB")


class ShotEncoderHandler(ModelHandler[list, PredictionResult, BaSSL]):
    """RunInference: a shot's 3 keyframe JPEGs -> its 2048-d feature (mean of the 3).

    Preprocessing is the reference's PIL transform. Batches stack shots of any videos; on GPU
    the encoder runs in bf16 autocast with channels-last when `precision='bf16'`.
    """

    def __init__(self, checkpoint: str, device: str = "auto", precision: str = "auto", max_batch_size: int = 16, model_copies: int | None = None) -> None:
        super().__init__(min_batch_size=1, max_batch_size=max_batch_size, model_copies=model_copies)
        self._checkpoint = checkpoint
        self._device = device
        self._precision = precision

    def _load(self, device: str) -> nn.Module:
        return load_bassl(self._checkpoint, device).model

    def _transform(self):
        return preprocess_transform()

    def load_model(self) -> BaSSL:
        device = resolve_device(self._device)
        model = self._load(device)
        model.reelbeam_precision = resolve_precision(self._precision, device, type(self).__name__)
        if model.reelbeam_precision == "bf16":
            model = model.to(memory_format=torch.channels_last)
        return model

    def run_inference(self, batch, model: BaSSL, inference_args=None):
        """Each element: one shot's keyframe JPEGs; the model's `encode_shots` combines them."""
        transform = self._transform()
        x = torch.stack([torch.stack([transform(_decode_jpeg(j)) for j in jpegs]) for jpegs in batch])
        device = next(model.parameters()).device
        bf16 = getattr(model, "reelbeam_precision", "fp32") == "bf16"
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            feats = model.encode_shots(x.to(device)).float().cpu().numpy()
        return [PredictionResult(j, f) for j, f in zip(batch, feats)]

    def get_metrics_namespace(self) -> str:
        return "reelbeam.bassl_encoder"


class BoundaryHandler(ModelHandler[np.ndarray, PredictionResult, BaSSL]):
    """RunInference: one shot's 17-shot window of features [17, 2048] (see `window_indices`) ->
    p(a scene ends after that shot). Batches stack windows of any videos."""

    def __init__(self, checkpoint: str, device: str = "auto", max_batch_size: int = 64, model_copies: int | None = None) -> None:
        super().__init__(min_batch_size=1, max_batch_size=max_batch_size, model_copies=model_copies)
        self._checkpoint = checkpoint
        self._device = device

    def load_model(self) -> BaSSL:
        loaded = load_bassl(self._checkpoint, resolve_device(self._device))
        if not loaded.has_head:
            raise CheckpointError(
                f"{self._checkpoint} has no boundary head (a BaSSL pre-training checkpoint): "
                "scene boundaries need a fine-tuned model such as ModelScope's pytorch_model.pt"
            )
        return loaded.model

    def run_inference(self, batch, model: BaSSL, inference_args=None):
        device = next(model.parameters()).device
        windows = torch.from_numpy(np.stack([np.asarray(w, np.float32) for w in batch])).to(device)
        p = model.score_windows(windows).float().cpu().numpy()
        return [PredictionResult(w, float(v)) for w, v in zip(batch, p)]

    def get_metrics_namespace(self) -> str:
        return "reelbeam.bassl_crn"
