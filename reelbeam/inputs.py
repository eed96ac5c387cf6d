"""What the `--input` specs name, listed on the launcher without Apache Beam.

`reelbeam run` lists its inputs before it imports Beam (about a second) so the listing's result
is the first line a run prints; the pipeline's first step (`reelbeam.transforms.listing.ListVideos`)
takes the same `Listing`. See `reelbeam.transforms.listing` for what an input spec is.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import hashlib
import io
import logging
import os
import posixpath
import re
from collections.abc import Iterator

import fsspec

LOG = logging.getLogger(__name__)

# What a folder listing takes. Animated GIF is in: a video format by design (frames with their own
# delays; datasets such as TGIF ship as .gif) that PyAV decodes with its timing, and folders that
# hold it are usually video datasets. WebP is out: nearly all .webp files are still images, and
# FFmpeg's WebP decoder (PyAV's, FFmpeg 8.1) rejects animated WebP ("Invalid data"). Files a folder
# listing skips are counted (`skipped_files`, `Listing.skipped`); a glob or a manifest
# takes any file whatever its extension.
VIDEO_EXTENSIONS = frozenset(
    {
        ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".wmv", ".flv", ".3gp", ".3g2", ".ogv", ".mxf",
        ".mpg", ".mpeg", ".vob", ".ts", ".mts", ".m2ts",
        ".y4m", ".hevc", ".h264", ".264", ".ivf",
        ".gif",
    }
)
MANIFEST_EXTENSIONS = frozenset({".txt", ".lst", ".csv", ".parquet"})
_GLOB_CHARS = frozenset("*?[")
# fsspec's names for the local file system: `file:///x` and `local:///x` are the path `/x`.
_LOCAL_PROTOCOLS = frozenset({"file", "local"})


def canonical_uri(uri: str) -> str:
    """The one spelling of a location that `video_id` and `videos.uri` are derived from.

    A local file (a relative or absolute path, `file://...`, `local://...`) becomes an absolute
    POSIX path: relative paths resolve against the current directory, and `.`, `..` and repeated
    slashes are collapsed lexically, as `os.path.abspath` does. The part after `file://` is read
    as fsspec reads it: not percent-decoded, relative when it does not start with `/`.
    Symbolic links are kept, not resolved: the path the user named is the one stored (a dataset
    of links into a content-addressed store keeps its file names), and two links to one file are
    two inputs. Any other URL (gs://, s3://, http(s)://, memory://, chained `a::b` URLs) is
    returned as given: its spelling is the remote store's business.
    """
    protocol, sep, rest = uri.partition("://")
    if not sep:
        return os.path.abspath(uri)
    if protocol.lower() in _LOCAL_PROTOCOLS:
        return os.path.abspath(rest)
    return uri


def make_video_id(uri: str, size_bytes: int | None) -> str:
    """Deterministic id: sha1 of the canonical URI (`canonical_uri`) and the size, 16 hex chars.

    The size is part of the key so that a file replaced in place gets a new id (and
    `--skip-existing` processes it again); the URI alone keys files whose size is unknown.
    """
    key = f"{canonical_uri(uri)}\x00{size_bytes if size_bytes is not None else ''}"
    return hashlib.sha1(key.encode("utf-8")).hexdigest()[:16]


def _ext(path: str) -> str:
    return posixpath.splitext(path.rstrip("/"))[1].lower()


def _has_protocol(spec: str) -> bool:
    return "://" in spec


def _join_protocol(fs: fsspec.AbstractFileSystem, spec: str, path: str) -> str:
    """Put the protocol of `spec` back on a path returned by fsspec (which strips it)."""
    return fs.unstrip_protocol(path) if _has_protocol(spec) else path


def _read_manifest(uri: str) -> list[str]:
    ext = _ext(uri)
    base = uri.rsplit("/", 1)[0] if "/" in uri else "."
    if ext == ".parquet":
        import pyarrow.parquet as pq

        with fsspec.open(uri, "rb") as f:
            table = pq.read_table(f)
        if "uri" not in table.column_names:
            raise ValueError(f"manifest {uri} has no 'uri' column (columns: {table.column_names})")
        entries = [u for u in table.column("uri").to_pylist() if u]
    else:
        with fsspec.open(uri, "rt", encoding="utf-8") as f:
            text = f.read()
        if ext == ".csv":
            rows = list(csv.reader(io.StringIO(text)))
            if not rows:
                return []
            header = [h.strip().lower() for h in rows[0]]
            col = header.index("uri") if "uri" in header else 0
            body = rows[1:] if "uri" in header else rows
            entries = [r[col].strip() for r in body if len(r) > col and r[col].strip()]
        else:
            entries = [
                line.strip()
                for line in text.splitlines()
                if line.strip() and not line.lstrip().startswith("#")
            ]
    return [e if _has_protocol(e) or e.startswith("/") else posixpath.join(base, e) for e in entries]


def _skip_key(path: str) -> str:
    """How a skipped file is counted: its extension ('.gif'), '(none)' or '(other)' for one that
    could not be a metric name."""
    ext = _ext(path)
    if not ext:
        return "(none)"
    return ext if re.fullmatch(r"\.[a-z0-9_-]{1,16}", ext) else "(other)"


def expand_input_spec(
    spec: str, skipped: collections.Counter | None = None
) -> Iterator[tuple[str, int | None, str | None]]:
    """Yield (uri, size_bytes, error) for every video an input spec names (as `list_inputs`,
    with manifest entries' sizes read here). `error` is set (and size None) for an entry that
    does not exist. Files a folder listing passes over are counted into `skipped`, when given."""
    listing = list_inputs([spec])
    if skipped is not None:
        skipped.update(listing.skipped)
    for uri, size, error in listing.entries:
        if size is None and error is None:
            size, error = entry_size(uri)
        yield uri, size, error


def entry_size(uri: str) -> tuple[int | None, str | None]:
    """(size in bytes, None) of a manifest entry, or (None, the error) where it cannot be read."""
    try:
        efs, epath = fsspec.core.url_to_fs(uri)
        return efs.size(epath), None
    except (FileNotFoundError, OSError) as e:
        return None, f"{type(e).__name__}: {e}"


def skipped_files(spec: str) -> dict[str, int]:
    """Files a folder spec passes over, by extension ({'.webp': 12, '.txt': 1}); {} for a spec
    that is not a folder (a glob or a manifest takes every file it names).

    Lists the folder (no per-file calls): for a launcher that wants the figure before or without
    the run; `list_inputs` counts the same while listing.
    """
    spec = canonical_uri(spec)
    fs, path = fsspec.core.url_to_fs(spec)
    if any(c in spec for c in _GLOB_CHARS) or not fs.isdir(path):
        return {}
    counts = collections.Counter(_skip_key(p) for p in fs.find(path) if _ext(p) not in VIDEO_EXTENSIONS)
    return dict(sorted(counts.items()))


def _describe_skipped(counts: dict[str, int]) -> str:
    total = sum(counts.values())
    parts = ", ".join(f"{n} {ext}" for ext, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    return f"{total} file{'s' if total != 1 else ''} ({parts})"


def _folder_has_video(fs: fsspec.AbstractFileSystem, path: str) -> bool:
    """Walk the folder until the first file with a video extension (a big folder is listed in
    full only when it holds none)."""
    for _root, _dirs, files in fs.walk(path):
        if any(_ext(f) in VIDEO_EXTENSIONS for f in files):
            return True
    return False


def check_input_spec(spec: str) -> None:
    """Raise ValueError, at construction time, if `spec` names nothing at all: no such location,
    a glob that matches no file, a folder with no file with a video extension (empty or not),
    or a manifest without entries."""
    try:
        fs, path = fsspec.core.url_to_fs(canonical_uri(spec))
    except (ValueError, ImportError) as e:
        raise ValueError(f"--input {spec!r}: cannot open this location ({e})") from e
    if any(c in spec for c in _GLOB_CHARS):
        if not any(info.get("type") == "file" for info in fs.glob(path, detail=True).values()):
            raise ValueError(f"--input {spec!r}: the glob matches no file")
    elif not fs.exists(path):
        raise ValueError(f"--input {spec!r}: no such file or folder")
    elif fs.isdir(path):
        if not _folder_has_video(fs, path):
            skipped = skipped_files(spec)
            if not skipped:
                raise ValueError(f"--input {spec!r}: the folder is empty")
            example = max(skipped, key=skipped.get)
            hint = f"{spec.rstrip('/')}/**/*{example if example.startswith('.') else ''}"
            raise ValueError(
                f"--input {spec!r}: the folder holds no file with a video extension; "
                f"{_describe_skipped(skipped)} passed over. To take files whatever their extension, "
                f"give a glob (--input '{hint}') or a manifest"
            )
    elif _ext(spec) in MANIFEST_EXTENSIONS and not _read_manifest(canonical_uri(spec)):
        raise ValueError(f"--input {spec!r}: the manifest names no file")


@dataclasses.dataclass
class Listing:
    """What the input specs name, listed on the launcher: (uri, size_bytes or None, error or None)
    per entry, and the files folder listings passed over (by extension). Manifest entries are not
    looked at here (a million-line manifest would take the launcher hours): their size is read
    on the workers (`size_bytes` None, `error` None)."""

    entries: list
    skipped: dict

    @property
    def count(self) -> int:
        return len(self.entries)


def _listed_files(fs, spec: str, path: str, skipped: collections.Counter):
    """(uri, size) of the files a glob or folder spec names, sizes from the listing itself."""
    if any(c in spec for c in _GLOB_CHARS):
        found = fs.glob(path, detail=True)
        for p in sorted(found):
            info = found[p]
            if info.get("type", "file") == "file":
                yield canonical_uri(_join_protocol(fs, spec, p)), info.get("size")
        return
    found = fs.find(path, detail=True)
    for p in sorted(found):
        if _ext(p) in VIDEO_EXTENSIONS:
            yield canonical_uri(_join_protocol(fs, spec, p)), found[p].get("size")
        else:
            skipped[_skip_key(p)] += 1


def list_inputs(specs: list[str]) -> Listing:
    """List every input spec on the launcher (see `Listing`); entries in spec order, each file once."""
    entries, seen = [], set()
    skipped: collections.Counter = collections.Counter()
    for spec in map(canonical_uri, specs):
        fs, path = fsspec.core.url_to_fs(spec)
        if any(c in spec for c in _GLOB_CHARS) or fs.isdir(path):
            before = sum(skipped.values())
            found = [(u, size, None) for u, size in _listed_files(fs, spec, path, skipped)]
            if sum(skipped.values()) > before:
                LOG.info("--input %s: %s without a video extension passed over", spec,
                         _describe_skipped({k: v for k, v in skipped.items()}))
        elif _ext(spec) in MANIFEST_EXTENSIONS and fs.isfile(path):
            found = [(entry, None, None) for entry in map(canonical_uri, _read_manifest(spec))]
        elif fs.isfile(path):
            found = [(spec, fs.size(path), None)]
        else:
            found = [(spec, None, f"no such file or folder: {spec}")]
        for entry in found:
            if entry[0] not in seen:
                seen.add(entry[0])
                entries.append(entry)
    return Listing(entries, dict(sorted(skipped.items())))


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover


def describe(listing: Listing) -> str:
    """The launcher's first line: 'reelbeam: 3 videos listed (1.2 GB): a.mp4, b.mp4, c.mp4'.
    Sizes are those the listing has (manifest entries' are read on the workers)."""
    n = listing.count
    sizes = [size for _, size, _ in listing.entries if size is not None]
    head = f"reelbeam: {n:,} video{'s' if n != 1 else ''} listed"
    if sizes:
        head += f" ({_size(sum(sizes))}" + (f"; {n - len(sizes):,} of unknown size" if len(sizes) < n else "") + ")"
    elif n:
        head += " (sizes read on the workers)"
    if listing.skipped:
        head += f"; {_describe_skipped(listing.skipped)} passed over (not videos by extension)"
    names = [posixpath.basename(uri.rstrip("/")) or uri for uri, _, _ in listing.entries[:3]]
    return head + (": " + ", ".join(names) + (f" and {n - 3:,} more" if n > 3 else "") if names else "")


def log_skipped(specs: list[str], listing: Listing) -> None:
    """The INFO record `list_inputs` makes of the files passed over, for a listing made before
    logging was set up (`reelbeam run` lists before it configures its log)."""
    if listing.skipped:
        LOG.info("--input %s: %s without a video extension passed over", ", ".join(specs),
                 _describe_skipped(listing.skipped))
