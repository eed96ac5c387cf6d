"""ProcessVideos: the stages of a plan as one PTransform, for tests that check the tables a job
makes with TestPipeline + assert_that (no writers, no commits)."""

import apache_beam as beam

from reelbeam.pipelines.video_pipeline import apply_stages


class ProcessVideos(beam.PTransform):
    """PBegin -> dict of PCollections, one per table this job makes ('videos', 'frames' (pyarrow
    Tables, one per video), 'shots', ...) and 'failures' (every stage's, uris filled).

    transition_handler: a ModelHandler replacing TransNetV2 (uint8 windows [100, 27, 48, 3] ->
      probabilities [50]), through the shots stage's handler override.
    """

    def __init__(self, plan, transition_handler=None) -> None:
        super().__init__()
        self._plan = plan
        self.fold = None
        shots = plan.running("shots")
        if transition_handler is not None and shots is not None:
            shots.handler_override = transition_handler

    def expand(self, pbegin):
        self.fold = apply_stages(pbegin, self._plan)
        return {**self.fold.tables, "failures": self.fold.failures}
