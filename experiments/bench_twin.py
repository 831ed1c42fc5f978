"""Benchmark the twin against a bare SimPy model of the same flow line.

Both models simulate the default line for the same horizon. Each is timed, best of several
repeats, in runs without instrumentation; its SimPy events are counted in one more run with
the same seed (hence the same event sequence) and a counter around `Environment.step`.

python -m experiments.bench_twin                                # flow5, one week, best of 3
python -m experiments.bench_twin --days 1 --repeats 5 --seed 1
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import simpy

from configs import config_file
from experiments.tables import markdown_table
from hardware.twin import LineParams, TwinLine
from hardware.twin.params import Layout
from hardware.twin.plant import Plant

LINE = config_file("line", "flow5")
GOAL = 2.0  # ceiling on the twin/bare ratio of wall time per simulated hour
_BLOCK = 1024  # random draws fetched per numpy call

Hook = Callable[[simpy.Environment], None]
Model = Callable[[LineParams, int, float, Hook], int]


@dataclass(frozen=True)
class Result:
    """What one model did over the horizon, and how fast."""

    name: str
    wall_s: float  # best of the timed repeats
    events: int
    good_parts: int


@dataclass
class StepCounter:
    """Counts the events SimPy processes, by wrapping `step` on one environment instance."""

    events: int = 0

    def attach(self, env: simpy.Environment) -> None:
        """Count every later `env.step()` call."""
        step = env.step

        def counted() -> None:
            self.events += 1
            step()

        env.step = counted  # type: ignore[method-assign]


def _no_hook(env: simpy.Environment) -> None:
    """Leave the environment as it is."""


def run_twin(params: LineParams, seed: int, horizon_s: float, hook: Hook = _no_hook) -> int:
    """Run the twin with its own rules up to `horizon_s` and return its good parts."""
    line = TwinLine(params, seed=seed)
    line.reset()
    hook(cast("Plant", line._plant).env)
    return line.advance(horizon_s).kpis.good_parts


def _stream(draw: Callable[[int], np.ndarray]) -> Iterator[float]:
    """Yield draws one at a time, fetched `_BLOCK` at a time (a scalar numpy call costs ~1 us)."""
    while True:
        yield from draw(_BLOCK).tolist()


class BareLine:
    """The flow line as a plain SimPy model, without the twin's code.

    Poisson arrivals of one part each, variant drawn by mix, queue at the first station
    (unbounded); stations in series, FIFO from `simpy.Store` input buffers of the line's
    capacities, sequence-dependent changeovers, gamma processing times, and blocking after
    service: a station holds a finished part until the next buffer has room. No health,
    failures, sensors, energy, supply or scrap.
    """

    def __init__(self, params: LineParams, seed: int) -> None:
        """Build the buffers and processes; `seed` seeds every random stream of the model."""
        if params.layout is not Layout.FLOW or any(v.route is not None for v in params.variants):
            raise ValueError(f"line {params.name!r}: the bare model needs a flow line visiting every station")
        self.env = simpy.Environment()
        self.good_parts = 0
        n = len(params.stations)
        gens = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n + 1)]
        self.buffers = [
            simpy.Store(self.env, capacity=s.buffer_capacity_parts or float("inf")) for s in params.stations
        ]
        mix = np.array([v.mix for v in params.variants])
        self.env.process(self._arrivals(params.demand.arrival_rate_per_h, mix / mix.sum(), gens[n]))
        k = len(params.variants)
        changeover = params.changeover_time_s or tuple((0.0,) * k for _ in range(k))
        for i, st in enumerate(params.stations):
            times = [v.processing_time_s[i] for v in params.variants]
            cv = params.machines[st.machine].processing_time_cv
            nxt = self.buffers[i + 1] if i + 1 < n else None
            self.env.process(self._station(self.buffers[i], nxt, times, cv, changeover, gens[i]))

    def _arrivals(
        self, rate_per_h: float, mix: np.ndarray, gen: np.random.Generator
    ) -> Generator[simpy.Event, None, None]:
        gaps = _stream(lambda k: gen.exponential(3600.0 / rate_per_h, k))
        variants = _stream(lambda k: gen.choice(len(mix), k, p=mix))
        first = self.buffers[0]
        while True:
            yield self.env.timeout(next(gaps))
            first.put(next(variants))  # the backlog is unbounded: the put succeeds at once

    def _station(
        self,
        buffer: simpy.Store,
        nxt: simpy.Store | None,
        times_s: Sequence[float],
        cv: float,
        changeover_s: Sequence[Sequence[float]],
        gen: np.random.Generator,
    ) -> Generator[simpy.Event, int, None]:
        env = self.env
        shape = 1.0 / (cv * cv) if cv > 0 else 0.0
        units = _stream(lambda k: gen.gamma(shape, 1.0 / shape, k) if shape else np.ones(k))
        last: int | None = None
        while True:
            variant = yield buffer.get()
            setup = 0.0 if last is None else changeover_s[last][variant]
            last = variant
            if setup > 0:
                yield env.timeout(setup)
            yield env.timeout(times_s[variant] * next(units))
            if nxt is None:
                self.good_parts += 1
            else:
                yield nxt.put(variant)


def run_bare(params: LineParams, seed: int, horizon_s: float, hook: Hook = _no_hook) -> int:
    """Run the bare SimPy model up to `horizon_s` and return its good parts."""
    line = BareLine(params, seed)
    hook(line.env)
    line.env.run(until=horizon_s)
    return line.good_parts


def measure(models: dict[str, Model], params: LineParams, seed: int, horizon_s: float, repeats: int) -> list[Result]:
    """Time each model `repeats` times (interleaved), then count its events in one more run.

    Raises:
        RuntimeError: a counted run ends differently from the timed runs with the same seed.
    """
    walls: dict[str, list[float]] = {name: [] for name in models}
    good: dict[str, int] = {}
    for _ in range(repeats):
        for name, model in models.items():
            start = time.perf_counter()
            good[name] = model(params, seed, horizon_s, _no_hook)
            walls[name].append(time.perf_counter() - start)
    results = []
    for name, model in models.items():
        counter = StepCounter()
        if model(params, seed, horizon_s, counter.attach) != good[name]:
            raise RuntimeError(f"{name}: the counted run diverged from the timed runs")
        results.append(Result(name, min(walls[name]), counter.events, good[name]))
    return results


def report(results: Sequence[Result], horizon_s: float) -> str:
    """Format the results as a Markdown table followed by the twin/bare ratios."""
    sim_h = horizon_s / 3600.0
    table = markdown_table(
        ["model", "wall s", "events", "events/s", "sim h/s", "good parts"],
        [
            [
                r.name,
                f"{r.wall_s:.3f}",
                f"{r.events:,}",
                f"{r.events / r.wall_s:,.0f}",
                f"{sim_h / r.wall_s:,.0f}",
                f"{r.good_parts:,}",
            ]
            for r in results
        ],
    )
    twin, bare = (next(r for r in results if r.name == name) for name in ("twin", "bare"))
    overhead = twin.wall_s / bare.wall_s  # wall time per simulated hour: the horizon is shared
    event_rate = (bare.events / bare.wall_s) / (twin.events / twin.wall_s)
    verdict = "met" if overhead <= GOAL else "NOT met"
    lines = [
        table,
        "",
        f"overhead, twin/bare wall time per simulated hour: {overhead:.2f}x (goal <= {GOAL:.1f}x: {verdict})",
        f"bare/twin events per wall-second: {event_rate:.2f}",
        f"good parts, twin/bare: {twin.good_parts / bare.good_parts:.3f}",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the options, run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description="Benchmark the twin against a bare SimPy model of the flow line.")
    parser.add_argument("--days", type=float, default=7.0, help="simulated horizon, days (default 7)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per model; the best counts (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of both models (default 0)")
    args = parser.parse_args(argv)
    if not args.days > 0 or args.repeats < 1:
        parser.error("--days must be > 0 and --repeats >= 1")
    params = TwinLine.from_yaml(LINE, seed=args.seed).params
    horizon_s = args.days * 86400.0
    results = measure({"twin": run_twin, "bare": run_bare}, params, args.seed, horizon_s, args.repeats)
    print(f"{params.name}, {args.days:g} days simulated, seed {args.seed}, best of {args.repeats}\n")
    print(report(results, horizon_s))


if __name__ == "__main__":
    main()
