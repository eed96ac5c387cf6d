"""Stage `scene_clips`: each scene cut into its own file under OUTPUT/clips/<video_id>/ and a
`scene_clips` row saying exactly what each file holds. `--clip-mode exact` (the default, as
PySceneDetect's split-video and ModelScope) re-encodes so a clip holds exactly its scene's frames;
`copy` copies packets (lossless and ~100x faster, but a clip starts at the codec keyframe at or
before its scene)."""

from __future__ import annotations

import argparse
from typing import ClassVar

from reelbeam.stages.base import ConfigError, Stage, add_flag


class SceneClipsStage(Stage):
    name: ClassVar[str] = "scene_clips"
    title: ClassVar[str] = "Scene clips (one video file per scene)"
    reads: ClassVar[tuple[str, ...]] = ("videos", "frames", "scenes")
    writes: ClassVar[tuple[str, ...]] = ("scene_clips",)
    enabled_by: ClassVar[str] = "--save-scene-clips"
    files_folder: ClassVar[str | None] = "clips"

    def __init__(self, output: str, mode: str, keep_transition_frames: bool = False) -> None:
        super().__init__()
        self.output = output
        self.mode = mode
        self.keep_transition_frames = keep_transition_frames

    @staticmethod
    def add_flags(group) -> None:
        add_flag(group, "save-scene-clips", action="store_true",
                 help="write each scene as its own file under OUTPUT/clips/<video_id>/ (re-encoded to hold "
                 "exactly the scene, or copied with --clip-mode copy) and a scene_clips row saying what each file holds")
        add_flag(group, "clip-mode", default=None, choices=("exact", "copy"), show_default=False,
                 help="exact: re-encode (H.264 CRF 18, MP4) so each clip holds exactly its scene; copy: copy packets "
                 "(lossless, far faster; a clip starts at the keyframe at or before its scene, see "
                 "scene_clips.actual_start_frame) (default: exact)")
        add_flag(group, "exact-cuts", action="store_true", help=argparse.SUPPRESS)  # before --clip-mode existed

    @classmethod
    def configure(cls, options, env) -> SceneClipsStage | None:
        if options.exact_cuts and options.clip_mode == "copy":
            raise ConfigError("--exact-cuts and --clip-mode copy contradict each other; choose one")
        if (options.clip_mode or options.exact_cuts) and not options.save_scene_clips:
            raise ConfigError("--clip-mode says how --save-scene-clips cuts; add --save-scene-clips")
        if not options.save_scene_clips:
            return None
        return cls(options.output.rstrip("/"), options.clip_mode or "exact", options.keep_transition_frames)

    def settings(self) -> str:
        return self.mode + (" keep_transition_frames" if self.keep_transition_frames else "")

    def expand(self, tables):
        from reelbeam.transforms.scene_clips import SaveSceneClips

        clips = (tables["videos"], tables["frames"], tables["scenes"]) | "SaveSceneClips" >> SaveSceneClips(
            self.output, self.mode, self.keep_transition_frames
        )
        return {"scene_clips": clips.clips, "failures": clips.failures, "processed": clips.processed}
