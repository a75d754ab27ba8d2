"""Streaming observers: statistics of draws without storing the draws.

An observer is an (init, update) pair over an explicit NamedTuple state,
as in optax: `state = obs.init(model)` (or `obs.init(n_variables)`), then
`state = obs.update(state, x, model)` for every batch of natural-order
states x of shape (C, n) (C chains, or C draws: sums do not care). The
state holds sums only; its methods (`mean()`, `covariance()`, ...) turn
them into float64 numpy results on the host.

Precision over long runs (10^7 draws and more):

* States are integers, so sums of x_i, x_i^2 and x_i x_j are integers:
  they are accumulated *exactly* in `ExactSum`, two int32 words (hi, lo)
  holding hi * 2^20 + lo, good to 2^51. Each batch's contribution is an
  exact integer too: int32 sums, and products through float32 matrix
  products over at most 1024 chains at a time (1024 * 127^2 < 2^24, so
  every partial sum is an exactly representable integer).
* Float statistics (`Mean(fn)`, e.g. the energy) use compensated
  (Kahan-Babuska-Neumaier) float32 sums: the error stays near one float32
  rounding of the total instead of growing with the number of draws.

Observers are frozen dataclasses, so equal settings hash equal and a
jitted sampler compiles once per set of observers.

Example:
    >>> import numpy as np, jax.numpy as jnp
    >>> from hamon_nnx.core import observers
    >>> obs = observers.Moments()
    >>> state = obs.init(3)
    >>> x = jnp.array([[1, -1, 1], [1, 1, -1]], jnp.int8)
    >>> state = obs.update(state, x)
    >>> state.mean().tolist()
    [1.0, 0.0, 0.0]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from . import gibbs

_LO_BITS = 20
_CHUNK = 1024  # chains per exact float32 product: 1024 * 127**2 < 2**24


class ExactSum(NamedTuple):
    """An exact integer accumulator: value = hi * 2**20 + lo, 0 <= lo < 2**20."""

    hi: jax.Array
    lo: jax.Array

    def value(self) -> np.ndarray:
        """The exact sum as int64 numpy (host)."""
        hi = np.asarray(self.hi, np.int64)
        lo = np.asarray(self.lo, np.int64)
        return hi * (1 << _LO_BITS) + lo


def exact_zeros(shape=()) -> ExactSum:
    return ExactSum(jnp.zeros(shape, jnp.int32), jnp.zeros(shape, jnp.int32))


def exact_add(acc: ExactSum, increment: jax.Array) -> ExactSum:
    """acc + increment; |increment| must stay below 2**30 (one batch's sum)."""
    lo = acc.lo + increment.astype(jnp.int32)
    carry = lo >> _LO_BITS  # arithmetic shift: floor division, also for negatives
    return ExactSum(acc.hi + carry, lo - (carry << _LO_BITS))


class KahanSum(NamedTuple):
    """A compensated float32 sum (Neumaier): total = sum + compensation."""

    sum: jax.Array
    compensation: jax.Array

    def value(self) -> np.ndarray:
        return np.asarray(self.sum, np.float64) + np.asarray(self.compensation, np.float64)


def kahan_zeros(shape=()) -> KahanSum:
    return KahanSum(jnp.zeros(shape, jnp.float32), jnp.zeros(shape, jnp.float32))


def kahan_add(acc: KahanSum, increment: jax.Array) -> KahanSum:
    s, y = acc.sum, increment.astype(jnp.float32)
    t = s + y
    # the low-order bits lost by t = s + y, whichever operand is larger
    lost = jnp.where(jnp.abs(s) >= jnp.abs(y), (s - t) + y, (y - t) + s)
    return KahanSum(t, acc.compensation + lost)


def _n_variables(model_or_n) -> int:
    if isinstance(model_or_n, (int, np.integer)) and not isinstance(model_or_n, bool):
        return int(model_or_n)
    n = getattr(model_or_n, "n_variables", None)
    if n is None:
        raise TypeError(
            f"init takes a model or a number of variables, got {type(model_or_n).__name__}"
        )
    return int(n)


def _check_batch(x, n: int) -> jax.Array:
    if x.ndim != 2 or x.shape[1] != n:
        raise ValueError(f"observers take states of shape (C, {n}), got {x.shape}")
    return x


def _chunks(x: jax.Array) -> jax.Array:
    """(C, n) -> (K, <=1024, n), zero-padded: zeros add nothing to sums of products."""
    c, n = x.shape
    if c <= _CHUNK:
        return x[None]
    k = -(-c // _CHUNK)
    x = jnp.concatenate([x, jnp.zeros((k * _CHUNK - c, n), x.dtype)])
    return x.reshape(k, _CHUNK, n)


def _fold_chunks(add, state, x: jax.Array):
    """state = add(state, chunk) over chunks of <= 1024 chains (a scan when several)."""
    chunks = _chunks(x)
    if chunks.shape[0] == 1:
        return add(state, chunks[0])
    return lax.scan(lambda st, c: (add(st, c), None), state, chunks)[0]


def _exact_column_sums(x: jax.Array, square: bool) -> jax.Array:
    """Exact int32 sums over (at most 1024) chains of x or x**2."""
    v = x.astype(jnp.int32)
    return jnp.sum(v * v if square else v, axis=0)


# -- moments ----------------------------------------------------------------------
class MomentsState(NamedTuple):
    """Exact sums of x_i and x_i**2 and the number of draws."""

    count: ExactSum  # pyright: ignore[reportIncompatibleMethodOverride]
    sum: ExactSum
    sum_squares: ExactSum

    def n_draws(self) -> int:
        return int(self.count.value())

    def mean(self) -> np.ndarray:
        """E[x_i], float64 (n,)."""
        return self.sum.value() / max(self.n_draws(), 1)

    def second(self) -> np.ndarray:
        """E[x_i**2], float64 (n,)."""
        return self.sum_squares.value() / max(self.n_draws(), 1)

    def variance(self) -> np.ndarray:
        """Var[x_i] (population), float64 (n,), from exact integer sums."""
        n = max(self.n_draws(), 1)
        s, s2 = self.sum.value(), self.sum_squares.value()
        # (n s2 - s^2) / n^2 in exact integers first: no cancellation
        return (n * s2 - s * s).astype(np.float64) / float(n) ** 2


@dataclasses.dataclass(frozen=True)
class Moments:
    """First and second moments of every variable, streamed exactly.

    Example:
        >>> import jax, hamon_nnx as hn
        >>> m = hn.IsingModel.lattice((4, 4), coupling=0.2)
        >>> out = hn.observe(m, jax.random.key(0), n_samples=50, n_chains=4,
        ...                 observers={"m": hn.observers.Moments()})
        >>> out["m"].n_draws(), out["m"].mean().shape
        (200, (16,))
    """

    def init(self, model_or_n) -> MomentsState:
        n = _n_variables(model_or_n)
        return MomentsState(exact_zeros(), exact_zeros((n,)), exact_zeros((n,)))

    def update(self, state: MomentsState, x: jax.Array, model=None) -> MomentsState:
        x = _check_batch(x, state.sum.lo.shape[0])
        out = state._replace(count=exact_add(state.count, jnp.int32(x.shape[0])))

        # int32 column sums of <= 1024 chains stay far below the 2**30 increment bound
        def add(out, chunk):
            return out._replace(
                sum=exact_add(out.sum, _exact_column_sums(chunk, False)),
                sum_squares=exact_add(out.sum_squares, _exact_column_sums(chunk, True)),
            )

        return _fold_chunks(add, out, x)


# -- correlations -------------------------------------------------------------------
class CorrelationsState(NamedTuple):
    """Exact sums of x_i, x_i**2, x_i x_j (all pairs, or the listed ones) and the count."""

    count: ExactSum  # pyright: ignore[reportIncompatibleMethodOverride]
    sum: ExactSum
    sum_squares: ExactSum
    sum_products: ExactSum  # (n, n), or (P,) for listed pairs
    pairs: jax.Array | None  # (P, 2) int32, or None for the full matrix

    def n_draws(self) -> int:
        return int(self.count.value())

    def mean(self) -> np.ndarray:
        """E[x_i], float64 (n,)."""
        return self.sum.value() / max(self.n_draws(), 1)

    def second_moment(self) -> np.ndarray:
        """E[x_i x_j]: float64 (n, n), or (P,) for listed pairs."""
        return self.sum_products.value() / max(self.n_draws(), 1)

    def _pair_index(self):
        if self.pairs is None:
            return slice(None), None
        p = np.asarray(self.pairs)
        return p[:, 0], p[:, 1]

    def covariance(self) -> np.ndarray:
        """Cov[x_i, x_j] (population), float64, from exact integer sums."""
        n = max(self.n_draws(), 1)
        s, sp = self.sum.value(), self.sum_products.value()
        i, j = self._pair_index()
        cross = s[:, None] * s[None, :] if j is None else s[i] * s[j]
        # n sum(x_i x_j) - sum(x_i) sum(x_j) in exact integers: no cancellation
        return (n * sp - cross).astype(np.float64) / float(n) ** 2

    def correlation(self) -> np.ndarray:
        """Pearson correlation of x_i and x_j (NaN where a variance is 0)."""
        n = max(self.n_draws(), 1)
        s, s2 = self.sum.value(), self.sum_squares.value()
        var = (n * s2 - s * s).astype(np.float64) / float(n) ** 2
        i, j = self._pair_index()
        denom = np.sqrt(var[:, None] * var[None, :]) if j is None else np.sqrt(var[i] * var[j])
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.covariance() / denom


@dataclasses.dataclass(frozen=True)
class Correlations:
    """Streaming pairwise second moments E[x_i x_j] and covariances.

    Args:
        pairs: None for the full (n, n) matrix, or a tuple of (i, j) pairs
            (natural indices) to keep only those: memory O(P) instead of O(n^2).

    Example:
        >>> import jax.numpy as jnp
        >>> from hamon_nnx.core import observers
        >>> obs = observers.Correlations()
        >>> st = obs.update(obs.init(2), jnp.array([[1, 1], [-1, -1]], jnp.int8))
        >>> st.second_moment().tolist()
        [[1.0, 1.0], [1.0, 1.0]]
    """

    pairs: tuple[tuple[int, int], ...] | None = None

    def __post_init__(self):
        if self.pairs is not None:
            arr = np.asarray(self.pairs)
            if arr.ndim != 2 or arr.shape[1] != 2 or not np.issubdtype(arr.dtype, np.integer):
                raise ValueError(f"pairs must be (P, 2) integer indices, got shape {arr.shape}")
            object.__setattr__(self, "pairs", tuple(map(tuple, arr.tolist())))

    def init(self, model_or_n) -> CorrelationsState:
        n = _n_variables(model_or_n)
        if self.pairs is None:
            return CorrelationsState(
                exact_zeros(), exact_zeros((n,)), exact_zeros((n,)), exact_zeros((n, n)), None
            )
        p = np.asarray(self.pairs, np.int64).reshape(-1, 2)
        if p.size and (p.min() < 0 or p.max() >= n):
            raise ValueError(f"pairs reference variables outside 0..{n - 1}")
        return CorrelationsState(
            exact_zeros(),
            exact_zeros((n,)),
            exact_zeros((n,)),
            exact_zeros((len(p),)),
            jnp.asarray(p, jnp.int32),
        )

    def update(self, state: CorrelationsState, x: jax.Array, model=None) -> CorrelationsState:
        x = _check_batch(x, state.sum.lo.shape[0])
        out = state._replace(count=exact_add(state.count, jnp.int32(x.shape[0])))

        def add(out, chunk):
            v = chunk.astype(jnp.float32)
            if state.pairs is None:
                prod = lax.dot_general(
                    v, v, (((0,), (0,)), ((), ())), precision=lax.Precision.HIGHEST
                )
            else:
                prod = jnp.sum(v[:, state.pairs[:, 0]] * v[:, state.pairs[:, 1]], axis=0)
            return out._replace(
                sum=exact_add(out.sum, _exact_column_sums(chunk, False)),
                sum_squares=exact_add(out.sum_squares, _exact_column_sums(chunk, True)),
                sum_products=exact_add(out.sum_products, jnp.round(prod).astype(jnp.int32)),
            )

        return _fold_chunks(add, out, x)


# -- float statistics -----------------------------------------------------------------
class MeanState(NamedTuple):
    """Compensated float32 sums of f(x) and f(x)**2 and the exact count."""

    count: ExactSum  # pyright: ignore[reportIncompatibleMethodOverride]
    sum: KahanSum
    sum_squares: KahanSum

    def n_draws(self) -> int:
        return int(self.count.value())

    def mean(self) -> np.ndarray:
        return self.sum.value() / max(self.n_draws(), 1)

    def variance(self) -> np.ndarray:
        n = max(self.n_draws(), 1)
        m = self.mean()
        return np.maximum(self.sum_squares.value() / n - m * m, 0.0)


@dataclasses.dataclass(frozen=True)
class Mean:
    """Streaming mean and variance of a float statistic f(model, x).

    Args:
        fn: `fn(model, x) -> (C, ...)` float, for natural-order states x
            (C, n); pass the same function object each call so that a jitted
            sampler compiles once.

    Example:
        >>> import jax.numpy as jnp
        >>> from hamon_nnx.core import observers
        >>> magnetisation = observers.Mean(lambda model, x: x.astype(jnp.float32).mean(-1))
        >>> st = magnetisation.update(magnetisation.init(2), jnp.array([[1, 1], [1, -1]], jnp.int8))
        >>> float(st.mean())
        0.5
    """

    fn: Callable[[Any, jax.Array], jax.Array]

    def _shape(self, n: int, model) -> tuple[int, ...]:
        out = jax.eval_shape(lambda x: self.fn(model, x), jax.ShapeDtypeStruct((1, n), jnp.int8))
        return tuple(out.shape[1:])

    def init(self, model_or_n) -> MeanState:
        n = _n_variables(model_or_n)
        model = None if isinstance(model_or_n, (int, np.integer)) else model_or_n
        shape = self._shape(n, model)
        return MeanState(exact_zeros(), kahan_zeros(shape), kahan_zeros(shape))

    def update(self, state: MeanState, x: jax.Array, model=None) -> MeanState:
        f = jnp.asarray(self.fn(model, x)).astype(jnp.float32)
        if f.shape[:1] != x.shape[:1]:
            raise ValueError(f"Mean: fn must return one value per state (C, ...), got {f.shape}")
        return MeanState(
            exact_add(state.count, jnp.int32(x.shape[0])),
            kahan_add(state.sum, jnp.sum(f, axis=0)),
            kahan_add(state.sum_squares, jnp.sum(f * f, axis=0)),
        )


def _energy(model, x):
    return model.energy(x)


def Energy() -> Mean:  # noqa: N802 - reads as an observer type
    """Streaming mean and variance of the model's energy.

    Example:
        >>> import jax, hamon_nnx as hn
        >>> m = hn.IsingModel.lattice((4, 4), coupling=0.0)
        >>> out = hn.observe(m, jax.random.key(0), n_samples=10, n_chains=2,
        ...                 observers={"E": hn.observers.Energy()})
        >>> out["E"].n_draws()
        20
    """
    return Mean(_energy)


# -- running observers ----------------------------------------------------------------
def check_observers(observers) -> dict:
    """A dict name -> observer, or a clear error."""
    if not isinstance(observers, dict) or not observers:
        raise TypeError(
            "observers must be a non-empty dict name -> observer, e.g. "
            "{'moments': hn.observers.Moments()}"
        )
    for name, obs in observers.items():
        if not isinstance(name, str):
            raise TypeError(f"observer names must be strings, got {name!r}")
        if not (callable(getattr(obs, "init", None)) and callable(getattr(obs, "update", None))):
            raise TypeError(
                f"observer {name!r} is a {type(obs).__name__}; an observer has init(model) "
                "and update(state, x, model) (e.g. hn.observers.Moments())"
            )
        try:
            hash(obs)
        except TypeError:
            raise TypeError(f"observer {name!r} must be hashable (a frozen dataclass)") from None
    return dict(observers)


def init_all(observers: dict, model) -> dict:
    return {name: obs.init(model) for name, obs in observers.items()}


def update_all(observers: dict, states: dict, x: jax.Array, model) -> dict:
    return {name: obs.update(states[name], x, model) for name, obs in observers.items()}


def observe_chains(
    model,
    key: jax.Array,
    x: jax.Array,
    beta: jax.Array,
    observers: dict,
    *,
    n_warmup: int,
    n_samples: int,
    thin: int,
    clamp: gibbs.Clamp | None = None,
    start: int = 0,
) -> dict:
    """`gibbs.run_chains` that feeds each kept draw to observers instead of storing it.

    Same sweeps and random streams as `run_chains` (sweep t uses
    `fold_in(key, t)`), so the observed draws are exactly the draws that
    `run_chains` would return for the same arguments.

    Returns:
        dict name -> observer state.
    """

    x = gibbs.sweeps(key, x, model, beta, start, start + n_warmup, clamp)

    def record(i, carry):
        x, states = carry
        t = start + n_warmup + i * thin
        x = gibbs.sweeps(key, x, model, beta, t, t + thin, clamp)
        return x, update_all(observers, states, model.to_natural(x), model)

    _, states = lax.fori_loop(0, n_samples, record, (x, init_all(observers, model)))
    return states
