"""The per-video JSON in ModelScope's result shape, rebuilt from the tables.

`{'video_id', 'uri', 'shot_num', 'shot_meta_list': [{'frame': [s, e], 'timestamps': [...]}],
'scene_num', 'scene_meta_list': [{'shot': [...], 'frame': [s, e], 'timestamps': [...]}],
'summaries': [{'query_id', 'query', 'scorer', 'output': [{'frame': [s, e], 'timestamps': [...]}]}]}`
(scene and summary keys only when the video has them; `output` is CLIP-It's result shape): frame ranges inclusive, timestamps HH:MM:SS.mmm. Built from
`videos`, `shots` and `scenes` rows alone, so it is the same whether those came from this job or
an earlier run.
"""

from __future__ import annotations

import apache_beam as beam

from reelbeam.schemas.rows import timecode


def shot_meta_list(shots: list[dict]) -> list[dict]:
    """ModelScope's `shot_meta_list` from a video's shot rows (in shot order)."""
    return [
        {
            "frame": [sh["start_frame"], sh["end_frame"]],
            "timestamps": [timecode(sh["start_time"]), timecode(sh["end_time"])],
        }
        for sh in shots
    ]


def scene_meta_list(scenes: list[dict]) -> list[dict]:
    """ModelScope's `scene_meta_list` (shot indices, inclusive frame span, timecodes)."""
    return [
        {
            "shot": list(range(sc["first_shot_idx"], sc["last_shot_idx"] + 1)),
            "frame": [sc["start_frame"], sc["end_frame"]],
            "timestamps": [timecode(sc["start_time"]), timecode(sc["end_time"])],
        }
        for sc in scenes
    ]


def summary_outputs(summaries: list[dict]) -> list[dict]:
    """Per query and scorer, CLIP-It's output: the maximal runs of selected segments as
    {'frame': [s, e], 'timestamps': [start of s, end of e]} (timestamps '%02d:%02d:%06.3f')."""
    from reelbeam.transforms.summaries import timestamp

    groups: dict[tuple, dict] = {}
    for r in sorted(summaries, key=lambda r: (r["query_id"], r["scorer"], r["segment_idx"])):
        g = groups.setdefault((r["query_id"], r["scorer"]), {"query_id": r["query_id"], "query": r["query"], "scorer": r["scorer"], "runs": []})
        if not r["selected"]:
            continue
        runs = g["runs"]
        if runs and r["start_frame"] == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], r["end_frame"], runs[-1][2], r["end_time"])
        else:
            runs.append((r["start_frame"], r["end_frame"], r["start_time"], r["end_time"]))
    out = []
    for g in groups.values():
        runs = g.pop("runs")
        g["output"] = [{"frame": [s, e], "timestamps": [timestamp(t0), timestamp(t1)]} for s, e, t0, t1 in runs]
        out.append(g)
    return out


def video_document(video: dict, shots: list[dict], scenes: list[dict], summaries: list[dict] = ()) -> dict:
    """One video's document from its `videos` row and its shot, scene and summary rows (any order)."""
    shots = sorted(shots, key=lambda r: r["shot_idx"])
    doc = {
        "video_id": video["video_id"],
        "uri": video["uri"],
        "shot_num": len(shots),
        "shot_meta_list": shot_meta_list(shots),
    }
    if scenes:
        scenes = sorted(scenes, key=lambda r: r["scene_idx"])
        doc["scene_num"] = len(scenes)
        doc["scene_meta_list"] = scene_meta_list(scenes)
    if summaries:
        doc["summaries"] = summary_outputs(list(summaries))
    return doc


def _documents(element):
    video_id, g = element
    videos = list(g["videos"])
    if videos:
        yield video_id, video_document(videos[0], list(g["shots"]), list(g["scenes"]), list(g["summaries"]))


class BuildModelScopeJson(beam.PTransform):
    """{'videos', 'shots'[, 'scenes']} rows -> (video_id, document) for every video with a `videos`
    row."""

    def expand(self, tables):
        keyed = {
            name: tables[name] | f"{name.capitalize()}ByVideo" >> beam.Map(lambda r: (r["video_id"], r))
            for name in ("videos", "shots", "scenes", "summaries")
            if tables.get(name) is not None
        }
        for name in ("shots", "scenes", "summaries"):
            if name not in keyed:
                keyed[name] = tables["videos"].pipeline | f"No{name.capitalize()}" >> beam.Create([])
        return keyed | "JoinVideoTables" >> beam.CoGroupByKey() | "Documents" >> beam.FlatMap(_documents)
