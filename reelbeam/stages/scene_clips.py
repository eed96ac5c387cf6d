"""Stage `scene_clips`: each scene cut into its own file under OUTPUT/clips/<video_id>/ and a
`scene_clips` row saying exactly what each file holds (stream copy by default; --exact-cuts
re-encodes so a clip holds exactly its scene's frames)."""

from __future__ import annotations

from typing import ClassVar, Optional

from reelbeam.stages.base import ConfigError, Stage, add_flag


class SceneClipsStage(Stage):
    name: ClassVar[str] = "scene_clips"
    title: ClassVar[str] = "Scene clips (one video file per scene)"
    reads: ClassVar[tuple[str, ...]] = ("videos", "frames", "scenes")
    writes: ClassVar[tuple[str, ...]] = ("scene_clips",)
    enabled_by: ClassVar[str] = "--save-scene-clips"

    def __init__(self, output: str, exact: bool) -> None:
        super().__init__()
        self.output = output
        self.exact = exact

    @staticmethod
    def add_flags(group) -> None:
        add_flag(group, "save-scene-clips", action="store_true",
                 help="write each scene as its own file under OUTPUT/clips/<video_id>/ (stream copy: the start "
                 "snaps back to a codec keyframe) and a scene_clips row saying what each file holds")
        add_flag(group, "exact-cuts", action="store_true",
                 help="with --save-scene-clips: re-encode (H.264, CRF 18) so each clip holds exactly its scene's frames")

    @classmethod
    def configure(cls, options, env) -> Optional["SceneClipsStage"]:
        if options.exact_cuts and not options.save_scene_clips:
            raise ConfigError("--exact-cuts changes how --save-scene-clips cuts; add --save-scene-clips")
        if not options.save_scene_clips:
            return None
        return cls(options.output.rstrip("/"), options.exact_cuts)

    def settings(self) -> str:
        return "reencode" if self.exact else "stream_copy"

    def expand(self, tables):
        from reelbeam.transforms.clips import SaveSceneClips

        clips = (tables["videos"], tables["frames"], tables["scenes"]) | "SaveSceneClips" >> SaveSceneClips(
            self.output, self.exact
        )
        return {"scene_clips": clips.clips, "failures": clips.failures, "processed": clips.processed}
