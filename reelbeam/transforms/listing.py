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

Folders and globs are listed on the launcher (`list_inputs`, in the Beam-free `reelbeam.inputs`
so `reelbeam run` prints what it found before importing Beam: one listing call per folder, sizes
from the listing itself; 100k files on gs:// take seconds), so the job knows its inputs and every
runner gets one element per video from the start; manifest entries' sizes are read on the workers.
`check_input_spec` runs before that, so a spec that names nothing (no such location, a glob
matching no file, a folder without a video, a manifest without entries) fails before the pipeline
starts. The listing is followed by a Reshuffle so one slow video does not pin a worker.
"""

from __future__ import annotations

from collections.abc import Iterable

import apache_beam as beam

from reelbeam.inputs import (  # noqa: F401 - the launcher-side listing, Beam-free (re-exported)
    MANIFEST_EXTENSIONS,
    VIDEO_EXTENSIONS,
    Listing,
    canonical_uri,
    check_input_spec,
    entry_size,
    expand_input_spec,
    list_inputs,
    make_video_id,
    skipped_files,
)
from reelbeam.schemas.records import Failure, VideoRef

METRICS_NAMESPACE = "reelbeam"


class _RefFn(beam.DoFn):
    """(uri, size or None, error or None) -> VideoRef; a manifest entry's size is read here; an
    entry that does not exist -> a `failures` row (tag 'failures')."""

    def __init__(self) -> None:
        self._listed = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "videos_listed")

    def process(self, entry) -> Iterable:
        uri, size, error = entry
        if size is None and error is None:
            size, error = entry_size(uri)
        ref = VideoRef(make_video_id(uri, size), uri, size)
        self._listed.inc()
        if error is not None:
            yield beam.pvalue.TaggedOutput("failures", Failure.of(ref, "list", "not_found", error).to_row())
        else:
            yield ref


class ListVideos(beam.PTransform):
    """PBegin -> {'videos': PCollection[VideoRef], 'failures': rows}, from a launcher-side
    `Listing` (pass specs to list them here).

    Each listed file is one element of the pipeline's first step, so every runner can spread the
    videos over its workers from the start (Beam's DaskRunner partitions only there, and has no
    Reshuffle). Duplicate URIs (the same file named twice, in any spelling `canonical_uri`
    unifies) are processed once.
    """

    def __init__(self, specs_or_listing) -> None:
        super().__init__()
        if isinstance(specs_or_listing, Listing):
            self.listing = specs_or_listing
        else:
            # Canonical on the launcher: a relative path means the launcher's current folder.
            self.listing = list_inputs([canonical_uri(s) for s in specs_or_listing])

    def expand(self, pbegin):
        from reelbeam.transforms.portable import split_outputs

        entries = pbegin | "InputFiles" >> beam.Create(self.listing.entries)
        listed = split_outputs(entries, _RefFn(), ["failures"], "videos", "MakeVideoRefs")
        videos = listed.videos | "Reshuffle" >> beam.Reshuffle()
        return {"videos": videos, "failures": listed.failures}
