"""Neutral helpers on rows and columns that every layer may use (models, transforms, stages): span
ids, timecodes, `scenes` rows from shot groups, per-frame chunks joined in frame order, rows of a
matrix L2-normalised. Pure Python and numpy; nothing here imports another part of reelbeam."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np


def make_span_id(video_id: str, start_frame: int, end_frame: int) -> str:
    """Deterministic id of a frame span of a video (shots, scenes)."""
    return hashlib.sha1(f"{video_id}:{start_frame}-{end_frame}".encode()).hexdigest()[:16]


def timecode(seconds: float) -> str:
    """HH:MM:SS.mmm (milliseconds rounded), as ModelScope's shot and scene metadata and PySceneDetect's CSV."""
    ms = round(max(seconds, 0.0) * 1000)
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def scene_rows(
    video_id: str, shots: list[dict], groups: list[tuple[int, int]], end_scores: list, method: str
) -> list[dict]:
    """`scenes` rows from inclusive (first_shot, last_shot) groups of a video's shot rows; a scene's
    transition columns are those of its first shot (the transition into it, null where the shots
    have none)."""
    rows = []
    for idx, ((a, b), end_score) in enumerate(zip(groups, end_scores)):
        first, last = shots[a], shots[b]
        rows.append(
            {
                "video_id": video_id,
                "scene_idx": idx,
                "scene_id": make_span_id(video_id, first["start_frame"], last["end_frame"]),
                "first_shot_idx": a,
                "last_shot_idx": b,
                "start_frame": first["start_frame"],
                "end_frame": last["end_frame"],
                "start_time": first["start_time"],
                "end_time": last["end_time"],
                "num_shots": b - a + 1,
                "p_boundary_end": end_score,
                "method": method,
                "transition_kind": first.get("transition_kind"),
                "transition_first_frame": first.get("transition_first_frame"),
                "transition_last_frame": first.get("transition_last_frame"),
            }
        )
    return rows


def concat_chunks(chunks: list[dict]) -> dict[str, Any]:
    """Per-frame chunks (dicts of columns with a 'frame_idx' column) -> one dict, in frame order."""
    chunks = sorted(chunks, key=lambda c: int(c["frame_idx"][0]) if len(c["frame_idx"]) else -1)
    out: dict[str, Any] = {}
    for key in chunks[0]:
        vals = [c[key] for c in chunks]
        if isinstance(vals[0], np.ndarray):
            out[key] = np.concatenate(vals)
        else:
            out[key] = [x for v in vals for x in v]
    return out


def l2_normalize_rows(features: np.ndarray) -> np.ndarray:
    """Each row divided by its L2 norm, in float32, as the reference's `norm_feature` does it
    (row / np.linalg.norm(row), one row at a time, so the last bits match): [N, D] -> [N, D]."""
    x = np.array(features, dtype=np.float32)
    if x.ndim != 2:
        x = x.reshape(len(x), -1)
    for i in range(len(x)):
        x[i] = x[i] / np.linalg.norm(x[i])
    return x
