"""One module per pipeline stage: DoFns and PTransforms, with pure helper functions beside them."""
