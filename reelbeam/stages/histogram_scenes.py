"""Stage `histogram_scenes` (in the decode pass): training-free scenes, consecutive shots grouped by
colour similarity of the 48x27 frames the shot detector already reads -> `scenes`.

Off when a BaSSL checkpoint gives the scenes (`model_scenes`), with `--scenes none` and with
`--iframes-only`.
"""

from __future__ import annotations

import functools
from typing import ClassVar

from reelbeam.stages.base import ConfigError, PassStage, add_flag

SCENE_METHODS = ("histogram", "none")


class HistogramScenesStage(PassStage):
    name: ClassVar[str] = "histogram_scenes"
    title: ClassVar[str] = "Training-free scenes (colour histograms, in the decode pass)"
    writes: ClassVar[tuple[str, ...]] = ("scenes",)
    enabled_by: ClassVar[str] = "--scenes histogram (the default) or --scene-checkpoint"
    exclusive: ClassVar[str | None] = "scenes"
    parts: ClassVar[tuple[str, ...]] = ("color_hist",)
    assembled: ClassVar[tuple[str, ...]] = ("scenes",)

    def __init__(self, config, scaler: str) -> None:
        super().__init__()
        self.config = config  # reelbeam.transforms.scenes.SceneConfig
        self.scaler = scaler

    @staticmethod
    def add_flags(group) -> None:
        add_flag(group, "scenes", default="histogram", choices=SCENE_METHODS,
                 help="training-free scenes: histogram (shots grouped by colour similarity, no weights needed) or "
                 "none; a --scene-checkpoint replaces them with BaSSL's")
        add_flag(group, "scene-window", type=int, default=1,
                 help="shots compared on each side of a candidate scene boundary (2-3 keep A-B-A-B cutting together)")
        add_flag(group, "scene-threshold", type=float, default=0.5,
                 help="colour-histogram intersection under which shots belong to different scenes")

    @classmethod
    def configure(cls, options, env) -> HistogramScenesStage | None:
        from reelbeam.transforms.scenes import SceneConfig

        try:
            config = SceneConfig(method=options.scenes, window=options.scene_window, threshold=options.scene_threshold)
        except ValueError as e:
            raise ConfigError(str(e).replace("scene window", "--scene-window").replace("scene threshold", "--scene-threshold")) from e
        if config.method == "none" or options.iframes_only:
            return None
        if options.scene_checkpoint:
            from reelbeam.stages.bassl import scene_checkpoint_layout

            if scene_checkpoint_layout(options.scene_checkpoint) == "full":
                return None  # BaSSL's scenes replace these
        return cls(config, options.small_frame_scaler)

    def settings(self) -> str:
        return f"histogram(window={self.config.window},threshold={self.config.threshold:g})"

    def frame_consumers(self):
        from reelbeam.transforms.scenes import ColorHistogramConsumer

        return [functools.partial(ColorHistogramConsumer, self.scaler)]

    def assemble(self, video, parts) -> None:
        from reelbeam.transforms.assemble import concat_chunks, scene_rows
        from reelbeam.transforms.scenes import group_shots, shot_descriptors

        shots = video.rows.get("shots")
        if not shots or not parts["color_hist"]:
            return
        hists = concat_chunks(parts["color_hist"])["hist"]
        c = self.config
        groups, scores = group_shots(shot_descriptors(hists, video.spans), c.window, c.threshold)
        ends = [float(1.0 - scores[b]) if b < len(shots) - 1 else None for _, b in groups]
        video.rows["scenes"] = scene_rows(video.video_id, shots, groups, ends, self.settings())
        video.meta["num_scenes"] = len(video.rows["scenes"])
