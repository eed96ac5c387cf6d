"""Training-free scenes that hold up on natural footage: better shot features, grouping by
dynamic programming over every pair of nearby shots.

Shot features (from a few frames per shot, e.g. the middle frame and the frames a quarter in
from each end):
- an image embedding (`reelbeam.models.efficientnet_lite.embed_images`, 1280-d, L2-normalised),
  averaged over the shot's frames (`mean_embeddings`);
- a hue x saturation histogram (`hs_histogram`) that ignores brightness, so exposure changes and
  moderate colour casts between shots of one place move it little; weakly saturated pixels, whose
  hue is noise, go to a few grey-level bins instead.

Similarity of two shots: `weight` x cosine of embeddings + (1 - weight) x histogram intersection
(`shot_similarity`).

Grouping (`group_scenes`): the scenes are the partition of the shot sequence into runs that
maximises the sum over every pair of shots i < j of one scene with j - i <= `window` of
(similarity - threshold): optimal sequential grouping by dynamic programming, O(shots x
max_scene_shots x window). Each boundary is thus judged against several shots on each side, as in
average linkage, rather than one neighbouring pair; shot / reverse-shot cutting (A B A B) stays
together. The threshold is per video (`video_threshold`): the midpoint between the typical
similarity of neighbouring shots and that of shots far apart in the same video, clamped to
[`min_threshold`, `max_threshold`] so that a 3-shot excerpt of one scene (everything similar)
stays one scene and a compilation of unrelated clips (nothing similar) does not merge into one;
with fewer than `min_shots_relative` shots the absolute `threshold` is used.

In the pipeline (stage `grouping_scenes`, `GroupScenes`): the frames come from the decode pass
where it captured them, else from a seeking second pass; EfficientNet-Lite0 runs under RunInference;
each `scenes` row's `p_boundary_end` is `boundary_dissimilarity` (1 - the mean similarity of the
`window` shots on either side of its end).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import apache_beam as beam
import cv2
import numpy as np

SCENE_FRAME_SIZE = 224  # EfficientNet-Lite0's input: frames are captured at this size
SCENE_JPEG_QUALITY = 95  # captured frames travel as JPEG (SceneFrame)
HUE_BINS = 16
SAT_BINS = 3
GREY_BINS = 4
HS_BINS = HUE_BINS * SAT_BINS + GREY_BINS
MIN_SATURATION = 48  # of 255: below it a pixel's hue is mostly noise and compression


@dataclasses.dataclass(frozen=True)
class SceneGroupingConfig:
    """Defaults from the middle of the plateau of bench/scenes.py's sweep over both corpora
    (docs/BENCHMARKS.md). On the development corpus F1 stays within ~0.01 of its best for weight
    0.7-1.0, relative floor 0.35-0.5, ceiling 0.6-0.85, absolute threshold 0.4-0.5 and window 3-8.
    The old synthetic corpus bounds the weight and the ceiling: its scenes are all similar
    textures, which the embedding finds alike, so it needs the colour histogram (weight <= 0.8: F1
    1.0, 0.86 at 0.9, 0.48 at 1.0) and a per-video threshold allowed up to 0.75-0.85 (F1 1.0; 0.45
    at a ceiling of 0.6)."""

    weight: float = 0.75
    threshold: float = 0.45
    relative: bool = True
    min_threshold: float = 0.45
    max_threshold: float = 0.8
    min_shots_relative: int = 6
    window: int = 4
    max_scene_shots: int = 64

    def __post_init__(self) -> None:
        if not 0.0 <= self.weight <= 1.0:
            raise ValueError(f"weight must be in [0, 1], got {self.weight}")
        if not self.min_threshold <= self.max_threshold:
            raise ValueError("min_threshold must be <= max_threshold")
        if self.window < 1 or self.max_scene_shots < 1:
            raise ValueError("window and max_scene_shots must be >= 1")


# ---------------------------------------------------------------------------------------------
# Features


def scene_frame_indices(start: int, end: int) -> tuple[int, ...]:
    """The frames of the inclusive shot span [start, end] its features come from: a quarter in,
    the middle and a quarter from the end (inside the shot, away from transitions at its ends),
    without repeats (a shot of 1-4 frames has fewer than 3)."""
    return tuple(sorted({start + (end - start) // 4, start + (end - start) // 2, end - (end - start) // 4}))


def scene_frame(video_id: str, frame_idx: int, frame):
    """A decoded frame -> the `SceneFrame` both capture paths emit: squashed to 224 x 224 RGB, its
    hue/saturation histogram, then JPEG-compressed (the embedding step decodes it)."""
    from reelbeam.schemas.records import SceneFrame
    from reelbeam.transforms.media import jpeg_bytes, square_rgb

    rgb = square_rgb(frame, SCENE_FRAME_SIZE)
    return SceneFrame(video_id, frame_idx, jpeg_bytes(rgb, SCENE_JPEG_QUALITY), hs_histogram(rgb).astype(np.float32))


def hs_histogram(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB [H, W, 3] -> float64 [HS_BINS] summing to 1: hue (16) x saturation (3) bins for
    saturated pixels, 4 grey-level bins for the others."""
    hsv = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2HSV).reshape(-1, 3).astype(np.int32)
    h, s, v = hsv[:, 0], hsv[:, 1], hsv[:, 2]
    chromatic = (s >= MIN_SATURATION) & (v >= 32)
    hue_bin = np.minimum(h * HUE_BINS // 180, HUE_BINS - 1)
    sat_bin = np.minimum((s - MIN_SATURATION) * SAT_BINS // (256 - MIN_SATURATION), SAT_BINS - 1)
    grey_bin = HUE_BINS * SAT_BINS + np.minimum(v * GREY_BINS // 256, GREY_BINS - 1)
    bins = np.where(chromatic, hue_bin * SAT_BINS + sat_bin, grey_bin)
    hist = np.bincount(bins, minlength=HS_BINS).astype(np.float64)
    return hist / max(hist.sum(), 1.0)


def mean_embeddings(frame_embeddings: np.ndarray, shot_of_frame: Sequence[int], num_shots: int) -> np.ndarray:
    """Per-frame L2-normalised embeddings [F, D] and each frame's shot -> per-shot mean,
    L2-normalised [S, D] (zeros for a shot without frames)."""
    e = np.asarray(frame_embeddings, np.float64)
    out = np.zeros((num_shots, e.shape[1]))
    np.add.at(out, np.asarray(shot_of_frame, np.int64), e)
    norm = np.linalg.norm(out, axis=1, keepdims=True)
    return np.divide(out, norm, out=np.zeros_like(out), where=norm > 0)


def mean_histograms(frame_hists: np.ndarray, shot_of_frame: Sequence[int], num_shots: int) -> np.ndarray:
    """Per-frame histograms [F, B] -> per-shot means [S, B], each summing to 1."""
    h = np.asarray(frame_hists, np.float64)
    out = np.zeros((num_shots, h.shape[1]))
    np.add.at(out, np.asarray(shot_of_frame, np.int64), h)
    total = out.sum(1, keepdims=True)
    return np.divide(out, total, out=np.zeros_like(out), where=total > 0)


def shot_similarity(embeddings: np.ndarray | None, hists: np.ndarray | None, weight: float) -> np.ndarray:
    """[S, S] similarity in [0, 1]: weight x cosine(embeddings) (clipped at 0) + (1 - weight) x
    histogram intersection. Either feature may be None (then the other alone)."""
    parts = []
    if embeddings is not None:
        e = np.asarray(embeddings, np.float64)
        parts.append((weight if hists is not None else 1.0, np.clip(e @ e.T, 0.0, 1.0)))
    if hists is not None:
        h = np.asarray(hists, np.float64)
        inter = np.minimum(h[:, None, :], h[None, :, :]).sum(-1)
        parts.append((1.0 - weight if embeddings is not None else 1.0, inter))
    if not parts:
        raise ValueError("need embeddings, histograms or both")
    return sum(w * m for w, m in parts)


# ---------------------------------------------------------------------------------------------
# Grouping


def video_threshold(sim: np.ndarray, config: SceneGroupingConfig) -> float:
    """The per-video threshold (module docstring): midpoint of the median similarity of neighbouring
    shots and the median similarity of shots 4-8 apart, clamped; the absolute threshold for short
    videos or when relative thresholds are off."""
    n = len(sim)
    if not config.relative or n < config.min_shots_relative:
        return config.threshold
    near = np.median(np.diagonal(sim, 1))
    far_vals = np.concatenate([np.diagonal(sim, k) for k in range(4, min(9, n))]) if n > 4 else np.diagonal(sim, n - 1)
    far = np.median(far_vals)
    return float(np.clip((near + far) / 2.0, config.min_threshold, config.max_threshold))


def scene_gain(sim: np.ndarray, threshold: float, window: int) -> np.ndarray:
    """pair[i, k] = similarity(i, i + k) - threshold for k in 1..window (0 beyond the video)."""
    n = len(sim)
    out = np.zeros((n, window + 1))
    for k in range(1, window + 1):
        if k < n:
            out[: n - k, k] = np.diagonal(sim, k) - threshold
    return out


def optimal_grouping(sim: np.ndarray, threshold: float, window: int, max_scene_shots: int) -> list[tuple[int, int]]:
    """Partition of shots 0..n-1 into consecutive scenes maximising the sum over pairs i < j in
    one scene, j - i <= window, of (sim[i, j] - threshold). Ties go to fewer scenes."""
    n = len(sim)
    if n == 0:
        return []
    pair = scene_gain(sim, threshold, window)
    best = np.full(n + 1, -np.inf)
    best[0] = 0.0
    back = np.zeros(n + 1, np.int64)
    for b in range(1, n + 1):  # scene ends at shot b - 1
        gain = 0.0
        for a in range(b - 1, max(-1, b - 1 - max_scene_shots), -1):  # scene starts at shot a
            # adding shot a to scene [a + 1, b - 1]: its pairs with the shots after it
            gain += pair[a, 1 : min(window, b - 1 - a) + 1].sum()
            score = best[a] + gain
            if score > best[b] + 1e-12 or (abs(score - best[b]) <= 1e-12 and a < back[b]):
                best[b] = score
                back[b] = a
    scenes = []
    b = n
    while b > 0:
        a = int(back[b])
        scenes.append((a, b - 1))
        b = a
    return scenes[::-1]


def group_scenes(sim: np.ndarray, config: SceneGroupingConfig = SceneGroupingConfig()) -> tuple[list[tuple[int, int]], float]:
    """Scenes as inclusive (first_shot, last_shot) runs, and the threshold used for this video."""
    sim = np.asarray(sim, np.float64)
    if len(sim) == 0:
        return [], config.threshold
    t = video_threshold(sim, config)
    return optimal_grouping(sim, t, config.window, config.max_scene_shots), t


def windowed_boundaries(sim: np.ndarray, window: int, threshold: float) -> list[tuple[int, int]]:
    """A simpler baseline kept for the bench: a boundary after shot i when the mean similarity
    between the `window` shots up to i and the `window` shots after it is below `threshold`."""
    n = len(sim)
    ends = []
    for i in range(n - 1):
        left = range(max(0, i - window + 1), i + 1)
        right = range(i + 1, min(n, i + 1 + window))
        if np.mean([sim[a, b] for a in left for b in right]) < threshold:
            ends.append(i)
    ends.append(n - 1)
    out, start = [], 0
    for e in ends:
        out.append((start, e))
        start = e + 1
    return out


def boundary_dissimilarity(sim: np.ndarray, last_shot: int, window: int) -> float:
    """1 - the mean similarity between the `window` shots up to `last_shot` and the `window` shots
    after it: how clearly a scene ends after `last_shot` (0 same, 1 unrelated)."""
    n = len(sim)
    left = range(max(0, last_shot - window + 1), last_shot + 1)
    right = range(last_shot + 1, min(n, last_shot + 1 + window))
    return float(1.0 - np.mean([sim[a, b] for a in left for b in right]))


def shot_scene_features(targets: Sequence[tuple[int, int]], embeddings: dict, hists: dict, num_shots: int):
    """(frame_idx, shot_idx) pairs and per-frame embeddings / histograms by frame_idx -> per-shot
    mean embeddings [S, 1280] and histograms [S, HS_BINS]; KeyError naming the first frame missing."""
    missing = sorted({f for f, _ in targets if f not in embeddings or f not in hists})
    if missing:
        raise KeyError(f"{len(missing)} scene frames have no features (first: frame {missing[0]})")
    frames = [f for f, _ in targets]
    owner = [s for _, s in targets]
    emb = mean_embeddings(np.stack([embeddings[f] for f in frames]), owner, num_shots)
    hs = mean_histograms(np.stack([hists[f] for f in frames]), owner, num_shots)
    return emb, hs


# ---------------------------------------------------------------------------------------------
# In the pipeline (stage `grouping_scenes`)


class _PlanSceneFramesFn(beam.DoFn):
    """A video's `videos` row, `frames` rows, shots and the frames the decode pass captured ->
    its (frame_idx, shot_idx) targets (tag 'targets'), the second pass's plan (main) for the
    targets not captured, and the video_id (tag 'processed')."""

    def __init__(self, stage: str) -> None:
        self._stage = stage

    def process(self, element):
        from reelbeam.transforms.keyframes import plan_for, shots_with_their_video

        video_id, g = element
        inputs = shots_with_their_video(video_id, g, self._stage)
        if inputs is None:
            return
        shots, videos, frames, failure = inputs
        yield beam.pvalue.TaggedOutput("processed", video_id)
        if failure is not None:
            yield beam.pvalue.TaggedOutput("failures", failure)
            return
        captured = set(next(iter(g["captured"]), ()))
        targets = [
            (f, sh["shot_idx"], sh["shot_id"], k)
            for sh in shots
            for k, f in enumerate(scene_frame_indices(sh["start_frame"], sh["end_frame"]))
        ]
        yield beam.pvalue.TaggedOutput("targets", (video_id, [(f, shot_idx) for f, shot_idx, _, _ in targets]))
        remaining = [t for t in targets if t[0] not in captured]
        if remaining:
            yield plan_for(videos[0], remaining, frames[0])


class _FetchSceneFramesFn(beam.DoFn):
    """The second pass: a plan -> SceneFrame records (224 x 224 JPEG and histogram) as they are
    decoded; an unreadable file -> a failures row (frames already sent are then ignored)."""

    def __init__(self, stage: str) -> None:
        self._stage = stage
        self._count = beam.metrics.Metrics.counter("reelbeam", "scene_frames_second_pass")

    def process(self, plan):
        from reelbeam.transforms.failures import failure_row
        from reelbeam.transforms.keyframes import frames_at

        try:
            for idx, frame in frames_at(plan, "scene frames"):
                self._count.inc()
                yield scene_frame(plan.video_id, idx, frame)
        except Exception as e:  # noqa: BLE001 - becomes a failures row for this video
            yield beam.pvalue.TaggedOutput("failures", failure_row(plan.video_id, plan.uri, self._stage, e))


class _GroupVideoFn(beam.DoFn):
    """Per video: shots, targets, frame embeddings and histograms -> `scenes` rows; a video whose
    frames could not be embedded or lack features -> one failures row."""

    def __init__(self, config: SceneGroupingConfig, method: str, stage: str) -> None:
        self._config = config
        self._method = method
        self._stage = stage

    def process(self, element):
        from reelbeam.schemas.rows import scene_rows
        from reelbeam.transforms.failures import IncompleteVideo, failure_row

        video_id, g = element
        shots = sorted(g["shots"], key=lambda r: r["shot_idx"])
        targets = next(iter(g["targets"]), None)
        if not shots or targets is None or list(g["fetch_failed"]):
            return  # not this stage's video, or its failures row is written already
        errors = sorted(g["errors"])
        try:
            if errors:
                raise IncompleteVideo(self._stage, "inference_error", f"EfficientNet-Lite0: {errors[0]}")
            try:
                emb, hs = shot_scene_features(targets, dict(g["embeddings"]), dict(g["hists"]), len(shots))
            except KeyError as e:
                raise IncompleteVideo(self._stage, "incomplete", e.args[0]) from e
            c = self._config
            sim = shot_similarity(emb, hs, c.weight)
            groups, _ = group_scenes(sim, c)
            ends = [boundary_dissimilarity(sim, b, c.window) if b < len(shots) - 1 else None for _, b in groups]
            rows = scene_rows(video_id, shots, groups, ends, self._method)
        except Exception as e:  # noqa: BLE001 - any error of one video becomes its failures row
            yield beam.pvalue.TaggedOutput("failures", failure_row(video_id, "", self._stage, e))
            return
        yield from rows


def _keyed_pixels(f):
    from reelbeam.transforms.media import rgb_from_jpeg

    return (f.video_id, f.frame_idx), rgb_from_jpeg(f.jpeg)


class GroupScenes(beam.PTransform):
    """{'videos', 'frames', 'shots'} tables (and, when the decode pass captured them in this job,
    the 'scene_frames' and 'scene_frames_index' streams) -> {'scenes', 'failures', 'processed'}.

    Per shot, its `scene_frame_indices`: captured in the decode pass where the live shots allowed
    (`inline_shots.ShotKeyframeCapture`), else fetched by the seeking second pass
    (`keyframes.frames_at`); every frame embedded by RunInference with `handler`
    (`EfficientNetLite0ModelHandler`, batches across videos; captured frames are embedded where
    they were captured, so no pixels cross a shuffle); per video the shots' mean embeddings and
    histograms -> `shot_similarity` -> `group_scenes` -> `scenes` rows with `method`.
    """

    def __init__(self, handler, config: SceneGroupingConfig, method: str, stage: str = "grouping_scenes") -> None:
        super().__init__()
        self._handler = handler
        self._config = config
        self._method = method
        self._stage = stage

    def expand(self, tables):
        from reelbeam.transforms.keyframes import join_shot_inputs
        from reelbeam.transforms.portable import infer, split_outputs

        shots, joined = join_shot_inputs(tables, "scene_frames_index")
        planned = split_outputs(joined, _PlanSceneFramesFn(self._stage), ["targets", "failures", "processed"], "plans", "PlanSceneFrames")
        fetched = split_outputs(planned.plans, _FetchSceneFramesFn(self._stage), ["failures"], "frames", "SecondPass")
        frames = [fetched.frames]
        if tables.get("scene_frames") is not None:
            frames.append(tables["scene_frames"])
        frames = frames | "AllSceneFrames" >> beam.Flatten()
        scored, failed = infer(
            frames | "KeyByFrame" >> beam.Map(_keyed_pixels), self._handler, "EmbedSceneFrames"
        )
        grouped = {
            "shots": shots,
            "targets": planned.targets,
            "embeddings": scored | "EmbeddingsByVideo" >> beam.Map(lambda kv: (kv[0][0], (kv[0][1], kv[1].inference))),
            "hists": frames | "HistogramsByVideo" >> beam.Map(lambda f: (f.video_id, (f.frame_idx, f.hist))),
            "errors": failed | "ErrorsByVideo" >> beam.Map(lambda kv: (kv[0][0], kv[1])),
            "fetch_failed": fetched.failures | "FetchFailedByVideo" >> beam.Map(lambda row: (row["video_id"], True)),
        } | "JoinFeatures" >> beam.CoGroupByKey()
        out = split_outputs(grouped, _GroupVideoFn(self._config, self._method, self._stage), ["failures"], "scenes", "GroupVideoScenes")
        return {
            "scenes": out.scenes,
            "failures": (planned.failures, fetched.failures, out.failures) | "FlattenFailures" >> beam.Flatten(),
            "processed": planned.processed,
        }
