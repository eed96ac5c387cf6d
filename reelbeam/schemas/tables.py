"""One pyarrow schema per output table: the contract between stages and with users.

Every table is written with its schema from here (never with types inferred from the data), as the
Delta Lake table `OUTPUT/<table>/`. The Parquet key-value metadata carries `reelbeam.table` and
`reelbeam.schema_version`; each field carries a `doc` entry with its meaning and unit.

Conventions:
- times are seconds as float64, taken from the stream's PTS (so variable frame rate is right), and
  always sit beside a 0-based frame index (`*_frame`, `frame_idx`) counted in decode order of
  presentation;
- frame ranges are inclusive on both ends (`end_frame` is the last frame of the span);
- ids are deterministic strings (see `reelbeam.transforms.listing.make_video_id`), so re-runs
  write identical rows.

Bump SCHEMA_VERSION when a field changes meaning or type; adding a nullable field is compatible.
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = "1"

# Embedding widths of the published models, fixed in the schema so that readers get
# FixedSizeList columns they can turn into 2-D arrays without a copy.
SHOT_EMBEDDING_DIM = 2048  # ResNet-50 avgpool (BaSSL shot encoder)
CLIP_EMBEDDING_DIM = 512  # CLIP ViT-B/32 projection (the CLIP-It reference's model)
VIDEO_EMBEDDING_DIM = 2048  # R(2+1)D-26 global average pool (CMD)
VIDEO_EMBEDDING_GRANULARITIES = ("video", "shot")  # `video_embeddings.granularity`


def _list(value_type: pa.DataType, size: int = -1) -> pa.DataType:
    # Parquet names list items "element"; naming them so here makes schemas round-trip exactly.
    return pa.list_(pa.field("element", value_type), size)


def _f(name: str, type_: pa.DataType, doc: str, nullable: bool = True) -> pa.Field:
    return pa.field(name, type_, nullable=nullable, metadata={"doc": doc})


def _schema(table: str, fields: list[pa.Field], doc: str) -> pa.Schema:
    return pa.schema(
        fields,
        metadata={
            "reelbeam.table": table,
            "reelbeam.schema_version": SCHEMA_VERSION,
            "doc": doc,
        },
    )


_VIDEO_ID = _f("video_id", pa.string(), "deterministic id: sha1 of `videos.uri` (canonical) and size in bytes, 16 hex chars", False)

VIDEOS = _schema(
    "videos",
    [
        _VIDEO_ID,
        _f("uri", pa.string(), "input location, canonical: a local file's absolute path (symlinks kept), other URLs as given", False),
        _f("size_bytes", pa.int64(), "file size in bytes"),
        _f("container", pa.string(), "demuxer name, e.g. 'mov,mp4,m4a,3gp,3g2,mj2'"),
        _f("codec", pa.string(), "video codec name, e.g. 'h264'"),
        _f("profile", pa.string(), "codec profile, e.g. 'High'"),
        _f("pix_fmt", pa.string(), "decoded pixel format, e.g. 'yuv420p'"),
        _f("bit_depth", pa.int16(), "bits per luma sample"),
        _f("width", pa.int32(), "coded picture width in pixels, before rotation"),
        _f("height", pa.int32(), "coded picture height in pixels, before rotation"),
        _f("rotation", pa.int16(), "display rotation in degrees counter-clockwise (0, 90, 180, 270) from the display matrix"),
        _f("sample_aspect_ratio", pa.string(), "pixel aspect ratio as 'num:den'"),
        _f("display_aspect_ratio", pa.string(), "display aspect ratio as 'num:den'"),
        _f("avg_fps", pa.float64(), "average frame rate: decoded frames / PTS duration, frames per second (keyframes_only: the stream's average rate)"),
        _f("nominal_fps", pa.float64(), "container's nominal (r_frame_rate) frame rate, frames per second"),
        _f("frame_count", pa.int64(), "frames actually decoded"),
        _f("declared_frame_count", pa.int64(), "frame count the container declares (0 when unknown)"),
        _f("duration_s", pa.float64(), "seconds from the first frame's PTS to the end of the last frame (keyframes_only: the stream's duration, else the container's)"),
        _f("start_time_s", pa.float64(), "PTS of the first decoded frame, seconds"),
        _f("bitrate", pa.int64(), "container bit rate, bits per second"),
        _f("has_audio", pa.bool_(), "the container has at least one audio stream"),
        _f("motion_vectors", pa.string(), "'available', 'unavailable' (codec exports none) or 'off'"),
        _f("keyframes_only", pa.bool_(), "only keyframes were decoded (--iframes-only); frame_count counts them, declared_frame_count is the video's frames when the container knows"),
        _f("shot_detector", pa.string(), "detector that produced this video's shots ('none' when off)"),
        _f("num_shots", pa.int32(), "rows in `shots` for this video"),
        _f("num_scenes", pa.int32(), "rows in `scenes` for this video when the decode pass made them (--scenes histogram); null otherwise: scenes made after the pass (the default grouping, BaSSL) are counted in `scenes` itself"),
        _f("status", pa.string(), "'ok'; failed videos are in `failures` instead", False),
        _f("warnings", _list(pa.string()), "non-fatal problems seen while processing"),
        _f("decode_seconds", pa.float64(), "wall time from opening the file to the end of its decode pass, seconds (includes stages the runner fuses into that pass)"),
        _f("reelbeam_version", pa.string(), "package version that wrote the row"),
    ],
    "one row per successfully processed input video",
)

FAILURES = _schema(
    "failures",
    [
        _f("video_id", pa.string(), "deterministic id (as in `videos`); derived from the URI alone when the size is unknown", False),
        _f("uri", pa.string(), "input location as listed", False),
        _f("stage", pa.string(), "stage that failed: list, decode, transition_model, assemble, ...", False),
        _f("error_type", pa.string(), "stable error class, e.g. 'no_video_stream', 'invalid_data', 'empty_file'", False),
        _f("message", pa.string(), "human readable reason"),
        _f("time", pa.timestamp("us", tz="UTC"), "when the failure was recorded"),
        _f("reelbeam_version", pa.string(), "package version that wrote the row"),
    ],
    "one row per input video that could not be processed; with `videos`, every input is accounted for",
)

FRAMES = _schema(
    "frames",
    [
        _VIDEO_ID,
        _f("frame_idx", pa.int32(), "0-based index in presentation order", False),
        _f("pts", pa.int64(), "presentation timestamp in stream time_base units"),
        _f("pts_time", pa.float64(), "presentation time, seconds"),
        _f("is_keyframe", pa.bool_(), "the decoder flagged the frame as a keyframe"),
        _f("pict_type", pa.string(), "picture type: 'I', 'P', 'B', ..."),
        _f("transition_prob", pa.float32(), "TransNetV2 single-frame shot-transition probability (null if not run)"),
        _f("transnetv2_many_hot", pa.float32(), "TransNetV2 many-hot head: probability that the frame lies inside a transition, gradual ones included (null if not run)"),
        _f("content_delta", pa.float32(), "LGSS HSV content delta to the previous frame (null if not run)"),
        _f("mv_count", pa.int32(), "motion vectors exported for this frame (null: unavailable)"),
        _f("mv_mean_mag", pa.float32(), "mean motion-vector magnitude, pixels (null: unavailable)"),
        _f("mv_max_mag", pa.float32(), "max motion-vector magnitude, pixels (null: unavailable)"),
        _f("mv_moving_fraction", pa.float32(), "fraction of the frame's area covered by blocks that move"),
        _f("mv_mean_dx", pa.float32(), "mean horizontal motion (dst - src), pixels; +x is right"),
        _f("mv_mean_dy", pa.float32(), "mean vertical motion (dst - src), pixels; +y is down"),
        _f("mv_direction_hist", _list(pa.int32(), 8), "moving blocks per 45-degree sector, sector 0 centred on +x, counter-clockwise on screen"),
    ],
    "one row per decoded frame",
)

SHOTS = _schema(
    "shots",
    [
        _VIDEO_ID,
        _f("shot_idx", pa.int32(), "0-based shot index in the video", False),
        _f("shot_id", pa.string(), "deterministic id from video_id and frame span", False),
        _f("start_frame", pa.int32(), "first frame, inclusive"),
        _f("end_frame", pa.int32(), "last frame, inclusive"),
        _f("start_time", pa.float64(), "PTS of the first frame, seconds"),
        _f("end_time", pa.float64(), "end of the last frame (its PTS plus its duration), seconds"),
        _f("num_frames", pa.int32(), "end_frame - start_frame + 1"),
        _f("detector", pa.string(), "'transnetv2', 'lgss' or 'none'"),
        _f("max_transition_prob", pa.float32(), "TransNetV2: highest transition probability in the transition that ends the shot"),
        _f("motion_score", pa.float32(), "mean of the shot's per-frame mean motion-vector magnitudes, pixels (null: unavailable)"),
        _f("transition_kind", pa.string(), "the transition into the shot: 'cut', 'dissolve', 'fade', 'wipe' or 'other' (null: the first shot, "
           "or a rule that does not tell: --shot-rule reference, LGSS)"),
        _f("transition_first_frame", pa.int32(), "first frame of the transition into the shot (a cut before frame s: s - 1); null as transition_kind"),
        _f("transition_last_frame", pa.int32(), "last frame of the transition into the shot (a cut: the shot's first frame); null as transition_kind"),
    ],
    "shots partition each video: no gap, no overlap, first starts at frame 0, last ends at the last frame",
)

KEYFRAMES = _schema(
    "keyframes",
    [
        _VIDEO_ID,
        _f("kind", pa.string(), "'iframe' (codec keyframe) or 'shot' (shot keyframe)", False),
        _f("frame_idx", pa.int32(), "0-based frame index", False),
        _f("pts_time", pa.float64(), "presentation time, seconds"),
        _f("shot_id", pa.string(), "shot the keyframe belongs to (kind 'shot'), else null"),
        _f("shot_idx", pa.int32(), "shot index (kind 'shot'), else null"),
        _f("keyframe_idx", pa.int8(), "0 first, 1 middle, 2 last frame of the shot (kind 'shot'), else null; of the shot without the frames of a gradual transition into or out of it (the shots' transition columns) unless --keep-transition-frames"),
        _f("width", pa.int32(), "JPEG width in pixels"),
        _f("height", pa.int32(), "JPEG height in pixels"),
        _f("jpeg", pa.binary(), "JPEG-encoded RGB image, in display orientation (the video's rotation applied, as players show it)"),
    ],
    "keyframes as JPEG bytes; a reshard point for the shot encoder",
)

MOTION = _schema(
    "motion",
    [
        _VIDEO_ID,
        _f("frame_idx", pa.int32(), "0-based frame index", False),
        _f("pts_time", pa.float64(), "presentation time, seconds"),
        _f("pict_type", pa.string(), "picture type of the frame"),
        _f("src_width", pa.int32(), "decoded frame width, pixels"),
        _f("src_height", pa.int32(), "decoded frame height, pixels"),
        _f("grid_height", pa.int32(), "map rows"),
        _f("grid_width", pa.int32(), "map columns"),
        _f("dtype", pa.string(), "'int8' (value x 127) or 'float16' (value); values are clamp(dst - src, -10, 10) / 10"),
        _f("data", pa.binary(), "C-order array of shape [2, grid_height, grid_width], channel 0 = x, 1 = y"),
    ],
    "CMD-style 2-channel motion-vector maps for sampled frames",
)

SHOT_EMBEDDINGS = _schema(
    "shot_embeddings",
    [
        _VIDEO_ID,
        _f("shot_id", pa.string(), "shot id as in `shots`", False),
        _f("shot_idx", pa.int32(), "shot index as in `shots`"),
        _f("model", pa.string(), "encoder and checkpoint file: `bassl-resnet50:<file>` or `scrl-resnet50:<file>`"),
        _f(
            "embedding",
            _list(pa.float32(), SHOT_EMBEDDING_DIM),
            "ResNet-50 avgpool feature: BaSSL, the mean over the 3 keyframes; SCRL, one forward of the 3 keyframes fused on channels",
        ),
    ],
    "one 2048-d embedding per shot and encoder (filter on `model` when several encoders ran)",
)

BOUNDARIES = _schema(
    "boundaries",
    [
        _VIDEO_ID,
        _f("shot_idx", pa.int32(), "shot index", False),
        _f("shot_id", pa.string(), "shot id"),
        _f("p_boundary", pa.float32(), "probability that a scene ends after this shot"),
        _f("model", pa.string(), "scorer name and checkpoint"),
    ],
    "scene-boundary probability per shot",
)

SCENES = _schema(
    "scenes",
    [
        _VIDEO_ID,
        _f("scene_idx", pa.int32(), "0-based scene index", False),
        _f("scene_id", pa.string(), "deterministic id from video_id and frame span", False),
        _f("first_shot_idx", pa.int32(), "first shot, inclusive"),
        _f("last_shot_idx", pa.int32(), "last shot, inclusive"),
        _f("start_frame", pa.int32(), "first frame, inclusive"),
        _f("end_frame", pa.int32(), "last frame, inclusive"),
        _f("start_time", pa.float64(), "seconds"),
        _f("end_time", pa.float64(), "seconds"),
        _f("num_shots", pa.int32(), "shots in the scene"),
        _f("p_boundary_end", pa.float32(), "BaSSL: p(boundary) after the scene's last shot; grouping: 1 - the mean similarity between the shots on either side of that boundary (4 each); histogram: 1 - the highest colour similarity across it; null for the last scene"),
        _f("method", pa.string(), "what made the row: 'bassl(threshold=...)', or the training-free method with its settings, 'grouping(...)' (the default) or 'histogram(...)'"),
        _f("transition_kind", pa.string(), "the transition into the scene, as its first shot's `shots.transition_kind` (the scene boundary's span: start_frame stays the first shot's start, so a boundary on a gradual transition lies between transition_first_frame and transition_last_frame); null for the first scene, under --shot-rule reference and LGSS"),
        _f("transition_first_frame", pa.int32(), "first frame of the transition into the scene (its first shot's); null as transition_kind"),
        _f("transition_last_frame", pa.int32(), "last frame of the transition into the scene (its first shot's); null as transition_kind"),
    ],
    "scenes as runs of consecutive shots",
)

SCENE_CLIPS = _schema(
    "scene_clips",
    [
        _VIDEO_ID,
        _f("scene_idx", pa.int32(), "scene index as in `scenes`", False),
        _f("scene_id", pa.string(), "scene id as in `scenes`", False),
        _f("uri", pa.string(), "the clip file: OUTPUT/clips/<video_id>/scene_<idx>.mp4 (a stream copy MP4 cannot carry: .mkv, .mov or .avi)", False),
        _f("mode", pa.string(), "'stream_copy' (packets copied; ends snapped to what the codec allows) or 'reencode' (exact cuts, H.264)"),
        _f("start_frame", pa.int32(), "the clip's first frame as asked, inclusive: the scene's first frame, or with a gradual transition into the scene (`scenes.transition_kind`) the first frame after it unless --keep-transition-frames"),
        _f("end_frame", pa.int32(), "the clip's last frame as asked, inclusive: the scene's last frame, or the last frame before a gradual transition out of it (the next scene's) unless --keep-transition-frames"),
        _f("actual_start_frame", pa.int32(), "first frame the clip shows: the codec keyframe at or before start_frame when stream-copied"),
        _f("actual_end_frame", pa.int32(), "last frame the clip shows (stream copy may add frames the scene's last B-frames reference)"),
        _f("actual_start_time", pa.float64(), "PTS of actual_start_frame in the source, seconds"),
        _f("actual_end_time", pa.float64(), "PTS of actual_end_frame in the source, seconds"),
        _f("start_snapped", pa.bool_(), "the clip starts before the scene (actual_start_frame != start_frame)"),
        _f("end_snapped", pa.bool_(), "the clip ends after the scene (actual_end_frame != end_frame)"),
        _f("num_frames", pa.int32(), "video frames in the clip"),
        _f("has_audio", pa.bool_(), "the clip has the first audio stream (packets starting inside its span; re-encoded to AAC where its container cannot carry them)"),
        _f("size_bytes", pa.int64(), "clip file size"),
    ],
    "one row per scene clip written by --save-scene-clips",
)

FRAME_EMBEDDINGS = _schema(
    "frame_embeddings",
    [
        _VIDEO_ID,
        _f("frame_idx", pa.int32(), "0-based frame index of the sampled frame", False),
        _f("pts_time", pa.float64(), "presentation time, seconds"),
        _f("model", pa.string(), "CLIP model: the Hugging Face id, or the folder's name and a short hash of its files"),
        _f("embedding", _list(pa.float32(), CLIP_EMBEDDING_DIM), "CLIP image feature (the projection output, 512-d for ViT-B/32)"),
        _f("normalised", pa.bool_(), "whether `embedding` is L2-normalised (false: raw, as the model outputs it)"),
    ],
    "CLIP image features of the sampled frames (every 15th frame by default); a reshard point for the scorers",
)

FRAME_SCORES = _schema(
    "frame_scores",
    [
        _VIDEO_ID,
        _f("frame_idx", pa.int32(), "0-based frame index of the sampled frame", False),
        _f("pts_time", pa.float64(), "presentation time, seconds"),
        _f("query_id", pa.string(), "sha1 of the query text, 16 hex chars; 'video' for the query-less importance", False),
        _f("query", pa.string(), "the language query (empty for the query-less importance)"),
        _f("score", pa.float32(), "clip: cosine similarity of frame and text features in [-1, 1]; clipit: importance in (0, 1)"),
        _f("scorer", pa.string(), "'clip' (CLIP weights alone) or 'clipit' (the CLIP-It scoring transformer)", False),
        _f("model", pa.string(), "the scorer's weights: CLIP model, and the CLIP-It checkpoint's name and short hash"),
    ],
    "language-guided frame scores, per sampled frame, query and scorer",
)

SUMMARIES = _schema(
    "summaries",
    [
        _VIDEO_ID,
        _f("query_id", pa.string(), "as in `frame_scores`", False),
        _f("query", pa.string(), "the language query (empty for the query-less importance)"),
        _f("scorer", pa.string(), "the frame scores the summary was made from: 'clip' or 'clipit'", False),
        _f("segment_idx", pa.int32(), "0-based segment index (a shot or a piece of one, or a KTS segment: see `method`)", False),
        _f("start_frame", pa.int32(), "first frame, inclusive"),
        _f("end_frame", pa.int32(), "last frame, inclusive"),
        _f("start_time", pa.float64(), "PTS of the first frame, seconds"),
        _f("end_time", pa.float64(), "end of the last frame, seconds"),
        _f("score", pa.float32(), "mean frame score of the segment (each source frame takes its sampled frame's score)"),
        _f("selected", pa.bool_(), "the knapsack kept this segment in the summary"),
        _f("method", pa.string(), "'shots+knapsack' (the run's shots, each longer than the budget split to fit it; the default) or 'kts+knapsack' (CLIP-It's: KTS change points on the CLIP features), then a 0/1 knapsack"),
        _f("budget", pa.float32(), "summary length as a fraction of the video's frames (0.15: the reference's)"),
    ],
    "segments of each video (shots or KTS, --summary-segments) and the knapsack's choice per query and scorer: the summary is the selected segments",
)

VIDEO_EMBEDDINGS = _schema(
    "video_embeddings",
    [
        _VIDEO_ID,
        _f("granularity", pa.string(), "'video' (the reference: 10 clips spread over the video) or 'shot' (clips inside one shot)", False),
        _f("shot_id", pa.string(), "shot id as in `shots` (granularity 'shot'), else null"),
        _f("shot_idx", pa.int32(), "shot index (granularity 'shot'), else null"),
        _f("num_clips", pa.int32(), "clips averaged"),
        _f("clip_frames", _list(pa.int32()), "frame indices of the clips, clip after clip (num_clips x 16; the reference pads past-the-end with frame 0)"),
        _f("model", pa.string(), "`cmd-r2plus1d26:<file>@<first 8 hex of sha256>`"),
        _f("embedding", _list(pa.float32(), VIDEO_EMBEDDING_DIM), "mean of the clip features (CMD R(2+1)D-26: 2048-d, not normalised, all >= 0)"),
    ],
    "clip-level video embeddings (CMD), per video and per shot",
)

STAGE_RUNS = _schema(
    "stage_runs",
    [
        _VIDEO_ID,
        _f("stage", pa.string(), "stage that processed the video (`reelbeam run --help` lists them)", False),
        _f("run_id", pa.string(), "run that did the work; its manifest is OUTPUT/_runs/<run_id>.json", False),
        _f("status", pa.string(), "'ok': the stage's rows for the video are committed; 'failed': see `failures`; "
           "'pending': a run started committing them and did not finish (the video is not done)", False),
        _f("settings", pa.string(), "the stage's settings that shape its rows (a re-run with other settings is refused)"),
        _f("time", pa.timestamp("us", tz="UTC"), "when the row was made"),
    ],
    "the resume ledger: one row per video and stage (the run that last did the work), committed after "
    "the stage's tables; --skip-existing redoes what has no 'ok' row",
)

TABLES: dict[str, pa.Schema] = {
    s.metadata[b"reelbeam.table"].decode(): s
    for s in (
        VIDEOS,
        FAILURES,
        FRAMES,
        SHOTS,
        KEYFRAMES,
        MOTION,
        SHOT_EMBEDDINGS,
        BOUNDARIES,
        SCENES,
        SCENE_CLIPS,
        FRAME_EMBEDDINGS,
        FRAME_SCORES,
        SUMMARIES,
        VIDEO_EMBEDDINGS,
        STAGE_RUNS,
    )
}


def schema_for(table: str) -> pa.Schema:
    """The schema of `table`; raises KeyError naming the known tables."""
    try:
        return TABLES[table]
    except KeyError:
        raise KeyError(f"unknown table {table!r}; known tables: {sorted(TABLES)}") from None


def field_docs(table: str) -> list[tuple[str, str, str]]:
    """(name, arrow type, doc) per field, for documentation."""
    return [
        (f.name, str(f.type), (f.metadata or {}).get(b"doc", b"").decode())
        for f in schema_for(table)
    ]
