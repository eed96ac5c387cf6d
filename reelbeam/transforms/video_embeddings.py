"""EmbedClips: CMD R(2+1)D-26 clip embeddings per video and per shot, from table rows.

Per video (`videos`, `frames` and, for the shot granularity, `shots` rows, of this job or an
earlier run): the clips' frame indices (`video_clip_indices`: the reference's 10 clips; one set per
shot with `shot_clip_indices`), then one seeking read of the file that fetches exactly those frames
(`iter_clips`: each frame resized to short side 128 as soon as it is decoded, each clip handed on
as soon as it is complete and only its 112x112 centre crop kept). A Reshuffle then spreads the
clips, and RunInference batches them across videos and shots; the features of a video's (or a
shot's) clips are averaged into its `video_embeddings` row, written only when every one of its
clips was embedded.
"""

from __future__ import annotations

from typing import NamedTuple

import apache_beam as beam
import numpy as np

from reelbeam.schemas.tables import VIDEO_EMBEDDING_GRANULARITIES
from reelbeam.transforms.failures import IncompleteVideo, OneFailurePerVideo, failure_row
from reelbeam.transforms.portable import infer, split_outputs

GRANULARITIES = VIDEO_EMBEDDING_GRANULARITIES


class ClipKey(NamedTuple):
    """One clip of a unit (a whole video, or one shot) to be embedded."""

    video_id: str
    granularity: str
    shot_idx: int  # -1 for the video granularity
    shot_id: str | None
    clip: int
    num_clips: int
    frames: tuple  # the clip's 16 frame indices


def clip_plan(frame_count: int, shots: list[dict], granularities) -> list[tuple]:
    """[(granularity, shot_idx, shot_id, clips int [K, 16])] for a video."""
    from reelbeam.models.r2plus1d import shot_clip_indices, video_clip_indices

    plan = []
    if "video" in granularities:
        plan.append(("video", -1, None, video_clip_indices(frame_count)))
    if "shot" in granularities:
        for shot in sorted(shots, key=lambda s: s["shot_idx"]):
            plan.append(("shot", shot["shot_idx"], shot["shot_id"], shot_clip_indices(shot["start_frame"], shot["end_frame"])))
    return plan


class _FetchClipsFn(beam.DoFn):
    """(video_id, {videos, frames, shots}) -> (ClipKey, uint8 [16, 112, 112, 3]) per clip; a video
    whose file cannot be read gets a failures row (tag 'failures'); tag 'processed': its id."""

    def __init__(self, granularities: tuple[str, ...]) -> None:
        self._granularities = granularities
        self._clips = beam.metrics.Metrics.counter("reelbeam", "cmd_clips_fetched")

    def process(self, element):
        from reelbeam.models.r2plus1d import crop_clip
        from reelbeam.schemas.records import VideoRef
        from reelbeam.transforms.cmd_clip_frames import FrameIndex, iter_clips

        video_id, g = element
        videos, frames = list(g["videos"]), list(g["frames"])
        if not videos:
            return  # no `videos` row: the video failed upstream, its failure is written
        yield beam.pvalue.TaggedOutput("processed", video_id)
        meta = videos[0]
        try:
            if not frames:
                raise IncompleteVideo("video_embeddings", "incomplete", "no `frames` rows for the video")
            if meta.get("keyframes_only"):
                raise IncompleteVideo("video_embeddings", "incomplete", "the video was decoded keyframes-only (--iframes-only)")
            shots = list(g["shots"])
            if "shot" in self._granularities and not shots:
                raise IncompleteVideo("video_embeddings", "incomplete", "no `shots` rows for the shot granularity")
            plan = clip_plan(int(meta["frame_count"]), shots, self._granularities)
            rows = [(gran, idx, sid, clip) for gran, idx, sid, clips in plan for clip in clips]
            counts = {}
            for gran, idx, _sid, _clip in rows:
                counts[(gran, idx)] = counts.get((gran, idx), 0) + 1
            numbers = {}
            clip_no = []
            for gran, idx, _sid, _clip in rows:
                clip_no.append(numbers.get((gran, idx), 0))
                numbers[(gran, idx)] = clip_no[-1] + 1
            index = FrameIndex.from_frames_table(frames[0])
            ref = VideoRef(video_id, meta["uri"], meta.get("size_bytes"))
            # Clips go on as they complete (a film's shot clips would not fit in memory at once);
            # the video's rows are written only if the whole read succeeds ('complete').
            for c, clip in iter_clips(ref, np.stack([r[3] for r in rows]), index):
                gran, idx, sid, indices = rows[c]
                key = ClipKey(video_id, gran, idx, sid, clip_no[c], counts[(gran, idx)], tuple(int(f) for f in indices))
                self._clips.inc()
                yield key, crop_clip(clip)
        except Exception as e:  # noqa: BLE001 - one video's problem is its failures row
            yield beam.pvalue.TaggedOutput("failures", failure_row(video_id, meta["uri"], "video_embeddings", e))
            return
        yield beam.pvalue.TaggedOutput("complete", video_id)


def _unit_key(element):
    key, result = element
    return (key.video_id, key.granularity, key.shot_idx), (key, result)


def _embedding_row(model_id: str):
    from reelbeam.models.r2plus1d import video_embedding

    def row(element):
        (video_id, granularity, shot_idx), results = element
        results = sorted(results, key=lambda kr: kr[0].clip)
        first = results[0][0]
        if len(results) != first.num_clips:
            return  # a clip failed: its video's failures row is written, no partial embedding
        features = np.stack([np.asarray(r.inference, np.float32) for _, r in results])
        frames = [f for key, _ in results for f in key.frames]
        yield video_id, {
            "video_id": video_id,
            "granularity": granularity,
            "shot_id": first.shot_id,
            "shot_idx": None if shot_idx < 0 else shot_idx,
            "num_clips": len(results),
            "clip_frames": frames,
            "model": model_id,
            "embedding": video_embedding(features).tolist(),
        }

    return row


def _rows_of_complete_videos(element):
    _video_id, g = element
    if g["complete"]:
        yield from g["rows"]


class EmbedClips(beam.PTransform):
    """{'videos', 'frames'[, 'shots']} -> {'video_embeddings', 'failures', 'processed'}."""

    def __init__(self, handler, model_id: str, granularities=GRANULARITIES) -> None:
        super().__init__()
        self._handler = handler
        self._model_id = model_id
        self._granularities = tuple(granularities)

    def expand(self, tables):
        p = tables["videos"].pipeline
        keyed = {
            "videos": tables["videos"] | "VideosByVideo" >> beam.Map(lambda r: (r["video_id"], r)),
            "frames": tables["frames"]
            | "NonEmptyFrames" >> beam.Filter(lambda t: t.num_rows > 0)
            | "FramesByVideo" >> beam.Map(lambda t: (t.column("video_id")[0].as_py(), t)),
            "shots": (
                tables["shots"] | "ShotsByVideo" >> beam.Map(lambda r: (r["video_id"], r))
                if tables.get("shots") is not None
                else p | "NoShots" >> beam.Create([])
            ),
        }
        joined = keyed | "JoinVideoTables" >> beam.CoGroupByKey()
        fetched = split_outputs(joined, _FetchClipsFn(self._granularities), ["failures", "processed", "complete"], "clips", "FetchClips")
        embedded, failed = infer(fetched.clips | "SpreadClips" >> beam.Reshuffle(), self._handler, "EmbedClipsR2Plus1D")
        units = (
            embedded
            | "KeyByUnit" >> beam.Map(_unit_key)
            | "GroupClips" >> beam.GroupByKey()
            | "EmbeddingRows" >> beam.FlatMap(_embedding_row(self._model_id))
        )
        rows = (
            {"rows": units, "complete": fetched.complete | "CompleteIds" >> beam.Map(lambda v: (v, True))}
            | "JoinComplete" >> beam.CoGroupByKey()
            | "RowsOfCompleteVideos" >> beam.FlatMap(_rows_of_complete_videos)
        )
        failures = (
            fetched.failures,
            failed | "ModelFailures" >> OneFailurePerVideo("video_embeddings"),
        ) | "FlattenFailures" >> beam.Flatten()
        return {"video_embeddings": rows, "failures": failures, "processed": fetched.processed}

