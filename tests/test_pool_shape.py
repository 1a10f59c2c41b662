"""The pool's shape follows the usable CPUs by one rule, and every explicit setting wins."""

from __future__ import annotations

import pytest

from tts_service.synthesis.cpus import UsableCpus
from tts_service.synthesis.pool_shape import MAX_SOLO_ENGINE_THREADS, pool_shape


def _cpus(count: int) -> UsableCpus:
    return UsableCpus(count=count, affinity=count, quota=None)


@pytest.mark.parametrize(("cpus", "engines", "solo"), [
    (1, 1, 0),  # taskset -c 0: one busy thread, nothing to fight it
    (2, 2, 2),  # the shape measured best on 2 cores (BENCHMARKS.md)
    (3, 3, 3),
    (4, 4, 4),
    (8, 8, MAX_SOLO_ENGINE_THREADS),
    (64, 64, MAX_SOLO_ENGINE_THREADS),
])
def test_one_single_thread_engine_per_cpu_and_a_solo_engine_of_up_to_4(
        cpus: int, engines: int, solo: int) -> None:
    shape = pool_shape(_cpus(cpus))
    assert (shape.engines, shape.engine_threads, shape.solo_engine_threads) == (engines, 1, solo)
    assert shape.from_cpus


def test_on_one_cpu_no_engine_thread_waits_for_another() -> None:
    shape = pool_shape(_cpus(1))
    assert shape.thread_counts == [1]


def test_explicit_settings_win_and_the_rest_follow_the_rule() -> None:
    cpus = _cpus(8)
    assert pool_shape(cpus, engines=3).thread_counts == [1, 1, 1, 4]
    # Two threads per engine: half as many engines fill the CPUs.
    assert pool_shape(cpus, engine_threads=2).thread_counts == [2] * 4 + [4]
    assert pool_shape(cpus, solo_engine_threads=0).thread_counts == [1] * 8
    assert pool_shape(cpus, solo_engine_threads=8).solo_engine_threads == 8
    assert not pool_shape(cpus, engines=8).from_cpus


def test_a_solo_engine_no_faster_than_the_pools_is_left_out() -> None:
    assert pool_shape(_cpus(2), engine_threads=2).thread_counts == [2]
    assert pool_shape(_cpus(8), engine_threads=4).thread_counts == [4, 4]
    # ... unless asked for.
    assert pool_shape(_cpus(2), engine_threads=2, solo_engine_threads=2).thread_counts == \
        [2, 2]


def test_more_threads_than_cpus_still_make_one_engine() -> None:
    assert pool_shape(_cpus(2), engine_threads=4).engines == 1


def test_describe_names_the_shape_and_its_source() -> None:
    cpus = UsableCpus(count=2, affinity=64, quota=2.0)
    assert pool_shape(cpus).describe() == (
        "2 engines of 1 thread, a solo engine of 2 threads; derived from 2 usable CPUs "
        "(affinity 64, cgroup quota 2 CPUs)")
    assert pool_shape(_cpus(1), engines=1).describe() == (
        "1 engine of 1 thread, no solo engine; set explicitly, with 1 usable CPU "
        "(affinity 1, cgroup quota none)")
