"""ListVideos: input specs (file, folder, glob, manifest, fsspec URL) -> VideoRef per video.

An input spec is one of:
- a video file (local path or any fsspec URL: gs://, s3://, memory://, file://, http(s)://);
- a folder: every file below it, recursively, whose extension is a video extension;
- a glob (`*`, `?`, `[`): every matching file, whatever its extension;
- a manifest: `.txt`/`.lst` (one URI per line, `#` comments), `.csv` (column `uri`, else the first
  column) or `.parquet` (column `uri`); relative entries resolve against the manifest's folder.

Every listed location is put in one canonical form (`canonical_uri`) before its id is derived, so
`a.mp4`, `/abs/a.mp4` and `file:///abs/a.mp4` are one video with one id and one `videos.uri`.

Expansion happens on the workers (folders of 100k files list in parallel with the rest of the
job); `check_input_spec` runs at construction so a spec that matches nothing fails before the
pipeline starts. The listing is followed by a Reshuffle so one slow video does not pin a worker.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
import posixpath
from typing import Iterable, Iterator, Optional

import apache_beam as beam
import fsspec
import pyarrow.parquet as pq

from reelbeam.schemas.records import Failure, VideoRef

LOG = logging.getLogger(__name__)

VIDEO_EXTENSIONS = frozenset(
    ".mp4 .m4v .mov .mkv .webm .avi .mpg .mpeg .mts .m2ts .ts .wmv .flv .3gp .3g2 .ogv .mxf .vob .y4m .hevc .h264 .264 .ivf".split()
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


def make_video_id(uri: str, size_bytes: Optional[int]) -> str:
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


def expand_input_spec(spec: str) -> Iterator[tuple[str, Optional[int], Optional[str]]]:
    """Yield (uri, size_bytes, error) for every video an input spec names.

    `error` is set (and size None) for an entry that does not exist, so that a manifest naming a
    missing file yields a `failures` row rather than silently fewer videos. Every uri is in its
    canonical form (`canonical_uri`).
    """
    spec = canonical_uri(spec)
    fs, path = fsspec.core.url_to_fs(spec)
    if any(c in spec for c in _GLOB_CHARS):
        for p in sorted(fs.glob(path)):
            if fs.isfile(p):
                yield canonical_uri(_join_protocol(fs, spec, p)), fs.size(p), None
        return
    if fs.isdir(path):
        for p in sorted(fs.find(path)):
            if _ext(p) in VIDEO_EXTENSIONS:
                yield canonical_uri(_join_protocol(fs, spec, p)), fs.size(p), None
        return
    if _ext(spec) in MANIFEST_EXTENSIONS and fs.isfile(path):
        for entry in map(canonical_uri, _read_manifest(spec)):
            efs, epath = fsspec.core.url_to_fs(entry)
            try:
                size = efs.size(epath)
            except (FileNotFoundError, OSError) as e:
                yield entry, None, f"{type(e).__name__}: {e}"
                continue
            yield entry, size, None
        return
    if fs.isfile(path):
        yield spec, fs.size(path), None
        return
    yield spec, None, f"no such file or folder: {spec}"


def check_input_spec(spec: str) -> None:
    """Raise ValueError, at construction time, if `spec` names nothing at all."""
    try:
        fs, path = fsspec.core.url_to_fs(spec)
    except (ValueError, ImportError) as e:
        raise ValueError(f"--input {spec!r}: cannot open this location ({e})") from e
    if any(c in spec for c in _GLOB_CHARS):
        if not fs.glob(path):
            raise ValueError(f"--input {spec!r}: the glob matches no file")
    elif not fs.exists(path):
        raise ValueError(f"--input {spec!r}: no such file or folder")


class _ExpandInputFn(beam.DoFn):
    def __init__(self) -> None:
        self._listed = beam.metrics.Metrics.counter("reelbeam", "videos_listed")

    def process(self, spec: str) -> Iterable:
        for uri, size, error in expand_input_spec(spec):
            ref = VideoRef(make_video_id(uri, size), uri, size)
            self._listed.inc()
            if error is not None:
                yield beam.pvalue.TaggedOutput(
                    "failures", Failure.of(ref, "list", "not_found", error).to_row()
                )
            else:
                yield ref


class ListVideos(beam.PTransform):
    """PBegin -> PCollection[VideoRef] (main) and dict rows (tag 'failures').

    Duplicate URIs (the same file named twice, in any spelling `canonical_uri` unifies) are
    processed once.
    """

    def __init__(self, specs: list[str]) -> None:
        super().__init__()
        # Canonical here, on the launcher: a relative path means the launcher's current folder,
        # whatever folder the workers run in.
        self._specs = [canonical_uri(s) for s in specs]

    def expand(self, pbegin):
        listed = (
            pbegin
            | "InputSpecs" >> beam.Create(self._specs)
            | "ExpandInputs" >> beam.ParDo(_ExpandInputFn()).with_outputs("failures", main="videos")
        )
        videos = (
            listed.videos
            | "KeyByVideoId" >> beam.Map(lambda r: (r.video_id, r))
            | "DropDuplicates" >> beam.CombinePerKey(lambda refs: next(iter(refs)))
            | "Values" >> beam.Values()
            | "Reshuffle" >> beam.Reshuffle()
        )
        return {"videos": videos, "failures": listed.failures}
