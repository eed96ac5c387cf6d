"""The BaSSL scene path: EncodeShots -> ScoreBoundaries -> AssembleModelScenes.

Each step reads tables (from this job or an earlier run) and writes one:
- EncodeShots: RunInference over shots (their 3 keyframe JPEGs), batched across videos, keyed by
  ShotKey: each shot is encoded exactly once -> `shot_embeddings`.
- ScoreBoundaries: a video's shot features in shot order -> one clipped 17-shot window per shot,
  RunInference batching windows of many videos through the CRN -> `boundaries` (p that a scene
  ends after the shot), written only for videos whose windows all scored.
- AssembleModelScenes: threshold (strictly greater, ModelScope's 0.8 by default), scenes end at
  each positive shot and the tail forms the last scene -> `scenes` (method 'bassl(threshold=...)').

A video whose shots cannot all be encoded or scored becomes a `failures` row (stage
`shot_encoder`, `scrl_encoder`, `boundary_model` or `model_scenes`); its `videos` row stays (decode
and shots succeeded).
"""

from __future__ import annotations

import apache_beam as beam
import numpy as np

from reelbeam.models.bassl import window_indices
from reelbeam.schemas.records import ShotKey
from reelbeam.schemas.rows import scene_rows
from reelbeam.transforms.failures import IncompleteVideo, OneFailurePerVideo, failure_row
from reelbeam.transforms.portable import infer, split_outputs


def scenes_from_probabilities(p: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """ModelScope's grouping: a scene ends at every shot with p > threshold; the shots after the
    last positive form a final scene. Inclusive (first_shot, last_shot) pairs."""
    ends = [i for i, v in enumerate(p) if v > threshold]
    n = len(p)
    if not ends or ends[-1] != n - 1:
        ends.append(n - 1)
    scenes, start = [], 0
    for e in ends:
        scenes.append((start, e))
        start = e + 1
    return [s for s in scenes if s[0] <= s[1]]


def _group_keyframes(element):
    key, rows = element
    rows = sorted(rows, key=lambda r: r["keyframe_idx"])
    return key, [r["jpeg"] for r in rows]


def _embedding_row(model_id):
    def to_row(element):
        key, result = element
        return {
            "video_id": key.video_id,
            "shot_id": key.shot_id,
            "shot_idx": key.shot_idx,
            "model": model_id,
            "embedding": np.asarray(result.inference, np.float32).tolist(),
        }

    return to_row


def _shot_key(row) -> ShotKey:
    return ShotKey(row["video_id"], row["shot_idx"], row["shot_id"])


class EncodeShots(beam.PTransform):
    """keyframes rows (those of kind 'shot' are used) -> {'embeddings': shot_embeddings rows,
    'failures', 'processed': video_ids}.

    handler: the encoder's ModelHandler (BaSSL's `ShotEncoderHandler` or SCRL's), keyed by ShotKey.
    model_id: the `model` column (encoder, checkpoint file and a short hash of its bytes).
    stage: the stage name its failures rows carry.
    """

    def __init__(self, handler, model_id: str, stage: str) -> None:
        super().__init__()
        self._handler = handler
        self._model_id = model_id
        self._stage = stage

    def expand(self, keyframes):
        shot_rows = keyframes | "ShotKeyframesOnly" >> beam.Filter(lambda r: r["kind"] == "shot")
        shots = (
            shot_rows
            | "KeyByShot" >> beam.Map(lambda r: (_shot_key(r), r))
            | "GroupKeyframes" >> beam.GroupByKey()
            | "KeyframeJpegs" >> beam.Map(_group_keyframes)
        )
        encoded, failed = infer(shots, self._handler, "EncodeShotsResNet50")
        return {
            "embeddings": encoded | "EmbeddingRows" >> beam.Map(_embedding_row(self._model_id)),
            "failures": failed | "EncoderFailures" >> OneFailurePerVideo(self._stage),
            "processed": shot_rows | "ProcessedVideos" >> beam.Map(lambda r: r["video_id"]) | "Distinct" >> beam.Distinct(),
        }


class _WindowsOfVideoFn(beam.DoFn):
    """A video's shot_embeddings rows -> one CRN window per shot, keyed (video_id, shot_idx,
    shot_id, num_shots). A video with a shot missing (it failed to encode) gets a failures row
    (its encoder's failure is already written, but the boundaries stage must say it skipped it)."""

    def __init__(self, stage: str) -> None:
        self._stage = stage

    def process(self, element):
        video_id, rows = element
        rows = sorted(rows, key=lambda r: r["shot_idx"])
        models = sorted({r["model"] for r in rows})
        if len(models) > 1:
            yield beam.pvalue.TaggedOutput(
                "failures",
                failure_row(video_id, "", self._stage, IncompleteVideo(self._stage, "incomplete", f"shot_embeddings holds embeddings of several BaSSL encoders ({', '.join(models)}); keep one")),
            )
            return
        if [r["shot_idx"] for r in rows] != list(range(len(rows))):
            have = len(rows)
            yield beam.pvalue.TaggedOutput(
                "failures",
                failure_row(video_id, "", self._stage, IncompleteVideo(self._stage, "incomplete", f"shot embeddings are not complete ({have} rows, shot indices {rows[0]['shot_idx']}..{rows[-1]['shot_idx']})")),
            )
            return
        features = np.stack([np.asarray(r["embedding"], np.float32) for r in rows])
        for i, idx in enumerate(window_indices(len(rows))):
            yield (video_id, i, rows[i]["shot_id"], len(rows)), features[idx]


def _complete_video_rows(model_id):
    def rows(element):
        (video_id, num_shots), scored = element
        scored = sorted(scored)
        # Only whole videos: a window that failed leaves its video without boundaries (and with a
        # failures row), never with part of them.
        if [s[0] for s in scored] == list(range(num_shots)):
            for shot_idx, shot_id, p in scored:
                yield {"video_id": video_id, "shot_idx": shot_idx, "shot_id": shot_id, "p_boundary": p, "model": model_id}

    return rows


class ScoreBoundaries(beam.PTransform):
    """shot_embeddings rows of one BaSSL encoder (rows of other encoders are ignored) ->
    {'boundaries', 'failures', 'processed'}.

    Each shot's 17-shot window is one RunInference element, so batches mix windows of many videos.
    handler: BaSSL's `BoundaryHandler`; encoder_prefix: the `model` prefix of the embeddings to use.
    """

    def __init__(self, handler, model_id: str, encoder_prefix: str = "bassl-resnet50:", stage: str = "boundary_model") -> None:
        super().__init__()
        self._handler = handler
        self._model_id = model_id
        self._prefix = encoder_prefix
        self._stage = stage

    def expand(self, embeddings):
        prefix = self._prefix
        mine = embeddings | "BaSSLEmbeddingsOnly" >> beam.Filter(lambda r: r["model"].startswith(prefix))
        windows = (
            mine
            | "KeyByVideo" >> beam.Map(lambda r: (r["video_id"], r))
            | "GroupShots" >> beam.GroupByKey()
        )
        windows = split_outputs(windows, _WindowsOfVideoFn(self._stage), ["failures"], "windows", "ShotWindows")
        scored, failed = infer(windows.windows, self._handler, "ScoreWindowsCRN")
        boundaries = (
            scored
            | "KeyScoresByVideo" >> beam.Map(lambda kv: ((kv[0][0], kv[0][3]), (kv[0][1], kv[0][2], float(kv[1].inference))))
            | "GroupScores" >> beam.GroupByKey()
            | "BoundaryRows" >> beam.FlatMap(_complete_video_rows(self._model_id))
        )
        failures = failed | "CrnFailures" >> OneFailurePerVideo(self._stage)
        return {
            "boundaries": boundaries,
            "failures": (failures, windows.failures) | "FlattenFailures" >> beam.Flatten(),
            "processed": mine | "ProcessedVideos" >> beam.Map(lambda r: r["video_id"]) | "Distinct" >> beam.Distinct(),
        }


class _ModelScenesFn(beam.DoFn):
    def __init__(self, threshold: float, stage: str) -> None:
        self._threshold = threshold
        self._stage = stage

    def process(self, element):
        video_id, g = element
        if not g["p"]:
            return  # no boundaries: the boundary stage failed for the video (its row says why)
        yield beam.pvalue.TaggedOutput("processed", video_id)
        shots = sorted(g["shots"], key=lambda s: s["shot_idx"])
        bounds = sorted(g["p"], key=lambda b: b["shot_idx"])
        models = {b["model"] for b in bounds}
        if len(models) > 1 or [b["shot_idx"] for b in bounds] != list(range(len(shots))):
            reason = (
                f"boundaries of several models ({', '.join(sorted(models))})"
                if len(models) > 1
                else f"{len(bounds)} boundaries for {len(shots)} shots"
            )
            yield beam.pvalue.TaggedOutput(
                "failures", failure_row(video_id, "", self._stage, IncompleteVideo(self._stage, "incomplete", reason))
            )
            return
        p = np.array([b["p_boundary"] for b in bounds])
        groups = scenes_from_probabilities(p, self._threshold)
        yield from scene_rows(video_id, shots, groups, [float(p[b]) for _, b in groups], f"bassl(threshold={self._threshold:g})")


class AssembleModelScenes(beam.PTransform):
    """{'shots', 'boundaries'} rows -> {'scenes' (method 'bassl(threshold=...)'), 'failures',
    'processed'}."""

    def __init__(self, threshold: float = 0.8, stage: str = "model_scenes") -> None:
        super().__init__()
        self._threshold = threshold
        self._stage = stage

    def expand(self, tables):
        out = (
            {
                "shots": tables["shots"] | "ShotsByVideo" >> beam.Map(lambda r: (r["video_id"], r)),
                "p": tables["boundaries"] | "BoundariesByVideo" >> beam.Map(lambda r: (r["video_id"], r)),
            }
            | "JoinSceneInputs" >> beam.CoGroupByKey()
        )
        out = split_outputs(out, _ModelScenesFn(self._threshold, self._stage), ["failures", "processed"], "scenes", "ModelScenes")
        return {"scenes": out.scenes, "failures": out.failures, "processed": out.processed}
