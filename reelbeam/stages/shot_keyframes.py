"""Stage `shot_keyframes`: every shot's first, middle and last frame as JPEG -> `keyframes` (kind
'shot'), from `videos`, `frames` and `shots` (of this job or an earlier run). The frames of gradual
transitions are left out unless --keep-transition-frames (`keyframes.clean_span`).

In the same job as a CPU decode pass, the frames come from the pass itself (the shot detector keeps
the frames that may become keyframes, within `--keyframe-buffer-mb`); the rest come from a second,
seeking read of the file. This is the reshard point between CPU work and the GPU encoders.
"""

from __future__ import annotations

from typing import ClassVar

from reelbeam.stages.base import ConfigError, Stage, add_flag


class ShotKeyframesStage(Stage):
    name: ClassVar[str] = "shot_keyframes"
    title: ClassVar[str] = "Shot keyframes (JPEG; also the quality of I-frame JPEGs)"
    reads: ClassVar[tuple[str, ...]] = ("videos", "frames", "shots")
    optional_reads: ClassVar[tuple[str, ...]] = ("shot_frames", "shot_frames_index")
    writes: ClassVar[tuple[str, ...]] = ("keyframes",)
    enabled_by: ClassVar[str] = "--shot-keyframes (implied by --scene-checkpoint and --scrl-checkpoint)"

    def __init__(self, max_side: int, quality: int, keep_transition_frames: bool = False) -> None:
        super().__init__()
        self.max_side = max_side
        self.quality = quality
        self.keep_transition_frames = keep_transition_frames

    @staticmethod
    def add_flags(group) -> None:
        add_flag(group, "shot-keyframes", action="store_true",
                 help="write every shot's first, middle and last frame as JPEG into `keyframes` (kind 'shot'); "
                 "implied by --scene-checkpoint and --scrl-checkpoint")
        add_flag(group, "shot-keyframe-max-side", type=int, default=0,
                 help="downscale shot keyframe JPEGs to this longer side (0: full resolution, as the reference)")
        add_flag(group, "jpeg-quality", type=int, default=90, help="JPEG quality of shot and I-frame keyframes (1-100)")
        add_flag(group, "keyframe-buffer-mb", type=int, default=512,
                 help="decoded frames held per video while their shot role is unknown (shot keyframes and the scene "
                 "grouping's frames captured in the decode pass); frames of longer shots than it covers come from a "
                 "second, seeking read")
        add_flag(group, "keep-transition-frames", action="store_true",
                 help="shot keyframes and scene clips may lie inside gradual transitions (dissolves, fades, wipes: the "
                 "shots table's transition columns, --shot-rule improved); by default a shot's first keyframe is the "
                 "first frame after the transition into it, its last the last frame before the transition out of it, "
                 "and a scene clip starts and ends the same way (cuts change nothing)")

    @classmethod
    def configure(cls, options, env) -> ShotKeyframesStage | None:
        if not 1 <= options.jpeg_quality <= 100:
            raise ConfigError(f"--jpeg-quality must be in 1..100, got {options.jpeg_quality}")
        if options.keyframe_buffer_mb < 1:
            raise ConfigError(f"--keyframe-buffer-mb must be >= 1, got {options.keyframe_buffer_mb}")
        if options.shot_keyframe_max_side < 0:
            raise ConfigError(f"--shot-keyframe-max-side must be >= 0, got {options.shot_keyframe_max_side}")
        if not options.shot_keyframes:
            return None  # unless a stage that runs reads `keyframes` (on_demand)
        return cls._for("--shot-keyframes", options, env)

    @classmethod
    def on_demand(cls, options, env, reader) -> ShotKeyframesStage:
        """On for a stage that reads `keyframes` (a shot encoder, say): it encodes shot keyframes."""
        return cls._for(reader.enabled_by, options, env)

    @classmethod
    def _for(cls, flag: str, options, env) -> ShotKeyframesStage:
        if env.keyframes_only:
            raise ConfigError(f"{flag} needs every frame decoded: drop --iframes-only (or {flag})")
        return cls(options.shot_keyframe_max_side, options.jpeg_quality, options.keep_transition_frames)

    def frame_capture(self):
        return {"max_side": self.max_side, "quality": self.quality, "keep_transition_frames": self.keep_transition_frames}

    def settings(self) -> str:
        return f"max_side={self.max_side} quality={self.quality}" + (" keep_transition_frames" if self.keep_transition_frames else "")

    def expand(self, tables):
        from reelbeam.transforms.keyframes import ExtractShotKeyframes

        return tables | "ExtractShotKeyframes" >> ExtractShotKeyframes(self.max_side, self.quality, self.keep_transition_frames)
