"""Stage `histogram_scenes` (in the decode pass, `--scenes histogram`): training-free scenes,
consecutive shots grouped by colour similarity of the 48x27 frames the shot detector already reads
-> `scenes`. No model and nearly free, but it over-segments natural footage (scene-boundary F1
0.634 on the development corpus against 0.942 for the default `--scenes grouping`,
`reelbeam.stages.grouping_scenes`; docs/BENCHMARKS.md).

On with `--scenes histogram`; off when a BaSSL checkpoint gives the scenes (`model_scenes`) and
with `--iframes-only`.
"""

from __future__ import annotations

import functools
from typing import ClassVar

from reelbeam.stages.base import ConfigError, PassStage, add_flag


class HistogramScenesStage(PassStage):
    name: ClassVar[str] = "histogram_scenes"
    title: ClassVar[str] = "Training-free scenes, --scenes histogram (colour histograms, in the decode pass)"
    writes: ClassVar[tuple[str, ...]] = ("scenes",)
    enabled_by: ClassVar[str] = "--scenes histogram, unless --scene-checkpoint gives BaSSL's scenes"
    exclusive: ClassVar[str | None] = "scenes"
    parts: ClassVar[tuple[str, ...]] = ("color_hist",)
    assembled: ClassVar[tuple[str, ...]] = ("scenes",)

    def __init__(self, config, scaler: str) -> None:
        super().__init__()
        self.config = config  # reelbeam.transforms.scenes.SceneConfig
        self.scaler = scaler

    @staticmethod
    def add_flags(group) -> None:
        add_flag(group, "scene-window", type=int, default=None, show_default=False,
                 help="--scenes histogram: shots compared on each side of a candidate scene boundary (2-3 keep "
                 "A-B-A-B cutting together) (default: 1)")
        add_flag(group, "scene-threshold", type=float, default=None, show_default=False,
                 help="--scenes histogram: colour-histogram intersection under which shots belong to different "
                 "scenes (default: 0.5)")

    @classmethod
    def configure(cls, options, env) -> HistogramScenesStage | None:
        from reelbeam.transforms.scenes import SceneConfig

        for flag, value in (("--scene-window", options.scene_window), ("--scene-threshold", options.scene_threshold)):
            if value is None or options.scenes == "histogram":
                continue
            if options.scenes == "none":
                raise ConfigError(f"{flag} tunes --scenes histogram, and --scenes none makes no scenes: drop one")
            raise ConfigError(f"{flag} tunes --scenes histogram; the grouping method (the default) sets its "
                              "threshold per video: add --scenes histogram or drop " + flag)
        if options.scenes != "histogram":
            return None
        if env.keyframes_only:
            raise ConfigError("--scenes histogram reads every decoded frame, and --iframes-only decodes only I-frames: "
                              "drop one of them")
        defaults = SceneConfig()
        try:
            config = SceneConfig(
                method="histogram",
                window=defaults.window if options.scene_window is None else options.scene_window,
                threshold=defaults.threshold if options.scene_threshold is None else options.scene_threshold,
            )
        except ValueError as e:
            raise ConfigError(str(e).replace("scene window", "--scene-window").replace("scene threshold", "--scene-threshold")) from e
        return cls(config, env.small_frame_scaler)  # off when a scene model fills `scenes` (precedence)

    def settings(self) -> str:
        return f"histogram(window={self.config.window},threshold={self.config.threshold:g})"

    def frame_consumers(self):
        from reelbeam.transforms.scenes import ColorHistogramConsumer

        return [functools.partial(ColorHistogramConsumer, self.scaler)]

    def assemble(self, video, parts) -> None:
        from reelbeam.schemas.rows import concat_chunks, scene_rows
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
