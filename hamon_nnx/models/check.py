"""`hn.check_model`: a model's conditionals against brute force.

For every block b and (a sample of) its variables, at random states:

1. `block_logits(x, b)` must equal the exact conditional computed from the
   energy by trying every value of the variable (spins: E(-1) - E(+1);
   binary: E(0) - E(1); categorical: -(E(k) - E(0)) up to a constant);
2. the block must be conditionally independent given the rest: changing
   one of its variables leaves the logits of the others unchanged.

A model that fails gets a `ModelCheckError` naming the first offending
variable or block. For an energy-only model the usual cause is an energy
that is not multilinear: `s**2` for a spin is 1 on every state but its
relaxed derivative 2 s is not 0; write 1 instead (and `x` for a binary
`x**2`; see `hamon_nnx.models.custom`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from .base import BINARY, CATEGORICAL, KINDS, SPIN, EnergyModel, kind_values
from .custom import describe_variable

MULTILINEAR_HINT = (
    " The conditionals of an energy-only model come from the gradient of its relaxed energy, "
    "which is exact only for an energy multilinear in the spins / binary units / one-hot "
    "vectors: write s**2 as 1 for a spin, x**2 as x for a binary unit, read categorical "
    "variables through self.unpack(x) (one-hot vectors) instead of comparing or indexing "
    "with their values, and avoid abs/where on the state."
)


class ModelCheckError(ValueError):
    """A model's block_logits or blocks disagree with its energy."""


class ModelCheck(NamedTuple):
    """What `check_model` verified.

    Attributes:
        n_states: random states checked.
        n_checked: (state, variable) conditionals compared with brute force.
        max_error: largest |block_logits - brute force| seen.
        tolerance: the tolerance used.
    """

    n_states: int
    n_checked: int
    max_error: float
    tolerance: float


def _random_natural_states(model, count: int, rng) -> np.ndarray:
    """`count` random states in natural order, each variable uniform over its values."""
    values = model.variable_values()
    return np.stack([[rng.choice(v) for v in values] for _ in range(count)]).astype(np.int8)


def _check_structure(model) -> None:
    """The blocks tile the internal state in order and have known kinds."""
    name = type(model).__name__
    n = getattr(model, "n_variables", None)
    blocks = getattr(model, "blocks", None)
    if n is None or blocks is None:
        raise ModelCheckError(
            f"{name} has no n_variables/blocks: declare the variables with "
            "self.declare_variables(...) or set n_variables and blocks"
        )
    pos = 0
    for b, blk in enumerate(blocks):
        if blk.start != pos or blk.stop <= blk.start:
            raise ModelCheckError(
                f"{name}: block {b} = [{blk.start}, {blk.stop}) does not continue at {pos}; "
                "blocks must tile the internal state in order, without gaps or overlaps"
            )
        if blk.kind not in KINDS:
            raise ModelCheckError(f"{name}: block {b} has unknown kind {blk.kind!r}")
        if blk.kind in (SPIN, BINARY) and blk.q != 2:
            raise ModelCheckError(f"{name}: {blk.kind} block {b} must have q = 2, got {blk.q}")
        pos = blk.stop
    if pos != n:
        raise ModelCheckError(f"{name}: blocks cover {pos} variables, the model has {n}")


class _Checker(NamedTuple):
    """What the per-block checks share: name, compiled functions, tolerance, hint."""

    name: str
    energies: Callable[[np.ndarray], np.ndarray]
    logits_of: Callable[[int, np.ndarray], np.ndarray]
    where: Callable[[int], str]
    tol: float
    hint: str


def _compiled(model) -> tuple[Callable, Callable]:
    """Jitted float64 energies of internal states and logits of block b, batched."""
    graphdef, state = nnx.split(model)

    @jax.jit
    def energies(state, xi):
        return jax.vmap(nnx.merge(graphdef, state).internal_energy)(xi)

    logits_fns = {}

    def logits_of(b):
        if b not in logits_fns:
            logits_fns[b] = jax.jit(
                lambda state, xs: jax.vmap(lambda x: nnx.merge(graphdef, state).block_logits(x, b))(
                    xs
                )
            )
        return logits_fns[b]

    return (
        lambda xs: np.asarray(energies(state, jnp.asarray(xs)), np.float64),
        lambda b, xs: np.asarray(logits_of(b)(state, jnp.asarray(xs)), np.float64),
    )


def _random_internal_states(model, count: int, rng) -> np.ndarray:
    """Random states in internal order, after checking that the two orders are inverse."""
    natural = _random_natural_states(model, count, rng)
    internal = np.asarray(model.to_internal(jnp.asarray(natural)))
    back = np.asarray(model.to_natural(jnp.asarray(internal)))
    if not np.array_equal(back, natural):
        raise ModelCheckError(
            f"{type(model).__name__}: to_natural(to_internal(x)) != x; the orders disagree"
        )
    return internal


def _tolerance(e0: np.ndarray, atol: float | None) -> float:
    """`atol`, or by default 1e-3 + 1e-5 max |E| over the random states."""
    scale = float(np.max(np.abs(e0))) if e0.size else 0.0
    return 1e-3 + 1e-5 * scale if atol is None else float(atol)


def _locator(model) -> Callable[[int], str]:
    """A function naming the variable at an internal position (natural index, group)."""
    natural_index = np.asarray(model.to_natural(jnp.arange(model.n_variables, dtype=jnp.int32)))
    internal_to_natural = np.argsort(natural_index)  # internal position -> natural index

    def where(p):
        i = int(internal_to_natural[p])
        return f"variable {i} ({describe_variable(model, i)}, internal position {p})"

    return where


def _block_logits(c: _Checker, xi, b: int, blk, q: int) -> np.ndarray:
    """Logits of block b at state xi, (m,) or (m, q), checked for shape and finiteness."""
    m = blk.size
    logits = c.logits_of(b, xi[None])[0]
    want_size = m * q if blk.kind == CATEGORICAL else m
    if logits.size != want_size:
        raise ModelCheckError(
            f"{c.name}.block_logits(x, {b}) returned shape {logits.shape}; block {b} "
            f"holds {m} {blk.kind} variables, so {(m, q) if blk.kind == CATEGORICAL else (m,)} "
            "was expected"
        )
    logits = logits.reshape((m, q) if blk.kind == CATEGORICAL else (m,))
    if not np.all(np.isfinite(logits)):
        p = blk.start + int(np.argwhere(~np.isfinite(logits))[0][0])
        raise ModelCheckError(f"{c.name}: block {b} logits are not finite at {c.where(p)}")
    return logits


def _rows_to_check(m: int, max_variables: int, rng) -> np.ndarray:
    """The block's variables to check: all, or a sorted random subset of max_variables."""
    rows = np.arange(m)
    if m > max_variables:
        rows = np.sort(rng.choice(m, max_variables, replace=False))
    return rows


def _check_brute_force(c: _Checker, xi, s: int, b: int, blk, logits, rows) -> np.ndarray:
    """1. The logits against every value of every checked variable; the errors per row."""
    values = kind_values(blk.kind, blk.q)
    q = len(values)
    trial = np.repeat(xi[None], len(rows) * q, axis=0)
    trial[np.arange(len(rows) * q), np.repeat(blk.start + rows, q)] = np.tile(values, len(rows))
    e = c.energies(trial).reshape(len(rows), q)
    if blk.kind == CATEGORICAL:
        want = -(e - e[:, :1])
        got = logits[rows] - logits[rows][:, :1]
    else:
        want = e[:, 0] - e[:, 1]
        got = logits[rows]
    err = np.abs(got - want).reshape(len(rows), -1).max(axis=1)
    if np.any(err > c.tol):
        r = int(np.argmax(err > c.tol))
        p = blk.start + int(rows[r])
        raise ModelCheckError(
            f"{c.name}: block_logits of block {b} is wrong for {c.where(p)} at random "
            f"state {s}: got {np.round(got[r], 5).tolist()}, brute force from the "
            f"energy gives {np.round(want[r], 5).tolist()} (tolerance {c.tol:.2g})." + c.hint
        )
    return err


def _check_independence(c: _Checker, xi, b: int, blk, logits, rows) -> None:
    """2. Moving one variable of the block leaves the logits of the others unchanged."""
    values = kind_values(blk.kind, blk.q)
    m, q = blk.size, len(values)
    moved = np.repeat(xi[None], len(rows), axis=0)
    current = xi[blk.start + rows]
    other = np.where(current == values[0], values[1], values[0]).astype(np.int8)
    moved[np.arange(len(rows)), blk.start + rows] = other
    new = c.logits_of(b, moved)
    new = new.reshape((len(rows), m, q) if blk.kind == CATEGORICAL else (len(rows), m))
    diff = np.abs(new - logits[None]).reshape(len(rows), m, -1).max(axis=2)
    diff[np.arange(len(rows)), rows] = 0.0  # a variable's own logits may change
    if np.any(diff > c.tol):
        r, k = np.argwhere(diff > c.tol)[0]
        raise ModelCheckError(
            f"{c.name}: block {b} is not conditionally independent: changing "
            f"{c.where(blk.start + int(rows[r]))} changes the conditional of "
            f"{c.where(blk.start + int(k))} by {diff[r, k]:.4g}; two variables of one "
            "block must not share an interaction (declare the interaction scopes, "
            "or leave blocks to the Hessian detection)." + c.hint
        )


def check_model(
    model: EnergyModel,
    n_states: int = 3,
    seed: int = 0,
    atol: float | None = None,
    max_variables: int = 128,
) -> ModelCheck:
    """Verify `block_logits` and the blocks against the energy by brute force.

    Args:
        model: any hamon-nnx model (built-in or custom).
        n_states: random states at which every block is checked.
        seed: seed of the random states and variable subsets.
        atol: tolerance on logits; default 1e-3 + 1e-5 max |E|, which allows
            float32 rounding of the energies.
        max_variables: per block and state, at most this many variables
            (a random subset) are checked, to keep big models fast.

    Returns:
        A `ModelCheck` summary.

    Raises:
        ModelCheckError: the first block or variable whose conditional is
            wrong or whose block is not conditionally independent.

    Example:
        >>> import hamon_nnx as hn
        >>> hn.check_model(hn.IsingModel.lattice((4, 4), coupling=0.5)).n_checked
        48
    """
    if not isinstance(model, EnergyModel):
        raise TypeError(f"model must be a hamon-nnx EnergyModel, got {type(model).__name__}")
    _check_structure(model)
    autodiff = type(model).block_logits is EnergyModel.block_logits
    rng = np.random.default_rng(seed)
    energies, logits_of = _compiled(model)
    internal = _random_internal_states(model, n_states, rng)
    tol = _tolerance(energies(internal), atol)
    hint = MULTILINEAR_HINT if autodiff else ""
    c = _Checker(type(model).__name__, energies, logits_of, _locator(model), tol, hint)
    checked, max_error = 0, 0.0
    for s, xi in enumerate(internal):
        for b, blk in enumerate(model.blocks):
            logits = _block_logits(c, xi, b, blk, len(kind_values(blk.kind, blk.q)))
            rows = _rows_to_check(blk.size, max_variables, rng)
            err = _check_brute_force(c, xi, s, b, blk, logits, rows)
            max_error = max(max_error, float(err.max(initial=0.0)))
            checked += len(rows)
            _check_independence(c, xi, b, blk, logits, rows)
    return ModelCheck(int(n_states), checked, max_error, tol)
