"""CLIP image and text features for frame scoring (the CLIP-It reference's ViT-B/32, through
`transformers`' CLIPModel). Spec: reference/cmd_clipit.md B.2.

- `load_clip`: a Hugging Face id (default `openai/clip-vit-base-patch32`, the reference's
  ViT-B/32 weights), a local folder written by `save_pretrained`, or any fsspec URL of such a
  folder (copied once to a local cache, then loaded from there). Nothing is downloaded when the
  Hugging Face hub is offline (`HF_HUB_OFFLINE=1`, or `local_files_only=True`): an id must then be
  in the local Hugging Face cache, and a missing one is one `CheckpointError` line.
- `locate_clip`: where a source's config.json and weights file are, without reading them: a path or
  URL that does not exist, a folder without weights and an id that is not in the Hugging Face cache
  are three different one-line errors (`clip_problem` gives the line, `clip_available` a bool).
- Preprocessing, equal to the reference's (OpenAI CLIP's `Resize(224, BICUBIC)`, `CenterCrop(224)`,
  `ToTensor`, `Normalize(CLIP mean, std)` on a PIL image), split in two so the decode pass can
  shrink each sampled frame at once and no full-resolution frame leaves it:
  `resize_for_clip` (uint8 RGB -> uint8, short side 224, PIL's bicubic: the reference's own
  resampler) and `clip_pixels` (uint8 -> float32 [3, 224, 224]: centre crop, /255, mean/std).
- `CLIPImageHandler`: RunInference over resized frames of any videos -> raw 512-d image features
  (the projection output, not L2-normalised: `normalised` is False; normalise where a scorer
  needs it). bf16 autocast on GPU by default, fp32 on CPU.
- `encode_texts`: raw 512-d text features of some sentences; computed once per query.
- `cosine_scores`: the `clip` scorer, cosine similarity of frame and text features.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence

import numpy as np
import torch
from apache_beam.ml.inference.base import ModelHandler, PredictionResult
from PIL import Image

from reelbeam.models.checkpoints import WEIGHTS_HELP, CheckpointError
from reelbeam.models.clip_files import (  # noqa: F401 - where a model is: also imported from here
    _EXPECTED,
    DEFAULT_CLIP_MODEL,
    WEIGHT_FILES,
    ClipFiles,
    clip_available,
    clip_problem,
    locate_clip,
)
from reelbeam.models.device import resolve_device

CLIP_SIZE = 224
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CONTEXT_LENGTH = 77  # tokens, start and end included; the reference refuses longer sentences
PRECISIONS = ("fp32", "bf16")

_MEAN = np.asarray(CLIP_MEAN, dtype=np.float32)[:, None, None]
_STD = np.asarray(CLIP_STD, dtype=np.float32)[:, None, None]

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------------
# Preprocessing


def clip_resize_size(height: int, width: int, size: int = CLIP_SIZE) -> tuple[int, int]:
    """(height, width) after torchvision's `Resize(size)`: the short side becomes `size`, the long
    side int(size * long / short) (truncated)."""
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = size, int(size * long / short)
    return (new_long, new_short) if width <= height else (new_short, new_long)


def resize_for_clip(image: np.ndarray | Image.Image, size: int = CLIP_SIZE) -> np.ndarray:
    """RGB uint8 [H, W, 3] (or a PIL image) -> uint8 [h, w, 3] with min(h, w) = `size`: PIL's
    bicubic resampling (antialiased, what torchvision's Resize does to a PIL image), so the result
    is the reference's to the bit. An image already at that size is returned unchanged."""
    img = (
        image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, dtype=np.uint8), "RGB")
    )
    if img.mode != "RGB":
        img = img.convert("RGB")
    h, w = clip_resize_size(img.height, img.width, size)
    if (h, w) != (img.height, img.width):
        img = img.resize((w, h), Image.BICUBIC)
    return np.asarray(img)


def clip_pixels(resized: np.ndarray, size: int = CLIP_SIZE) -> np.ndarray:
    """A `resize_for_clip` output [h, w, 3] uint8 -> the model input float32 [3, size, size]:
    torchvision's CenterCrop (offsets int(round((h - size) / 2)), Python's round), then
    x / 255, then (x - mean) / std per channel, all in float32 as ToTensor and Normalize do."""
    h, w = resized.shape[:2]
    if min(h, w) < size:
        raise ValueError(
            f"clip_pixels needs a frame resized by resize_for_clip (short side {size}), got {h}x{w}"
        )
    top, left = round((h - size) / 2.0), round((w - size) / 2.0)  # ints, halves to even
    crop = np.ascontiguousarray(resized[top : top + size, left : left + size].transpose(2, 0, 1))
    x = crop.astype(np.float32) / np.float32(255)
    return (x - _MEAN) / _STD


def preprocess(image: np.ndarray | Image.Image, size: int = CLIP_SIZE) -> np.ndarray:
    """RGB uint8 [H, W, 3] -> float32 [3, 224, 224]: `clip_pixels(resize_for_clip(image))`."""
    return clip_pixels(resize_for_clip(image, size), size)


# ------------------------------------------------------------------------------------------------
# Loading


@dataclasses.dataclass(frozen=True)
class LoadedCLIP:
    """model: a transformers CLIPModel in eval mode (float32); tokenizer: its tokenizer;
    source: what was asked for; local: the folder or Hugging Face id actually loaded."""

    model: torch.nn.Module
    tokenizer: object
    source: str
    local: str

    @property
    def embed_dim(self) -> int:
        return int(self.model.config.projection_dim)


def default_cache_dir() -> str:
    return os.path.join(tempfile.gettempdir(), "reelbeam-models")


def resolve_clip_source(source: str, cache_dir: str | None = None) -> str:
    """A local folder or Hugging Face id for `from_pretrained`: a local path (or file:// URL) as
    is; any other fsspec URL (gs://, s3://, memory://, ...) copied once into
    `cache_dir/<hash of the URL and its files' sizes and versions>` (atomically, so concurrent
    workers do not clash; a changed remote file gives a new copy);
    anything else is taken as a Hugging Face id."""
    if "://" not in source:
        return source
    import fsspec

    fs, root = fsspec.core.url_to_fs(source)
    if "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)):
        return root
    try:
        listing = fs.find(root, detail=True)
    except FileNotFoundError:
        listing = {}
    files = {p: _version(info) for p, info in listing.items() if info.get("type", "file") == "file"}
    if not files:
        raise CheckpointError(f"CLIP model folder {source} does not exist or is empty; {WEIGHTS_HELP}")
    root = root.rstrip("/")
    key = hashlib.sha256(repr((source, sorted(files.items()))).encode()).hexdigest()[:20]
    cache_dir = cache_dir or default_cache_dir()
    target = os.path.join(cache_dir, key)
    if os.path.isdir(target):
        return target
    os.makedirs(cache_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{key}-", dir=cache_dir)
    try:
        for path in files:
            rel = os.path.relpath(path, root) if path != root else os.path.basename(path)
            local = os.path.join(tmp, rel)
            os.makedirs(os.path.dirname(local), exist_ok=True)
            fs.get_file(path, local)
        os.rename(tmp, target)
    except OSError:
        if not os.path.isdir(target):  # not a lost race with another process: a real failure
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _version(info: dict) -> tuple:
    """What identifies a remote file's content without reading it, where the filesystem says."""
    tag = next(
        (
            info[k]
            for k in ("etag", "ETag", "md5Hash", "crc32c", "mtime", "LastModified", "updated")
            if k in info
        ),
        None,
    )
    return info.get("size"), str(tag)


def load_clip(
    source: str = DEFAULT_CLIP_MODEL,
    device: str = "cpu",
    cache_dir: str | None = None,
    local_files_only: bool | None = None,
) -> LoadedCLIP:
    """CLIPModel (float32, eval mode, on `device`) and its tokenizer from `source` (see
    `resolve_clip_source`). local_files_only=None follows HF_HUB_OFFLINE.

    Raises CheckpointError, one line, when the model cannot be found or read.
    """
    from transformers import AutoTokenizer, CLIPModel

    local = resolve_clip_source(source, cache_dir)
    kwargs = {} if local_files_only is None else {"local_files_only": local_files_only}
    try:
        model = CLIPModel.from_pretrained(local, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(local, **kwargs)
    except (OSError, ValueError) as e:
        detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        where = (
            "a local folder"
            if os.path.isdir(local)
            else "not a local folder and not a Hugging Face id available here"
        )
        raise CheckpointError(
            f"cannot load CLIP model {source!r} ({where}): {detail}. Give a folder written by "
            "CLIPModel.save_pretrained (with its tokenizer), an fsspec URL of one, or a Hugging Face id "
            f"in the local cache; {WEIGHTS_HELP}"
        ) from None
    return LoadedCLIP(model.float().eval().to(device), tokenizer, source, local)


# ------------------------------------------------------------------------------------------------
# Features


@torch.inference_mode()
def image_features(model: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """CLIPModel, pixels [B, 3, 224, 224] -> raw image features [B, projection_dim] (the
    projection of the pooled class token: OpenAI CLIP's `encode_image`; not normalised)."""
    pooled = model.vision_model(pixel_values=pixels).pooler_output
    return model.visual_projection(pooled)


@torch.inference_mode()
def encode_texts(
    model: torch.nn.Module, tokenizer, texts: Sequence[str], truncate: bool = False
) -> np.ndarray:
    """Sentences -> raw text features float32 [n, projection_dim] (OpenAI CLIP's `encode_text`:
    the projected end-of-text token; not normalised).

    Like the reference (`clip.tokenize`), a sentence longer than 77 tokens is an error, naming it;
    truncate=True cuts it to 77 tokens instead.
    """
    texts = list(texts)
    if not texts:
        return np.zeros((0, int(model.config.projection_dim)), np.float32)
    if not truncate:
        for t in texts:
            n = len(tokenizer(t)["input_ids"])
            if n > CONTEXT_LENGTH:
                raise ValueError(f"sentence too long for CLIP ({n} tokens > {CONTEXT_LENGTH}): {t[:80]!r}")
    batch = tokenizer(texts, padding=True, truncation=True, max_length=CONTEXT_LENGTH, return_tensors="pt")
    device = next(model.parameters()).device
    out = model.text_model(
        input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)
    )
    return model.text_projection(out.pooler_output).float().cpu().numpy()


def cosine_scores(frame_features: np.ndarray, text_features: np.ndarray) -> np.ndarray:
    """The `clip` scorer: cosine similarity of each frame [N, D] with a text [D] -> [N] (or with
    texts [Q, D] -> [Q, N]), in [-1, 1]; float32."""
    f = np.asarray(frame_features, np.float32)
    t = np.asarray(text_features, np.float32)
    f = f / np.linalg.norm(f, axis=-1, keepdims=True)
    tn = t / np.linalg.norm(t, axis=-1, keepdims=True)
    return tn @ f.T


# ------------------------------------------------------------------------------------------------
# RunInference


class CLIPImageHandler(ModelHandler[np.ndarray, PredictionResult, torch.nn.Module]):
    """RunInference: one sampled frame, RGB uint8 [h, w, 3] as `resize_for_clip` returns it (any
    other size is resized here first) -> its raw image feature float32 [projection_dim] (512 for
    ViT-B/32), not L2-normalised (`normalised` is False).

    Batches stack frames of any videos (up to `max_batch_size`; wrap in KeyedModelHandler to carry
    (video_id, frame_idx)). precision: 'bf16' (autocast; the default on GPU, where the reference
    runs fp16) or 'fp32' (the default on CPU: the reference's CPU arithmetic); None or 'auto': the
    default of the device it loads on (`reelbeam.models.device.resolve_precision`).
    """

    normalised = False

    def __init__(
        self,
        model: str = DEFAULT_CLIP_MODEL,
        device: str = "auto",
        precision: str | None = None,
        max_batch_size: int = 64,
        model_copies: int | None = None,
        cache_dir: str | None = None,
    ) -> None:
        if precision not in (None, "auto", *PRECISIONS):
            raise ValueError(f"CLIP precision must be one of {PRECISIONS}, got {precision!r}")
        super().__init__(min_batch_size=1, max_batch_size=max_batch_size, model_copies=model_copies)
        self._source = model
        self._device = device
        self._precision = precision
        self._resolved_precision: str | None = None
        self._cache_dir = cache_dir

    @property
    def device(self) -> str:
        """Where the model runs: 'auto' resolved where the handler runs (a worker), not at launch."""
        return resolve_device(self._device)

    @property
    def precision(self) -> str:
        from reelbeam.models.device import resolve_precision

        if self._resolved_precision is None:
            self._resolved_precision = resolve_precision(self._precision, self.device, "CLIP")
        return self._resolved_precision

    def load_model(self) -> torch.nn.Module:
        return load_clip(self._source, self.device, cache_dir=self._cache_dir).model

    def run_inference(self, batch: Sequence[np.ndarray], model: torch.nn.Module, inference_args=None):
        precision = self.precision
        x = torch.from_numpy(np.stack([clip_pixels(_ensure_resized(f)) for f in batch]))
        device = next(model.parameters()).device
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            feats = image_features(model, x.to(device)).float().cpu().numpy()
        return [PredictionResult(f, v) for f, v in zip(batch, feats)]

    def get_num_bytes(self, batch: Sequence[np.ndarray]) -> int:
        return sum(np.asarray(f).nbytes for f in batch)

    def get_metrics_namespace(self) -> str:
        return "reelbeam.clip_image"


def _ensure_resized(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame)
    return frame if min(frame.shape[:2]) == CLIP_SIZE else resize_for_clip(frame)
