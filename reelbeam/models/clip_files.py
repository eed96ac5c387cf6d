"""Where a CLIP model's files are, found without network access and without torch (so that a run
is validated quickly): `locate_clip`, `clip_problem`, `clip_available`. `reelbeam.models.clip`
loads the model from what this finds."""

from __future__ import annotations

import dataclasses
import os

from reelbeam.models.checkpoints import CheckpointError

DEFAULT_CLIP_MODEL = "openai/clip-vit-base-patch32"
# What `from_pretrained` loads a CLIPModel from, in the order it prefers them (sharded checkpoints
# by their index file).
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json")
_EXPECTED = "expected config.json + model.safetensors/pytorch_model.bin"


@dataclasses.dataclass(frozen=True)
class ClipFiles:
    """Where a CLIP source's files are: `config` and `weights` are local paths, or URLs of the
    source's filesystem; `weights` is the first of `WEIGHT_FILES` present. `cached`: found in the
    local Hugging Face cache (an id), not at a path."""

    source: str
    config: str
    weights: str
    cached: bool = False


def _pick(source: str, names, join, cached: bool = False) -> ClipFiles:
    names = set(names)
    weights = next((n for n in WEIGHT_FILES if n in names), None)
    if "config.json" not in names or weights is None:
        where = " in the local Hugging Face cache" if cached else ""
        raise CheckpointError(f"{source!r} has no CLIP weights{where} ({_EXPECTED})")
    return ClipFiles(source, join("config.json"), join(weights), cached)


def _locate_url(source: str) -> ClipFiles:
    import fsspec

    fs, root = fsspec.core.url_to_fs(source)
    root = root.rstrip("/") or root
    try:
        if not fs.exists(root):
            raise CheckpointError(f"{source!r} does not exist")
        if fs.isfile(root):
            raise CheckpointError(f"{source!r} is a file; give the folder that holds it ({_EXPECTED})")
        names = [p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(root, detail=False)]
    except CheckpointError:
        raise
    except (OSError, ValueError) as e:  # no credentials, no permission, a malformed bucket name
        raise CheckpointError(f"{source!r} cannot be read ({type(e).__name__}: {e})") from None
    base = source.rstrip("/")
    return _pick(source, names, lambda name: f"{base}/{name}")


def _locate_cached(source: str) -> ClipFiles:
    from huggingface_hub import try_to_load_from_cache

    found = {}
    for name in ("config.json", *WEIGHT_FILES):
        path = try_to_load_from_cache(source, name)
        if isinstance(path, str):
            found[name] = path
    if not found:
        raise CheckpointError(
            f"{source!r} is not in the local Hugging Face cache (reelbeam downloads nothing) and is no local folder"
        )
    return _pick(source, found, found.__getitem__, cached=True)


def locate_clip(source: str) -> ClipFiles:
    """Where `source`'s config.json and weights file are, reading neither and using no network:

    - an fsspec URL (`gs://`, `s3://`, `file://`, ...): the folder it names;
    - a local folder: itself;
    - anything else that is a valid Hugging Face id (`org/name`): the local Hugging Face cache.

    Raises CheckpointError, one line starting with `repr(source)`, saying which case failed: a path
    or URL that "does not exist" (a value that cannot be a Hugging Face id is a path), a folder that
    "has no CLIP weights", an id that "is not in the local Hugging Face cache", or a URL that
    "cannot be read" (credentials, permissions)."""
    if "://" in source:
        return _locate_url(source)
    if os.path.isdir(source):
        return _pick(source, os.listdir(source), lambda name: os.path.join(source, name))
    if os.path.exists(source):
        raise CheckpointError(f"{source!r} is a file; give the folder that holds it ({_EXPECTED})")
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(source)
    except ValueError:  # absolute, ./relative, a/b/c, ~: a path, not an id
        raise CheckpointError(f"{source!r} does not exist") from None
    return _locate_cached(source)


def clip_problem(source: str = DEFAULT_CLIP_MODEL) -> str | None:
    """Why `load_clip(source)` would not find a model without network access (`locate_clip`'s
    one line), or None when it would. It reads no weights: for deciding, before a pipeline starts,
    whether a CLIP stage can run."""
    try:
        locate_clip(source)
    except CheckpointError as e:
        return str(e)
    return None


def clip_available(source: str = DEFAULT_CLIP_MODEL, cache_dir: str | None = None) -> bool:
    """Whether `load_clip(source)` would find a model without any network access (`clip_problem`)."""
    return clip_problem(source) is None
