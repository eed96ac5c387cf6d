"""How big the Beam graph of a run is: the number of steps (`reelbeam.pipelines.graph_size
.count(argv)`), what bench/e2e.py reports and tests/pipelines/test_graph_size.py bounds.

Every step costs on every runner: Beam's graph construction (type inference, ~500 signature
inspections a step), the job graph a remote runner receives, and a task per partition on Dask."""

from __future__ import annotations

from collections.abc import Sequence


def count(argv: Sequence[str]) -> dict[str, int]:
    """{'leaf', 'composite', 'total'} steps of the pipeline `reelbeam run argv` would run (built,
    not run; the output is not touched)."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from reelbeam.pipelines.plan import build_plan
    from reelbeam.pipelines.video_pipeline import build_pipeline

    plan = build_plan(PipelineOptions(list(argv)), prepare=False)
    pipeline = beam.Pipeline()
    build_pipeline(pipeline, plan)

    class Counter(beam.pipeline.PipelineVisitor):
        leaf = composite = 0

        def visit_transform(self, node):
            self.leaf += 1

        def enter_composite_transform(self, node):
            if node.parent is not None:  # not the pipeline's root
                self.composite += 1

    seen = Counter()
    pipeline.visit(seen)
    return {"leaf": seen.leaf, "composite": seen.composite, "total": seen.leaf + seen.composite}
