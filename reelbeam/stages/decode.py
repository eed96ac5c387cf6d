"""Stage `decode`: list the inputs and run the single decode pass -> `videos`, `frames`.

ListVideos -> Reshuffle -> [skip videos done] -> DecodeVideo (the frame index plus every running pass
stage's consumers) -> each pass stage's step between decode and assembly (e.g. TransNetV2 through
RunInference) -> AssembleVideos (each pass stage's `assemble`, in registry order) -> `videos`,
`frames`, the pass stages' tables; consumer rows (motion maps, I-frames) kept for ok videos only.
"""

from __future__ import annotations

from typing import ClassVar

import apache_beam as beam

from reelbeam.stages.base import STREAMS, ConfigError, PassStage, Stage, add_flag


class _SkipDoneFn(beam.DoFn):
    """Drops the videos whose decode pass is done (--skip-existing), counting them."""

    def __init__(self, done: frozenset) -> None:
        self._done = done
        self._skipped = beam.metrics.Metrics.counter("reelbeam", "videos_skipped")

    def process(self, ref):
        if ref.video_id in self._done:
            self._skipped.inc()
        else:
            yield ref


class DecodeStage(Stage):
    name: ClassVar[str] = "decode"
    title: ClassVar[str] = "Decode pass (one streaming read of every video)"
    writes: ClassVar[tuple[str, ...]] = ("videos", "frames")
    enabled_by: ClassVar[str] = "always on (skip it with --start-from or --stages)"
    reads_inputs: ClassVar[bool] = True

    def __init__(self, inputs, config) -> None:
        super().__init__()
        self.inputs = tuple(inputs)
        self.config = config  # reelbeam.transforms.decode.DecodeConfig
        self.pass_stages: list[PassStage] = []
        self.plan = None
        self.listing = None

    @staticmethod
    def add_flags(group) -> None:
        add_flag(group, "video-timeout-s", type=float, default=3600.0,
                 help="wall-clock budget per video (seconds); past it the video becomes a 'timeout' failure")
        add_flag(group, "max-frame-pixels", type=int, default=7680 * 4320,
                 help="videos with larger frames (width x height) are refused as 'frame_too_large' (8K UHD)")
        add_flag(group, "decode-threads", type=int, default=0, help="decoder threads per video (0: one per core)")
        add_flag(group, "iframes-only", default=False, action="store_true",
                 help="decode only keyframes (fast): writes I-frame JPEGs and their `frames` rows; no shots, "
                 "scenes or motion (it turns those stages off)")

    @classmethod
    def configure(cls, options, env) -> DecodeStage:
        from reelbeam.transforms.decode import DecodeConfig

        if options.video_timeout_s <= 0:
            raise ConfigError(f"--video-timeout-s must be > 0 seconds, got {options.video_timeout_s:g}")
        if options.max_frame_pixels <= 0:
            raise ConfigError(f"--max-frame-pixels must be > 0, got {options.max_frame_pixels}")
        if options.decode_threads < 0:
            raise ConfigError(f"--decode-threads must be >= 0, got {options.decode_threads}")
        config = DecodeConfig(
            timeout_s=options.video_timeout_s,
            max_frame_pixels=options.max_frame_pixels,
            threads=options.decode_threads,
            keyframes_only=options.iframes_only,
        )
        return cls(options.input or (), config)  # the plan requires --input when the decode runs

    def connect(self, plan) -> None:
        self.pass_stages = [s for s in plan.stages if s.in_decode_pass]
        self.plan = plan

    def settings(self) -> str:
        # The `frames` columns are filled by pass stages: the decode's rows depend on which ran.
        columns = [f"{s.name}[{s.settings()}]" for s in self.pass_stages if s.frame_columns]
        return f"keyframes_only={self.config.keyframes_only}; frame columns: {', '.join(columns) or 'index only'}"

    def list_inputs(self):
        """List the inputs on the launcher, once (the run summary, the manifest and the local
        runner's layout use what they name); returns the Listing."""
        from reelbeam.inputs import list_inputs

        if self.listing is None:
            self.listing = list_inputs(list(self.inputs))
        return self.listing

    def expand(self, pbegin):
        from reelbeam.stages.assembly import AssembleVideos
        from reelbeam.transforms.decode import DecodeVideo
        from reelbeam.transforms.failures import KeepRowsOfOkVideos
        from reelbeam.transforms.listing import Listing, ListVideos

        if self.plan is not None and self.plan.dry_run:
            self.listing = Listing([], {})  # a dry run lists nothing: the job's graph only
        lister = ListVideos(self.list_inputs())
        listed = pbegin | "ListVideos" >> lister
        videos = listed["videos"]
        skip = self.plan.skip_listing if self.plan is not None else frozenset()
        if skip:
            videos = videos | "SkipVideosDone" >> beam.ParDo(_SkipDoneFn(skip))
        owned = [(s.name, f) for s in self.pass_stages for f in s.frame_consumers()]
        decode = DecodeVideo(
            [f for _, f in owned],
            self.config,
            motion_vectors=any(getattr(s, "needs_motion_vectors", False) for s in self.pass_stages),
            owners=[name for name, _ in owned],
        )
        decoded = videos | "DecodeVideo" >> decode
        streams = {tag: decoded[tag] for tag in decode.tags}
        parts = [decoded.per_video]
        for stage in self.pass_stages:
            if stage.has_step_before_assembly():
                step = {"per_video": decoded.per_video, **streams} | f"{stage.label_of()}BeforeAssembly" >> stage
                parts.append(step["parts"])
        assembled = parts | "FlattenParts" >> beam.Flatten() | "AssembleVideos" >> AssembleVideos(self.pass_stages)
        out = {
            "videos": assembled.videos,
            "frames": assembled.frames,
            "failures": (listed["failures"], decoded.failures, assembled.failures) | "FlattenFailures" >> beam.Flatten(),
            "processed": videos | "ProcessedIds" >> beam.Map(lambda ref: ref.video_id),
        }
        for stage in self.pass_stages:
            for table in stage.assembled:
                out[f"{stage.name}/{table}"] = assembled[table]
            for tag, table in stage.streams.items():
                if tag not in streams:
                    continue  # none of the stage's consumers in this configuration emits it
                if table is not None:
                    out[f"{stage.name}/{table}"] = (assembled.videos, streams[tag]) | (
                        f"Keep{stage.label_of()}{tag.capitalize()}OfOkVideos" >> KeepRowsOfOkVideos()
                    )
                elif tag in stage.gated_streams:
                    out[tag] = (assembled.videos, streams[tag]) | (
                        f"Keep{stage.label_of()}{tag.capitalize()}OfOkVideos" >> KeepRowsOfOkVideos()
                    )
                elif tag in STREAMS:
                    out[tag] = streams[tag]
        return out

