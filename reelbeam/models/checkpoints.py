"""Checkpoint reading from local paths or fsspec URLs, always with `weights_only=True`.

A pickle that carries code (anything beyond tensors and plain containers) is refused with a
`CheckpointError` that says so; checkpoints are never unpickled with code execution allowed.
"""

from __future__ import annotations

import io
import pickle
from typing import Any, Mapping

import fsspec
import torch


class CheckpointError(ValueError):
    """A checkpoint that cannot be read safely or does not have the expected layout."""


def read_bytes(path: str) -> bytes:
    with fsspec.open(path, "rb") as f:
        return f.read()


def load_checkpoint(path: str) -> Any:
    """torch.load(weights_only=True) of a local path or fsspec URL, onto the CPU."""
    try:
        data = read_bytes(path)
    except FileNotFoundError as e:
        raise CheckpointError(f"checkpoint not found: {path}") from e
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"refusing to load {path}: it is not a plain weights file (it would run code when "
            f"unpickled, which reelbeam never allows). Re-save it as a state_dict. Detail: {e}"
        ) from e


def load_state_dict(path: str) -> Mapping[str, torch.Tensor]:
    """A flat state_dict from `path`; unwraps a Lightning-style {'state_dict': ...} wrapper."""
    obj = load_checkpoint(path)
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} does not hold a state_dict of tensors")
    return obj


def state_dict_shapes(path: str) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the state_dict at `path` (unwrapping {'state_dict': ...} as
    `load_state_dict` does), read without the tensor data: torch.load onto the meta device reads
    only the archive's metadata (a few kB, also through fsspec), so checkpoints can be checked at
    configuration time."""
    try:
        with fsspec.open(path, "rb") as f:
            obj = torch.load(f, map_location="meta", weights_only=True)
    except FileNotFoundError as e:
        raise CheckpointError(f"checkpoint not found: {path}") from e
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"refusing to load {path}: it is not a plain weights file (it would run code when "
            f"unpickled, which reelbeam never allows). Re-save it as a state_dict. Detail: {e}"
        ) from e
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} does not hold a state_dict of tensors")
    return {k: tuple(v.shape) for k, v in obj.items()}
