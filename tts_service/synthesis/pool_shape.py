"""The engine pool's shape: how many engines, their threads, and the solo engine's threads.

The rule, for the CPUs the process may use (cpus.py), from the measurements in
docs/pool.md:

- one engine per CPU, one thread each: single-thread engines side by side make the most audio
  per second once several pieces wait (2x1 5.6 audio s/s against 2x2 5.3 and 1x2 5.2 on 2
  CPUs), and on 1 CPU a second engine would only share the same core;
- a solo engine with a thread per CPU, at most 4, and none on 1 CPU: it makes a lone
  request's pieces one at a time (scheduler.py), so a lone caller's audio is made on several
  cores (a sentence in 0.9 s against 1.4 s on 2 CPUs); on 1 CPU its threads would fight the
  engine for the one core. Past 4 threads a lone sentence gains little (Amdahl's law with
  the 1.6x measured from 1 to 2 threads: 2.3x at 4 threads, 2.9x at 8) while every operator
  waits for more threads.

Every setting given explicitly wins; the others follow the rule around it.
"""

from __future__ import annotations

from dataclasses import dataclass

from tts_service.synthesis.cpus import UsableCpus

MAX_SOLO_ENGINE_THREADS = 4


@dataclass(frozen=True)
class PoolShape:
    """The pool the server starts, and whether the rule chose all of it."""

    engines: int
    engine_threads: int
    solo_engine_threads: int  # 0: no solo engine
    cpus: UsableCpus
    from_cpus: bool  # no setting was given explicitly

    @property
    def thread_counts(self) -> list[int]:
        """Threads of each engine: the pool's, then the solo engine's if there is one."""
        solo = [self.solo_engine_threads] if self.solo_engine_threads else []
        return [self.engine_threads] * self.engines + solo

    def describe(self) -> str:
        solo = (f", a solo engine of {self.solo_engine_threads} threads"
                if self.solo_engine_threads else ", no solo engine")
        source = "derived from" if self.from_cpus else "set explicitly, with"
        return (f"{self.engines} engine{'s' if self.engines != 1 else ''} of "
                f"{self.engine_threads} thread{'s' if self.engine_threads != 1 else ''}{solo}; "
                f"{source} {self.cpus.describe()}")


def pool_shape(cpus: UsableCpus, engines: int | None = None, engine_threads: int | None = None,
               solo_engine_threads: int | None = None) -> PoolShape:
    """The shape for `cpus`; a setting that is not None is kept as given."""
    from_cpus = engines is None and engine_threads is None and solo_engine_threads is None
    threads = engine_threads if engine_threads is not None else 1
    if engines is None:
        engines = max(1, cpus.count // threads)
    if solo_engine_threads is None:
        solo = min(cpus.count, MAX_SOLO_ENGINE_THREADS)
        # A solo engine no faster than the pool's engines would only hold memory.
        solo_engine_threads = solo if solo > threads else 0
    return PoolShape(engines=engines, engine_threads=threads,
                     solo_engine_threads=solo_engine_threads, cpus=cpus, from_cpus=from_cpus)
