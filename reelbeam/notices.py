"""Things a run did that a user would not guess from row counts, each with what to do about it.
Said at the end of `reelbeam run` (and kept in the run manifest as `notices`) and on the report's
video pages; found from the tables alone, so an earlier run's output gets them too.

- a scene clip copied with `--clip-mode copy` that holds more than twice its scene's frames (a
  copied clip starts at the codec keyframe at or before its scene: with long GOPs that can be the
  start of the video);
- a summary that kept nothing: every segment was longer than the knapsack's frame budget.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Sequence

OVERSIZED_CLIP_RATIO = 2.0  # a copied clip this many times its scene is worth a word


def scene_frames(clip: dict) -> int:
    return int(clip["end_frame"]) - int(clip["start_frame"]) + 1


def oversized_clips(clips: Iterable[dict], ratio: float = OVERSIZED_CLIP_RATIO) -> list[dict]:
    """`scene_clips` rows of stream-copied clips holding more than `ratio` times their scene's frames."""
    out = []
    for c in clips:
        if c.get("mode") != "stream_copy" or c.get("num_frames") is None or c.get("start_frame") is None:
            continue
        if c["num_frames"] > ratio * scene_frames(c):
            out.append(c)
    return sorted(out, key=lambda c: (c["video_id"], c["scene_idx"]))


def clip_note(c: dict) -> str:
    """One oversized clip, for a video page."""
    return (f"scene {c['scene_idx']}'s clip holds {c['num_frames']} frames for a scene of {scene_frames(c)} "
            f"(copied from the keyframe at frame {c.get('actual_start_frame')}, frames {c['start_frame']}–{c['end_frame']} "
            "are the scene); --clip-mode exact cuts each clip to exactly its scene")


def empty_summaries(rows: Iterable[dict], frame_counts: dict[str, int] | None = None) -> list[dict]:
    """Summaries (one per video, query and scorer) of which no segment was selected:
    [{video_id, query_id, query, scorer, segments, longest, shortest, budget, capacity}], capacity
    (frames) where the video's frame count is known (else from the segments' extent)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["video_id"], r.get("query_id"), r.get("scorer")), []).append(r)
    out = []
    for (vid, qid, scorer), segs in sorted(groups.items(), key=lambda kv: tuple(str(k) for k in kv[0])):
        if any(s.get("selected") for s in segs):
            continue
        lengths = [int(s["end_frame"]) - int(s["start_frame"]) + 1 for s in segs]
        total = (frame_counts or {}).get(vid) or max(int(s["end_frame"]) for s in segs) + 1
        budget = float(segs[0].get("budget") or 0.0)
        out.append({"video_id": vid, "query_id": qid, "query": segs[0].get("query") or "", "scorer": scorer,
                    "segments": len(segs), "longest": max(lengths), "shortest": min(lengths), "budget": budget,
                    "capacity": int(total * budget), "method": segs[0].get("method") or ""})
    return out


def summary_note(e: dict) -> str:
    """One empty summary, for a video page."""
    what = f"query {e['query']!r}" if e["query"] else "the query-less importance"
    if e["capacity"] < 1:
        why = f"the budget ({e['budget']:g} of the frames) is under one frame"
    elif e["shortest"] <= e["capacity"]:
        return (f"the summary for {what} ({e['scorer']}) selected nothing: no segment that fits the budget of "
                f"{e['capacity']} frames has a positive score")
    elif e["segments"] == 1:
        why = f"its one segment ({e['longest']} frames) is longer than the budget of {e['capacity']} frames"
    else:
        why = f"all {e['segments']} segments ({e['shortest']}–{e['longest']} frames) are longer than the budget of {e['capacity']} frames"
    fix = ("--summary-segments shots splits segments to fit the budget"
           if str(e.get("method", "")).startswith("kts") else "raise --summary-budget")
    return f"the summary for {what} ({e['scorer']}) selected nothing: {why}; {fix}"


def _name(uri: str) -> str:
    return posixpath.basename(str(uri).rstrip("/")) or str(uri)


def run_notices(clips: Sequence[dict], summaries: Sequence[dict], videos: dict[str, dict]) -> list[str]:
    """The end-of-run lines for a run's `scene_clips` and `summaries` rows; `videos`: video_id ->
    its `videos` row (for names and frame counts), which may lack some."""
    lines = []
    big = oversized_clips(clips)
    if big:
        shown = ", ".join(
            f"{_name(videos.get(c['video_id'], {}).get('uri', c['video_id']))} scene {c['scene_idx']}: "
            f"{c['num_frames']} frames for {scene_frames(c)}" for c in big[:3]
        ) + (f" and {len(big) - 3} more" if len(big) > 3 else "")
        several = len(big) > 1
        lines.append(f"scene clips: {len(big)} copied clip{'s hold' if several else ' holds'} more than twice the frames of "
                     f"{'their' if several else 'its'} scene, as --clip-mode copy starts a clip at the keyframe at or "
                     f"before its scene ({shown}); "
                     "--clip-mode exact cuts each clip to exactly its scene")
    counts = {vid: v.get("frame_count") for vid, v in videos.items() if v.get("frame_count")}
    empty = empty_summaries(summaries, counts)
    too_long = [e for e in empty if e["shortest"] > e["capacity"]]
    if too_long:
        shown = ", ".join(
            f"{_name(videos.get(e['video_id'], {}).get('uri', e['video_id']))} {e['scorer']}"
            f"{' ' + repr(e['query']) if e['query'] else ''}: longest segment {e['longest']} frames, "
            f"budget {e['capacity']}" for e in too_long[:3]
        ) + (f" and {len(too_long) - 3} more" if len(too_long) > 3 else "")
        kts = any(str(e.get("method", "")).startswith("kts") for e in too_long)
        fix = "--summary-segments shots splits segments to fit the budget" if kts else "raise --summary-budget"
        lines.append(f"summaries: {len(too_long)} selected nothing, every segment being longer than the budget "
                     f"({shown}); {fix}")
    unvalued = [e for e in empty if e["shortest"] <= e["capacity"]]
    if unvalued:
        shown = ", ".join(f"{_name(videos.get(e['video_id'], {}).get('uri', e['video_id']))} {e['scorer']}"
                          for e in unvalued[:3]) + (f" and {len(unvalued) - 3} more" if len(unvalued) > 3 else "")
        lines.append(f"summaries: {len(unvalued)} selected nothing, no segment that fits the budget having a "
                     f"positive score ({shown})")
    return lines


def notices_of_run(output: str, run_id: str) -> list[str]:
    """`run_notices` for the rows run `run_id` committed to `scene_clips` and `summaries`."""
    from reelbeam.store.tables import active_files, read_file, tables_present

    present = set(tables_present(output))

    def rows(table: str, columns: list[str] | None = None) -> list[dict]:
        if table not in present:
            return []
        out = []
        for part in active_files(output, table):
            if part.run_id == run_id:
                out += read_file(part.path, table, columns).to_pylist()
        return out

    clips = rows("scene_clips", ["video_id", "scene_idx", "mode", "start_frame", "end_frame", "actual_start_frame", "num_frames"])
    summaries = rows("summaries", ["video_id", "query_id", "query", "scorer", "start_frame", "end_frame", "selected", "method", "budget"])
    if not clips and not summaries:
        return []
    ids = {r["video_id"] for r in clips + summaries}
    videos = {}
    if "videos" in present:
        for part in active_files(output, "videos"):
            for v in read_file(part.path, "videos", ["video_id", "uri", "frame_count"]).to_pylist():
                if v["video_id"] in ids:
                    videos[v["video_id"]] = v
    return run_notices(clips, summaries, videos)
