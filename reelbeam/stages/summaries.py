"""Stage `summaries`: language-guided summaries as CLIP-It makes them: segments of each video (its
shots, split where one outgrows the budget, by default; or, with `--summary-segments kts`, KTS
segments on its CLIP frame features as the reference) and, per query and scorer, the segments a
0/1 knapsack keeps under a length budget (15% of the frames, the reference's) -> `summaries`; `--save-summary-video` writes each
summary as one playable file under OUTPUT/summaries/<video_id>/."""

from __future__ import annotations

from typing import ClassVar

from reelbeam.stages.base import ConfigError, Stage, add_flag


class SummariesStage(Stage):
    name: ClassVar[str] = "summaries"
    title: ClassVar[str] = "Summaries (shots or KTS segments + knapsack, from the frame scores)"
    reads: ClassVar[tuple[str, ...]] = ("videos", "frames", "frame_embeddings", "frame_scores")
    optional_reads: ClassVar[tuple[str, ...]] = ("shots",)  # --summary-segments shots
    writes: ClassVar[tuple[str, ...]] = ("summaries",)
    enabled_by: ClassVar[str] = "CLIP weights at hand (--clip-model)"

    def __init__(self, budget: float, video_output: str | None, segments: str = "kts") -> None:
        super().__init__()
        self.budget = budget
        self.video_output = video_output
        self.segments = segments

    @staticmethod
    def add_flags(group) -> None:
        add_flag(group, "summary-budget", type=float, default=0.15,
                 help="summary length as a fraction of the video's frames (0.15: the reference's)")
        add_flag(group, "summary-segments", default="shots", choices=("shots", "kts"),
                 help="what the knapsack chooses from: shots (the pipeline's shots, each longer than the budget "
                 "split to fit it; KTS for a video without shots) or kts (CLIP-It's KTS segments of the CLIP features, "
                 "as the reference; one segment can outgrow the budget and leave the summary empty); "
                 "shots: the better F-score on generated data, docs/BENCHMARKS.md")
        add_flag(group, "save-summary-video", action="store_true",
                 help="write each summary as one playable file, OUTPUT/summaries/<video_id>/<query_id>-<scorer>.mp4 "
                 "(stream copy where every segment is whole GOPs, else re-encoded; audio kept)")

    @classmethod
    def configure(cls, options, env) -> SummariesStage | None:
        from reelbeam.stages.clip_scoring import clip_source

        if not 0.0 < options.summary_budget <= 1.0:
            raise ConfigError(f"--summary-budget must be in (0, 1], got {options.summary_budget:g}")
        if clip_source(options, env) is None:
            if options.save_summary_video:  # missing weights are refused by clip_source, naming them
                why = "drop --clip-scoring off" if options.clip_scoring == "off" else "drop --iframes-only"
                raise ConfigError(f"--save-summary-video needs the CLIP stages, which are off: {why}")
            return None
        return cls(options.summary_budget, options.output.rstrip("/") if options.save_summary_video else None,
                   options.summary_segments)

    def settings(self) -> str:
        return f"{self.segments}+knapsack budget={self.budget:g}"

    def expand(self, tables):
        from reelbeam.transforms.summarize import Summarize

        return tables | "Summarize" >> Summarize(self.budget, self.video_output, segments=self.segments)
