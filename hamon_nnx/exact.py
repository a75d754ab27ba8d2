"""Exact answers for small models, for tests and metrics.

Everything here is computed in float64 numpy. Two families of tools:

* Enumeration of the whole state space of any `EnergyModel` (Ising, Potts,
  RBM, custom models): `enumerate_states`, `log_partition`, `probabilities`,
  `marginals`, `moments`, `pair_marginals`, `mean_energy`. Energies come
  from `model.energy` (float32, jitted per chunk) and are summed in float64.
  An RBM's `log_partition` sums its smaller layer out analytically, so a
  784 x 20 RBM has an exact log Z; `visible_probabilities` gives the
  marginal over the visible units. A `CategoricalRBM` likewise sums its
  smaller side: the 2**n_hidden hidden or the q**n_visible visible
  configurations, the other layer summed analytically.
* Closed forms for the zero-field 2-D Ising model: the finite periodic
  lattice (Kaufman 1949) and the infinite lattice (Onsager 1944).

Enumeration is capped at `MAX_ENUMERATION_STATES` states.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterator

import jax
import numpy as np
from flax import nnx

from .models.categorical_rbm import CategoricalRBM
from .models.rbm import RBM

__all__ = [
    "ISING_2D_BETA_C",
    "MAX_ENUMERATION_STATES",
    "can_enumerate",
    "check_enumerable",
    "enumerate_states",
    "enumeration_size",
    "ising_lattice_energy",
    "ising_lattice_log_partition",
    "log_partition",
    "marginals",
    "mean_energy",
    "moments",
    "onsager_energy_per_spin",
    "onsager_log_partition_per_spin",
    "pair_marginals",
    "probabilities",
    "visible_probabilities",
]

MAX_ENUMERATION_STATES: int = 2**24
"""The largest number of states any function of this module enumerates.

2**24 states are 24 spins or binary units (for an RBM's `log_partition`:
a smaller layer of 24 units). Asking for more raises a ValueError that
names the model size and this limit. The limit is read at call time, so it
may be raised (`hamon_nnx.exact.MAX_ENUMERATION_STATES = 2**26`) at the
cost of time and memory.
"""

ISING_2D_BETA_C: float = 0.5 * math.log1p(math.sqrt(2.0))
"""Critical inverse temperature of the 2-D square-lattice Ising model with J = 1."""

_CHUNK = 2**16  # states per chunk of enumeration
_RBM_CHUNK_ELEMENTS = 2**22  # float64 elements per chunk of the RBM layer sum
_LOG2 = math.log(2.0)


# -- input checks -----------------------------------------------------------
def _check_beta(beta) -> float:
    try:
        value = float(beta)
    except (TypeError, ValueError):
        raise TypeError(f"beta must be a real scalar, got {beta!r}") from None
    if isinstance(beta, bool) or not math.isfinite(value) or value < 0:
        raise ValueError(f"beta must be finite and >= 0, got {beta!r}")
    return value


def _check_coupling(coupling) -> float:
    value = float(coupling)
    if not math.isfinite(value):
        raise ValueError(f"coupling must be finite, got {coupling!r}")
    return value


def _check_side(name: str, value) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer >= 3, got {value!r}")
    try:
        side = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer >= 3, got {value!r}") from None
    if side < 3:
        raise ValueError(f"{name} must be an integer >= 3, got {side}")
    return side


def _lattice_dims(L) -> tuple[int, int]:
    """(rows, columns) from `L` (square) or a pair `(M, N)`."""
    if isinstance(L, tuple | list | np.ndarray):
        if len(L) != 2:
            raise ValueError(f"L must be an integer or a pair (M, N), got {L!r}")
        return _check_side("M", L[0]), _check_side("N", L[1])
    side = _check_side("L", L)
    return side, side


# -- enumeration ------------------------------------------------------------
def _too_many(what: str, n_states: int) -> ValueError:
    limit = int(MAX_ENUMERATION_STATES)
    shown = f"2**{limit.bit_length() - 1} = {limit}" if limit & (limit - 1) == 0 else str(limit)
    return ValueError(
        f"{what} has {n_states} states, too large to enumerate: more than "
        f"MAX_ENUMERATION_STATES = {shown}"
    )


def enumeration_size(model) -> int:
    """How many states exact enumeration of `model` visits.

    A plain `RBM` sums its smaller layer: 2**min(n_visible, n_hidden). A
    `CategoricalRBM` with its own energy enumerates its smaller side:
    min(2**n_hidden, q**n_visible). Any other model (subclasses with their
    own energy included) visits the product of its variables' domain sizes
    (q per categorical variable).
    """
    if is_plain_rbm(model):
        return 2 ** min(model.n_visible, model.n_hidden)
    if is_categorical_rbm(model):
        return min(2**model.n_hidden, model.q**model.n_visible)
    return math.prod(blk.q**blk.size for blk in model.blocks)


def check_enumerable(model, purpose: str = "exact enumeration") -> int:
    """The state count of `model`, or a ValueError naming it and the limit.

    The one capability check of the library: `hn.exact`, the `Trainer`
    (`log_likelihood="exact"`), `ExactNegative`, the metrics, runs and the
    CLI all ask it, against the one limit `MAX_ENUMERATION_STATES`.
    """
    n_states = enumeration_size(model)
    if n_states > MAX_ENUMERATION_STATES:
        raise _too_many(f"{purpose}: {_describe(model)}", n_states)
    return n_states


def can_enumerate(model) -> bool:
    """Whether `check_enumerable(model)` passes."""
    return enumeration_size(model) <= MAX_ENUMERATION_STATES


def _describe(model) -> str:
    if is_plain_rbm(model):
        small = min(model.n_visible, model.n_hidden)
        return (
            f"RBM with n_visible={model.n_visible}, n_hidden={model.n_hidden}: its smaller "
            f"layer ({small} units)"
        )
    if is_categorical_rbm(model):
        nv, nh, q = model.n_visible, model.n_hidden, model.q
        return (
            f"CategoricalRBM with n_visible={nv}, n_hidden={nh}, q={q}: its smaller side "
            f"(min(2**{nh} hidden, {q}**{nv} visible configurations))"
        )
    qs = sorted({blk.q for blk in model.blocks})
    return f"{type(model).__name__} with {model.n_variables} variables (domain sizes {qs})"


class _StateSpace:
    """Mixed-radix enumeration of a model's states in natural order.

    State k has digits (k // stride_i) % q_i, the first variable varying
    slowest (the order of `itertools.product`).
    """

    def __init__(self, model):
        values = model.variable_values()
        self.n = len(values)
        self.q = np.array([len(v) for v in values], dtype=np.int64)
        self.q_max = int(self.q.max()) if self.n else 1
        self.n_states = math.prod(int(q) for q in self.q)
        if self.n_states > MAX_ENUMERATION_STATES:
            raise _too_many(
                f"exact enumeration: {type(model).__name__} with {self.n} variables "
                f"(domain sizes {sorted(set(self.q.tolist()))})",
                self.n_states,
            )
        self.table = np.zeros((self.n, self.q_max), dtype=np.int8)
        for i, v in enumerate(values):
            self.table[i, : len(v)] = v
        strides = np.ones(self.n, dtype=np.int64)
        for i in range(self.n - 2, -1, -1):
            strides[i] = strides[i + 1] * self.q[i + 1]
        self.strides = strides

    def digits(self, start: int, stop: int) -> np.ndarray:
        """Value indices (stop - start, n) of states start..stop-1."""
        k = np.arange(start, stop, dtype=np.int64)[:, None]
        return ((k // self.strides) % self.q).astype(np.int64)

    def states(self, digits: np.ndarray) -> np.ndarray:
        return self.table[np.arange(self.n), digits]

    def chunks(self, size: int = _CHUNK) -> Iterator[tuple[int, int]]:
        for start in range(0, self.n_states, size):
            yield start, min(start + size, self.n_states)

    def all_states(self) -> np.ndarray:
        """int8 (K, n), filled chunk by chunk (no (K, n) int64 temporary)."""
        out = np.empty((self.n_states, self.n), dtype=np.int8)
        for start, stop in self.chunks():
            out[start:stop] = self.states(self.digits(start, stop))
        return out


def enumerate_states(model) -> np.ndarray:
    """All states of a model in natural order.

    The first variable varies slowest; each variable runs through its
    allowed values (`model.variable_values()`) in increasing order.

    Args:
        model: any `EnergyModel`.

    Returns:
        int8 array (K, n) with K the number of states.

    Raises:
        ValueError: K exceeds `MAX_ENUMERATION_STATES`.

    Example:
        >>> import hamon_nnx as hn
        >>> m = hn.IsingModel.from_edges(2, [[0, 1]])
        >>> hn.exact.enumerate_states(m).tolist()
        [[-1, -1], [-1, 1], [1, -1], [1, 1]]
    """
    space = _StateSpace(model)
    return space.all_states()


_energy_chunk = jax.jit(
    lambda graphdef, state, x: nnx.merge(graphdef, state).energy(x), static_argnums=0
)


def _energies(model, space: _StateSpace) -> np.ndarray:
    """float64 energies (K,) of all states, through `model.energy` in chunks."""
    graphdef, state = nnx.split(model)
    size = min(_CHUNK, space.n_states)
    out = np.empty(space.n_states, dtype=np.float64)
    for start, stop in space.chunks(size):
        x = space.states(space.digits(start, stop))
        if len(x) < size:  # pad the last chunk: one compiled shape
            x = np.concatenate([x, np.repeat(x[:1], size - len(x), axis=0)])
        e = np.asarray(_energy_chunk(graphdef, state, x), dtype=np.float64)
        out[start:stop] = e[: stop - start]
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{type(model).__name__}.energy returned NaN or inf for some states")
    return out


def _logsumexp(a: np.ndarray) -> float:
    m = float(np.max(a))
    if not math.isfinite(m):
        return m
    return m + math.log(float(np.sum(np.exp(a - m))))


def _weights(model, beta: float) -> tuple[_StateSpace, np.ndarray, np.ndarray]:
    """(space, probabilities (K,), energies (K,)) of the Boltzmann distribution."""
    space = _StateSpace(model)
    energy = _energies(model, space)
    logits = -beta * energy
    probs = np.exp(logits - _logsumexp(logits))
    return space, probs, energy


# -- partition functions ----------------------------------------------------
def is_plain_rbm(model) -> bool:
    """An `RBM` whose energy is the RBM's own (its smaller layer can be summed)."""
    return isinstance(model, RBM) and type(model).energy is RBM.energy


def is_categorical_rbm(model) -> bool:
    """A `CategoricalRBM` whose energy is its own (either side can be summed).

    Separate from `is_plain_rbm`, which keeps meaning the binary `RBM`.
    """
    return isinstance(model, CategoricalRBM) and type(model).energy is CategoricalRBM.energy


def _rbm_params(model) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    W = np.asarray(model.W[...], dtype=np.float64)
    b = np.asarray(model.visible_bias[...], dtype=np.float64)
    c = np.asarray(model.hidden_bias[...], dtype=np.float64)
    for name, arr in (("W", W), ("visible_bias", b), ("hidden_bias", c)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"RBM parameter {name!r} holds NaN or inf")
    return W, b, c


def _binary_states(m: int, start: int, stop: int) -> np.ndarray:
    """Binary states start..stop-1 of m units as float64, first unit slowest."""
    k = np.arange(start, stop, dtype=np.int64)[:, None]
    shifts = np.arange(m - 1, -1, -1, dtype=np.int64)
    return ((k >> shifts) & 1).astype(np.float64)


def _rbm_layer_chunks(W, own_bias, other_bias, beta) -> Iterator[np.ndarray]:
    """Unnormalised log marginals of all own-layer states, in chunks, float64.

    `W` is (n_other, m) with the m own-layer units enumerated. State y has
    log marginal beta own_bias.y + sum_i softplus(a_i), a = beta (other_bias
    + W y). The units are split into high bits (one chunk each setting) and
    low bits (every setting inside a chunk, precomputed), so a chunk costs
    one product and one log1p per element instead of a matmul and an exp:
    exp(a) = exp(beta (other_bias + W_hi y_hi)) * exp(beta W_lo y_lo).
    Where |a| may exceed 700 the product could overflow, and the slower
    max(a, 0) + log1p(exp(-|a|)) form is used instead.
    """
    n_other, m = W.shape
    k_lo = m
    while k_lo > 0 and (2**k_lo) * max(1, n_other) > _RBM_CHUNK_ELEMENTS:
        k_lo -= 1
    k_hi = m - k_lo
    W_hi, W_lo = beta * W[:, :k_hi], beta * W[:, k_hi:]
    y_lo = _binary_states(k_lo, 0, 2**k_lo)
    own_lo = beta * (y_lo @ own_bias[k_hi:])
    a_lo = y_lo @ W_lo.T  # (2**k_lo, n_other)
    bound = float(np.max(beta * np.abs(other_bias) + np.abs(beta * W).sum(axis=1), initial=0.0))
    fast = bound <= 700.0
    if fast:
        e_lo = np.exp(a_lo)
    for i in range(2**k_hi):
        y_hi = _binary_states(k_hi, i, i + 1)[0]
        base = beta * other_bias + W_hi @ y_hi
        own = beta * (y_hi @ own_bias[:k_hi]) + own_lo
        if fast:
            t = e_lo * np.exp(base)  # pyright: ignore[reportPossiblyUnboundVariable]
            np.log1p(t, out=t)
            yield own + t.sum(axis=1)
        else:
            a = a_lo + base
            t = np.exp(-np.abs(a))
            np.log1p(t, out=t)
            yield own + np.maximum(a, 0.0).sum(axis=1) + t.sum(axis=1)


def _rbm_layer_sum(W, own_bias, other_bias, beta) -> float:
    """log of the sum over all own-layer states of exp(their log marginal)."""
    total = -math.inf
    for logits in _rbm_layer_chunks(W, own_bias, other_bias, beta):
        total = float(np.logaddexp(total, _logsumexp(logits)))
    return total


def _rbm_log_partition(model, beta: float) -> float:
    W, b, c = _rbm_params(model)
    n_visible, n_hidden = W.shape
    check_enumerable(model, "exact log Z")
    if n_hidden <= n_visible:
        return _rbm_layer_sum(W, c, b, beta)
    return _rbm_layer_sum(W.T, b, c, beta)


def _categorical_rbm_log_partition(model, beta: float) -> float:
    """log Z of a `CategoricalRBM` over its smaller side, float64, in chunks.

    With 2**n_hidden <= q**n_visible the hidden configurations h are
    enumerated and the visible units summed analytically:
    log Z = logsumexp_h [c.h + sum_i logsumexp_a (b[i, a] + W[i, a, :].h)];
    otherwise the visible configurations v, the hidden units summed:
    log Z = logsumexp_v [sum_i b[i, v_i] + sum_j softplus(c_j + sum_i W[i, v_i, j])].
    """
    check_enumerable(model, "exact log Z")
    W = beta * np.asarray(model.W[...], dtype=np.float64)
    b = beta * np.asarray(model.visible_bias[...], dtype=np.float64)
    c = beta * np.asarray(model.hidden_bias[...], dtype=np.float64)
    for name, arr in (("W", W), ("visible_bias", b), ("hidden_bias", c)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"CategoricalRBM parameter {name!r} holds NaN or inf")
    nv, q, nh = W.shape
    total = -math.inf
    if 2**nh <= q**nv:  # sum the hidden configurations
        W_flat = W.reshape(nv * q, nh).T  # (nh, nv * q)
        n_states, size = 2**nh, max(1, _RBM_CHUNK_ELEMENTS // (nv * q))
        for start in range(0, n_states, size):
            h = _binary_states(nh, start, min(start + size, n_states))
            a = (h @ W_flat).reshape(len(h), nv, q) + b
            top = a.max(axis=2, keepdims=True)
            per_site = top[..., 0] + np.log(np.exp(a - top).sum(axis=2))
            total = float(np.logaddexp(total, _logsumexp(h @ c + per_site.sum(axis=1))))
        return total
    # sum the visible configurations, first unit slowest
    n_states, size = q**nv, max(1, _RBM_CHUNK_ELEMENTS // (nv * nh))
    strides = q ** np.arange(nv - 1, -1, -1, dtype=np.int64)
    sites = np.arange(nv)
    for start in range(0, n_states, size):
        k = np.arange(start, min(start + size, n_states), dtype=np.int64)[:, None]
        v = (k // strides) % q  # (K, nv)
        field = c + W[sites, v].sum(axis=1)  # (K, nh)
        terms = b[sites, v].sum(axis=1) + np.logaddexp(0.0, field).sum(axis=1)
        total = float(np.logaddexp(total, _logsumexp(terms)))
    return total


def log_partition(model, beta=1.0) -> float:
    """Exact log Z_beta = log sum_x exp(-beta E(x)), in nats.

    Any model is enumerated state by state (energies from `model.energy`,
    float32, accumulated in float64). An `RBM` instead sums its smaller
    layer analytically in float64: with n_hidden <= n_visible,
    Z = sum_h exp(beta c.h) prod_i (1 + exp(beta (b + W h)_i)), and the
    mirror formula over v otherwise; only the smaller layer counts
    against `MAX_ENUMERATION_STATES`. A `CategoricalRBM` enumerates its
    smaller side, the 2**n_hidden hidden configurations (visible units
    summed analytically, a logsumexp over q per unit) when 2**n_hidden <=
    q**n_visible, else the q**n_visible visible ones (hidden units summed).

    Args:
        model: any `EnergyModel`.
        beta: inverse temperature, finite and >= 0.

    Returns:
        log Z_beta as a Python float.

    Raises:
        ValueError: invalid beta, or too many states to enumerate.

    Example:
        >>> import math, hamon_nnx as hn
        >>> m = hn.IsingModel.from_edges(2, [[0, 1]], couplings=1.0)
        >>> round(hn.exact.log_partition(m, beta=0.5), 6)  # log(4 cosh 0.5)
        1.506409
        >>> round(hn.exact.log_partition(m, beta=0.0) - 2 * math.log(2), 12)
        0.0
    """
    beta = _check_beta(beta)
    if is_plain_rbm(model):
        return _rbm_log_partition(model, beta)
    if is_categorical_rbm(model):
        return _categorical_rbm_log_partition(model, beta)
    space = _StateSpace(model)
    return _logsumexp(-beta * _energies(model, space))


def probabilities(model, beta=1.0) -> tuple[np.ndarray, np.ndarray]:
    """The Boltzmann distribution over every state of the model.

    For an `RBM` the states are the joint (v, h) vectors (visible units
    first), so the whole model must be small enough; see
    `visible_probabilities` for the marginal over v.

    Args:
        model: any `EnergyModel`.
        beta: inverse temperature, finite and >= 0.

    Returns:
        (states, probs): int8 states (K, n) in the order of
        `enumerate_states` and float64 probabilities (K,) summing to 1.

    Example:
        >>> import hamon_nnx as hn
        >>> m = hn.IsingModel.from_edges(2, [[0, 1]], couplings=1.0)
        >>> states, p = hn.exact.probabilities(m, beta=0.0)
        >>> p.tolist()
        [0.25, 0.25, 0.25, 0.25]
    """
    beta = _check_beta(beta)
    space, probs, _ = _weights(model, beta)
    return space.all_states(), probs


def visible_probabilities(rbm, beta=1.0) -> tuple[np.ndarray, np.ndarray]:
    """Marginal distribution of an RBM's visible units.

    P(v) is proportional to exp(beta b.v) prod_j (1 + exp(beta (c + v W)_j)),
    i.e. exp(-F(v)) at beta = 1 with F the free energy, computed in float64.

    Args:
        rbm: an `RBM` with at most log2(MAX_ENUMERATION_STATES) visible units.
        beta: inverse temperature, finite and >= 0.

    Returns:
        (v_states, probs): int8 visible states (2**n_visible, n_visible),
        first unit slowest, and float64 probabilities summing to 1.

    Example:
        >>> import numpy as np, hamon_nnx as hn
        >>> rbm = hn.RBM.from_params(np.zeros((2, 3)))
        >>> v, p = hn.exact.visible_probabilities(rbm)
        >>> v.tolist(), p.round(12).tolist()
        ([[0, 0], [0, 1], [1, 0], [1, 1]], [0.25, 0.25, 0.25, 0.25])
    """
    if not is_plain_rbm(rbm):
        raise TypeError(
            "visible_probabilities needs an RBM with the standard RBM energy, "
            f"got {type(rbm).__name__}"
        )
    beta = _check_beta(beta)
    W, b, c = _rbm_params(rbm)
    n_visible = W.shape[0]
    if 2**n_visible > MAX_ENUMERATION_STATES:
        raise _too_many(f"RBM visible layer ({n_visible} units)", 2**n_visible)
    logits = np.concatenate(list(_rbm_layer_chunks(W.T, b, c, beta)))
    probs = np.exp(logits - _logsumexp(logits))
    return _binary_states(n_visible, 0, 2**n_visible).astype(np.int8), probs


# -- statistics ---------------------------------------------------------------
def marginals(model, beta=1.0) -> np.ndarray:
    """Single-variable marginals P(x_i = k-th allowed value of variable i).

    Args:
        model: any `EnergyModel`.
        beta: inverse temperature, finite and >= 0.

    Returns:
        float64 (n, q_max); row i lists the probabilities of variable i's
        values in increasing order (-1, +1 for spins; 0, 1 for binary units;
        0..q-1 for categorical ones); columns past its own q are 0.

    Example:
        >>> import hamon_nnx as hn
        >>> m = hn.IsingModel.from_edges(2, [[0, 1]], couplings=0.0, fields=[100.0, 0.0])
        >>> hn.exact.marginals(m, beta=1.0).round(3).tolist()
        [[0.0, 1.0], [0.5, 0.5]]
    """
    beta = _check_beta(beta)
    space, probs, _ = _weights(model, beta)
    out = np.zeros((space.n, space.q_max), dtype=np.float64)
    for start, stop in space.chunks():
        d = space.digits(start, stop)
        w = probs[start:stop]
        for k in range(space.q_max):
            out[:, k] += w @ (d == k)
    return out


def moments(model, beta=1.0) -> tuple[np.ndarray, np.ndarray]:
    """First and second moments of the numeric variable values.

    Args:
        model: any `EnergyModel`.
        beta: inverse temperature, finite and >= 0.

    Returns:
        (mean, second): float64 E[x_i] (n,) and E[x_i x_j] (n, n).

    Example:
        >>> import hamon_nnx as hn
        >>> m = hn.IsingModel.from_edges(2, [[0, 1]], couplings=1.0)
        >>> mean, second = hn.exact.moments(m, beta=0.5)
        >>> round(float(second[0, 1]), 6)  # tanh(0.5)
        0.462117
    """
    beta = _check_beta(beta)
    space, probs, _ = _weights(model, beta)
    mean = np.zeros(space.n, dtype=np.float64)
    second = np.zeros((space.n, space.n), dtype=np.float64)
    for start, stop in space.chunks():
        x = space.states(space.digits(start, stop)).astype(np.float64)
        w = probs[start:stop]
        mean += w @ x
        second += x.T @ (w[:, None] * x)
    return mean, second


def pair_marginals(model, beta=1.0) -> np.ndarray:
    """Joint marginals P(x_i = a-th value, x_j = b-th value) of every pair.

    Args:
        model: any `EnergyModel`.
        beta: inverse temperature, finite and >= 0.

    Returns:
        float64 (n, n, q_max, q_max). The diagonal blocks [i, i] are
        diagonal matrices holding the single-variable marginals.

    Example:
        >>> import hamon_nnx as hn
        >>> m = hn.IsingModel.from_edges(2, [[0, 1]], couplings=100.0)
        >>> hn.exact.pair_marginals(m)[0, 1].round(3).tolist()
        [[0.5, 0.0], [0.0, 0.5]]
    """
    beta = _check_beta(beta)
    space, probs, _ = _weights(model, beta)
    n, q = space.n, space.q_max
    out = np.zeros((n * q, n * q), dtype=np.float64)
    for start, stop in space.chunks():
        d = space.digits(start, stop)
        onehot = (d[:, :, None] == np.arange(q)).reshape(len(d), n * q).astype(np.float64)
        out += onehot.T @ (probs[start:stop, None] * onehot)
    return out.reshape(n, q, n, q).transpose(0, 2, 1, 3)


def mean_energy(model, beta=1.0) -> float:
    """Exact Boltzmann average <E> at inverse temperature beta.

    Args:
        model: any `EnergyModel`.
        beta: inverse temperature, finite and >= 0.

    Returns:
        <E> as a Python float (energies as `model.energy` computes them).

    Example:
        >>> import hamon_nnx as hn
        >>> m = hn.IsingModel.from_edges(2, [[0, 1]], couplings=1.0)
        >>> round(hn.exact.mean_energy(m, beta=0.5), 6)  # -tanh(0.5)
        -0.462117
    """
    beta = _check_beta(beta)
    _, probs, energy = _weights(model, beta)
    return float(probs @ energy)


# -- 2-D Ising closed forms ---------------------------------------------------
def _log_2cosh(t: np.ndarray | np.float64) -> np.ndarray | np.float64:
    a = np.abs(t)
    return a + np.log1p(np.exp(-2.0 * a))


def _kaufman(m: int, n: int, K: float) -> tuple[float, float]:
    """(log Z, d log Z / dK) of the periodic m x n lattice at coupling K > 0.

    Kaufman (1949): Z = 1/2 (2 sinh 2K)^(mn/2) (Z1 + Z2 + Z3 + Z4) with
    Z1, Z2 = prod_r 2cosh, 2sinh (m g_(2r+1) / 2) and Z3, Z4 = prod_r 2cosh,
    2sinh (m g_(2r) / 2), r = 0..n-1, where cosh g_k = cosh 2K coth 2K
    - cos(pi k / n) for k > 0 and g_0 = 2K + log tanh K is signed (Z4 < 0
    above the critical temperature).

    Evaluated in log space: each factor is split as exp(m |g_k| / 2) times
    (1 +- exp(-m |g_k|)), and the prefactor's share (2 sinh 2K)^(m/2) is
    folded into exp(m h_k / 2) with h_k = log(2 sinh 2K) + |g_k|, which
    stays O(1) at high temperature, so neither log Z nor its derivative
    suffers the cancellation of 1/K-sized terms as K -> 0.
    """
    if K > 50.0:  # excitations cost >= 8K: log Z = log 2 + 2NK to double precision
        return _LOG2 + 2.0 * m * n * K, 2.0 * m * n
    if K < 1e-9:  # high-temperature series; loops add O(tanh^3 K) relative to log Z - N log 2
        return m * n * (_LOG2 + 2.0 * math.log(math.cosh(K))), 2.0 * m * n * math.tanh(K)
    two_k = 2.0 * K
    s, ch = math.sinh(two_k), math.cosh(two_k)
    theta = np.pi * np.arange(2 * n, dtype=np.float64) / n
    cos = np.cos(theta)
    half = 2.0 * s * np.sin(0.5 * theta) ** 2  # s (1 - cos theta)
    p = ch * ch - s * cos  # cosh 2K coth 2K - cos theta = p / s = cosh g
    p_minus = (1.0 - s) ** 2 + half  # p - s, free of cancellation
    p_plus = 1.0 + s * s + half  # p + s
    r = np.sqrt(p_minus * p_plus)  # s sinh g
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.log1p((p_minus + r) / s)  # arccosh(p / s)
        h = np.log(2.0 * (p + r))  # log(2 sinh 2K) + g
        dp = 2.0 * ch * (2.0 * s - cos)
        dh = (dp + (p * dp - 2.0 * s * ch) / r) / (p + r)
    dg = dh - 2.0 * ch / s
    # k = 0: the signed g_0
    g0 = two_k + math.log(-math.expm1(-two_k)) - math.log1p(math.exp(-two_k))
    g[0], dg[0] = g0, 2.0 + 2.0 / s
    if g0 < 0:  # log(2 sinh 2K) - g0 = 2 log(2 cosh K) - 2K
        h[0], dh[0] = 2.0 * math.log1p(math.exp(-two_k)), -2.0 * (1.0 - math.tanh(K))
    elif g0 > 0:  # log(2 sinh 2K) + g0 = 2 log(2 sinh K) + 2K
        h[0], dh[0] = 2.0 * two_k + 2.0 * math.log(-math.expm1(-two_k)), 2.0 + 2.0 / math.tanh(K)
    else:
        h[0], dh[0] = math.log(2.0 * s), 2.0 * ch / s
    half_m = 0.5 * m
    ax = half_m * np.abs(g)  # |x_k|, x_k = m g_k / 2
    dax = half_m * np.sign(g) * dg
    dax[0] = half_m * math.copysign(1.0, g0) * dg[0] if g0 != 0 else 0.0
    e = np.exp(-2.0 * ax)
    cosh_corr, d_cosh_corr = np.log1p(e), -dax * 2.0 * e / (1.0 + e)
    with np.errstate(divide="ignore", over="ignore"):
        sinh_corr = np.log(-np.expm1(-2.0 * ax))
        d_sinh_corr = dax * 2.0 / np.expm1(2.0 * ax)
    odd, even, even_rest = slice(1, None, 2), slice(0, None, 2), slice(2, None, 2)
    big_odd, big_even = half_m * np.sum(h[odd]), half_m * np.sum(h[even])
    dbig_odd, dbig_even = half_m * np.sum(dh[odd]), half_m * np.sum(dh[even])
    l4_rest = big_even + np.sum(sinh_corr[even_rest])
    logs = np.array(
        [
            big_odd + np.sum(cosh_corr[odd]),
            big_odd + np.sum(sinh_corr[odd]),
            big_even + np.sum(cosh_corr[even]),
            l4_rest + sinh_corr[0],
        ]
    )
    signs = np.array([1.0, 1.0, 1.0, np.sign(g0)])
    top = float(np.max(logs))
    total = float(np.sum(signs * np.exp(logs - top)))
    if not total > 0:
        raise FloatingPointError(f"Kaufman sum lost its precision at K={K}, lattice {m}x{n}")
    log_sum = top + math.log(total)
    # weights relative to `top`, not `log_sum`: log Z ~ 2NK may be large, and
    # its rounding would otherwise leak into the derivative
    w = signs * np.exp(logs - top) / total
    d_rest4 = dbig_even + np.sum(d_sinh_corr[even_rest])
    dlog = (
        w[0] * (dbig_odd + np.sum(d_cosh_corr[odd]))
        + w[1] * (dbig_odd + np.sum(d_sinh_corr[odd]))
        + w[2] * (dbig_even + np.sum(d_cosh_corr[even]))
        + w[3] * d_rest4
    )
    # Z4's own k = 0 factor 2 sinh(x_0): d/dK of its log is coth(x_0) dx_0, split
    # as d|x_0| (coth|x_0| - 1) plus the d|x_0| already inside h_0
    if ax[0] > 0.5:
        dlog += w[3] * d_sinh_corr[0]
    else:  # near g_0 = 0: Z4 coth(x_0) stays finite; w4 alone may vanish
        dx0 = half_m * dg[0]
        coth_part = math.exp(l4_rest + cosh_corr[0] - top) / total
        dlog += (coth_part - math.exp(logs[3] - top) / total) * dx0
    return -_LOG2 + log_sum, float(dlog)


def _ising_lattice(L, beta, coupling) -> tuple[int, int, float, float]:
    """Validated (m, n, |K|, |J|), refusing frustrated antiferromagnets."""
    m, n = _lattice_dims(L)
    beta = _check_beta(beta)
    J = _check_coupling(coupling)
    if J < 0 and (m % 2 or n % 2) and beta > 0:
        raise ValueError(
            f"a negative coupling on a {m}x{n} periodic lattice with an odd side is "
            "frustrated; the closed form covers J >= 0, or J < 0 with both sides even"
        )
    return m, n, beta * abs(J), abs(J)


def ising_lattice_log_partition(L, beta, coupling=1.0) -> float:
    """Exact log Z of the zero-field 2-D Ising model on a periodic lattice.

    E(s) = -J sum_<ij> s_i s_j over the 2 L^2 nearest-neighbour bonds of an
    L x L torus (the energy of `IsingModel.lattice((L, L), coupling=J,
    periodic=True)`), with Kaufman's (1949) closed form evaluated in log
    space with signed sums, so that L = 256 and beyond work. A negative J
    is accepted when both sides are even (it is equivalent to |J|).

    Args:
        L: side length (integer >= 3), or a pair (M, N) for an M x N torus.
        beta: inverse temperature, finite and >= 0.
        coupling: J.

    Returns:
        log Z_beta as a Python float.

    Example:
        >>> import math, hamon_nnx as hn
        >>> round(hn.exact.ising_lattice_log_partition(4, 0.0) - 16 * math.log(2), 9)
        0.0
        >>> round(hn.exact.ising_lattice_log_partition(256, hn.exact.ISING_2D_BETA_C) / 256**2, 4)
        0.9297
    """
    m, n, K, _ = _ising_lattice(L, beta, coupling)
    if K == 0:
        return m * n * _LOG2
    return _kaufman(m, n, K)[0]


def ising_lattice_energy(L, beta, coupling=1.0) -> float:
    """Exact mean energy per spin <E> / N of the zero-field periodic 2-D Ising lattice.

    The analytic beta-derivative of Kaufman's log Z (see
    `ising_lattice_log_partition`): u = -(1/N) d log Z / d beta.

    Args:
        L: side length (integer >= 3), or a pair (M, N) for an M x N torus.
        beta: inverse temperature, finite and >= 0.
        coupling: J.

    Returns:
        <E> / N as a Python float.

    Example:
        >>> import hamon_nnx as hn
        >>> round(hn.exact.ising_lattice_energy(64, 2.0), 6)  # near the ground state, -2 J
        -1.999999
    """
    m, n, K, J = _ising_lattice(L, beta, coupling)
    if K == 0:
        return 0.0
    return -J * _kaufman(m, n, K)[1] / (m * n)


def _agm(a: float, b: float) -> float:
    for _ in range(64):
        if abs(a - b) <= 1e-16 * a:
            break
        a, b = 0.5 * (a + b), math.sqrt(a * b)
    return a


def onsager_energy_per_spin(beta, coupling=1.0) -> float:
    """Mean energy per spin of the infinite zero-field 2-D square-lattice Ising model.

    Onsager (1944): u = -J coth 2K [1 + (2/pi)(2 tanh^2 2K - 1) K1(k)],
    K = beta J, k = 2 sinh 2K / cosh^2 2K, with the complete elliptic
    integral K1(k) = pi / (2 AGM(1, sqrt(1 - k^2))). At the critical point
    the second term vanishes and u = -sqrt(2) J.

    Args:
        beta: inverse temperature, finite and >= 0.
        coupling: J (the sign does not change u: the lattice is bipartite).

    Returns:
        u as a Python float.

    Example:
        >>> import hamon_nnx as hn
        >>> round(hn.exact.onsager_energy_per_spin(hn.exact.ISING_2D_BETA_C), 9)
        -1.414213562
    """
    beta = _check_beta(beta)
    J = abs(_check_coupling(coupling))
    K = beta * J
    if K == 0:
        return 0.0
    two_k = 2.0 * K
    if two_k > 40:  # k, 1 - tanh 2K below 1e-34: the ground state
        return -2.0 * J
    if K < 1e-3:
        # the bracket cancels to O(K^2): use the high-temperature series
        # log Z / N = log 2 + 2 log cosh K + t^4 + 2 t^6 + O(t^8), t = tanh K
        t = math.tanh(K)
        return -J * (2.0 * t + (1.0 - t * t) * (4.0 * t**3 + 12.0 * t**5))
    s, ch = math.sinh(two_k), math.cosh(two_k)
    k = 2.0 * s / (ch * ch)
    k_prime = abs(s - 1.0) * math.sqrt(1.0 + k) / ch  # sqrt(1 - k^2) without cancellation
    factor = (s * s - 1.0) / (ch * ch)  # 2 tanh^2 2K - 1
    if k_prime == 0.0 or factor == 0.0:
        bracket = 1.0
    else:
        elliptic = math.pi / (2.0 * _agm(1.0, k_prime))
        bracket = 1.0 + (2.0 / math.pi) * factor * elliptic
    return -J * (ch / s) * bracket


def onsager_log_partition_per_spin(beta, coupling=1.0) -> float:
    """log Z / N of the infinite zero-field 2-D square-lattice Ising model.

    Onsager (1944): log Z / N = log(2 cosh 2K)
    + (1/pi) int_0^(pi/2) log[(1 + sqrt(1 - k^2 sin^2 t)) / 2] dt, with
    K = beta J and k = 2 sinh 2K / cosh^2 2K; the integral by Gauss-Legendre
    quadrature on panels graded towards pi/2, where it has a kink at k = 1.

    Args:
        beta: inverse temperature, finite and >= 0.
        coupling: J.

    Returns:
        log Z / N as a Python float.

    Example:
        >>> import math, hamon_nnx as hn
        >>> catalan = 0.915965594177219
        >>> value = hn.exact.onsager_log_partition_per_spin(hn.exact.ISING_2D_BETA_C)
        >>> abs(value - (math.log(2) / 2 + 2 * catalan / math.pi)) < 1e-12
        True
    """
    beta = _check_beta(beta)
    K = beta * abs(_check_coupling(coupling))
    if K == 0:
        return _LOG2
    two_k = 2.0 * K
    log_2cosh = float(_log_2cosh(np.float64(two_k)))
    if two_k > 40:
        return log_2cosh  # k^2 < 1e-34: the integral vanishes
    s, ch = math.sinh(two_k), math.cosh(two_k)
    k = 2.0 * s / (ch * ch)
    k_prime = abs(s - 1.0) * math.sqrt(1.0 + k) / ch  # sqrt(1 - k^2) without cancellation
    nodes, weights = np.polynomial.legendre.leggauss(20)
    edges = 0.5 * math.pi * (1.0 - 2.0 ** -np.arange(0, 61, dtype=np.float64))
    edges = np.append(edges, 0.5 * math.pi)
    lo, hi = edges[:-1, None], edges[1:, None]
    t = 0.5 * (hi - lo) * nodes + 0.5 * (hi + lo)
    # 1 - k^2 sin^2 t = cos^2 t + k'^2 sin^2 t, free of cancellation near t = pi/2
    root = np.sqrt(np.cos(t) ** 2 + (k_prime * np.sin(t)) ** 2)
    integrand = np.log(0.5 * (1.0 + root))
    integral = float(np.sum(0.5 * (hi - lo) * weights * integrand))
    return log_2cosh + integral / math.pi
