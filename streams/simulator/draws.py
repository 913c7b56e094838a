"""Buffered random draws: numpy's generator in blocks, handed out as plain Python floats.

The simulator takes one draw at a time in a Python loop; a numpy scalar call per draw costs about
ten times a list lookup, so blocks of draws are generated at once. The sequence depends only on the
seed and the order of calls, which is what makes a simulated stream reproducible.

Example:
    >>> a, b = Draws(7, "market"), Draws(7, "market")
    >>> [a.normal() for _ in range(3)] == [b.normal() for _ in range(3)]
    True
    >>> Draws(7, "market").uniform() != Draws(7, "outcomes").uniform()
    True
"""

from __future__ import annotations

import zlib

import numpy as np

__all__ = ["Draws"]

_BLOCK = 4096


class Draws:
    """Independent stream of standard normal, uniform [0, 1) and unit exponential draws.

    Args:
        seed: the run's seed.
        stream: a name; different names give independent streams for the same seed, so the
            market path does not change when, say, the outcome model draws more numbers.
    """

    def __init__(self, seed: int, stream: str) -> None:
        entropy = [seed, zlib.crc32(stream.encode())]
        self._rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy)))
        self._normals: list[float] = []
        self._uniforms: list[float] = []
        self._expos: list[float] = []
        self._ni = self._ui = self._ei = 0

    def normal(self) -> float:
        i = self._ni
        if i == len(self._normals):
            self._normals = self._rng.standard_normal(_BLOCK).tolist()
            i = 0
        self._ni = i + 1
        return self._normals[i]

    def uniform(self) -> float:
        i = self._ui
        if i == len(self._uniforms):
            self._uniforms = self._rng.random(_BLOCK).tolist()
            i = 0
        self._ui = i + 1
        return self._uniforms[i]

    def exponential(self) -> float:
        i = self._ei
        if i == len(self._expos):
            self._expos = self._rng.standard_exponential(_BLOCK).tolist()
            i = 0
        self._ei = i + 1
        return self._expos[i]

    def randrange(self, n: int) -> int:
        """A uniform integer in ``[0, n)``."""
        return min(int(self.uniform() * n), n - 1)
