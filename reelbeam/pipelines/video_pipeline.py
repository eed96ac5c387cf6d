"""ProcessVideos: the main composite, from input specs to table PCollections.

    ListVideos -> Reshuffle -> [SkipExisting] -> DecodeVideo (one pass; consumers: frame index,
    TransNetV2 windows or LGSS deltas) -> RunInference(TransNetV2) -> AssembleVideos
    -> videos, frames, shots, failures (+ json)

With --shots-in-decode-pass (auto on CPU when shot keyframes are needed) TransNetV2 is scored in
the decode pass instead, which also captures the shot keyframes there.

Step labels are stable: they are Dataflow step names, and a job update needs them unchanged.
"""

from __future__ import annotations

import functools
import logging
import posixpath
from typing import Optional

import apache_beam as beam
import fsspec
import pyarrow.dataset as ds
from apache_beam.ml.inference.base import KeyedModelHandler, ModelHandler, RunInference

from reelbeam.models.transnetv2 import TransNetV2ModelHandler
from reelbeam.pipelines.options import RunConfig
from reelbeam.transforms.assemble import AssembleVideos, FillFailureUris, KeepRowsOfOkVideos
from reelbeam.transforms.clips import SaveSceneClips
from reelbeam.transforms.decode import DecodeVideo
from reelbeam.transforms.listing import ListVideos
from reelbeam.transforms.motion import IFrameConsumer, MotionMapConsumer, MotionStatsConsumer
from reelbeam.transforms.inline_shots import InlineTransNetV2Consumer
from reelbeam.transforms.keyframes import AcceptCapturedKeyframes, ExtractShotKeyframes
from reelbeam.transforms.scene_model import AssembleModelScenes, EncodeShots, ScoreBoundaries
from reelbeam.transforms.scenes import ColorHistogramConsumer
from reelbeam.transforms.shots import LGSSConsumer, TransNetV2WindowConsumer

LOG = logging.getLogger(__name__)


def existing_ok_video_ids(output: str) -> frozenset[str]:
    """video_ids with status ok in an earlier run's OUTPUT/videos table (empty if none)."""
    fs, path = fsspec.core.url_to_fs(posixpath.join(output, "videos"))
    files = [p for p in fs.glob(posixpath.join(path, "*.parquet"))] if fs.exists(path) else []
    if not files:
        return frozenset()
    table = ds.dataset(files, filesystem=fs, format="parquet").to_table(columns=["video_id", "status"])
    ids = table.column("video_id").to_pylist()
    status = table.column("status").to_pylist()
    return frozenset(i for i, s in zip(ids, status) if s == "ok")


def _scored_window(element):
    (video_id, window_idx), result = element
    return video_id, ("transnetv2_probs", (window_idx, result.inference))


def _failed_batch_to_errors(element):
    batch, exc = element
    for (video_id, _window_idx), _ in batch:
        yield video_id, ("error", ("transition_model", "inference_error", f"{type(exc).__name__}: {exc}"))


class ProcessVideos(beam.PTransform):
    """PBegin -> dict of PCollections: 'videos', 'failures', 'shots' (row dicts), 'frames'
    (pyarrow Tables), 'json' ((video_id, document)); with motion maps 'motion', with I-frames
    'keyframes' (row dicts)."""

    def __init__(
        self,
        config: RunConfig,
        skip_ids: frozenset[str] = frozenset(),
        transition_handler: Optional[ModelHandler] = None,
    ) -> None:
        """skip_ids: video_ids not to process (--skip-existing).
        transition_handler: a ModelHandler replacing TransNetV2 (windows -> [50] probabilities),
          for tests and for users plugging in their own transition model.
        """
        super().__init__()
        self._config = config
        self._skip_ids = skip_ids
        self._transition_handler = transition_handler

    def expand(self, pbegin):
        cfg = self._config
        listed = pbegin | "ListVideos" >> ListVideos(list(cfg.inputs))
        videos = listed["videos"]
        if self._skip_ids:
            skip = self._skip_ids
            videos = videos | "SkipExisting" >> beam.Filter(lambda ref: ref.video_id not in skip)

        consumers = []
        transitions = None
        if cfg.shots.detector == "transnetv2":
            transitions = self._transition_handler or TransNetV2ModelHandler(
                weights=cfg.transnetv2_weights,
                device=cfg.device,
                precision=cfg.transnetv2_precision,
                max_batch_size=cfg.inference_batch_size,
                model_copies=cfg.model_copies,
            )
        if cfg.shots.detector == "transnetv2" and cfg.shots_in_decode_pass:
            consumers.append(
                functools.partial(
                    InlineTransNetV2Consumer,
                    transitions,
                    cfg.shots.transnetv2_scaler,
                    cfg.shots.transnetv2_threshold,
                    capture=cfg.shot_keyframes,
                    buffer_mb=cfg.keyframe_buffer_mb,
                    max_side=cfg.shot_keyframe_max_side,
                    quality=cfg.motion.jpeg_quality,
                )
            )
        elif cfg.shots.detector == "transnetv2":
            consumers.append(functools.partial(TransNetV2WindowConsumer, cfg.shots.transnetv2_scaler))
        elif cfg.shots.detector == "lgss":
            consumers.append(LGSSConsumer)
        motion = cfg.motion
        if cfg.scenes.method == "histogram" and not cfg.scene_checkpoint:
            consumers.append(functools.partial(ColorHistogramConsumer, cfg.shots.transnetv2_scaler))
        if motion.stats:
            consumers.append(MotionStatsConsumer)
        if motion.maps.enabled:
            consumers.append(
                functools.partial(MotionMapConsumer, motion.maps, motion.map_size, motion.map_dtype)
            )
        if motion.iframes:
            consumers.append(functools.partial(IFrameConsumer, motion.iframe_max_side, motion.jpeg_quality))
        decoded = videos | "DecodeVideo" >> DecodeVideo(
            consumers,
            cfg.decode,
            tags=("windows", "motion", "keyframes", "shot_frames"),
            motion_vectors=motion.needs_vectors,
        )

        per_video = [decoded.per_video]
        failures = [listed["failures"], decoded.failures]
        if cfg.shots.detector == "transnetv2" and not cfg.shots_in_decode_pass:
            handler = KeyedModelHandler(transitions)
            scored, dlq = decoded.windows | "ScoreTransitions" >> RunInference(
                handler
            ).with_exception_handling()
            per_video.append(scored | "KeyScoresByVideo" >> beam.Map(_scored_window))
            per_video.append(
                dlq.failed_inferences | "FailedWindowsToErrors" >> beam.FlatMap(_failed_batch_to_errors)
            )

        assembled = (
            per_video
            | "FlattenPerVideo" >> beam.Flatten()
            | "AssembleVideos" >> AssembleVideos(cfg.shots, cfg.scenes, keyframe_plans=cfg.shot_keyframes)
        )
        failures.append(assembled.failures)
        tables = {
            "videos": assembled.videos,
            "frames": assembled.frames,
            "shots": assembled.shots,
            "scenes": assembled.scenes,
            "json": assembled.json,
            "failures": failures | "FlattenFailures" >> beam.Flatten(),
        }
        if motion.maps.enabled:
            tables["motion"] = (assembled.videos, decoded.motion) | "KeepMotionOfOkVideos" >> KeepRowsOfOkVideos()
        keyframes = []
        if motion.iframes:
            keyframes.append(
                (assembled.videos, decoded.keyframes) | "KeepIFramesOfOkVideos" >> KeepRowsOfOkVideos()
            )
        if cfg.shot_keyframes:
            shot_kf = assembled.keyframe_plans | "ExtractShotKeyframes" >> ExtractShotKeyframes(
                cfg.shot_keyframe_max_side, cfg.motion.jpeg_quality
            )
            keyframes.append(shot_kf.keyframes)
            if cfg.shots_in_decode_pass:
                captured = (assembled.keyframe_accepts, decoded.shot_frames) | "AcceptCapturedKeyframes" >> AcceptCapturedKeyframes()
                keyframes.append(captured)
                shot_keyframes = (shot_kf.keyframes, captured) | "FlattenShotKeyframes" >> beam.Flatten()
            else:
                shot_keyframes = shot_kf.keyframes
            more_failures = [shot_kf.failures]
            embeddings = []
            if cfg.scrl_checkpoint:
                scrl = shot_keyframes | "EncodeShotsSCRL" >> EncodeShots(
                    cfg.scrl_checkpoint, cfg.device, cfg.encoder_precision, model_copies=cfg.model_copies, encoder="scrl"
                )
                embeddings.append(scrl["embeddings"])
                more_failures.append(scrl["failures"])
            if cfg.scene_checkpoint:
                encoded = shot_keyframes | "EncodeShots" >> EncodeShots(
                    cfg.scene_checkpoint, cfg.device, cfg.encoder_precision, model_copies=cfg.model_copies
                )
                scored = encoded["embeddings"] | "ScoreBoundaries" >> ScoreBoundaries(
                    cfg.scene_checkpoint, cfg.device, cfg.model_copies
                )
                model_scenes = (assembled.shots, scored["boundaries"], assembled.json) | "AssembleModelScenes" >> AssembleModelScenes(
                    cfg.bassl_threshold
                )
                embeddings.append(encoded["embeddings"])
                tables["boundaries"] = scored["boundaries"]
                tables["scenes"] = model_scenes.scenes
                tables["json"] = model_scenes.json
                more_failures += [encoded["failures"], scored["failures"]]
            if len(embeddings) == 1:
                tables["shot_embeddings"] = embeddings[0]
            elif embeddings:
                tables["shot_embeddings"] = embeddings | "FlattenEmbeddings" >> beam.Flatten()
            model_failures = more_failures | "FlattenModelFailures" >> beam.Flatten()
            model_failures = (assembled.videos, model_failures) | "FillFailureUris" >> FillFailureUris()
            tables["failures"] = (tables["failures"], model_failures) | "FlattenAllFailures" >> beam.Flatten()
        if cfg.save_scene_clips:
            clips = (assembled.videos, assembled.frames, tables["scenes"]) | "SaveSceneClips" >> SaveSceneClips(
                cfg.output, cfg.exact_cuts
            )
            tables["scene_clips"] = clips.clips
            tables["failures"] = (tables["failures"], clips.failures) | "FlattenClipFailures" >> beam.Flatten()
        if keyframes:
            tables["keyframes"] = keyframes | "FlattenKeyframes" >> beam.Flatten()
        return tables

