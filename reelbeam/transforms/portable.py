"""Beam building blocks that behave the same on every runner reelbeam supports.

Beam's DaskRunner (and some portable runners) implement a narrower Beam than the DirectRunner and
Dataflow: on Beam's DaskRunner a multi-output ParDo hands every consumer all the outputs of every
tag (fixed in reelbeam.runners.dask), side inputs are computed by re-running their producers inside
each consuming task (so upstream work would run several times), and outputs emitted in
`finish_bundle` are dropped (fixed there too, but other runners' users may meet it). The pipeline
therefore uses, everywhere:

- `split_outputs`: a DoFn's tagged outputs as a tag -> PCollection dict (Beam's DaskRunner handed
  every consumer of a multi-output step all its outputs; reelbeam's Dask translation does not);
- `GuardedModelHandler` + `infer`: RunInference whose failed batches come back as results marked
  `BatchError` (no dead-letter tag), split into results and failures;
- no side inputs (barriers are CoGroupByKeys), no outputs from `finish_bundle`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.ml.inference.base import KeyedModelHandler, ModelHandler, PredictionResult, RunInference

from reelbeam import progress


class _Checked(beam.DoFn):
    """Runs `fn`, with a TaggedOutput to the main output's name sent to the main output, and
    refusing outputs from its `finish_bundle` (see the module docstring). `timed_as`: the stage its
    time counts toward (`reelbeam.transforms.timing`; set once the graph is built, None: not timed)."""

    def __init__(self, fn: beam.DoFn, main: str) -> None:
        from reelbeam.transforms.timing import StageClock

        self._fn = fn
        self._main = main
        self.timed_as: str | None = None
        self._clock = StageClock()

    def setup(self):
        self._clock.call(self.timed_as, self._fn.setup)

    def start_bundle(self):
        self._clock.call(self.timed_as, self._fn.start_bundle)

    def process(self, element, *args, **kwargs):
        for out in self._clock.timed(self.timed_as, self._fn.process, element, *args, **kwargs):
            if isinstance(out, beam.pvalue.TaggedOutput) and out.tag == self._main:
                yield out.value
            else:
                if self.timed_as is not None and isinstance(out, beam.pvalue.TaggedOutput) and out.tag == "processed":
                    progress.processed(self.timed_as, out.value)  # a local run's display counts it
                yield out

    def finish_bundle(self):
        if self._clock.call(self.timed_as, self._fn.finish_bundle):
            raise RuntimeError(f"{type(self._fn).__name__}.finish_bundle must not emit outputs (see reelbeam.transforms.portable)")
        self._clock.flush()

    def teardown(self):
        self._fn.teardown()


class Outputs(dict):
    """Tag -> PCollection, also readable as attributes (like Beam's DoOutputsTuple)."""

    def __getattr__(self, tag: str):
        try:
            return self[tag]
        except KeyError:
            raise AttributeError(tag) from None


def split_outputs(pcoll, fn: beam.DoFn, tags: Sequence[str], main: str, label: str) -> Outputs:
    """`pcoll | ParDo(fn).with_outputs(*tags, main=main)` as a tag -> PCollection dict: one step
    (reelbeam's Dask translation hands each consumer its own tag, see reelbeam.runners.dask)."""
    outputs = pcoll | label >> beam.ParDo(_Checked(fn, main)).with_outputs(*tags, main=main)
    return Outputs({tag: outputs[tag] for tag in (main, *tags)})


class BatchError(NamedTuple):
    """The result of an element whose batch raised in the model: the exception, as text."""

    message: str


class GuardedModelHandler(ModelHandler):
    """Wraps a ModelHandler so that a batch raising in `run_inference` gives one result per
    element carrying `BatchError` instead of failing the bundle (RunInference's own dead-letter
    output is a tagged output: see the module docstring). Loading errors still fail the job."""

    def __init__(self, inner: ModelHandler, resource_hints: dict | None = None, stage: str | None = None) -> None:
        from reelbeam.transforms.timing import StageClock

        super().__init__()
        self._inner = inner
        self._hints = dict(resource_hints or {})
        self._stage = stage  # the stage its loading and batches count toward (reelbeam.transforms.timing)
        self._clock = StageClock()

    def load_model(self):
        # Loading runs in the step's setup, outside a metrics context: its time is flushed with
        # the first batch.
        return self._clock.call(self._stage, self._inner.load_model)

    def run_inference(self, batch, model, inference_args=None):
        try:
            return self._clock.call(self._stage, lambda: list(self._inner.run_inference(batch, model, inference_args)))
        except Exception as e:  # noqa: BLE001 - reported per element, becomes failures rows
            error = BatchError(f"{type(e).__name__}: {e}")
            return [PredictionResult(x, error) for x in batch]
        finally:
            self._clock.flush()

    def get_num_bytes(self, batch) -> int:
        return self._inner.get_num_bytes(batch)

    def get_metrics_namespace(self) -> str:
        return self._inner.get_metrics_namespace()

    def batch_elements_kwargs(self):
        return self._inner.batch_elements_kwargs()

    def share_model_across_processes(self) -> bool:
        return self._inner.share_model_across_processes()

    def model_copies(self) -> int:
        return self._inner.model_copies()

    def update_model_path(self, model_path: str | None = None):
        return self._inner.update_model_path(model_path)

    def validate_inference_args(self, inference_args):
        return self._inner.validate_inference_args(inference_args)

    def get_resource_hints(self) -> dict:
        return {**self._inner.get_resource_hints(), **self._hints}

    def should_skip_batching(self) -> bool:
        return self._inner.should_skip_batching()

    def set_environment_vars(self):
        return self._inner.set_environment_vars()

    def should_garbage_collect_on_timeout(self) -> bool:
        return self._inner.should_garbage_collect_on_timeout()

    def override_metrics(self, metrics_namespace: str = "") -> bool:
        return self._inner.override_metrics(metrics_namespace)


def _failed(element) -> bool:
    return isinstance(element[1].inference, BatchError)


def infer(keyed, handler: ModelHandler, label: str) -> tuple[Any, Any]:
    """(key, example) -> RunInference with `handler` -> (results, failures): results are
    (key, PredictionResult), failures (key, BatchError message)."""
    guarded = handler if isinstance(handler, GuardedModelHandler) else GuardedModelHandler(handler)
    scored = keyed | label >> RunInference(KeyedModelHandler(guarded))
    split = scored | f"{label}_Split" >> beam.ParDo(_SplitFailed()).with_outputs("failed", main="ok")
    return split.ok, split.failed


class _SplitFailed(beam.DoFn):
    def process(self, kv):
        if _failed(kv):
            yield beam.pvalue.TaggedOutput("failed", (kv[0], kv[1].inference.message))
        else:
            yield kv
