"""`--runner dask`: Beam's DaskRunner with its graph translation made to scale.

Beam 2.77's DaskRunner turns each Beam step into `dask.bag` operations. Four of its choices made
a small reelbeam job take minutes (a 3-video test corpus: 319,205 Dask tasks in a 52 MiB graph,
40 s before the first task ran, over 10 minutes in all):

- **Partitions only grow.** A Flatten concatenates its inputs' partitions and a GroupByKey keeps
  its input's count, so every CoGroupByKey (tag, Flatten, group) on the way to the table commits
  multiplies the partitions, and each GroupByKey shuffles all of them. Here a GroupByKey writes
  to at most `2 x` the cluster's worker threads, and a Flatten that would exceed that repartitions.
- **Setup per bundle.** Each partition created a new DoFn invoker and ran `setup` and `teardown`,
  so a model stage loaded its weights once per partition. Here each worker thread keeps one
  invoker per step for the whole job (`setup` once; Beam allows a DoFn instance to serve many
  bundles), and only `start_bundle`/`finish_bundle` run per partition; when the job ends, every
  worker tears its DoFns down (`teardown`), so a long-lived cluster does not keep old jobs' models.
- **Every tag to every consumer.** A multi-output step's bag held the outputs of all its tags,
  untagged, and each consumer read all of them. Here outputs keep their tag and each consumer
  reads its own (`_Visitor`), so the pipeline uses Beam's tagged outputs on Dask too.
- **Lost finish_bundle outputs.** Beam's bundle function collects a bundle's outputs before
  `finish_bundle`, so what a DoFn emits there (Beam's `BatchElements`, inside `RunInference`,
  emits its last batch there) was lost. Here they are kept.

Everything else is Beam's: the Dask client (`--dask_client_address`, or a LocalCluster), the
overrides of Create/GroupByKey/Flatten/Reshuffle, `--dask_npartitions`/`--dask_partition_size`
for the inputs (reelbeam passes `--dask_partition_size=1`: one video per partition).
"""

from __future__ import annotations

import threading
import uuid

from apache_beam import pvalue
from apache_beam.pipeline import PipelineVisitor
from apache_beam.pvalue import TaggedOutput
from apache_beam.runners.common import DoFnInvoker
from apache_beam.runners.dask import dask_runner
from apache_beam.runners.dask import transform_evaluator as evaluator
from apache_beam.runners.dask.overrides import _Create, _Flatten, _GroupByKeyOnly, dask_overrides
from apache_beam.transforms.sideinputs import SideInputMap

_INVOKERS: dict = {}  # (job, step id, thread id) -> (invoker, its receivers): until the job ends
_INVOKERS_LOCK = threading.Lock()


def _invoker(job: str, step: str, do_fn_invoker_args, do_fn_invoker_kwargs, tagged_receivers):
    key = (job, step, threading.get_ident())
    with _INVOKERS_LOCK:
        found = _INVOKERS.get(key)
    if found is None:
        invoker = DoFnInvoker.create_invoker(*do_fn_invoker_args, **do_fn_invoker_kwargs)
        invoker.invoke_setup()
        found = (invoker, tagged_receivers)
        with _INVOKERS_LOCK:
            _INVOKERS[key] = found
    return found


_COUNTERS: dict = {}  # job -> Dask task key -> {counter name: value}: a bundle's Beam counters
_SAMPLERS = threading.local()


def _task_key() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().get_current_task())
    except (ImportError, ValueError, AttributeError):
        return uuid.uuid4().hex


def _bundle_key(label: str) -> tuple:
    """(Dask task key, step, n): the n-th bundle of `step` inside this task (one fused task runs
    several steps, and a repartition several bundles of one step); the same for a rerun."""
    task = _task_key()
    seen = getattr(_SAMPLERS, "seen", None)
    if seen is None or seen[0] != task:
        seen = _SAMPLERS.seen = (task, {})
    n = seen[1][label] = seen[1].get(label, -1) + 1
    return task, label, n


def apply_dofn_to_bundle(items, step, job, label, do_fn_invoker_args, do_fn_invoker_kwargs, tagged_receivers):
    """One bundle (a Dask partition) through the step's long-lived invoker: start, every element,
    finish, then the outputs, those of `finish_bundle` included. The bundle's Beam counters are
    kept under its Dask task key, so a task Dask reruns (a lost worker) is counted once."""
    from apache_beam.metrics.execution import MetricsContainer
    from apache_beam.runners.worker import statesampler
    from apache_beam.utils import counters

    sampler = getattr(_SAMPLERS, "sampler", None)
    if sampler is None:
        sampler = _SAMPLERS.sampler = statesampler.StateSampler("", counters.CounterFactory())
    statesampler.set_current_tracker(sampler)
    invoker, receivers = _invoker(job, step, do_fn_invoker_args, do_fn_invoker_kwargs, tagged_receivers)
    del receivers.values[:]
    # The sampler keeps one state (and so one metrics container) per step: count this bundle's part.
    with sampler.scoped_state(label, "process", metrics_container=MetricsContainer(label)):
        container = sampler.current_state().metrics_container
        before = _reelbeam_counters(container)
        invoker.invoke_start_bundle()
        for item in items:
            invoker.invoke_process(item)
        invoker.invoke_finish_bundle()
    # A tagged output stays tagged (Beam's translation unwrapped it, so every consumer of a
    # multi-output step got the outputs of every tag): `_Visitor` hands each consumer its tag's.
    out = [TaggedOutput(v.tag, v.value.value) if isinstance(v, TaggedOutput) else v.value for v in receivers.values]
    del receivers.values[:]
    found = {k: n - before.get(k, 0) for k, n in _reelbeam_counters(container).items() if n != before.get(k, 0)}
    if found:
        with _INVOKERS_LOCK:
            _COUNTERS.setdefault(job, {})[_bundle_key(label)] = found
    return out


def _reelbeam_counters(container) -> dict[str, int]:
    return {k.metric.name: int(v) for k, v in container.get_cumulative().counters.items()
            if k.metric.namespace == "reelbeam"}


def _end_job(job: str) -> dict:
    """On a worker, once `job` is over: tear its DoFns down (a long-lived cluster serving many jobs
    must not keep every job's models loaded) and hand over its counters."""
    with _INVOKERS_LOCK:
        mine = [k for k in _INVOKERS if k[0] == job]
        invokers = [_INVOKERS.pop(k)[0] for k in mine]
        found = _COUNTERS.pop(job, {})
    for invoker in invokers:
        try:
            invoker.invoke_teardown()
        except Exception:  # noqa: BLE001 - teardown is best effort in Beam too
            pass
    return found


class DaskMetrics:
    """The job's `reelbeam` counters, summed over Dask tasks (each task once), in the shape of
    Beam's `MetricResults.query` that the launcher reads."""

    def __init__(self, by_task: dict):
        self.totals: dict[str, int] = {}
        for found in by_task.values():
            for name, n in found.items():
                self.totals[name] = self.totals.get(name, 0) + n

    def query(self, filter=None):
        from apache_beam.metrics.execution import MetricKey, MetricResult
        from apache_beam.metrics.metricbase import MetricName

        return {"counters": [MetricResult(MetricKey("", MetricName("reelbeam", n)), v, v) for n, v in self.totals.items()],
                "distributions": [], "gauges": []}


class ParDo(evaluator.ParDo):
    job = ""  # set per job
    def apply(self, input_bag, side_inputs=None):
        # Beam's translation with the bundle function swapped: build Beam's op, then re-point its
        # last layer (map_partitions over the windowed values) at the long-lived invoker.
        original = evaluator.apply_dofn_to_bundle
        evaluator.apply_dofn_to_bundle = _Step(uuid.uuid4().hex, self.job, self.applied.full_label)
        try:
            return super().apply(input_bag, side_inputs)
        finally:
            evaluator.apply_dofn_to_bundle = original


class _Step:
    """A picklable bundle function bound to one step (a closure would not pickle to workers)."""

    def __init__(self, step: str, job: str, label: str):
        self.step, self.job, self.label = step, job, label

    def __call__(self, items, *args):
        return apply_dofn_to_bundle(items, self.step, self.job, self.label, *args)

    def __repr__(self):
        return f"beam-step({self.label})"


class GroupByKey(evaluator.GroupByKey):
    limit = 4  # set per job: 2 x the cluster's worker threads

    def apply(self, input_bag, side_inputs=None):
        def value(item):
            k, v = item
            return k, [evaluator.defenestrate(elm[1]) for elm in v]

        parts = max(1, min(input_bag.npartitions, self.limit))
        return input_bag.groupby(lambda item: item[0], npartitions=parts).map(value)


class Flatten(evaluator.Flatten):
    limit = 4

    def apply(self, input_bag, side_inputs=None):
        bag = super().apply(input_bag, side_inputs)
        return bag.repartition(self.limit) if bag.npartitions > self.limit else bag


def _of_tag(items, tag):
    """The outputs of one tag of a multi-output step's bundle (None: its main output)."""
    if tag is None:
        return [x for x in items if not isinstance(x, TaggedOutput)]
    return [x.value for x in items if isinstance(x, TaggedOutput) and x.tag == tag]


class _Visitor(PipelineVisitor):
    """Beam's DaskRunner visitor (one bag per step, in topological order) with each input read from
    its own tag of the producing step, and the op classes given per job."""

    def __init__(self, ops: dict, bag_kwargs: dict) -> None:
        self.ops = ops
        self.bag_kwargs = bag_kwargs
        self.bags: dict = {}
        self._selected: dict = {}

    def _bag(self, pcoll):
        producer = pcoll.producer
        bag = self.bags.get(producer)
        if bag is None or len(producer.outputs) < 2:
            return bag
        key = (producer, pcoll.tag)
        if key not in self._selected:
            self._selected[key] = bag.map_partitions(_of_tag, pcoll.tag)
        return self._selected[key]

    def visit_transform(self, node) -> None:
        op = self.ops.get(node.transform.__class__, evaluator.NoOp)(node, bag_kwargs=self.bag_kwargs)
        kwargs = {"input_bag": None, "side_inputs": None}
        inputs = [None if isinstance(i, pvalue.PBegin) else self._bag(i) for i in node.inputs]
        inputs = [b for b in inputs if b is not None] or ([None] if node.inputs else [])
        if node.inputs:
            kwargs["input_bag"] = inputs if isinstance(op, evaluator.Flatten) or len(inputs) != 1 else inputs[0]
        if node.side_inputs:
            kwargs["side_inputs"] = [
                SideInputMap(type(si), si._view_options(),
                             evaluator.DaskBagWindowedIterator(self._bag(si.pvalue), si._window_mapping_fn))
                for si in node.side_inputs]
        self.bags[node] = op.apply(**kwargs)


class DaskRunnerResult(dask_runner.DaskRunnerResult):
    """Beam's result, closing the job's client once the job is over (an open client outlives a
    cluster that shuts down and logs reconnection tracebacks; a LocalCluster it made closes too)."""

    def wait_until_finish(self, duration=None):
        try:
            state = super().wait_until_finish(duration)
        except BaseException:
            self._end()
            raise
        if str(state).endswith(("DONE", "FAILED", "CANCELLED")):
            by_task = self._end()
            self._metrics = DaskMetrics(by_task) if by_task is not None and str(state).endswith("DONE") else None
        return state

    def _end(self) -> dict | None:
        """Release the job's DoFns on every worker, collect its counters, close the client."""
        try:
            by_task: dict | None = {}
            for found in self.client.run(_end_job, self.job).values():
                by_task.update(found)
        except Exception:  # noqa: BLE001 - counters are a summary, never a reason to fail
            by_task = None
        self.client.close()
        return by_task

    def metrics(self):
        found = getattr(self, "_metrics", None)
        if found is None:
            raise NotImplementedError("no counters from this Dask job")
        return found


class DaskRunner(dask_runner.DaskRunner):
    """Beam's DaskRunner with the translation above (see the module docstring)."""

    def run_pipeline(self, pipeline, options):
        import dask
        import dask.distributed as ddist

        dask_options = options.view_as(dask_runner.DaskOptions).get_all_options(drop_default=True, current_only=True)
        bag_kwargs = dask_runner.DaskOptions._extract_bag_kwargs(dask_options)
        client = ddist.Client(**dask_options)
        threads = sum(client.nthreads().values()) or 1
        limit = max(2, 2 * threads)
        job = uuid.uuid4().hex
        ops = {
            _Create: evaluator.Create,
            evaluator.apache_beam.ParDo: type("ParDo", (ParDo,), {"job": job}),
            _GroupByKeyOnly: type("GroupByKey", (GroupByKey,), {"limit": limit}),
            _Flatten: type("Flatten", (Flatten,), {"limit": limit}),
        }
        pipeline.replace_all(dask_overrides())
        visitor = _Visitor(ops, bag_kwargs)
        pipeline.visit(visitor)
        # The last step depends on every other one (reelbeam ends each job with a step that waits
        # for every commit), so computing it computes the job.
        graph = dask.optimize(list(visitor.bags.values())[-1])
        futures = client.compute(graph)
        result = DaskRunnerResult(client, futures)
        result.job = job
        return result
