"""ListVideos: input specs (file, folder, glob, manifest, fsspec URL) -> VideoRef per video.

An input spec is one of:
- a video file (local path or any fsspec URL: gs://, s3://, memory://, file://, http(s)://);
- a folder: every file below it, recursively, whose extension is a video extension
  (`VIDEO_EXTENSIONS`); the files it passes over are counted, per extension;
- a glob (`*`, `?`, `[`): every matching file, whatever its extension;
- a manifest: `.txt`/`.lst` (one URI per line, `#` comments), `.csv` (column `uri`, else the first
  column) or `.parquet` (column `uri`); relative entries resolve against the manifest's folder.

Every listed location is put in one canonical form (`canonical_uri`) before its id is derived, so
`a.mp4`, `/abs/a.mp4` and `file:///abs/a.mp4` are one video with one id and one `videos.uri`.

Expansion happens on the workers (folders of 100k files list in parallel with the rest of the
job); `check_input_spec` runs at construction so a spec that names nothing (no such location, a
glob matching no file, a folder without a video, a manifest without entries) fails before the
pipeline starts. The listing is followed by a Reshuffle so one slow video does not pin a worker.
"""

from __future__ import annotations

import collections
import csv
import hashlib
import io
import logging
import os
import posixpath
import re
from collections.abc import Iterable, Iterator

import apache_beam as beam
import fsspec
import pyarrow.parquet as pq
from apache_beam.metrics.metric import MetricsFilter

from reelbeam.schemas.records import Failure, VideoRef

LOG = logging.getLogger(__name__)

# What a folder listing takes. Animated GIF is in: a video format by design (frames with their own
# delays; datasets such as TGIF ship as .gif) that PyAV decodes with its timing, and folders that
# hold it are usually video datasets. WebP is out: nearly all .webp files are still images, and
# FFmpeg's WebP decoder (PyAV's, FFmpeg 8.1) rejects animated WebP ("Invalid data"). Files a folder
# listing skips are counted (`skipped_files`, the `files_skipped` counters); a glob or a manifest
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
METRICS_NAMESPACE = "reelbeam"
_SKIPPED_PREFIX = "files_skipped:"  # + `_skip_key`: one counter per extension a listing passed over
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
    """Yield (uri, size_bytes, error) for every video an input spec names.

    `error` is set (and size None) for an entry that does not exist, so that a manifest naming a
    missing file yields a `failures` row rather than silently fewer videos. Every uri is in its
    canonical form (`canonical_uri`). A folder listing takes the files with a video extension;
    each file it passes over is counted into `skipped`, when given, under `_skip_key` (its
    extension).
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
            elif skipped is not None:
                skipped[_skip_key(p)] += 1
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


def skipped_files(spec: str) -> dict[str, int]:
    """Files a folder spec passes over, by extension ({'.webp': 12, '.txt': 1}); {} for a spec
    that is not a folder (a glob or a manifest takes every file it names).

    Lists the folder (no per-file calls): for a launcher that wants the figure before or without
    the run; a finished run has it in its metrics (`skipped_files_from_metrics`).
    """
    spec = canonical_uri(spec)
    fs, path = fsspec.core.url_to_fs(spec)
    if any(c in spec for c in _GLOB_CHARS) or not fs.isdir(path):
        return {}
    counts = collections.Counter(_skip_key(p) for p in fs.find(path) if _ext(p) not in VIDEO_EXTENSIONS)
    return dict(sorted(counts.items()))


def skipped_files_from_metrics(metrics) -> dict[str, int]:
    """Files the folder listings of a finished run passed over, by extension, from its Beam
    metrics (`PipelineResult.metrics()`): the `files_skipped:<ext>` counters."""
    counts: collections.Counter = collections.Counter()
    for result in metrics.query(MetricsFilter().with_namespace(METRICS_NAMESPACE))["counters"]:
        name = result.key.metric.name
        if name.startswith(_SKIPPED_PREFIX):
            value = result.committed if result.committed is not None else result.attempted
            counts[name[len(_SKIPPED_PREFIX) :]] += value or 0
    return dict(sorted((k, v) for k, v in counts.items() if v))


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


class _ExpandInputFn(beam.DoFn):
    def __init__(self) -> None:
        self._listed = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "videos_listed")
        self._skipped = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "files_skipped")

    def process(self, spec: str) -> Iterable:
        skipped: collections.Counter = collections.Counter()
        for uri, size, error in expand_input_spec(spec, skipped):
            ref = VideoRef(make_video_id(uri, size), uri, size)
            self._listed.inc()
            if error is not None:
                yield beam.pvalue.TaggedOutput(
                    "failures", Failure.of(ref, "list", "not_found", error).to_row()
                )
            else:
                yield ref
        if skipped:
            # One counter per extension seen, read back by skipped_files_from_metrics.
            self._skipped.inc(sum(skipped.values()))
            for key, n in skipped.items():
                beam.metrics.Metrics.counter(METRICS_NAMESPACE, _SKIPPED_PREFIX + key).inc(n)
            LOG.info("--input %s: %s without a video extension passed over", spec, _describe_skipped(skipped))


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
