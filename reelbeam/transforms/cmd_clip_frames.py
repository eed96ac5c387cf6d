"""Clip frames for the CMD video embedding, fetched by seeking instead of a second full decode.

The reference's clip positions depend on the frame count, which the streaming decode pass knows
only at its end, so the (at most 10 x 16) frames a video's clips need are fetched afterwards:

- PyAV (`iter_frames`, the default): for each needed frame in order, seek to the codec keyframe
  at or before it when that keyframe lies past the current decode position, else decode forward;
  frames are identified by PTS through the frame index of the first pass (the `frames` table:
  per-frame `pts` and `is_keyframe`, in presentation order), as
  `reelbeam.transforms.keyframes.extract_keyframes` does. Without it, `packet_index` builds the
  same index from the packets (demuxing only, no decoding).
- decord (`iter_frames_decord`): `VideoReader.get_batch`, as the reference reads its frames;
  an optional extra (`pip install reelbeam[decord]`), kept for comparison. It was 1.3-2.5x slower
  on every file measured and fails on 90/270-degree rotated videos (docs/cmd.md).

Frame indices are the project's: 0-based presentation order of the decoded frames, equal to
`frames.frame_idx`. Frames are returned in display orientation (the stream's rotation applied,
as keyframes and TransNetV2's frames are); decord 0.6.0 rotates 180-degree videos the same way
and cannot read 90/270-degree ones, so for every video the reference can read the pixels are the
same (and PyAV's RGB conversion equals decord's pixel for pixel). Every frame is passed through
`transform` (default `resize_clip_frame`: short side 128) right after decoding, so no
full-resolution frame outlives its conversion.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from reelbeam.models.r2plus1d import resize_clip_frame
from reelbeam.schemas.records import VideoRef
from reelbeam.transforms.media import SWS_THREADS, display_orientation, opened_video, seek_frames

Transform = Callable[[np.ndarray], np.ndarray]
METHODS = ("pyav", "decord")


@dataclasses.dataclass(frozen=True)
class FrameIndex:
    """Per-frame PTS (stream time_base units, None where the frame had none) and keyframe flags
    of one video, in presentation order: the `frames` table's `pts` and `is_keyframe` columns."""

    pts: np.ndarray  # object [N]: int or None
    is_keyframe: np.ndarray  # bool [N]

    def __post_init__(self) -> None:
        if len(self.pts) != len(self.is_keyframe):
            raise ValueError(
                f"pts ({len(self.pts)}) and is_keyframe ({len(self.is_keyframe)}) differ in length"
            )

    def __len__(self) -> int:
        return len(self.pts)

    @classmethod
    def of(cls, pts: Sequence[int | None], is_keyframe: Sequence[bool]) -> FrameIndex:
        return cls(np.asarray(list(pts), dtype=object), np.asarray(list(is_keyframe), dtype=bool))

    @classmethod
    def from_frames_table(cls, table) -> FrameIndex:
        """From one video's rows of the `frames` table (a pyarrow Table, in any row order)."""
        order = np.argsort(
            np.asarray(table.column("frame_idx").to_numpy(zero_copy_only=False)), kind="stable"
        )
        pts = table.column("pts").to_pylist()
        key = table.column("is_keyframe").to_pylist()
        return cls.of([pts[i] for i in order], [bool(key[i]) for i in order])


def _ref(video: VideoRef | str) -> VideoRef:
    return video if isinstance(video, VideoRef) else VideoRef(video, video, None)


def packet_index(video: VideoRef | str) -> FrameIndex:
    """The frame index from the container's packets, without decoding: packet PTS sorted into
    presentation order, packet keyframe flags; packets the demuxer marks to discard (edit lists)
    are left out, as the decoder drops their frames. Equals the decode pass's index when every
    kept packet decodes to one frame (true of well-formed files); the `frames` table is exact."""
    pts: list = []
    key: list = []
    with opened_video(_ref(video).uri) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            if packet.size == 0 or packet.is_discard:  # the demuxer's flush packet; edit-list cuts
                continue
            pts.append(packet.pts)
            key.append(bool(packet.is_keyframe))
    if any(p is None for p in pts):
        # No PTS to order by: decode order it is (frames are then found by counting).
        return FrameIndex.of(pts, key)
    order = sorted(range(len(pts)), key=lambda i: pts[i])
    return FrameIndex.of([pts[i] for i in order], [key[i] for i in order])


def _validate(indices: Sequence[int], n: int | None) -> list[int]:
    wanted = sorted({int(i) for i in indices})
    if wanted and wanted[0] < 0:
        raise ValueError(f"frame indices must be >= 0, got {wanted[0]}")
    if n is not None and wanted and wanted[-1] >= n:
        raise ValueError(f"frame {wanted[-1]} is past the end of the video ({n} frames)")
    return wanted


def _rgb(frame) -> np.ndarray:
    return display_orientation(frame.to_ndarray(format="rgb24", threads=SWS_THREADS), frame)


def iter_frames(
    video: VideoRef | str,
    indices: Sequence[int],
    index: FrameIndex | None = None,
    transform: Transform | None = resize_clip_frame,
    skip_unneeded: bool = True,
) -> Iterator[tuple[int, np.ndarray]]:
    """(frame index, transform(RGB uint8 [H, W, 3] in display orientation)) for each distinct
    index in `indices`, in increasing order, by PyAV seeks (see the module docstring).

    `index`: the first pass's frame index (exact); None builds one from the packets.
    `skip_unneeded`: let the decoder drop non-reference frames that are not wanted (see
    `_decode`); only where every frame of the index has a PTS, since frames are then found by it.
    Raises ValueError for indices outside the video or frames the stream does not deliver, and
    PyAV / OS errors for unreadable files (the caller's failures row).
    """
    ref = _ref(video)
    if index is None:
        index = packet_index(ref)
    wanted = _validate(indices, len(index))
    transform = transform or (lambda rgb: rgb)
    pending = set(wanted)
    with opened_video(ref.uri) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for idx, frame in seek_frames(container, stream, index.pts, index.is_keyframe, pending, skip_unneeded):
            yield idx, transform(_rgb(frame))
    pts_to_index = {p: i for i, p in enumerate(index.pts) if p is not None}
    if pending:
        # A seek that landed past its keyframe (a demuxer with a coarse index) or a stream that
        # ended early: decode what is left straight through from the start, frames by PTS or count.
        last = max(pending)
        with opened_video(ref.uri) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for i, frame in enumerate(container.decode(stream)):
                idx = pts_to_index.get(frame.pts, i) if frame.pts is not None else i
                if idx in pending:
                    pending.discard(idx)
                    yield idx, transform(_rgb(frame))
                if idx >= last or not pending:
                    break
    if pending:
        raise ValueError(
            f"{len(pending)} of {len(wanted)} clip frames not found in {ref.uri} (first missing: frame "
            f"{min(pending)} of {len(index)}); the file does not match its frame index"
        )


def iter_frames_decord(
    video: VideoRef | str,
    indices: Sequence[int],
    index: FrameIndex | None = None,
    transform: Transform | None = resize_clip_frame,
    batch: int = 16,
) -> Iterator[tuple[int, np.ndarray]]:
    """As `iter_frames`, through decord's `VideoReader.get_batch` (`batch` frames a call, so at
    most one clip of full-resolution frames is held). decord reads non-local URLs whole into
    memory; it rotates 180-degree videos itself and fails on 90/270-degree ones (raised here as
    ValueError). `index`, when given, is only checked against decord's frame count."""
    try:
        import decord
    except ImportError as e:  # an optional extra
        raise ImportError("decord is not installed: pip install 'reelbeam[decord]'") from e
    ref = _ref(video)
    transform = transform or (lambda rgb: rgb)
    uri = ref.uri.removeprefix("file://")
    handle = None
    if "://" in uri:
        import fsspec

        handle = fsspec.open(uri, "rb").open()
    try:
        reader = decord.VideoReader(handle if handle is not None else uri, ctx=decord.cpu(0))
        n = len(reader)
        if index is not None and len(index) != n:
            raise ValueError(f"decord counts {n} frames in {ref.uri}, the frame index {len(index)}")
        wanted = _validate(indices, n)
        for i in range(0, len(wanted), batch):
            chunk = wanted[i : i + batch]
            try:
                frames = reader.get_batch(chunk).asnumpy()
            except decord.DECORDError as e:
                raise ValueError(
                    f"decord cannot read frames of {ref.uri} (a 90/270-degree rotated video?): {e}"
                ) from e
            for idx, rgb in zip(chunk, frames):
                yield idx, transform(rgb)
    finally:
        if handle is not None:
            handle.close()


def fetch_frames(
    video: VideoRef | str,
    indices: Sequence[int],
    index: FrameIndex | None = None,
    method: str = "pyav",
    transform: Transform | None = resize_clip_frame,
) -> np.ndarray:
    """The frames at `indices` (any order, repeats allowed, e.g. a video's 10 x 16 clip indices
    flattened) as one uint8 array [len(indices), h, w, 3] in that order. Holds every distinct
    frame once, after `transform`; for many clips use `iter_clips`."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    fetch = iter_frames if method == "pyav" else iter_frames_decord
    got = dict(fetch(video, indices, index, transform))
    return np.stack([got[int(i)] for i in indices])


def iter_clips(
    video: VideoRef | str,
    clips: np.ndarray,
    index: FrameIndex | None = None,
    method: str = "pyav",
    transform: Transform | None = resize_clip_frame,
) -> Iterator[tuple[int, np.ndarray]]:
    """(clip number, uint8 [T, h, w, 3]) for each row of `clips` (int [K, T] frame indices, from
    `video_clip_indices` or `shot_clip_indices`), each as soon as its last frame is decoded.
    A frame is kept only while a clip still waiting for it needs it, so memory stays at the clips
    in progress (a video's shot clips can number thousands; frame 0, the reference's padding, is
    kept until the last clip that uses it)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    clips = np.asarray(clips, dtype=np.int64).reshape(len(clips), -1)
    users: dict[int, list[int]] = {}
    for c, row in enumerate(clips):
        for f in set(row.tolist()):
            users.setdefault(f, []).append(c)
    waiting = [len(set(row.tolist())) for row in clips]
    refs = {f: len(cs) for f, cs in users.items()}
    held: dict[int, np.ndarray] = {}
    fetch = iter_frames if method == "pyav" else iter_frames_decord
    for f, frame in fetch(video, sorted(users), index, transform):
        held[f] = frame
        for c in users[f]:
            waiting[c] -= 1
            if waiting[c] == 0:
                yield c, np.stack([held[int(i)] for i in clips[c]])
                for g in set(clips[c].tolist()):
                    refs[g] -= 1
                    if refs[g] == 0:
                        del held[g]
