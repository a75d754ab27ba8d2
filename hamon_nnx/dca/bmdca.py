"""Boltzmann-machine DCA: a dense Potts model fitted to an alignment's statistics.

The log-likelihood of a dense Potts model (`hn.PottsModel.dense`) on
weighted sequences depends on the data only through their one- and two-site
frequencies f_i(a), f_ij(a, b) (pseudocounted), and its gradient is in
closed form: data frequencies minus model marginals,

    dL/dh_i(a) = f_i(a) - p_i(a),        dL/dJ_ij(a, b) = f_ij(a, b) - p_ij(a, b),

the model marginals p estimated from persistent chains. So no minibatch and
no autodiff: every step moves all parameters by `learning_rate` times that
difference (minus an optional L2 pull), then makes `n_sweeps` heat-bath
sweeps of every chain (`DensePotts`'s grouped sweep), then measures the new
marginals with one one-hot matrix product. This is adabmDCA's bmDCA
(Muntoni et al. 2021) step for step: the same initialisation (fields
log f_i, couplings 0, chains drawn from the profile model), the same update
order, the same convergence measure (`pearson`: connected correlations of
data and chains over pairs i > j and all letter pairs), checked after every
step from the chains it already has.

Steps run in compiled chunks (`steps_per_call`); a chunk stops at the first
step that reaches `target_pearson`, so the result does not depend on the
chunk length. Same key, same model; only `max_seconds` (a wall-clock budget
the user asks for) makes the stopping step depend on the machine.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, NamedTuple, cast, overload

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ..core import compilation, gibbs
from ..models.potts import DensePotts
from .alignment import connected_correlations, one_hot_statistics

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from .alignment import Alignment


class Statistics(NamedTuple):
    """One- and two-site frequencies: fi (L, q) and fij (L, L, q, q), fij[i, i] = diag(fi)."""

    fi: jax.Array
    fij: jax.Array


def chain_statistics(x: jax.Array, q: int) -> Statistics:
    """Unweighted frequencies of chains x (C, L) int: one one-hot matrix product."""
    return Statistics(*one_hot_statistics(x, q))


def pearson(data: Statistics, model: Statistics) -> jax.Array:
    """`alignment.pearson` traced in float32, for the training loop: the Pearson
    correlation of data and model connected correlations over pairs i > j and
    all q^2 letter pairs (adabmDCA's entries)."""
    rows, cols = np.tril_indices(data.fi.shape[0], k=-1)
    a = connected_correlations(data.fi, data.fij)[rows, cols].reshape(-1)
    b = connected_correlations(model.fi, model.fij)[rows, cols].reshape(-1)
    a, b = a - a.mean(), b - b.mean()
    return jnp.sum(a * b) / jnp.sqrt(jnp.sum(a * a) * jnp.sum(b * b))


class BMDCAState(NamedTuple):
    """Everything a fit carries between steps (arrays; a checkpoint of the run)."""

    J: jax.Array  # (L, L, q, q) float32, symmetric with zero diagonal blocks
    h: jax.Array  # (L, q) float32
    chains: jax.Array  # (C, L) int8
    marginals: Statistics  # of the chains as they are
    step: jax.Array  # () int32 updates done


def profile_start(key: jax.Array, data: Statistics, n_chains: int) -> BMDCAState:
    """Fields log f_i, couplings 0, chains drawn from that independent-site (profile) model."""
    fi = jnp.asarray(data.fi, jnp.float32)
    L, q = fi.shape
    h = jnp.log(fi)
    chains = jax.random.categorical(key, h, shape=(n_chains, L)).astype(jnp.int8)
    J = jnp.zeros((L, L, q, q), jnp.float32)
    return BMDCAState(J, h, chains, chain_statistics(chains, q), jnp.int32(0))


@functools.partial(jax.jit, static_argnames=("n_sweeps", "capacity"))
def _run_steps(state, data, key, lr, l2, target, limit, *, n_sweeps: int, capacity: int):
    """Up to `limit` (<= capacity) updates; stops at the first whose Pearson reaches `target`.

    Returns (state, Pearson per step (capacity,), steps done).
    """
    L, q = data.fi.shape
    off_diagonal = (1.0 - jnp.eye(L, dtype=jnp.float32))[:, :, None, None]
    ones = jnp.ones((state.chains.shape[0],), jnp.float32)

    def body(carry):
        state, trace, i, _ = carry
        p = state.marginals
        J = state.J + lr * ((data.fij - p.fij) * off_diagonal - l2 * state.J)
        h = state.h + lr * (data.fi - p.fi - l2 * state.h)
        model = DensePotts(J, h)
        sweep_key = jax.random.fold_in(key, state.step)
        x = gibbs.sweeps(sweep_key, state.chains, model, ones, 0, n_sweeps)
        marginals = chain_statistics(x, q)
        r = pearson(data, marginals)
        new = BMDCAState(J, h, x, marginals, state.step + 1)
        return new, trace.at[i].set(r), i + 1, r

    def more(carry):
        _, _, i, r = carry
        return (i < limit) & (r < target)

    trace = jnp.full((capacity,), jnp.nan, jnp.float32)
    start = (state, trace, jnp.int32(0), jnp.float32(-1.0))
    state, trace, done, _ = lax.while_loop(more, body, start)
    return state, trace, done


@dataclasses.dataclass
class BMDCAFit:
    """A bmDCA run: the model, its chains and the history of the convergence measure.

    Attributes:
        model: the fitted `DensePotts`.
        state: the run's `BMDCAState` (continue it with `fit(..., state=)`).
        history: {"step", "pearson", "seconds" (wall seconds since the start,
            compilation excluded), "compile_seconds" (cumulated)} per step.
        converged: whether `target_pearson` was reached.
    """

    model: DensePotts
    state: BMDCAState
    history: dict
    converged: bool

    @property
    def pearson(self) -> float:
        return self.history["pearson"][-1] if self.history["pearson"] else math.nan


@overload
def _check(name, value, low, high=..., *, integer: Literal[True]) -> int: ...
@overload
def _check(name, value, low, high=..., integer: Literal[False] = ...) -> float: ...
def _check(name, value, low, high=math.inf, integer=False) -> int | float:
    bad = isinstance(value, bool) or not isinstance(value, (int, float, np.number))
    if bad or (integer and int(value) != value) or not (low <= value < high):
        kind = "an integer" if integer else "a number"
        raise ValueError(f"{name} must be {kind} in [{low}, {high}), got {value!r}")
    return int(value) if integer else float(value)


def _check_statistics(data) -> Statistics:
    fi = np.asarray(data[0], np.float32)
    fij = np.asarray(data[1], np.float32)
    if fi.ndim != 2 or fij.shape != (fi.shape[0], fi.shape[0], fi.shape[1], fi.shape[1]):
        raise ValueError(
            f"frequencies must be fi (L, q) and fij (L, L, q, q); got {fi.shape} and {fij.shape}"
        )
    if not (np.all(np.isfinite(fi)) and np.all(np.isfinite(fij))):
        raise ValueError("frequencies contain NaN or inf")
    if np.any(fi <= 0):
        raise ValueError("one-site frequencies must be > 0 (use a pseudocount): log f_i starts h")
    return Statistics(jnp.asarray(fi), jnp.asarray(fij))


def fit(
    data: Alignment | tuple[ArrayLike, ArrayLike],
    key: jax.Array,
    *,
    n_chains: int = 2000,
    n_sweeps: int = 10,
    learning_rate: float = 0.01,
    l2: float = 0.0,
    target_pearson: float = 0.95,
    max_steps: int = 100_000,
    max_seconds: float | None = None,
    steps_per_call: int = 10,
    state: BMDCAState | None = None,
    progress: bool = True,
    callback: Callable[[BMDCAFit], bool | None] | None = None,
) -> BMDCAFit:
    """Fit a dense Potts model to an alignment's frequencies by bmDCA.

    Args:
        data: an `Alignment` (its pseudocounted `frequencies()`), or the pair
            (fi (L, q), fij (L, L, q, q)).
        key: PRNG key (the chains' start and every sweep).
        n_chains: persistent chains estimating the model's marginals.
        n_sweeps: heat-bath sweeps of every chain per update.
        learning_rate: step on the closed-form gradient (adabmDCA's default
            0.01 for bmDCA).
        l2: L2 pull of every parameter toward 0 (0: none).
        target_pearson: stop at the first step whose `pearson` reaches it.
        max_steps: stop after this many updates in all.
        max_seconds: stop once the run has spent this many wall seconds
            outside compilation (checked between chunks; the one setting that
            makes the result depend on the machine).
        steps_per_call: updates per compiled call (progress and time checks
            happen between calls; the result does not depend on it).
        state: continue from an earlier fit's `state` instead of the profile
            model.
        progress: a progress bar of the Pearson measure.
        callback: optional `callback(fit_so_far) -> bool` after each chunk;
            True stops.

    Returns:
        `BMDCAFit`.

    Example:
        >>> import jax, numpy as np
        >>> from hamon_nnx.dca import bmdca
        >>> x = np.random.default_rng(0).integers(0, 3, size=(200, 6))
        >>> x[:, 1] = x[:, 0]  # a coupled pair
        >>> st = bmdca.chain_statistics(x, 3)
        >>> fi = 0.95 * np.asarray(st.fi) + 0.05 / 3
        >>> fij = 0.95 * np.asarray(st.fij) + 0.05 / 9
        >>> fij[range(6), range(6)] = [np.diag(f) for f in fi]
        >>> run = bmdca.fit((fi, fij), jax.random.key(0), n_chains=500, learning_rate=0.05,
        ...                 target_pearson=0.9, max_steps=400, progress=False)
        >>> run.converged
        True
    """
    if hasattr(data, "frequencies"):
        data = cast("Alignment", data).frequencies()
    data = _check_statistics(data)
    n_chains = _check("n_chains", n_chains, 2, integer=True)
    n_sweeps = _check("n_sweeps", n_sweeps, 1, integer=True)
    learning_rate = _check("learning_rate", learning_rate, 1e-12)
    l2 = _check("l2", l2, 0.0)
    target = _check("target_pearson", target_pearson, -1.0, 1.0 + 1e-9)
    max_steps = _check("max_steps", max_steps, 1, integer=True)
    chunk = _check("steps_per_call", steps_per_call, 1, integer=True)
    if max_seconds is not None:
        max_seconds = _check("max_seconds", max_seconds, 0.0)
    if state is None:
        state = profile_start(jax.random.fold_in(key, 0), data, n_chains)
    sweep_key = jax.random.fold_in(key, 1)
    history = {"step": [], "pearson": [], "seconds": [], "compile_seconds": []}
    bar = _bar(progress, target)
    clock, compiled = time.perf_counter(), 0.0
    pearson_now, done = -1.0, 0
    try:
        while done < max_steps and pearson_now < target:
            n = min(chunk, max_steps - done)
            with compilation.counting() as spent:
                state, trace, ran = cast("tuple[BMDCAState, jax.Array, jax.Array]", _run_steps(
                    state, data, sweep_key, learning_rate, l2, target, jnp.int32(n),
                    n_sweeps=n_sweeps, capacity=chunk,
                ))  # fmt: skip
                trace, ran = jax.device_get((trace, ran))
            compiled += spent.seconds
            ran = int(ran)
            seconds = time.perf_counter() - clock - compiled
            step0 = int(state.step) - ran
            for i in range(ran):
                history["step"].append(step0 + i + 1)
                history["pearson"].append(float(trace[i]))
                history["seconds"].append(seconds)
                history["compile_seconds"].append(compiled)
            done += ran
            pearson_now = float(trace[ran - 1])
            if bar is not None:
                bar.n = round(max(pearson_now, 0.0), 4)
                bar.set_postfix(step=int(state.step), seconds=f"{seconds:.0f}")
                bar.refresh()
            so_far = BMDCAFit(DensePotts(state.J, state.h), state, history, pearson_now >= target)
            if callback is not None and callback(so_far):
                break
            if max_seconds is not None and seconds >= max_seconds:
                break
    finally:
        if bar is not None:
            bar.close()
    return BMDCAFit(DensePotts(state.J, state.h), state, history, pearson_now >= target)


def _bar(progress: bool, target: float):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=round(target, 4), desc="bmDCA Pearson", bar_format="{desc}: {n:.3f}/"
                "{total:.3f} [{elapsed}{postfix}]")  # fmt: skip
