"""Tiny synthetic videos made with PyAV, with shots and cuts at known frames.

Each shot is a textured scene (a smooth colour field plus a few moving rectangles) with its own
palette and seed, so content detectors and TransNetV2 both see hard cuts where one shot ends and
the next begins. Shared by the tests and the benchmarks.
"""

from __future__ import annotations

import fractions
import os
from collections.abc import Iterable, Sequence

import av
import numpy as np


def scene_frame(seed: int, t: int, width: int, height: int) -> np.ndarray:
    """RGB uint8 [H, W, 3]: frame t of scene `seed` (slow motion inside the scene)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, 3)
    accent = rng.integers(0, 256, 3)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi)
    field = 0.5 + 0.5 * np.sin(xx / (width / rng.uniform(1.5, 4)) + yy / (height / rng.uniform(1, 3)) + phase + 0.05 * t)
    img = (base[None, None, :] * field[..., None] + accent[None, None, :] * (1 - field[..., None])).astype(np.float32)
    for k in range(3):
        w, h = int(width * rng.uniform(0.1, 0.3)), int(height * rng.uniform(0.1, 0.3))
        x0 = int((rng.uniform(0, width - w) + t * rng.uniform(-2, 2)) % max(width - w, 1))
        y0 = int((rng.uniform(0, height - h) + t * rng.uniform(-1, 1)) % max(height - h, 1))
        img[y0 : y0 + h, x0 : x0 + w] = rng.integers(0, 256, 3)
    return np.clip(img, 0, 255).astype(np.uint8)


def shot_frames(shot_lengths: Sequence[int], width: int, height: int, seed: int = 0) -> Iterable[np.ndarray]:
    for s, n in enumerate(shot_lengths):
        for t in range(n):
            yield scene_frame(seed * 1000 + s, t, width, height)


def cut_frames(shot_lengths: Sequence[int]) -> list[int]:
    """The frames at which shots 1..k start."""
    return list(np.cumsum(shot_lengths)[:-1].astype(int))


def write_video(
    path: str,
    frames: Iterable[np.ndarray],
    fps: int = 25,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    pts: Sequence[int] | None = None,
    time_base: fractions.Fraction | None = None,
    rotation: int | None = None,
    gop: int | None = None,
    options: dict | None = None,
    container_options: dict | None = None,
) -> str:
    """Encode RGB frames to `path`. `pts` (in `time_base` units) makes variable frame rate;
    `options` go to the encoder, `container_options` to the muxer (e.g. movflags=faststart)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    frames = iter(frames)
    first = next(frames)
    height, width = first.shape[:2]
    with av.open(path, mode="w", options=container_options or {}) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if time_base is not None:
            stream.time_base = time_base
            stream.codec_context.time_base = time_base
        if gop is not None:
            stream.codec_context.gop_size = gop
        opts = {"preset": "ultrafast"} if codec == "libx264" else {}
        opts.update(options or {})
        stream.options = opts
        if rotation:
            stream.set_display_rotation(rotation)
        for i, img in enumerate(_chain(first, frames)):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            if pts is not None:
                frame.pts = int(pts[i])
                frame.time_base = time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _chain(first, rest):
    yield first
    yield from rest


def make_shot_video(
    path: str,
    shot_lengths: Sequence[int],
    width: int = 160,
    height: int = 90,
    fps: int = 25,
    seed: int = 1,
    **kwargs,
) -> str:
    return write_video(path, shot_frames(shot_lengths, width, height, seed), fps=fps, **kwargs)


def write_audio_only(path: str, seconds: float = 0.5) -> str:
    with av.open(path, mode="w") as container:
        stream = container.add_stream("aac", rate=16000)
        samples = int(16000 * seconds)
        data = (np.sin(np.arange(samples) / 10.0) * 0.2).astype(np.float32)[None, :]
        for start in range(0, samples, 1024):
            frame = av.AudioFrame.from_ndarray(data[:, start : start + 1024], format="fltp", layout="mono")
            frame.sample_rate = 16000
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_png(path: str, width: int = 64, height: int = 48) -> str:
    av.VideoFrame.from_ndarray(scene_frame(1, 0, width, height), format="rgb24").to_image().save(path, format="PNG")
    return path


def bad_inputs(folder: str, good_video: str) -> dict[str, str]:
    """Broken files with video extensions: name -> expected error_type in `failures`."""
    os.makedirs(folder, exist_ok=True)
    expected = {}

    def put(name: str, data: bytes, error_type: str) -> None:
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)
        expected[name] = error_type

    put("zero_bytes.mp4", b"", "empty_file")
    put("random_bytes.mp4", np.random.default_rng(7).integers(0, 256, 50_000, dtype=np.uint8).tobytes(), "invalid_data")
    put("notes.mkv", b"this is a text file, not a video\n" * 20, "invalid_data")
    data = open(good_video, "rb").read()
    # moov at the end (no faststart): cutting the tail loses the index.
    put("truncated.mp4", data[: len(data) // 2], "invalid_data")
    write_audio_only(os.path.join(folder, "audio_only.mp4"))
    expected["audio_only.mp4"] = "no_video_stream"
    png = write_png(os.path.join(folder, "still.png"))
    os.replace(png, os.path.join(folder, "still_image.mp4"))
    expected["still_image.mp4"] = "not_a_video"
    return expected


def pan_frames(n, step, width=192, height=108):
    """n frames of a blocky random texture panning left by `step` pixels per frame (forward
    motion (-step, 0)), for motion-vector tests."""
    rng = np.random.default_rng(0)
    # Smooth texture (block-wise random, upsampled) so the encoder finds the true motion.
    big = rng.integers(0, 256, ((height + 15) // 8, (width + n * step + 15) // 8, 3), dtype=np.uint8)
    big = np.kron(big, np.ones((8, 8, 1), np.uint8))[:height]
    for t in range(n):
        yield np.ascontiguousarray(big[:, t * step : t * step + width])


def write_video_with_audio(
    path: str,
    frames: Sequence[np.ndarray],
    fps: int = 25,
    gop: int = 12,
    sample_rate: int = 16000,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    audio_codec: str = "aac",
    format: str | None = None,
) -> str:
    """Video plus a mono sine as long as it, a keyframe every `gop` frames. The default is H.264
    (2 B-frames) and AAC; other encoders PyAV has (mpeg4, mjpeg, ffv1, svq1, qtrle, png, flv, ...,
    pcm_*, adpcm_*) make sources in other codecs, in the container `format` (else the extension's)."""
    height, width = frames[0].shape[:2]
    with av.open(path, "w", format=format) as out:
        v = out.add_stream(codec, rate=fps)
        v.width, v.height, v.pix_fmt = width, height, pix_fmt
        if codec == "libx264":
            v.options = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0", "bf": "2", "preset": "ultrafast"}
        else:
            v.codec_context.gop_size = gop
        a = out.add_stream(audio_codec, rate=sample_rate)
        a.layout = "mono"
        for i, img in enumerate(frames):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts = i
            for p in v.encode(f):
                out.mux(p)
        for p in v.encode(None):
            out.mux(p)
        total = int(len(frames) / fps * sample_rate)
        for i in range(0, total, 1024):
            n = min(1024, total - i)
            s = (0.3 * np.sin(2 * np.pi * 440 * np.arange(i, i + n) / sample_rate)).astype(np.float32)[None]
            f = av.AudioFrame.from_ndarray(s, format="fltp", layout="mono")
            f.sample_rate, f.pts = sample_rate, i
            for p in a.encode(f):
                out.mux(p)
        for p in a.encode(None):
            out.mux(p)
    return path


def numbered_frames(n: int, width: int = 160, height: int = 96, bits: int = 8) -> list[np.ndarray]:
    """Frame i shows i in binary as `bits` black/white vertical bands (robust to lossy coding),
    so a decoded frame names its index."""
    band = width // bits
    out = []
    for i in range(n):
        img = np.zeros((height, width, 3), np.uint8)
        for b in range(bits):
            if (i >> b) & 1:
                img[:, b * band : (b + 1) * band] = 255
        out.append(img)
    return out


def frame_number(img: np.ndarray, bits: int = 8) -> int:
    band = img.shape[1] // bits
    return sum(1 << b for b in range(bits) if img[:, b * band + band // 4 : (b + 1) * band - band // 4].mean() > 128)


# ------------------------------------------------------------------------------------------------
# Still pictures, camera set-ups and gradual transitions (shot-rule and scene-grouping tests)

SINTEL_SAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "samples", "sintel_trailer_30s.mp4")


def sample_stills(indices: Sequence[int], path: str = SINTEL_SAMPLE) -> dict[int, np.ndarray]:
    """Frames of the bundled (CC-BY) Sintel sample as RGB, letterbox bars removed: natural pictures
    of a few film locations."""
    out = {}
    with av.open(path) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i in indices:
                rgb = f.to_ndarray(format="rgb24")
                rows = np.flatnonzero(rgb.mean(axis=(1, 2)) > 12)
                out[i] = np.ascontiguousarray(rgb[rows[0] : rows[-1] + 1])
            if i >= max(indices):
                break
    return out


def camera_view(picture: np.ndarray, x: float, y: float, zoom: float, width: int, height: int) -> np.ndarray:
    """One camera set-up on a still: the window of 1/zoom of the picture's size whose top-left corner
    is at (x, y) in fractions of the free room, resized to width x height."""
    h, w = picture.shape[:2]
    cw, ch = int(w / zoom), int(h / zoom)
    x0, y0 = int((w - cw) * x), int((h - ch) * y)
    crop = picture[y0 : y0 + ch, x0 : x0 + cw]
    return av.VideoFrame.from_ndarray(np.ascontiguousarray(crop), format="rgb24").reformat(width, height, "rgb24", interpolation="AREA").to_ndarray()


def dissolve_frames(a: np.ndarray, b: np.ndarray, n: int) -> list[np.ndarray]:
    """The n frames of a cross-dissolve from picture a to picture b (neither end repeated)."""
    return [np.clip(a * (1 - w) + b * w, 0, 255).astype(np.uint8) for w in np.arange(1, n + 1) / (n + 1)]


def gain_frames(a: np.ndarray, gains: Sequence[float]) -> list[np.ndarray]:
    """Picture a at each brightness gain in turn (a brightness ramp: the same picture, no shot change)."""
    return [np.clip(a.astype(np.float32) * g, 0, 255).astype(np.uint8) for g in gains]
