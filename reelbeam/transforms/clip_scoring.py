"""CLIP frame scoring (the CLIP-It seed), in three steps:

- `ClipFrameConsumer` (in the decode pass): every Nth frame (default 15, the reference's, whatever
  the fps) or R per second, in display orientation, resized at once to short side 224 (PIL
  bicubic, the reference's preprocessing): stream `clip_frames` (`ClipFrame`), and per video the
  number sampled (`clip_frames_count`). No full-resolution frame leaves the decoder.
- `EmbedFrames`: RunInference with `CLIPImageHandler` over sampled frames of many videos ->
  `frame_embeddings` rows (raw features), written for a video only when all its frames embedded.
- `ScoreFrames`: a video's frame embeddings and the queries -> `frame_scores` rows per scorer:
  `clip` (cosine similarity of frame and text features) and, with a CLIP-It checkpoint, `clipit`
  (the scoring transformer). Text features are computed once per query per worker.

Queries: `--query` / `--queries-file` apply to every video; a CSV/Parquet input manifest's
`query` column (several queries separated by ' | ') adds per-video ones. A query may hold several
sentences (split at '.', '!', '?' or newlines): CLIP scores each sentence and takes the mean;
CLIP-It takes them as its sentence set, 7 chosen by `clipit.sentence_indices` (deterministic: the
reference samples at random). A video with no query gets the query-less importance (query_id
'video'): each frame's similarity to the video's own mean frame feature (clip), or CLIP-It with
that mean as its text (`clipit.video_text_block`); the reference instead captions the video with
BMT and uses the captions as sentences.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Sequence
from typing import ClassVar, NamedTuple

import apache_beam as beam
import numpy as np

from reelbeam.transforms.failures import IncompleteVideo, OneFailurePerVideo, failure_row
from reelbeam.transforms.sampling import FrameSampling

QUERYLESS_ID = "video"
SCORERS = ("clip", "clipit")
MAX_CLIPIT_FRAMES = 4000  # the CLIP-It position table: longer videos are scored in windows


class ClipFrame(NamedTuple):
    """A sampled frame, resized for CLIP (uint8 [h, w, 3], short side 224)."""

    video_id: str
    frame_idx: int
    pts_time: float
    pixels: np.ndarray


class FrameKey(NamedTuple):
    video_id: str
    frame_idx: int
    pts_time: float


@dataclasses.dataclass(frozen=True)
class ClipSampling(FrameSampling):
    """'every:N' (every Nth frame: 0, N, 2N, ...) or 'fps:R' (R frames a second, from PTS)."""

    mode: str = "every"
    value: float = 15.0
    MODES: ClassVar[tuple[str, ...]] = ("every", "fps")
    WHAT: ClassVar[str] = "--clip-sample"


class ClipFrameConsumer:
    """Decode-pass consumer: the sampled frames resized for CLIP -> ('clip_frames', ClipFrame),
    and at the end ('clip_frames_count', (video_id, n))."""

    tags = ("clip_frames", "clip_frames_count")

    def __init__(self, sampling: ClipSampling = ClipSampling()) -> None:
        self._sampling = sampling

    def start(self, info):
        self._vid = info.video_id
        self._wanted = self._sampling.picker()
        self._count = 0
        return ()

    def consume(self, view):
        if not self._wanted(view.index, view.time):
            return
        from reelbeam.models.clip import resize_for_clip
        from reelbeam.transforms.media import SWS_THREADS, display_orientation

        rgb = display_orientation(view.frame.to_ndarray(format="rgb24", threads=SWS_THREADS), view.frame)
        self._count += 1
        yield "clip_frames", ClipFrame(self._vid, view.index, float(view.time), resize_for_clip(rgb))

    def finish(self):
        yield "clip_frames_count", (self._vid, self._count)


def _embedding_row(model_id: str):
    def row(element):
        key, result = element
        return key.video_id, {
            "video_id": key.video_id,
            "frame_idx": key.frame_idx,
            "pts_time": key.pts_time,
            "model": model_id,
            "embedding": np.asarray(result.inference, np.float32).tolist(),
            "normalised": False,
        }

    return row


def _complete_videos(element):
    _video_id, g = element
    counts, rows = list(g["count"]), list(g["rows"])
    if counts and len(rows) == counts[0]:
        yield from rows


class EmbedFrames(beam.PTransform):
    """{'clip_frames', 'clip_frames_count'} streams -> {'frame_embeddings', 'failures', 'processed'}."""

    def __init__(self, handler, model_id: str, stage: str = "frame_embeddings") -> None:
        super().__init__()
        self._handler = handler
        self._model_id = model_id
        self._stage = stage

    def expand(self, tables):
        from reelbeam.transforms.portable import infer

        keyed = (
            tables["clip_frames"]
            | "KeyByFrame" >> beam.Map(lambda f: (FrameKey(f.video_id, f.frame_idx, f.pts_time), f.pixels))
            | "SpreadFrames" >> beam.Reshuffle()
        )
        embedded, failed = infer(keyed, self._handler, "EmbedFramesCLIP")
        rows = (
            {
                "rows": embedded | "EmbeddingRows" >> beam.Map(_embedding_row(self._model_id)),
                "count": tables["clip_frames_count"],
            }
            | "JoinCounts" >> beam.CoGroupByKey()
            | "RowsOfCompleteVideos" >> beam.FlatMap(_complete_videos)
        )
        return {
            "frame_embeddings": rows,
            "failures": failed | "ModelFailures" >> OneFailurePerVideo(self._stage),
            "processed": tables["clip_frames_count"] | "ProcessedIds" >> beam.Map(lambda kv: kv[0]),
        }


# ------------------------------------------------------------------------------------------------
# Queries and scoring


def query_id(query: str) -> str:
    """sha1 of the query text, 16 hex chars (QUERYLESS_ID for the query-less importance)."""
    return hashlib.sha1(query.encode("utf-8")).hexdigest()[:16] if query else QUERYLESS_ID


def sentences(query: str) -> list[str]:
    """A query's sentences: split at '.', '!', '?' and newlines; a query without any stays whole."""
    parts = [p.strip() for p in re.split(r"(?<=[.!?])\s+|\n+", query.strip()) if p.strip()]
    return parts or [query.strip()]


def read_queries_file(path: str) -> list[str]:
    """One query per line (blank lines and lines starting with '#' skipped), local or fsspec."""
    import fsspec

    with fsspec.open(path, "rt", encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")]


def queries_of(query: Sequence[str] | None, queries_file: str | None) -> list[str]:
    """The --query values, then the --queries-file lines, stripped, blank and repeated ones left
    out; a ValueError saying why the file cannot be read."""
    out = list(query or [])
    if queries_file:
        try:
            out += read_queries_file(queries_file)
        except (OSError, ValueError) as e:
            raise ValueError(f"--queries-file {queries_file!r}: cannot read it ({e})") from e
    return list(dict.fromkeys(q.strip() for q in out if q.strip()))


def manifest_queries(specs: Sequence[str]) -> dict[str, list[str]]:
    """Canonical uri -> queries from the `query` column of the CSV/Parquet manifests among the
    input specs (several queries in one cell separated by ' | ')."""
    import csv
    import io
    import posixpath

    import fsspec
    import pyarrow.parquet as pq

    from reelbeam.transforms.listing import canonical_uri

    out: dict[str, list[str]] = {}
    for spec in specs:
        ext = posixpath.splitext(spec.rstrip("/"))[1].lower()
        if ext not in (".csv", ".parquet"):
            continue
        base = spec.rsplit("/", 1)[0] if "/" in spec else "."
        if ext == ".parquet":
            with fsspec.open(spec, "rb") as f:
                table = pq.read_table(f)
            if "query" not in table.column_names or "uri" not in table.column_names:
                continue
            pairs = zip(table.column("uri").to_pylist(), table.column("query").to_pylist())
        else:
            with fsspec.open(spec, "rt", encoding="utf-8") as f:
                rows = list(csv.DictReader(io.StringIO(f.read())))
            if not rows or "query" not in rows[0] or "uri" not in rows[0]:
                continue
            pairs = ((r["uri"], r["query"]) for r in rows)
        for uri, cell in pairs:
            if not uri or not cell:
                continue
            entry = uri if "://" in uri or uri.startswith("/") else posixpath.join(base, uri)
            out.setdefault(canonical_uri(entry), []).extend(q.strip() for q in str(cell).split(" | ") if q.strip())
    return out


class _ScoreVideoFn(beam.DoFn):
    """(video_id, {'rows': frame_embeddings rows, 'videos': videos rows}) -> frame_scores rows."""

    def __init__(self, clip_source: str, clipit: str | None, clipit_id: str | None, device: str,
                 global_queries: Sequence[str], by_uri: dict, stage: str) -> None:
        self._clip_source = clip_source
        self._clipit = clipit
        self._clipit_id = clipit_id
        self._device = device
        self._global = list(global_queries)
        self._by_uri = dict(by_uri)
        self._stage = stage
        self._text: dict[str, np.ndarray] = {}

    def setup(self):
        # One copy of the models per worker process, whatever the number of DoFn instances.
        self._models = _SHARED.acquire(self._load, tag=f"{self._clip_source}|{self._clipit}|{self._device}")

    def _load(self):
        from reelbeam.models.clip import load_clip
        from reelbeam.models.device import resolve_device

        device = resolve_device(self._device)
        loaded = load_clip(self._clip_source, device)
        clipit = None
        if self._clipit:
            from reelbeam.models.clipit import load_clipit

            clipit = load_clipit(self._clipit, device)
        return _Models(loaded, clipit, device)

    def _sentence_features(self, query: str) -> np.ndarray:
        if query not in self._text:
            from reelbeam.models.clip import encode_texts

            self._text[query] = np.asarray(
                encode_texts(self._models.clip.model, self._models.clip.tokenizer, sentences(query)), np.float32
            )
        return self._text[query]

    def process(self, element):
        from reelbeam.models.clip import cosine_scores
        from reelbeam.schemas.rows import l2_normalize_rows

        video_id, g = element
        rows = sorted(g["rows"], key=lambda r: r["frame_idx"])
        if not rows:
            return
        yield beam.pvalue.TaggedOutput("processed", video_id)
        videos = list(g["videos"])
        uri = videos[0]["uri"] if videos else ""
        try:
            models = {r["model"] for r in rows}
            if len(models) > 1:
                raise IncompleteVideo(self._stage, "incomplete", f"frame_embeddings of several CLIP models ({', '.join(sorted(models))})")
            feats = np.stack([np.asarray(r["embedding"], np.float32) for r in rows])
            queries = list(dict.fromkeys([*self._global, *self._by_uri.get(uri, [])]))
            out = []
            for query in queries or [""]:
                if query:
                    clip = cosine_scores(feats, self._sentence_features(query)).mean(axis=0)
                else:
                    unit = l2_normalize_rows(feats)
                    clip = unit @ l2_normalize_rows(unit.mean(axis=0, keepdims=True))[0]
                out.append((query, "clip", rows[0]["model"], clip))
                if self._models.clipit is not None:
                    out.append((query, "clipit", self._clipit_id, self._clipit_scores(feats, query)))
        except Exception as e:  # noqa: BLE001 - the video's failures row
            yield beam.pvalue.TaggedOutput("failures", failure_row(video_id, uri, self._stage, e))
            return
        for query, scorer, model, scores in out:
            qid = query_id(query)
            for r, s in zip(rows, np.asarray(scores, np.float32)):
                yield {
                    "video_id": video_id, "frame_idx": r["frame_idx"], "pts_time": r["pts_time"],
                    "query_id": qid, "query": query, "score": float(s), "scorer": scorer, "model": model,
                }

    def _clipit_scores(self, feats: np.ndarray, query: str) -> np.ndarray:
        from reelbeam.models.clipit import score_frames, text_block, video_text_block

        text = text_block(self._sentence_features(query)) if query else video_text_block(feats)
        parts = [score_frames(self._models.clipit, feats[s : s + MAX_CLIPIT_FRAMES], text)
                 for s in range(0, len(feats), MAX_CLIPIT_FRAMES)]
        return np.concatenate(parts)


@dataclasses.dataclass
class _Models:
    clip: object
    clipit: object
    device: str


def _shared():
    from apache_beam.utils import shared

    return shared.Shared()


_SHARED = _shared()


class ScoreFrames(beam.PTransform):
    """{'frame_embeddings'[, 'videos']} -> {'frame_scores', 'failures', 'processed'}."""

    def __init__(self, clip_source: str, clipit: str | None, clipit_id: str | None, device: str,
                 queries: Sequence[str], by_uri: dict, stage: str = "frame_scores") -> None:
        super().__init__()
        self._fn = _ScoreVideoFn(clip_source, clipit, clipit_id, device, queries, by_uri, stage)

    def expand(self, tables):
        p = tables["frame_embeddings"].pipeline
        videos = tables.get("videos")
        keyed = {
            "rows": tables["frame_embeddings"] | "EmbeddingsByVideo" >> beam.Map(lambda r: (r["video_id"], r)),
            "videos": (
                videos | "VideosByVideo" >> beam.Map(lambda r: (r["video_id"], r))
                if videos is not None
                else p | "NoVideos" >> beam.Create([])
            ),
        }
        from reelbeam.transforms.portable import split_outputs

        joined = keyed | "JoinVideo" >> beam.CoGroupByKey()
        out = split_outputs(joined, self._fn, ["failures", "processed"], "scores", "ScoreVideo")
        return {"frame_scores": out.scores, "failures": out.failures, "processed": out.processed}
