"""Train / validation split by video, never by shot or frame: neighbouring shots of one video look
alike, so a split by shot would score a model on near copies of its training windows.

- A split file (`--split FILE`): JSON `{"train": [names], "val": [names]}`; MovieNet's
  `meta/split318.json` (`train`, `val`, `test`) and PGL-SUM / ModelScope split files (a list of
  `{"train_keys": [...], "test_keys": [...]}`, `--split-index` picks one) are read as they are.
  `--val-key` chooses the validation list (default `val`; `test` for MovieNet's test movies).
- Otherwise a seeded fraction (`--val-fraction`, default 0.2): the video names sorted, permuted by
  numpy's `default_rng(seed)`, the first round(fraction x n) (at least 1) for validation.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

from reelbeam.train import TrainError


def read_split(path: str, val_key: str = "val", index: int = 0) -> tuple[list[str], list[str]]:
    """(train names, validation names) from a split file (module doc)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise TrainError(f"{path}: not a readable JSON split file ({e})") from None
    if isinstance(data, list):  # PGL-SUM / ModelScope: [{"train_keys": [...], "test_keys": [...]}, ...]
        if not 0 <= index < len(data):
            raise TrainError(f"{path}: has {len(data)} splits, --split-index {index} is not one of them")
        data = {"train": data[index].get("train_keys"), val_key: data[index].get("test_keys")}
    if not isinstance(data, dict) or not isinstance(data.get("train"), list) or not isinstance(data.get(val_key), list):
        raise TrainError(f"{path}: expected lists under 'train' and {val_key!r}, got keys {sorted(data) if isinstance(data, dict) else type(data).__name__}")
    return [str(x) for x in data["train"]], [str(x) for x in data[val_key]]


def split_videos(names: Sequence[str], split_file: str | None = None, val_fraction: float = 0.2, seed: int = 0,
                 val_key: str = "val", split_index: int = 0) -> tuple[list[str], list[str]]:
    """(train, validation) subsets of `names`, disjoint, each non-empty (module doc)."""
    names = sorted(set(names))
    if split_file:
        train, val = read_split(split_file, val_key, split_index)
        both = sorted(set(train) & set(val))
        if both:
            raise TrainError(f"{split_file}: video {both[0]!r} is in both 'train' and {val_key!r}")
        have = set(names)
        train, val = [n for n in train if n in have], [n for n in val if n in have]
    else:
        if len(names) < 2:
            raise TrainError(f"a train/validation split by video needs at least 2 labelled videos, got {len(names)}")
        if not 0 < val_fraction < 1:
            raise TrainError(f"--val-fraction must be between 0 and 1, got {val_fraction}")
        perm = np.random.default_rng(seed).permutation(len(names))
        k = min(max(1, round(val_fraction * len(names))), len(names) - 1)
        val, train = sorted(names[i] for i in perm[:k]), sorted(names[i] for i in perm[k:])
    if not train or not val:
        raise TrainError(f"the split leaves {len(train)} training and {len(val)} validation videos among the labelled ones; "
                         "both need at least one")
    return train, val
