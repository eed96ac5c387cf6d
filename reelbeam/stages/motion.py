"""Compressed-domain stages in the decode pass (the CMD seed's data path):

- `motion_stats`: per-frame motion-vector statistics -> `frames.mv_*` and `shots.motion_score`;
- `motion_maps`: CMD 2-channel motion maps of sampled frames -> `motion`;
- `iframes`: every I-frame as JPEG -> `keyframes` (kind 'iframe').

Codecs whose FFmpeg decoder exports no vectors give null motion columns, never an error.
"""

from __future__ import annotations

import functools
from typing import ClassVar

from reelbeam.stages.base import ConfigError, PassStage, add_flag

MOTION_COLUMNS = ("mv_count", "mv_mean_mag", "mv_max_mag", "mv_moving_fraction", "mv_mean_dx", "mv_mean_dy")


class MotionStatsStage(PassStage):
    name: ClassVar[str] = "motion_stats"
    title: ClassVar[str] = "Motion-vector statistics (in the decode pass)"
    enabled_by: ClassVar[str] = "--motion-stats (default on)"
    parts: ClassVar[tuple[str, ...]] = ("motion_stats",)
    frame_columns: ClassVar[tuple[str, ...]] = (*MOTION_COLUMNS, "mv_direction_hist")
    needs_motion_vectors: ClassVar[bool] = True

    @staticmethod
    def add_flags(group) -> None:
        import argparse

        add_flag(group, "motion-stats", default=True, action=argparse.BooleanOptionalAction,
                 help="per-frame motion-vector statistics in `frames` and a motion score per shot (codecs "
                 "without motion vectors give nulls)")

    @classmethod
    def configure(cls, options, env) -> MotionStatsStage | None:
        return cls() if options.motion_stats and not env.keyframes_only else None

    def settings(self) -> str:
        return "on"

    def frame_consumers(self):
        from reelbeam.transforms.motion import MotionStatsConsumer

        return [MotionStatsConsumer]

    def assemble(self, video, parts) -> None:
        import numpy as np
        import pyarrow as pa

        from reelbeam.schemas.rows import concat_chunks
        from reelbeam.schemas.tables import FRAMES

        chunks = parts["motion_stats"]
        if not chunks:
            return  # the codec exports no vectors: the columns stay null
        n = video.num_frames
        cols = concat_chunks(chunks)
        pos = np.searchsorted(video.index["frame_idx"], cols["frame_idx"])
        null = np.ones(n, bool)
        null[pos] = False
        for name in self.frame_columns:
            values = np.asarray(cols[name])
            full = np.zeros((n, *values.shape[1:]), values.dtype)
            full[pos] = values
            type_ = FRAMES.field(name).type
            if name == "mv_direction_hist":
                video.columns[name] = pa.FixedSizeListArray.from_arrays(
                    pa.array(full.reshape(-1), pa.int32()), type=type_, mask=pa.array(null)
                )
            else:
                mask = null | np.isnan(full) if full.dtype.kind == "f" else null
                video.columns[name] = pa.array(full, type_, mask=mask)
        mean_mag = np.full(n, np.nan)
        mean_mag[pos] = np.asarray(cols["mv_mean_mag"], np.float64)
        for shot, (s, e) in zip(video.rows.get("shots", []), video.spans):
            seg = mean_mag[s : e + 1]
            seg = seg[~np.isnan(seg)]
            shot["motion_score"] = float(seg.mean()) if len(seg) else None


class MotionMapsStage(PassStage):
    name: ClassVar[str] = "motion_maps"
    title: ClassVar[str] = "CMD motion maps (in the decode pass)"
    writes: ClassVar[tuple[str, ...]] = ("motion",)
    enabled_by: ClassVar[str] = "--motion-maps all, every:N or fps:R"
    streams: ClassVar[dict] = {"motion": "motion"}
    needs_motion_vectors: ClassVar[bool] = True

    def __init__(self, config) -> None:
        super().__init__()
        self.config = config  # reelbeam.transforms.motion.MotionMapConfig

    @staticmethod
    def add_flags(group) -> None:
        add_flag(group, "motion-maps", default="off",
                 help="CMD 2-channel motion maps into the `motion` table for: off, all (every P/B frame), every:N "
                 "(every Nth frame) or fps:R (R per second)")
        add_flag(group, "motion-map-size", default=None, show_default=False,
                 help="resize motion maps to WxH (e.g. 112x112) (default: one cell per 16x16 pixels)")
        add_flag(group, "motion-map-dtype", default="int8", choices=("int8", "float16"),
                 help="motion map storage: int8 (value x 127) or float16")

    @classmethod
    def configure(cls, options, env) -> MotionMapsStage | None:
        from reelbeam.transforms.motion import MotionMapConfig, MotionSampling

        try:
            sampling = MotionSampling.parse(options.motion_maps)
            size = MotionMapConfig.parse_size(options.motion_map_size)
        except ValueError as e:
            raise ConfigError(str(e).replace("motion map sampling", "--motion-maps").replace("motion map size", "--motion-map-size")) from e
        if not sampling.enabled or env.keyframes_only:
            if options.motion_map_size and not env.keyframes_only:
                raise ConfigError("--motion-map-size sets the size of motion maps; add --motion-maps (e.g. all or fps:4)")
            return None
        try:
            return cls(MotionMapConfig(sampling, size, options.motion_map_dtype))
        except ValueError as e:
            raise ConfigError(str(e).replace("motion map size", "--motion-map-size")) from e

    def settings(self) -> str:
        c = self.config
        size = f"{c.size[0]}x{c.size[1]}" if c.size else "grid16"
        return f"{c.sampling.mode}:{c.sampling.value:g} size={size} dtype={c.dtype}"

    def frame_consumers(self):
        from reelbeam.transforms.motion import MotionMapConsumer

        return [functools.partial(MotionMapConsumer, self.config)]


class IFramesStage(PassStage):
    name: ClassVar[str] = "iframes"
    title: ClassVar[str] = "I-frames as JPEG (in the decode pass)"
    writes: ClassVar[tuple[str, ...]] = ("keyframes",)
    enabled_by: ClassVar[str] = "--iframes or --iframes-only"
    streams: ClassVar[dict] = {"keyframes": "keyframes"}

    def __init__(self, max_side: int, quality: int) -> None:
        super().__init__()
        self.max_side = max_side
        self.quality = quality

    @staticmethod
    def add_flags(group) -> None:
        add_flag(group, "iframes", default=False, action="store_true",
                 help="write every I-frame as JPEG into `keyframes` (kind 'iframe')")
        add_flag(group, "iframe-max-side", type=int, default=0,
                 help="downscale I-frame JPEGs so the longer side is at most this many pixels (0: keep the size)")

    @classmethod
    def configure(cls, options, env) -> IFramesStage | None:
        if options.iframe_max_side < 0:
            raise ConfigError(f"--iframe-max-side must be >= 0, got {options.iframe_max_side}")
        if not (options.iframes or env.keyframes_only):
            return None
        return cls(options.iframe_max_side, env.jpeg_quality)

    def settings(self) -> str:
        return f"max_side={self.max_side} quality={self.quality}"

    def frame_consumers(self):
        from reelbeam.transforms.motion import IFrameConsumer

        return [functools.partial(IFrameConsumer, self.max_side, self.quality)]
