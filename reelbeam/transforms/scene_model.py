"""The BaSSL scene path: EncodeShots -> ScoreBoundaries -> AssembleModelScenes.

- EncodeShots: RunInference over shots (their 3 keyframe JPEGs), batched across videos, keyed by
  (video_id, shot_idx, shot_id): each shot is encoded exactly once -> `shot_embeddings`.
- ScoreBoundaries: a video's shot features in shot order -> one clipped 17-shot window per shot,
  RunInference batching windows of many videos through the CRN -> `boundaries` (p that a scene
  ends after the shot), written only for videos whose windows all scored.
- AssembleModelScenes: threshold (strictly greater, ModelScope's 0.8 by default), scenes end at
  each positive shot and the tail forms the last scene -> `scenes` (method 'bassl') and the
  per-video JSON with `scene_num` / `scene_meta_list`.

A video whose shots cannot all be encoded or scored becomes a `failures` row (stage
`shot_encoder`, `scrl_encoder` or `boundary_model`); its `videos` row stays (decode and shots succeeded).
"""

from __future__ import annotations

from typing import Optional

import apache_beam as beam
import numpy as np
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

from reelbeam.models.bassl import BoundaryHandler, ShotEncoderHandler, window_indices
from reelbeam.schemas.records import Failure
from reelbeam.transforms.assemble import scene_meta_list, scene_rows


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
    (video_id, shot_idx, shot_id), rows = element
    rows = sorted(rows, key=lambda r: r["keyframe_idx"])
    return (video_id, shot_idx, shot_id), [r["jpeg"] for r in rows]


def _embedding_row(model_name):
    def to_row(element):
        (video_id, shot_idx, shot_id), result = element
        return {
            "video_id": video_id,
            "shot_id": shot_id,
            "shot_idx": shot_idx,
            "model": model_name,
            "embedding": np.asarray(result.inference, np.float32).tolist(),
        }

    return to_row


def _failed_videos(element):
    batch, exc = element
    for key in {k[0] for k, _ in batch}:
        yield key, f"{type(exc).__name__}: {exc}"


class _OneFailurePerVideo(beam.PTransform):
    """RunInference dead letters (keys start with the video_id) -> one failures row per video, with
    an empty uri (model stages carry only the video_id; ProcessVideos fills it from `videos`)."""

    def __init__(self, stage: str) -> None:
        super().__init__()
        self._stage = stage

    def expand(self, failed):
        stage = self._stage
        return (
            failed
            | "FailedVideos" >> beam.FlatMap(_failed_videos)
            | "FirstMessage" >> beam.CombinePerKey(min)
            | "FailureRows" >> beam.Map(lambda kv: Failure(kv[0], "", stage, "inference_error", kv[1]).to_row())
        )


class EncodeShots(beam.PTransform):
    """keyframes rows (kind 'shot') -> shot_embeddings rows; tag 'failures'.

    encoder: 'bassl' (ResNet-50, mean of the 3 keyframes' features) or 'scrl' (ResNet-50 with the
    3 keyframes fused on channels). The `model` column names the encoder and checkpoint file.
    """

    def __init__(self, checkpoint: str, device: str = "auto", precision: str = "fp32", batch: int = 16, model_copies: Optional[int] = None, encoder: str = "bassl") -> None:
        super().__init__()
        if encoder == "scrl":
            from reelbeam.models.scrl import SCRLEncoderHandler

            handler = SCRLEncoderHandler(checkpoint, device, precision, batch, model_copies)
        elif encoder == "bassl":
            handler = ShotEncoderHandler(checkpoint, device, precision, batch, model_copies)
        else:
            raise ValueError(f"shot encoder must be 'bassl' or 'scrl', got {encoder!r}")
        self._handler = KeyedModelHandler(handler)
        self._encoder = encoder
        self._name = f"{encoder}-resnet50:{checkpoint.rsplit('/', 1)[-1]}"

    def expand(self, keyframes):
        shots = (
            keyframes
            | "KeyByShot" >> beam.Map(lambda r: ((r["video_id"], r["shot_idx"], r["shot_id"]), r))
            | "GroupKeyframes" >> beam.GroupByKey()
            | "KeyframeJpegs" >> beam.Map(_group_keyframes)
        )
        encoded, dlq = shots | "EncodeShotsResNet50" >> RunInference(self._handler).with_exception_handling()
        failures = dlq.failed_inferences | "EncoderFailures" >> _OneFailurePerVideo("shot_encoder" if self._encoder == "bassl" else "scrl_encoder")
        return {"embeddings": encoded | "EmbeddingRows" >> beam.Map(_embedding_row(self._name)), "failures": failures}


def _windows_of_video(element):
    """A video's shot_embeddings rows -> one CRN window per shot, keyed (video_id, shot_idx,
    shot_id, num_shots). A video with a shot that failed to encode is skipped: its failure row is
    already written."""
    video_id, rows = element
    rows = sorted(rows, key=lambda r: r["shot_idx"])
    if [r["shot_idx"] for r in rows] != list(range(len(rows))):
        return
    features = np.stack([np.asarray(r["embedding"], np.float32) for r in rows])
    for i, idx in enumerate(window_indices(len(rows))):
        yield (video_id, i, rows[i]["shot_id"], len(rows)), features[idx]


def _complete_video_rows(name):
    def rows(element):
        (video_id, num_shots), scored = element
        scored = sorted(scored)
        # Only whole videos: a window that failed leaves its video without boundaries (and with a
        # failures row), never with part of them.
        if [s[0] for s in scored] == list(range(num_shots)):
            for shot_idx, shot_id, p in scored:
                yield {"video_id": video_id, "shot_idx": shot_idx, "shot_id": shot_id, "p_boundary": p, "model": name}

    return rows


class ScoreBoundaries(beam.PTransform):
    """shot_embeddings rows -> boundaries rows; tag 'failures'.

    Each shot's 17-shot window is one RunInference element, so batches mix windows of many videos.
    """

    def __init__(self, checkpoint: str, device: str = "auto", model_copies: Optional[int] = None, batch: int = 64) -> None:
        super().__init__()
        self._handler = KeyedModelHandler(BoundaryHandler(checkpoint, device, batch, model_copies))
        self._name = f"bassl-crn:{checkpoint.rsplit('/', 1)[-1]}"

    def expand(self, embeddings):
        windows = (
            embeddings
            | "KeyByVideo" >> beam.Map(lambda r: (r["video_id"], r))
            | "GroupShots" >> beam.GroupByKey()
            | "ShotWindows" >> beam.FlatMap(_windows_of_video)
        )
        scored, dlq = windows | "ScoreWindowsCRN" >> RunInference(self._handler).with_exception_handling()
        boundaries = (
            scored
            | "KeyScoresByVideo" >> beam.Map(lambda kv: ((kv[0][0], kv[0][3]), (kv[0][1], kv[0][2], float(kv[1].inference))))
            | "GroupScores" >> beam.GroupByKey()
            | "BoundaryRows" >> beam.FlatMap(_complete_video_rows(self._name))
        )
        failures = dlq.failed_inferences | "CrnFailures" >> _OneFailurePerVideo("boundary_model")
        return {"boundaries": boundaries, "failures": failures}


def _scenes_of_video(video_id, g, threshold):
    """Scenes rows and the JSON document (tagged) of one video from its shots and boundaries."""
    shots = sorted(g["shots"], key=lambda s: s["shot_idx"])
    p = np.array([b["p_boundary"] for b in sorted(g["p"], key=lambda b: b["shot_idx"])])
    groups = scenes_from_probabilities(p, threshold)
    scenes = scene_rows(video_id, shots, groups, [float(p[b]) for _, b in groups], f"bassl(threshold={threshold:g})")
    for scene in scenes:
        yield beam.pvalue.TaggedOutput("scenes", scene)
    doc = dict(g["doc"][0])
    doc["scene_num"] = len(scenes)
    doc["scene_meta_list"] = scene_meta_list(scenes)
    yield beam.pvalue.TaggedOutput("json", (video_id, doc))


class AssembleModelScenes(beam.PTransform):
    """(shots rows, boundaries rows, json docs) -> scenes rows (method 'bassl') and JSON docs with
    the scene list."""

    def __init__(self, threshold: float = 0.8) -> None:
        super().__init__()
        self._threshold = threshold

    def expand(self, pcolls):
        shots, boundaries, docs = pcolls
        threshold = self._threshold

        def assemble(element):
            video_id, g = element
            if g["p"] and g["doc"] and len(g["p"]) == len(g["shots"]):
                yield from _scenes_of_video(video_id, g, threshold)

        return (
            {
                "shots": shots | "ShotsByVideo" >> beam.Map(lambda r: (r["video_id"], r)),
                "p": boundaries | "BoundariesByVideo" >> beam.Map(lambda r: (r["video_id"], r)),
                "doc": docs,
            }
            | "JoinSceneInputs" >> beam.CoGroupByKey()
            | "ModelScenes" >> beam.FlatMap(assemble).with_outputs("scenes", "json")
        )
