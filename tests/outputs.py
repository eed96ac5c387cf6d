"""Small reelbeam outputs for the tests of what reads them (report, export, read, analytics).

`make_run` runs the pipeline in-process on synthetic videos; `add_optional_tables` writes, with
their schemas, the tables no stage writes yet (or that need checkpoints): shot_embeddings,
boundaries, frame_scores, frame_embeddings, summaries, video_embeddings, and a run manifest.
"""

from __future__ import annotations

import fractions
import json
import os

import av
import numpy as np
import pyarrow as pa
import synthetic

from reelbeam import read
from reelbeam.schemas import schema_for

# Shots of the two videos: cuts at known frames.
PLAIN_SHOTS = (40, 30, 50, 30)
SAR_SHOTS = (30, 45, 30)
QUERIES = ("a red car", "people talking")


def write_sar_video(path: str, shot_lengths=SAR_SHOTS, width: int = 176, height: int = 144) -> str:
    """A QCIF stream with sample aspect ratio 16:11, shown 16:9 (like a 704x576 PAL stream)."""
    with av.open(path, "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.options = {"preset": "ultrafast"}
        s.codec_context.sample_aspect_ratio = fractions.Fraction(16, 11)
        for img in synthetic.shot_frames(shot_lengths, width, height, seed=5):
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def make_run(root: str) -> str:
    """Run the pipeline on 2 synthetic videos and 1 broken file; returns the output folder."""
    from reelbeam.pipelines.cli import run

    corpus = os.path.join(root, "corpus")
    os.makedirs(corpus, exist_ok=True)
    synthetic.make_shot_video(os.path.join(corpus, "plain.mp4"), PLAIN_SHOTS)
    write_sar_video(os.path.join(corpus, "pal_16x11.mp4"))
    with open(os.path.join(corpus, "broken.mp4"), "wb") as f:
        f.write(b"not a video at all\n" * 50)
    out = os.path.join(root, "out")
    run(["--input", corpus, "--output", out, "--shot-keyframes", "--iframes"])
    return out


def write_table(out: str, table: str, rows: list[dict], stage: str = "test") -> None:
    """Commit `rows` to `table` of `out` as one new data file (a made-up run of stage `stage`)."""
    from reelbeam.store import tables as store

    data = pa.Table.from_pylist(rows, schema=schema_for(table))
    run_id = store.new_run_id()
    path = store.write_data_file(store.table_uri(out, table), table, data, run_id, stage)
    store.commit(out, table, [store.Change(stage, [path], {r["video_id"] for r in rows})], run_id=run_id,
                 append_only=True)


_write = write_table


def shot_embedding(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(2048).astype(np.float32)


def add_optional_tables(out: str) -> dict:
    """Write the optional tables for every ok video of `out`; returns facts the tests check.

    Embeddings: shot k of a video gets base vector (k % 2); shot 1 of the plain video is its own
    near copy of shot 0, so shot 0's nearest neighbour is known.
    """
    videos = read(out, "videos").to_pylist()
    shots = read(out, "shots").to_pylist()
    frames = read(out, "frames", columns=["video_id", "frame_idx", "pts_time"]).to_pylist()
    plain = next(v["video_id"] for v in videos if v["uri"].endswith("plain.mp4"))
    base = {0: shot_embedding(0), 1: shot_embedding(1)}
    emb_rows, boundary_rows = [], []
    for s in shots:
        vec = base[s["shot_idx"] % 2] + 0.5 * shot_embedding(100 + s["shot_idx"] + int(s["video_id"][:4], 16))
        if s["video_id"] == plain and s["shot_idx"] == 1:
            vec = base[0] + 0.01 * shot_embedding(7)  # nearest to shot 0 of the plain video
        emb_rows.append({**{k: s[k] for k in ("video_id", "shot_id", "shot_idx")}, "model": "test:emb.pt", "embedding": vec.tolist()})
        boundary_rows.append({"video_id": s["video_id"], "shot_idx": s["shot_idx"], "shot_id": s["shot_id"],
                              "p_boundary": 0.9 if s["shot_idx"] == 1 else 0.1, "model": "bassl:test.pt"})
    _write(out, "shot_embeddings", emb_rows)
    _write(out, "boundaries", boundary_rows)

    score_rows, fe_rows, summary_rows = [], [], []
    best = {}
    for f in frames:
        if f["frame_idx"] % 5:
            continue  # sampled frames, as CLIP-It scores a few frames a second
        for q, query in enumerate(QUERIES):
            score = float(0.5 + 0.5 * np.sin(f["frame_idx"] / 10 + q))
            score_rows.append({"video_id": f["video_id"], "frame_idx": f["frame_idx"], "pts_time": f["pts_time"],
                               "query_id": f"q{q:015d}", "query": query, "score": score, "scorer": "clipit",
                               "model": "clipit:test"})
            key = (f["video_id"], query)
            if score > best.get(key, (-1, None))[0]:
                best[key] = (score, f["frame_idx"])
        fe_rows.append({"video_id": f["video_id"], "frame_idx": f["frame_idx"], "pts_time": f["pts_time"],
                        "model": "openai/clip-vit-base-patch32", "embedding": [0.0] * 512, "normalised": False})
    _write(out, "frame_scores", score_rows)
    _write(out, "frame_embeddings", fe_rows)
    for v in videos:
        n, fps = v["frame_count"], v["avg_fps"]
        for q, query in enumerate(QUERIES):
            for i, (a, b) in enumerate(((0, n // 3 - 1), (n // 3, 2 * n // 3 - 1), (2 * n // 3, n - 1))):
                summary_rows.append({"video_id": v["video_id"], "query_id": f"q{q:015d}", "query": query,
                                     "scorer": "clipit", "segment_idx": i, "start_frame": a, "end_frame": b,
                                     "start_time": a / fps, "end_time": (b + 1) / fps, "score": 0.3 + 0.2 * i,
                                     "selected": i != q, "method": "kts+knapsack", "budget": 0.15})
    _write(out, "summaries", summary_rows)
    _write(out, "video_embeddings", [
        {"video_id": v["video_id"], "granularity": "video", "model": "cmd-r2p1d:test.pt", "num_clips": 3,
         "clip_frames": [0] * 48, "embedding": shot_embedding(500 + i).tolist()} for i, v in enumerate(videos)
    ])
    os.makedirs(os.path.join(out, "_runs"), exist_ok=True)
    with open(os.path.join(out, "_runs", "20260101T000000Z-test.json"), "w") as f:
        json.dump({"run_id": "20260101T000000Z-test", "runner": "DirectRunner", "wall_seconds": 12.5,
                   "stages": {"decode": {"seconds": 8.25}, "transnetv2": 3.5, "write": {"seconds": 0.75}}}, f)
    return {"plain": plain, "best_frame": best}
