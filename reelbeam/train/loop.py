"""What both trainers share: the progress bar, the cosine schedule, seeding, and the files of a
training folder (the best checkpoint, `metrics.json`, `last.pt` to resume from), on any fsspec path."""

from __future__ import annotations

import io
import json
import math
import os
import posixpath
import sys
import time
from typing import TextIO

import fsspec
import torch

METRICS = "metrics.json"
LAST = "last.pt"
CHECKPOINT = "pytorch_model.pt"


def cosine_factor(step: int, total: int, warmup: int = 0) -> float:
    """Lightning-bolts' `linear_warmup_decay(warmup, total, cosine=True)`, BaSSL's LambdaLR: a
    linear warmup, then 0.5 (1 + cos(pi * progress)) down to 0 at `total` (stepped per iteration)."""
    if step < warmup:
        return float(step) / float(max(1, warmup))
    progress = float(step - warmup) / float(max(1, total - warmup))
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def seed_epoch(seed: int, epoch: int) -> None:
    """Seed torch (dropout) from (seed, epoch) alone, so a resumed run draws what an uninterrupted
    one draws from that epoch on."""
    torch.manual_seed(seed * 100_003 + epoch)


def deterministic(device: str) -> None:
    """Deterministic kernels where the device has a choice (cuBLAS needs its workspace setting
    before its first call)."""
    if device.startswith("cuda"):
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.backends.cuda.matmul.allow_tf32 = False
    torch.use_deterministic_algorithms(True, warn_only=True)


def keeps_torch_flags(fn):
    """Restore torch's global determinism and TF32 flags after `fn` (a trainer sets them for its
    run; a caller's own process, a test session, keeps its settings)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
                 torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32)
        try:
            return fn(*args, **kwargs)
        finally:
            torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
            torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32 = saved[2], saved[3]

    return wrapper


class Bar:
    """One progress line per epoch: redrawn in place on a terminal (step, loss, rate), and the
    epoch's metrics appended when it ends; on a pipe or a log file, only the epoch lines."""

    def __init__(self, epochs: int, stream: TextIO | None = None, enabled: bool = True) -> None:
        self.epochs = epochs
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and getattr(self.stream, "isatty", lambda: False)()
        self._last = 0.0

    def step(self, epoch: int, done: int, total: int, loss: float) -> None:
        now = time.monotonic()
        if not self.tty or (now - self._last < 0.2 and done < total):
            return
        self._last = now
        width = 24
        fill = int(width * done / max(total, 1))
        self.stream.write(f"\repoch {epoch}/{self.epochs} [{'#' * fill}{'.' * (width - fill)}] {done}/{total} loss {loss:.4f}")
        self.stream.flush()

    def epoch(self, epoch: int, text: str) -> None:
        if not self.enabled:
            return
        self.stream.write(("\r\033[K" if self.tty else "") + f"epoch {epoch}/{self.epochs} {text}\n")
        self.stream.flush()


def join(folder: str, name: str) -> str:
    return posixpath.join(folder.rstrip("/"), name) if "://" in folder else os.path.join(folder, name)


def makedirs(folder: str) -> None:
    fs, root = fsspec.core.url_to_fs(folder)
    fs.makedirs(root, exist_ok=True)


def exists(path: str) -> bool:
    fs, p = fsspec.core.url_to_fs(path)
    return fs.exists(p)


def save_torch(obj, path: str) -> None:
    """torch.save to any fsspec path (see `write_bytes`)."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    write_bytes(buf.getvalue(), path)


def write_bytes(data: bytes, path: str) -> None:
    """Write a file whole: locally to a temporary name renamed over the final one, so a crash
    mid-write never leaves a truncated checkpoint under the final name; object stores publish an
    object only when its upload completes."""
    if "://" in path and not path.startswith("file://"):
        with fsspec.open(path, "wb") as f:
            f.write(data)
        return
    p = fsspec.core.url_to_fs(path)[1]
    tmp = p + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, p)


def load_torch(path: str):
    with fsspec.open(path, "rb") as f:
        return torch.load(io.BytesIO(f.read()), map_location="cpu", weights_only=True)


def write_json(obj, path: str) -> None:
    with fsspec.open(path, "w") as f:
        json.dump(obj, f, indent=1, default=_plain)
        f.write("\n")


def read_json(path: str):
    with fsspec.open(path, "r") as f:
        return json.load(f)


def _plain(x):
    if hasattr(x, "item"):
        return x.item()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def finite(x: float | None) -> float | None:
    """NaN (a metric without positives) as None in the JSON."""
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def check_resume_settings(before: dict, now: dict, free: tuple[str, ...], last_path: str) -> None:
    """TrainError naming the first setting (other than those in `free`) that differs between the
    run being resumed (`before`, from `last_path`) and this one."""
    from reelbeam.train import TrainError

    before = {k: v for k, v in before.items() if k not in free}
    now = {k: v for k, v in now.items() if k not in free}
    changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
    if changed:
        k = changed[0]
        raise TrainError(f"--resume: the settings differ from those of {last_path}: {k} was {before.get(k)!r}, "
                         f"now {now.get(k)!r}")
