"""Stage `modelscope_json`: OUTPUT/json/<video_id>.json per video in ModelScope's result shape
(`shot_num`, `shot_meta_list`, and `scene_num`, `scene_meta_list` when the video has scenes), rebuilt
from the `videos`, `shots` and `scenes` tables, so a later job that changes the scenes rewrites it."""

from __future__ import annotations

import argparse
from typing import ClassVar

import apache_beam as beam

from reelbeam.stages.base import Stage, add_flag


class ModelScopeJsonStage(Stage):
    name: ClassVar[str] = "modelscope_json"
    title: ClassVar[str] = "ModelScope-shaped JSON per video"
    reads: ClassVar[tuple[str, ...]] = ("videos", "shots")
    optional_reads: ClassVar[tuple[str, ...]] = ("scenes", "summaries")
    enabled_by: ClassVar[str] = "--json (default on)"
    replaces_its_files: ClassVar[bool] = True
    files_folder: ClassVar[str | None] = "json"

    def __init__(self, output: str) -> None:
        super().__init__()
        self.output = output

    @staticmethod
    def add_flags(group) -> None:
        add_flag(group, "json", default=True, action=argparse.BooleanOptionalAction,
                 help="write ModelScope-shaped JSON per video under OUTPUT/json/")

    @classmethod
    def configure(cls, options, env) -> ModelScopeJsonStage | None:
        return cls(options.output.rstrip("/")) if options.json and not env.keyframes_only else None

    def expand(self, tables):
        from reelbeam.transforms.modelscope_json import BuildModelScopeJson
        from reelbeam.transforms.write import WriteJson

        docs = tables | "BuildDocuments" >> BuildModelScopeJson()
        return {
            "written": docs | "WriteJson" >> WriteJson(self.output),
            "processed": docs | "DocumentIds" >> beam.Map(lambda kv: kv[0]),
        }
