"""The state layout every kernel and model shares.

A state is one int8 vector per chain. Spins take the values -1/+1, binary
units 0/1 and categorical (Potts) variables 0..q-1. A model keeps its
variables in an *internal order* in which each block of conditionally
independent variables is a contiguous slice `Block(start, stop, kind, q)`;
kernels read only the blocks, never the model's class.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

SPIN = "spin"
BINARY = "binary"
CATEGORICAL = "categorical"
KINDS = (SPIN, BINARY, CATEGORICAL)


class Block(NamedTuple):
    """A contiguous slice `[start, stop)` of the internal state.

    All variables of a block share one `kind` ("spin", "binary" or
    "categorical") and number of states `q`, and are conditionally
    independent given the rest of the state.
    """

    start: int
    stop: int
    kind: str
    q: int

    @property
    def slice(self) -> slice:
        return slice(self.start, self.stop)

    @property
    def size(self) -> int:
        return self.stop - self.start


def kind_values(kind: str, q: int) -> np.ndarray:
    """The values a variable of this kind takes, in increasing order."""
    if kind == SPIN:
        return np.array([-1, 1], dtype=np.int8)
    if kind == BINARY:
        return np.array([0, 1], dtype=np.int8)
    if kind == CATEGORICAL:
        return np.arange(q, dtype=np.int8)
    raise ValueError(f"unknown variable kind {kind!r}; expected one of {KINDS}")
