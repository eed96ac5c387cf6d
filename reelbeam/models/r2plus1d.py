"""CMD video embedding: R(2+1)D-26 clip features, clip sampling, preprocessing and loading of
ModelScope's `damo/cv_r2p1d_video_embedding` checkpoint. Spec: reference/cmd_clipit.md part A and
reference/NOTES.md (CMD).

- `R2Plus1D26`: Hara's `ResNet2p1d(Bottleneck, [2, 2, 2, 2])` without fc (ModelScope's
  `resnet26_2p1d(num_classes=None, last_pool=True)`), [B, 3, 16, 112, 112] -> [B, 2048]
  (post-ReLU, global-average-pooled, so every value is >= 0). Module names follow the published
  `pytorch_model.pt` (a flat state_dict: `conv1_s.weight`, `layer1.0.conv2_t.weight`, ...).
- `video_clip_indices`: the reference's 10 clips of 16 frames at stride 4 spread over a video;
  `shot_clip_indices`: clips inside one shot (the `shot` granularity, not in the reference).
- `resize_clip_frame` + `clip_tensor`: the reference's preprocessing split in two, so frames can
  be made small right after decoding and normalised later (e.g. next to the model).
- `video_embedding`: the plain mean of a video's clip features (not normalised).
- `load_r2plus1d` / `checkpoint_problems`: strict loading with weights_only=True from a local path
  or fsspec URL, and a key/shape check that reads only the checkpoint's metadata.
- `CMDEmbeddingHandler`: Beam ModelHandler, preprocessed clips -> 2048-d features.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from apache_beam.ml.inference.base import ModelHandler, PredictionResult
from torch import nn

from reelbeam.models.checkpoints import CheckpointError, key_problems, load_state_dict, tensor_shapes

LOG = logging.getLogger(__name__)

FEATURE_DIM = 2048
CLIP_FRAMES = 16  # cfg.DATA.video_frames
CLIP_STRIDE = 4  # cfg.DATA.video_stride
NUM_CLIPS = 10  # cfg.DATA.multi_crop
SCALE_SIZE = 128  # short side after resizing
CROP_SIZE = 112
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PRECISIONS = ("fp32", "bf16")


def clip_span(frames: int = CLIP_FRAMES, stride: int = CLIP_STRIDE) -> int:
    """Source frames one clip covers: (16 - 1) * 4 + 1 = 61."""
    return (frames - 1) * stride + 1


# ------------------------------------------------------------------------------------------------
# The network


def _mid_planes(in_planes: int, out_planes: int, kt: int, k: int) -> int:
    """Width between the spatial and the temporal half of a factorised kt x k x k conv: the
    parameter count of the full 3D conv (Tran et al. 2018's rule, as Hara's code computes it)."""
    return (in_planes * out_planes * kt * k * k) // (in_planes * k * k + out_planes * kt)


def _conv(cin: int, cout: int, kernel, stride=1, padding=0) -> nn.Conv3d:
    return nn.Conv3d(cin, cout, kernel_size=kernel, stride=stride, padding=padding, bias=False)


class _Bottleneck(nn.Module):
    """1x1x1 -> (1x3x3 spatial, 3x1x1 temporal) -> 1x1x1 (x4), residual. The stride s applies to
    H and W in `conv2_s` and to T in `conv2_t`; the downsample is a 1x1x1 conv strided on all
    three dims, then BN."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        mid = _mid_planes(planes, planes, 3, 3)  # floor(2.25 * planes)
        out = planes * self.expansion
        self.conv1 = _conv(in_planes, planes, 1)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2_s = _conv(planes, mid, (1, 3, 3), (1, stride, stride), (0, 1, 1))
        self.bn2_s = nn.BatchNorm3d(mid)
        self.conv2_t = _conv(mid, planes, (3, 1, 1), (stride, 1, 1), (1, 0, 0))
        self.bn2_t = nn.BatchNorm3d(planes)
        self.conv3 = _conv(planes, out, 1)
        self.bn3 = nn.BatchNorm3d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_planes != out:
            self.downsample = nn.Sequential(_conv(in_planes, out, 1, stride), nn.BatchNorm3d(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2_s(self.conv2_s(y)))
        y = self.relu(self.bn2_t(self.conv2_t(y)))
        y = self.bn3(self.conv3(y))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(y + identity)


class R2Plus1D26(nn.Module):
    """R(2+1)D-26 feature extractor: clips [B, 3, T, H, W] (normalised RGB; the reference uses
    T=16, H=W=112) -> [B, 2048].

    Shapes for 16x112x112: stem 64x16x56x56, maxpool 64x16x28x28, layer1 256x16x28x28,
    layer2 512x8x14x14, layer3 1024x4x7x7, layer4 2048x2x4x4, global average pool 2048.
    """

    def __init__(self) -> None:
        super().__init__()
        stem_mid = _mid_planes(3, 64, 3, 7)  # 83
        self.conv1_s = _conv(3, stem_mid, (1, 7, 7), (1, 2, 2), (0, 3, 3))
        self.bn1_s = nn.BatchNorm3d(stem_mid)
        self.conv1_t = _conv(stem_mid, 64, (3, 1, 1), 1, (1, 0, 0))
        self.bn1_t = nn.BatchNorm3d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
        in_planes = 64
        for i, (planes, stride) in enumerate(((64, 1), (128, 2), (256, 2), (512, 2)), start=1):
            blocks = [_Bottleneck(in_planes, planes, stride), _Bottleneck(planes * 4, planes)]
            setattr(self, f"layer{i}", nn.Sequential(*blocks))
            in_planes = planes * 4
        self.avgpool = nn.AdaptiveAvgPool3d(1)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1_s(self.conv1_s(clips)))
        x = self.maxpool(self.relu(self.bn1_t(self.conv1_t(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def embed(self, clips: np.ndarray, bf16: bool = False, channels_last: bool = False) -> np.ndarray:
        """Clips float32 [B, 3, T, H, W] (numpy) -> features float32 [B, 2048] (numpy), on the
        model's device, optionally under bf16 autocast and with channels_last_3d input. Numpy in
        and out so that it also works through Beam's cross-process model proxy (`model_copies`)."""
        device = self.conv1_s.weight.device
        x = torch.from_numpy(np.ascontiguousarray(clips, dtype=np.float32)).to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            return self(x).float().cpu().numpy()

    @torch.no_grad()
    def fuse(self) -> R2Plus1D26:
        """Fold every BatchNorm (eval statistics) into the conv before it, in place, for
        inference: ~10-20% faster on CPU; outputs move by float32 rounding only (~1e-7 relative).
        The state_dict no longer has the published layout afterwards."""
        pairs = [(self, "conv1_s", "bn1_s"), (self, "conv1_t", "bn1_t")]
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            for block in layer:
                pairs += [(block, c, f"bn{c[4:]}") for c in ("conv1", "conv2_s", "conv2_t", "conv3")]
                if block.downsample is not None:
                    pairs.append((block.downsample, "0", "1"))
        for owner, conv_name, bn_name in pairs:
            conv, bn = getattr(owner, conv_name), getattr(owner, bn_name)
            if isinstance(bn, nn.Identity):
                continue
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            conv.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1, 1))
            conv.bias = nn.Parameter(bn.bias - bn.running_mean * scale, requires_grad=False)
            setattr(owner, bn_name, nn.Identity())
        return self


def expected_shapes() -> dict[str, tuple[int, ...]]:
    """The published checkpoint's keys and shapes (from a model on the meta device: no memory)."""
    with torch.device("meta"):
        model = R2Plus1D26()
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def checkpoint_problems(shapes: Mapping[str, Sequence[int]]) -> str | None:
    """What keeps a state_dict (key -> shape) from loading strictly into R2Plus1D26, in one line
    (`checkpoints.key_problems`, plus a hint for a fine-tuned classifier); None when it would load."""
    problems = key_problems({k: tuple(v) for k, v in shapes.items()}, expected_shapes())
    if problems and any(k.startswith("fc.") for k in shapes):
        problems += "; it has a classifier (fc.*): a fine-tuned action model, not the embedding checkpoint"
    return problems


def _error(path: str, problems: str) -> CheckpointError:
    return CheckpointError(
        f"{path} is not ModelScope's R(2+1)D-26 video-embedding checkpoint "
        f"(damo/cv_r2p1d_video_embedding pytorch_model.pt): {problems}"
    )


def check_checkpoint(path: str, shapes: Mapping[str, Sequence[int]] | None = None) -> None:
    """Raise CheckpointError unless `path` holds the published layout. Reads only the file's
    metadata (a few kB, also through fsspec; `shapes`: its `tensor_shapes` when already read), so it
    suits configuration time on a launcher."""
    problems = checkpoint_problems(tensor_shapes(path) if shapes is None else shapes)
    if problems:
        raise _error(path, problems)


def load_r2plus1d(path: str, device: str = "cpu", fuse: bool = False) -> R2Plus1D26:
    """The published `pytorch_model.pt` (a flat state_dict), strict, weights_only=True, from a
    local path or fsspec URL; in eval mode on `device`, BatchNorm folded into the convs when
    `fuse`. Raises CheckpointError in one line naming the file and the missing / unexpected keys
    or wrong shapes."""
    state = load_state_dict(path)
    problems = checkpoint_problems({k: v.shape for k, v in state.items()})
    if problems:
        raise _error(path, problems)
    model = R2Plus1D26()
    model.load_state_dict(state, strict=True)
    model = model.eval().requires_grad_(False)
    return (model.fuse() if fuse else model).to(device)


def save_modelscope_layout(model: R2Plus1D26, path: str) -> None:
    """Write `model` as ModelScope's flat `pytorch_model.pt` (used by tests and benches)."""
    torch.save(model.state_dict(), path)


# ------------------------------------------------------------------------------------------------
# Clip sampling (frame indices are 0-based, in presentation order, as in the `frames` table)


def video_clip_indices(
    num_frames: int, clips: int = NUM_CLIPS, frames: int = CLIP_FRAMES, stride: int = CLIP_STRIDE
) -> np.ndarray:
    """The reference's clips for a video of `num_frames` frames: int64 [clips, frames].

    Clip starts are the midpoints of `clips` equal bins of [0, N - span] (span = 61 source
    frames), truncated to int; frames are start + 0, 4, ..., 60. A video of `span` frames or fewer
    gets all clips at start 0, and so does one of span + 1 (the midpoints are all < 1), so
    videos of 62 frames or fewer have `clips` identical clips. Indices past the end are replaced by
    frame 0 (the reference pads with the first frame, not the last).
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    span = clip_span(frames, stride)
    if num_frames <= span:
        starts = np.zeros(clips, dtype=np.int64)
    else:
        edges = np.linspace(0, num_frames - span, clips + 1)
        starts = ((edges[1:] + edges[:-1]) / 2.0).astype(np.int64)
    idx = starts[:, None] + np.arange(0, span, stride, dtype=np.int64)[None, :]
    idx[idx >= num_frames] = 0
    return idx


def shot_clip_indices(
    start: int,
    end: int,
    max_clips: int = NUM_CLIPS,
    frames: int = CLIP_FRAMES,
    stride: int = CLIP_STRIDE,
) -> np.ndarray:
    """Clips inside the shot [start, end] (inclusive frame indices): int64 [k, frames], every
    index within the shot. The `shot` granularity's rule (the reference embeds whole videos only):

    - L = end - start + 1 >= span (61 frames): k = min(max_clips, L // span) clips at the
      reference's stride 4, one centred in each of k equal bins of the shot (clip j starts at
      start + ((2j + 1) * L - k * span) // (2k)). Bins are at least a span long, so the clips
      never overlap: a 61-121-frame shot (2-5 s) gets one clip centred in it, each further 61
      frames one more, up to `max_clips` (10, what the reference spends on a whole video), so the
      cost per shot is bounded and a long shot is still covered evenly. (The reference's rule,
      midpoints of bins of the start positions, would overlap the clips of a shot with L // span
      clips.)
    - frames <= L < span: one clip, centred, at the largest whole stride that fits,
      (L - 1) // (frames - 1), i.e. 1-3. The 16 frames stay evenly spaced (the temporal
      convolutions see steady motion, only slower than at stride 4) and cover as much of the
      shot as they can; padding with frame 0 as the reference does for short videos would put
      a jump back to the start into the clip, and reaching past the shot would mix in the
      neighbouring shots' content, which is what shot search must not see.
    - L < frames: one clip of all L frames, each held for frames / L steps
      (start + (j * L) // frames): a slowed-down copy of the shot, no jumps; a 1-frame shot is a
      still clip.
    """
    if end < start or start < 0:
        raise ValueError(f"a shot needs 0 <= start <= end, got [{start}, {end}]")
    if max_clips < 1:
        raise ValueError(f"max_clips must be >= 1, got {max_clips}")
    length = end - start + 1
    span = clip_span(frames, stride)
    steps = np.arange(frames, dtype=np.int64)
    if length >= span:
        k = min(max_clips, length // span)
        starts = start + ((2 * np.arange(k, dtype=np.int64) + 1) * length - k * span) // (2 * k)
        return starts[:, None] + steps[None, :] * stride
    if length >= frames:
        s = (length - 1) // (frames - 1)
        first = start + (length - ((frames - 1) * s + 1)) // 2
        return (first + steps * s)[None, :]
    return (start + (steps * length) // frames)[None, :]


# ------------------------------------------------------------------------------------------------
# Preprocessing: resize right after decoding, the rest next to the model


def resized_size(width: int, height: int, size: int = SCALE_SIZE) -> tuple[int, int]:
    """(width, height) after scaling the short side to `size`, aspect kept, rounded as the
    reference does (Python's round of the float product)."""
    scale = size / min(width, height)
    return round(width * scale), round(height * scale)


def resize_clip_frame(rgb: np.ndarray, size: int = SCALE_SIZE) -> np.ndarray:
    """RGB uint8 [H, W, 3] -> uint8 [h, w, 3] with min(h, w) = 128: PIL bilinear (antialiased when
    shrinking), exactly the reference's `VRescale` on the same pixels."""
    from PIL import Image

    h, w = rgb.shape[:2]
    out = resized_size(w, h, size)
    if out == (w, h):
        return rgb
    return np.asarray(Image.fromarray(rgb).resize(out, Image.BILINEAR))


def _normalised_levels() -> np.ndarray:
    """float32 [3, 256]: ((v / 255) - mean[c]) / std[c] for every uint8 value v and channel c,
    with the float32 operations the reference applies to each pixel."""
    levels = np.arange(256, dtype=np.float32)[None, :] / np.float32(255)
    mean = np.asarray(IMAGENET_MEAN, np.float32)[:, None]
    std = np.asarray(IMAGENET_STD, np.float32)[:, None]
    return (levels - mean) / std


_LEVELS = _normalised_levels()


def clip_tensor(frames: np.ndarray, crop: int = CROP_SIZE) -> np.ndarray:
    """Resized frames uint8 [T, h, w, 3] (from `resize_clip_frame`) -> float32 [3, T, 112, 112]:
    centre crop (offsets floor((w - 112) / 2), floor((h - 112) / 2), as the reference), values
    / 255, minus the ImageNet mean, over the ImageNet std. The arithmetic is the reference's
    float32 ToTensor + Normalize, bit for bit, done once per uint8 level and looked up."""
    frames = np.asarray(frames)
    h, w = frames.shape[1:3]
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3:
        raise ValueError(f"expected uint8 frames [T, h, w, 3], got {frames.dtype} {frames.shape}")
    if min(h, w) < crop:
        raise ValueError(f"frames of {w}x{h} are smaller than the {crop}x{crop} crop; resize them first")
    y, x = (h - crop) // 2, (w - crop) // 2
    cropped = frames[:, y : y + crop, x : x + crop]
    return np.stack([_LEVELS[c][cropped[..., c]] for c in range(3)])


def video_embedding(clip_features: np.ndarray) -> np.ndarray:
    """A video's (or shot's) embedding: the plain mean of its clip features [K, 2048] -> [2048]
    float32. Not L2-normalised (the reference returns it as is); normalise at query time."""
    feats = np.asarray(clip_features)
    if feats.ndim != 2 or not len(feats):
        raise ValueError(f"expected clip features [K >= 1, D], got shape {feats.shape}")
    return feats.mean(axis=0, dtype=np.float64).astype(np.float32)


# ------------------------------------------------------------------------------------------------
# Beam ModelHandler


def crop_clip(frames: np.ndarray, crop: int = CROP_SIZE) -> np.ndarray:
    """Resized frames uint8 [T, h, w, 3] -> their centre crop uint8 [T, 112, 112, 3] (what
    `clip_tensor` keeps): a quarter of the bytes to carry to the model, same result."""
    h, w = frames.shape[1:3]
    y, x = (h - crop) // 2, (w - crop) // 2
    return np.ascontiguousarray(frames[:, y : y + crop, x : x + crop])


class CMDEmbeddingHandler(ModelHandler[np.ndarray, PredictionResult, R2Plus1D26]):
    """RunInference: one clip, uint8 frames [16, h, w, 3] (`resize_clip_frame`d, or already
    `crop_clip`ped) or float32 [3, 16, 112, 112] (`clip_tensor`) -> its 2048-d feature (float32
    numpy). precision 'auto' is bf16 on a GPU and fp32 on a CPU, decided where the model loads. Batches stack clips of any videos and shots; wrap it in a
    KeyedModelHandler to carry (video, clip) keys and average with `video_embedding` after.

    The model is loaded with BatchNorm folded into the convolutions. precision 'bf16' runs under
    bf16 autocast with channels_last_3d activations; on CPU both precisions run channels-last
    (oneDNN's 3D convolutions are about twice as fast so). bf16 needs a GPU or a CPU whose oneDNN
    has bf16 kernels (AVX512-BF16 / AMX): elsewhere it is emulated and much slower than fp32.
    A batch of 8 clips is 19 MB of float32 input; on GPU pass a larger `max_batch_size`.
    """

    def __init__(
        self,
        checkpoint: str,
        device: str = "auto",
        precision: str = "fp32",
        min_batch_size: int = 1,
        max_batch_size: int = 8,
        model_copies: int | None = None,
        large_model: bool = False,
    ) -> None:
        if precision not in (*PRECISIONS, "auto"):
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
        super().__init__(
            min_batch_size=min_batch_size,
            max_batch_size=max_batch_size,
            large_model=large_model,
            model_copies=model_copies,
        )
        self._checkpoint = checkpoint
        self._device = device
        self._precision = precision

    def _resolved(self) -> tuple[str, str]:
        from reelbeam.models.device import resolve_device, resolve_precision

        device = resolve_device(self._device)
        return device, resolve_precision(self._precision, device, "CMD R(2+1)D")

    def _channels_last(self, device: str, precision: str) -> bool:
        # oneDNN's 3D convolutions run ~2x faster channels-last on CPU in both precisions
        # (bench/cmd_embeddings.py); on GPU only the bf16 path uses it (tensor cores), fp32 stays as the
        # reference runs.
        return device == "cpu" or precision == "bf16"

    def load_model(self) -> R2Plus1D26:
        device, precision = self._resolved()
        model = load_r2plus1d(self._checkpoint, device, fuse=True)
        if self._channels_last(device, precision):
            model = model.to(memory_format=torch.channels_last_3d)
        return model

    def run_inference(
        self,
        batch: Sequence[np.ndarray],
        model: R2Plus1D26,
        inference_args: dict[str, Any] | None = None,
    ) -> Iterable[PredictionResult]:
        device, precision = self._resolved()
        clips = np.stack([clip_tensor(c) if np.asarray(c).dtype == np.uint8 else c for c in batch])
        feats = model.embed(clips, bf16=precision == "bf16", channels_last=self._channels_last(device, precision))
        return [PredictionResult(c, f) for c, f in zip(batch, feats)]

    def get_metrics_namespace(self) -> str:
        return "reelbeam.cmd"

    def get_num_bytes(self, batch: Sequence[np.ndarray]) -> int:
        return sum(np.asarray(c).nbytes for c in batch)
