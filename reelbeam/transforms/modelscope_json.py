"""The per-video JSON in ModelScope's result shape, rebuilt from the tables.

`{'video_id', 'uri', 'shot_num', 'shot_meta_list': [{'frame': [s, e], 'timestamps': [...]}],
'scene_num', 'scene_meta_list': [{'shot': [...], 'frame': [s, e], 'timestamps': [...]}]}` (scene
keys only when the video has scenes): frame ranges inclusive, timestamps HH:MM:SS.mmm. Built from
`videos`, `shots` and `scenes` rows alone, so it is the same whether those came from this job or
an earlier run.
"""

from __future__ import annotations

import apache_beam as beam

from reelbeam.transforms.assemble import timecode


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


def video_document(video: dict, shots: list[dict], scenes: list[dict]) -> dict:
    """One video's document from its `videos` row and its shot and scene rows (any order)."""
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
    return doc


def _documents(element):
    video_id, g = element
    videos = list(g["videos"])
    if videos:
        yield video_id, video_document(videos[0], list(g["shots"]), list(g["scenes"]))


class BuildModelScopeJson(beam.PTransform):
    """{'videos', 'shots'[, 'scenes']} rows -> (video_id, document) for every video with a `videos`
    row."""

    def expand(self, tables):
        keyed = {
            name: tables[name] | f"{name.capitalize()}ByVideo" >> beam.Map(lambda r: (r["video_id"], r))
            for name in ("videos", "shots", "scenes")
            if tables.get(name) is not None
        }
        for name in ("shots", "scenes"):
            if name not in keyed:
                keyed[name] = tables["videos"].pipeline | f"No{name.capitalize()}" >> beam.Create([])
        return keyed | "JoinVideoTables" >> beam.CoGroupByKey() | "Documents" >> beam.FlatMap(_documents)
