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


def check_states(x, kinds: np.ndarray, qs: np.ndarray, name: str = "x") -> np.ndarray:
    """Integer states (..., n) within every variable's domain, as int8 numpy.

    The one value check of the library: model states (`EnergyModel.validate_state`),
    training and evaluation data (`training.losses.check_data`) and the metrics
    all come through it. The caller checks the shape first.

    Args:
        x: states (..., n), any integer, bool or integer-valued float dtype.
        kinds: (n,) index into KINDS of every variable.
        qs: (n,) domain size of every variable.
        name: what the states are, for the error message.

    Raises:
        ValueError: non-integer or non-finite values, or a value outside its
            variable's domain; names the first offender and the rows.
        TypeError: a non-numeric dtype.
    """
    arr = np.asarray(x)
    flat = arr.reshape(-1, arr.shape[-1])
    if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
        if not np.issubdtype(arr.dtype, np.floating):
            raise TypeError(f"{name} must be an integer array, got dtype {arr.dtype}")
        bad = ~(np.isfinite(flat) & (flat == np.round(flat)))
        if bad.any():
            row, col = np.argwhere(bad)[0]
            raise ValueError(
                f"{name} must hold integer values; rows {_rows(bad)} do not (first: "
                f"{flat[row, col]} at state {row}, variable {col})"
            )
    spin, binary = kinds == KINDS.index(SPIN), kinds == KINDS.index(BINARY)
    lo = np.where(spin, -1, 0)
    hi = np.where(spin | binary, 1, qs - 1)
    # fast path: every value within the tightest bounds of any variable
    if flat.size == 0 or (flat.min() >= lo.max() and flat.max() <= hi.min()):
        if not spin.any() or lo.max() > 0 or hi.min() < 0 or not np.any(flat[:, spin] == 0):
            return arr.astype(np.int8)
    bad = (flat < lo) | (flat > hi) | (spin & (flat == 0))
    if bad.any():
        row, col = np.argwhere(bad)[0]
        kind = KINDS[kinds[col]]
        allowed = {SPIN: "-1 or +1", BINARY: "0 or 1"}.get(kind, f"0..{qs[col] - 1}")
        raise ValueError(
            f"{name} rows {_rows(bad)} hold values outside their domains (first, {name}: "
            f"value {flat[row, col]} at variable {col} (state {row}) is outside the {kind} "
            f"domain ({allowed}))"
        )
    return arr.astype(np.int8)


def _rows(bad: np.ndarray) -> list[int]:
    return np.flatnonzero(bad.any(axis=1))[:10].tolist()
