"""Stage times: regions nest (a stage's time excludes what ran inside it for another), a DoFn's
time excludes what the next steps do with its outputs, decode-pass consumers count wall time only,
CPU is left out where another thread ran timed work alongside, and the counters fold into the
manifest's `stage_times`."""

import threading
import time

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing.test_pipeline import TestPipeline

from reelbeam.transforms.portable import split_outputs
from reelbeam.transforms.timing import (
    CPU,
    CPU_UNKNOWN,
    IN_PASS,
    WALL,
    StageClock,
    TimedConsumer,
    is_timing_counter,
    stage_times,
)


def _busy(cpu_seconds):
    """Spin for `cpu_seconds` of this process's CPU (the machine may be busy: wall time is at least that)."""
    end = time.process_time() + cpu_seconds
    while time.process_time() < end:
        pass


def _figures(clock):
    return {stage: list(v) for stage, v in clock._acc.items()}


def test_nested_regions_count_toward_the_innermost_stage_only():
    clock = StageClock()

    def outer():
        _busy(0.05)
        clock.call("inner", _busy, 0.1)
        _busy(0.05)

    t0 = time.perf_counter()
    clock.call("outer", outer)
    elapsed = time.perf_counter() - t0
    got = _figures(clock)
    (outer_wall, outer_cpu, _, _), (inner_wall, inner_cpu, _, _) = got["outer"], got["inner"]
    assert 0.095 <= outer_cpu < 0.15 and 0.095 <= inner_cpu < 0.15, got  # its own 0.1 s, not also the inner's
    assert outer_wall >= 0.095 and inner_wall >= 0.095, got
    assert elapsed - 0.05 <= outer_wall + inner_wall <= elapsed, (got, elapsed)  # each instant counted once


def test_time_between_the_steps_of_a_generator_is_not_its_own():
    clock = StageClock()

    def produce():
        for _ in range(3):
            _busy(0.02)
            yield 1

    t0 = time.perf_counter()
    for _ in clock.timed("producer", produce):
        _busy(0.05)  # what the next step does with the element
    elapsed = time.perf_counter() - t0
    wall, cpu, _, _ = _figures(clock)["producer"]
    assert 0.055 <= cpu < 0.1, cpu
    # The 0.15 s the loop's body takes between the steps is not the producer's: its wall stays near
    # its own 0.06 s, well clear of the loop's whole time (a margin: the timer's own overhead).
    assert 0.055 <= wall <= elapsed - 0.12, (wall, elapsed)


def test_a_consumer_inside_the_decode_pass_counts_wall_only_and_stays_part_of_the_pass():
    clock = StageClock()

    class Consumer:
        def start(self, info):
            return []

        def consume(self, view):
            _busy(0.03)
            yield "tag", view

        def finish(self):
            return None

    def decode_pass():
        c = TimedConsumer(Consumer(), "shots", clock)
        out = list(c.start(None))
        for i in range(3):
            _busy(0.01)
            out += list(c.consume(i))
        out += list(c.finish())
        return out

    t0 = time.perf_counter()
    assert clock.call("decode", decode_pass) == [("tag", 0), ("tag", 1), ("tag", 2)]
    elapsed = time.perf_counter() - t0
    got = _figures(clock)
    wall, cpu, unknown, in_pass = got["shots"]
    assert in_pass >= 0.09 and wall == cpu == unknown == 0, got
    d_wall, d_cpu, _, _ = got["decode"]
    # the decode region is the whole pass, the consumer's time included
    assert elapsed - 0.05 <= d_wall <= elapsed and in_pass <= d_wall - 0.03, (got, elapsed)
    assert 0.12 <= d_cpu < 0.17, got


def test_cpu_is_left_out_where_another_thread_runs_timed_work_alongside():
    clock, other = StageClock(), StageClock()
    started = threading.Event()

    def elsewhere():
        def work():
            started.set()
            _busy(0.2)

        other.call("other", work)

    t = threading.Thread(target=elsewhere)
    t.start()
    started.wait()
    clock.call("mine", _busy, 0.05)
    t.join()
    wall, cpu, unknown, _ = _figures(clock)["mine"]
    assert wall > 0 and cpu == 0 and unknown == wall


def test_untimed_steps_pass_through():
    clock = StageClock()
    assert list(clock.timed(None, lambda: iter([1, 2]))) == [1, 2]
    assert list(clock.timed("s", lambda: None)) == []
    assert clock.call(None, lambda: 3) == 3
    assert set(_figures(clock)) == {"s"}


def test_counters_fold_into_stage_times():
    counters = {
        WALL + "decode": 4_500_000, CPU + "decode": 1_500_000,
        IN_PASS + "shots": 3_000_000, WALL + "shots": 250_000, CPU + "shots": 200_000,
        WALL + "motion_stats": 1000, IN_PASS + "motion_stats": 500_000, CPU_UNKNOWN + "motion_stats": 1000,
        WALL + "commit": 20_000, CPU + "commit": 10_000,
    }
    assert all(is_timing_counter(k) for k in counters) and not is_timing_counter("videos_ok")
    got = stage_times(counters, ["decode", "shots", "motion_stats", "modelscope_json"], ["shots", "motion_stats"])
    assert list(got) == ["decode", "shots", "motion_stats", "modelscope_json", "commit"]
    assert got["decode"] == {"wall_s": 4.5, "cpu_s": 1.5, "in_pass": {"shots": 3.0, "motion_stats": 0.5}}
    assert got["shots"] == {"wall_s": 0.25, "cpu_s": 0.2, "in_decode_pass_s": 3.0}
    assert got["motion_stats"] == {"wall_s": 0.001, "cpu_s": None, "in_decode_pass_s": 0.5}
    assert got["modelscope_json"] == {"wall_s": 0.0, "cpu_s": None}  # ran, but no counter came back
    assert got["commit"] == {"wall_s": 0.02, "cpu_s": 0.01}


class _SlowFn(beam.DoFn):
    def process(self, x):
        _busy(0.02)
        yield x


def test_a_split_outputs_step_counts_its_time_in_the_counters_of_its_stage():
    p = TestPipeline()
    out = split_outputs(p | beam.Create([1, 2, 3]), _SlowFn(), [], "main", "Slow")
    _ = out["main"] | "Slower" >> beam.Map(lambda x: _busy(0.05))  # fused after it: not its time
    (step,) = [t for t in p.transforms_stack[0].parts if t.full_label == "Slow"]
    while not hasattr(step.transform, "fn"):  # a tagged-output ParDo is a composite around the ParDo
        (step,) = step.parts
    step.transform.fn.timed_as = "slow_stage"
    result = p.run()
    result.wait_until_finish()
    found = {c.key.metric.name: c.committed for c in result.metrics().query(MetricsFilter().with_namespace("reelbeam"))["counters"]}
    assert found[WALL + "slow_stage"] / 1e6 >= 0.055, found
    assert 0.055 <= found[CPU + "slow_stage"] / 1e6 < 0.15, found  # not the 0.15 s of the step after it
