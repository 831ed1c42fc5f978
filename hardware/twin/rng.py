"""Buffered random streams: one `numpy.random.Generator` per stochastic source, drawn in blocks.

Scalar draws from a Generator cost about a microsecond each; drawing blocks and handing out
Python floats keeps the twin's per-event cost close to bare SimPy while staying reproducible.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from hardware.twin.params import Distribution

_BLOCK = 1024


class Stream:
    """Endless floats from `draw(generator, n)`, fetched `_BLOCK` at a time."""

    __slots__ = ("_buf", "_draw", "_gen", "_i")

    def __init__(self, gen: np.random.Generator, draw: Callable[[np.random.Generator, int], np.ndarray]) -> None:
        self._gen = gen
        self._draw = draw
        self._buf: list[float] = []
        self._i = 0

    def __call__(self) -> float:
        """Return the next draw."""
        if self._i == len(self._buf):
            self._buf = self._draw(self._gen, _BLOCK).tolist()
            self._i = 0
        x = self._buf[self._i]
        self._i += 1
        return x


def uniform(gen: np.random.Generator) -> Stream:
    """Uniform draws on [0, 1)."""
    return Stream(gen, lambda g, n: g.random(n))


def exponential(gen: np.random.Generator) -> Stream:
    """Exponential draws with mean 1."""
    return Stream(gen, lambda g, n: g.standard_exponential(n))


def unit_duration(gen: np.random.Generator, dist: Distribution, cv: float) -> Callable[[], float]:
    """Return a sampler of duration multipliers with mean 1 and the given shape.

    Multiply by a mean duration to get a duration. Deterministic (or cv = 0 for gamma) returns
    exactly 1.0 and consumes no random numbers.
    """
    if dist is Distribution.EXPONENTIAL:
        return exponential(gen)
    if dist is Distribution.DETERMINISTIC or cv == 0.0:
        return lambda: 1.0
    shape = 1.0 / (cv * cv)
    return Stream(gen, lambda g, n: g.gamma(shape, 1.0 / shape, n))
