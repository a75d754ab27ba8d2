"""Annealed importance sampling (Neal 2001): `hn.ais`, log Z with an error bar.

Runs anneal from a product reference (beta = 0, exact draws, exact log Z)
to the model (beta = 1) along the same path as tempering,
pi_beta(x) ~ exp(-E_ref(x) - beta V(x)) with V = E - E_ref, through a grid
0 = beta_0 < ... < beta_K = 1: a run's state x_(k-1), after Gibbs sweeps at
beta_(k-1), adds -(beta_k - beta_(k-1)) V(x_(k-1)) to its log-weight. Each
run's weight w is an unbiased estimate of Z / Z_ref, so

    log Z = log Z_ref + log mean(w)                (log-mean-exp)

and its standard error, by the delta method, is sd(w) / (sqrt(M) mean(w))
over the M runs. Because E[log Zhat] <= log Z (Jensen), AIS's log Z is a
stochastic lower bound (a log-likelihood computed with it an upper bound):
by Markov's inequality, log Zhat - log(1 / delta) <= log Z with probability
at least 1 - delta (`lower_bound`). The error bar is honest only while the
weights are not dominated by a few runs: `ess` (the weights' effective
sample size) says how many runs count; tests check the error bar's
calibration over many seeds against exact log Z.

A plain `hn.RBM` is annealed on its smaller layer with the other summed out
(`RBM.marginal()`, same Z), a `CategoricalRBM` on its hidden layer
(`CategoricalRBM.marginal()`). On the joint (v, h) path (`collapse=False`)
block Gibbs moves the runs (h given v, then v given h, both at the new beta)
and a run's weight sums the hidden layer out at each beta (Salakhutdinov and
Murray 2008); `reference` may be fitted to data (their base-rate model).

A log-weight is a sum of a grid's worth of float32 steps that grows to
log Z - log Z_ref (about 1360 for a 784 x 100 RBM): each chunk of the grid
sums its steps with a compensated (Neumaier) float32 sum and the chunks add
up in float64, so rounding stays near 1e-6 instead of 1e-3.
`anneal_particles` returns the runs' final states with their log-weights,
a weighted sample of the model (joint (v, h) states for an RBM).
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple, cast

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax import lax
from numpy.typing import ArrayLike

from . import exact
from .core import device as device_lib
from .core import gibbs, tempering
from .core import reference as ref_lib
from .core.layout import check_states
from .models.base import EnergyModel, check_params_finite
from .models.rbm import RBMMarginal
from .sampling import _check_count, _check_key
from .tuning import _collapsed


class AISResult(NamedTuple):
    """What `hn.ais` returns.

    Attributes:
        log_z: log-mean-exp estimate of log Z (nats).
        stderr: its standard error (delta method over the runs).
        log_weights: (M,) float64 log-weights of the runs, log Z_ref included
            (log_z is their log-mean-exp).
        ess: effective sample size of the weights, (sum w)^2 / sum w^2.
        n_betas: points of the annealing grid.
    """

    log_z: float
    stderr: float
    log_weights: np.ndarray
    ess: float
    n_betas: int

    def lower_bound(self, delta: float = 0.01) -> float:
        """log Z - log(1 / delta): below the true log Z with probability >= 1 - delta."""
        if not 0 < delta < 1:
            raise ValueError(f"delta must be in (0, 1), got {delta!r}")
        return self.log_z - math.log(1.0 / delta)


def _check_betas(betas, n_betas: int | None) -> np.ndarray:
    """The annealing grid: given, or n_betas points denser near beta = 1."""
    if betas is None:
        n = _check_count("n_betas", 1000 if n_betas is None else n_betas, 2)
        # uniform in sqrt-space: steps shrink toward beta = 1, where the
        # model's energy changes fastest for most targets
        return 1.0 - (1.0 - np.linspace(0.0, 1.0, n)) ** 2
    grid = np.asarray(betas, np.float64)
    if grid.ndim != 1 or grid.size < 2:
        raise ValueError(f"betas must be a 1-D grid of at least 2 points, got shape {grid.shape}")
    if not (grid[0] == 0.0 and grid[-1] == 1.0 and np.all(np.diff(grid) > 0)):
        raise ValueError("betas must increase strictly from 0 to 1")
    return grid


def _resolve_reference(model, reference):
    """Product-reference logits per block: uniform, given, or fitted to data."""
    if isinstance(reference, str):
        if reference != "uniform":
            raise ValueError(
                f"reference must be 'uniform', logits per block, or data to fit; got {reference!r}"
            )
        return ref_lib.uniform(model.blocks)
    if isinstance(reference, tuple):
        if len(reference) != len(model.blocks):
            raise ValueError(
                f"reference must hold logits for each of the {len(model.blocks)} blocks, "
                f"got {len(reference)}"
            )
        return tuple(jnp.asarray(r, jnp.float32) for r in reference)
    if _rbm_like(model) and np.shape(reference)[-1:] == (model.n_visible,):
        return _base_rate(model, reference)
    if _visible_data_of_a_hidden_marginal(model, reference):
        return _posterior_rate(model, reference)
    data = model.validate_state(reference, name="reference data")
    return ref_lib.fit(model.to_internal(data.reshape(-1, model.n_variables)), model.blocks)


def _visible_data_of_a_hidden_marginal(model, data) -> bool:
    """Visible vectors given to an RBM's hidden layer with the visible one summed out."""
    return (
        isinstance(model, RBMMarginal)
        and model.keep == "hidden"
        and model.n_summed != model.n_variables
        and np.shape(data)[-1:] == (model.n_summed,)
    )


def _posterior_rate(model, visible):
    """A hidden-layer reference from visible data: logit of mean P(h_j = 1 | v) over the data.

    The collapsed path's counterpart of the base-rate model: the reference
    sits where the data's hidden activations are (pseudocount 1, as `fit`).
    """
    n, q = model.n_summed, getattr(model, "q", 2)
    kinds = np.full(n, 2 if q > 2 else 1)  # KINDS index: categorical or binary
    v = check_states(np.asarray(visible).reshape(-1, n), kinds, np.full(n, q), "reference data")
    x = jax.nn.one_hot(v, q) if q > 2 else jnp.asarray(v, jnp.float32)
    W = model.W[...]
    axes = (tuple(range(1, x.ndim)), tuple(range(W.ndim - 1)))
    p = jax.nn.sigmoid(jnp.tensordot(x, W, axes=axes) + model.kept_bias[...])
    ones = jnp.sum(p, axis=0) + 1.0
    logits = jnp.log(ones) - jnp.log(len(v) + 2.0 - ones)
    return tuple(logits[j : j + 1] for j in range(model.n_variables))


def _rbm_like(model) -> bool:
    """An RBM or CategoricalRBM with its own energy (its hidden layer can be summed)."""
    return exact.is_plain_rbm(model) or exact.is_categorical_rbm(model)


def _base_rate(model, visible):
    """Salakhutdinov and Murray's base-rate reference: visible marginals fitted, hidden uniform."""
    kinds, qs = model.variable_kinds()
    n = model.n_visible
    v = check_states(np.asarray(visible).reshape(-1, n), kinds[:n], qs[:n], "reference data")
    h = np.zeros((len(v), model.n_hidden), np.int8)
    fitted = ref_lib.fit(jnp.asarray(np.concatenate([v, h], axis=1)), model.blocks)
    return (fitted[0], jnp.zeros_like(fitted[1]))


_CHUNK = 256  # grid steps per compiled call: any grid length reuses one program


@functools.partial(jax.jit, static_argnames=("graphdef", "n_runs"))
def _start(graphdef, params, key, reference, *, n_runs):
    """Exact draws of the M runs from the reference."""
    return ref_lib.sample(key, nnx.merge(graphdef, params).blocks, reference, n_runs)


def _hidden_summed_increment(model, x, reference, beta_from, beta_to):
    """log pi*_(beta_to)(v) - log pi*_(beta_from)(v), the tempered joint summed over h.

    For an RBM-like model (free energy F(v) = -vis(v) - sum_j softplus(a_j(v))
    with hidden logits a(v)) and reference logits r_h on the hidden layer,
    sum_h exp(-(1 - beta) E_ref(v, h) - beta E(v, h)) is
    exp(-(1 - beta) E_ref(v) + beta vis(v)) prod_j (1 + exp((1 - beta) r_h + beta a_j(v))):
    the terms of v are computed once for both betas.
    """
    v = x[:, : model.n_visible]
    no_hidden = x.at[:, model.n_visible :].set(0)  # binary hidden units add 0 to E_ref
    ref_v = ref_lib.energy(no_hidden, model.blocks, reference)
    a = model.hidden_logits(v)
    vis = -model.free_energy(v) - jnp.sum(jax.nn.softplus(a), axis=-1)
    z = (1 - beta_from) * reference[1] + beta_from * a
    hidden = _softplus_change(z, (beta_to - beta_from) * (a - reference[1]))
    return (beta_to - beta_from) * (ref_v + vis) + jnp.sum(hidden, axis=-1)


def _softplus_change(z, d):
    """softplus(z + d) - softplus(z), to float32 precision of the change itself.

    The difference of the two softplus sums of a large hidden layer (about
    1e3 for a 784 x 100 RBM) loses a float32 ulp of the sum (1e-4) at every
    grid step, whatever the step's size; log1p(sigmoid(z) expm1(d)) is the
    same number with an error relative to d. Past |d| = 1 (coarse grids) the
    plain difference is as good and expm1 cannot overflow.
    """
    small = jnp.clip(d, -1.0, 1.0)
    change = jnp.log1p(jax.nn.sigmoid(z) * jnp.expm1(small))
    return jnp.where(jnp.abs(d) < 1.0, change, jax.nn.softplus(z + d) - jax.nn.softplus(z))


def _weight_increment(model, x, reference, beta_from, beta_to, rao_blackwell: bool):
    """log pi*_(beta_to)(x) - log pi*_(beta_from)(x): a run's log-weight gain at state x."""
    if rao_blackwell:
        return _hidden_summed_increment(model, x, reference, beta_from, beta_to)
    return -(beta_to - beta_from) * tempering.path_energy(model, x, reference)


def _hidden_first_sweeps(key, x, model, beta, n_sweeps, reference):
    """Block Gibbs sweeps of an RBM's joint path drawing h | v, then v | h.

    With the hidden layer summed out of the weights, a step's move on v must
    leave pi_beta(v) invariant: h from p_beta(h | v), then v from
    p_beta(v | h). The model's own order (v, then h) draws v given an h drawn
    at the previous beta, a move that does not, and E[w] is then not
    Z / Z_ref (a 4 x 3 RBM with weights of scale 3: log Z off by -0.41 with
    10 betas, -0.045 with 100; enumeration of the runs' law agrees). The
    runs end on v drawn given h at beta = 1: joint (v, h) draws.
    """

    def one_sweep(s, x):
        sweep_key = jax.random.fold_in(key, s)
        for b in (1, 0):
            block = model.blocks[b]
            logits = jax.vmap(lambda xc, b=b: model.block_logits(xc, b))(x)
            ref = None if reference is None else reference[b]
            new = gibbs.sample_block(jax.random.fold_in(sweep_key, b), logits, block, beta, ref)
            x = lax.dynamic_update_slice(x, new, (0, block.start))
        return x

    return lax.fori_loop(0, n_sweeps, one_sweep, x)


def _compensated_add(total, compensation, term):
    """total + term in float32, the rounding error kept in `compensation` (Neumaier).

    A log-weight grows to log Z - log Z_ref (about 1360 for a 784 x 100 RBM,
    where a float32 ulp is 1.2e-4) by a thousand small steps: plain float32
    sums lose about 1e-3 nats; total + compensation keeps the sum of the
    terms to about 1e-7 relative.
    """
    s = total + term
    lost = jnp.where(jnp.abs(total) >= jnp.abs(term), (total - s) + term, (term - s) + total)
    return s, compensation + lost


@functools.partial(
    jax.jit, static_argnames=("graphdef", "n_sweeps", "rao_blackwell", "uniform_reference")
)
def _anneal_chunk(
    graphdef, params, key, x, betas, offset, count, reference, *, n_sweeps, rao_blackwell,
    uniform_reference=False,
):  # fmt: skip
    """Grid steps k = offset .. offset + count - 1 (betas[i] = grid[offset - 1 + i]).

    Step k adds log pi*_(beta_k)(x) - log pi*_(beta_(k-1))(x) to the
    chunk's log-weights (-(beta_k - beta_(k-1)) V(x); with `rao_blackwell`
    the hidden layer summed out), then sweeps at beta_k with keys
    `fold_in(fold_in(key, k), s)`: the same draws for any chunking of the grid.

    Returns:
        (x, total, compensation): the chunk's log-weight gain is
        total + compensation (compensated float32 sum; add them in float64).
    """
    model = nnx.merge(graphdef, params)
    n_runs = x.shape[0]

    def step(i, carry):
        x, total, compensation = carry
        k = offset + i
        gain = _weight_increment(model, x, reference, betas[i], betas[i + 1], rao_blackwell)
        total, compensation = _compensated_add(total, compensation, gain)
        beta = jnp.full((n_runs,), betas[i + 1], jnp.float32)

        # the uniform reference adds nothing to the logits: sweep without it
        # (a multispin kernel then applies; `core.gibbs.multispin_kernel`)
        path = None if uniform_reference else reference
        if rao_blackwell:
            x = _hidden_first_sweeps(jax.random.fold_in(key, k), x, model, beta, n_sweeps, path)
        else:
            x = gibbs.sweeps(jax.random.fold_in(key, k), x, model, beta, 0, n_sweeps, None, path)
        return x, total, compensation

    zeros = jnp.zeros((n_runs,), jnp.float32)
    return lax.fori_loop(0, count, step, (x, zeros, zeros))


def _anneal(graphdef, params, key, grid, reference, n_runs, n_sweeps, rao_blackwell, uniform=False):
    """The runs annealed along `grid`, in chunks.

    Returns:
        (x, log_w, completion_key): final internal-order states (M, n) on the
        device, float64 (M,) log-weights without log Z_ref (each chunk's
        compensated float32 sum, the chunks added in float64), and a key
        no step of the grid used (`fold_in(run_key, len(grid))`).
    """
    start_key, run_key = jax.random.split(key)
    x = _start(graphdef, params, start_key, reference, n_runs=n_runs)
    gains = []  # the device's chunk sums, read once at the end: dispatch stays asynchronous
    for offset in range(1, len(grid), _CHUNK):
        part = grid[offset - 1 : offset + _CHUNK]
        count = len(part) - 1
        betas = np.pad(part, (0, _CHUNK + 1 - len(part)), constant_values=1.0).astype(np.float32)
        x, total, compensation = _anneal_chunk(
            graphdef, params, run_key, x, jnp.asarray(betas), jnp.int32(offset),
            jnp.int32(count), reference, n_sweeps=n_sweeps, rao_blackwell=rao_blackwell,
            uniform_reference=uniform,
        )  # fmt: skip
        gains += [total, compensation]
    log_w = np.zeros(n_runs, np.float64)
    for gain in gains:
        log_w += np.asarray(gain, np.float64)
    return x, log_w, jax.random.fold_in(run_key, len(grid))


def ais(
    model: EnergyModel,
    key: jax.Array,
    n_runs: int = 256,
    n_betas: int | None = None,
    *,
    betas: ArrayLike | None = None,
    n_sweeps: int = 1,
    reference: str | tuple[ArrayLike, ...] | ArrayLike = "uniform",
    collapse: bool | None = None,
    device: Any = "auto",
) -> AISResult:
    """log Z by annealed importance sampling, with a standard error.

    Args:
        model: any hamon-nnx model.
        key: PRNG key.
        n_runs: independent annealing runs M (all run as one batch).
        n_betas: points of the default grid, denser near beta = 1
            (1 - (1 - t)^2 for t evenly spaced); default 1000.
        betas: an explicit grid instead, increasing from 0 to 1.
        n_sweeps: Gibbs sweeps at each intermediate beta.
        reference: "uniform", product-reference logits per block (internal
            order, as `hn.nrpt` takes), or data states (natural order of the
            annealed model) to fit a product reference to; on the joint path
            of an RBM, visible data alone fit the visible layer with the
            hidden one uniform (the base-rate model of Salakhutdinov and
            Murray); on the collapsed hidden layer, visible data fit it to
            the data's mean hidden activations P(h_j = 1 | v).
        collapse: anneal a plain `hn.RBM` on its smaller layer with the other
            summed out, a `CategoricalRBM` on its hidden layer (the default;
            same Z); False anneals the joint (v, h)
            by block Gibbs, two matrix products a step. On the joint path of
            an RBM or a `CategoricalRBM` the weights sum the hidden layer out
            (Rao-Blackwellized, Salakhutdinov and Murray's estimator: block
            Gibbs draws h given v, then v given h, lower variance). Trained RBMs often cross a sharp
            transition on the joint path that block Gibbs cannot follow (a
            784 x 20 Fashion-MNIST RBM: log Z off by -57 with ESS 5 where
            the collapsed path is within 0.08 with ESS 101): watch `ess`.
        device: where to run ("auto", "cpu", "gpu", a `jax.Device`, None).

    Returns:
        AISResult (log_z, stderr, log_weights, ess, n_betas; `lower_bound()`).

    Example:
        >>> import jax, hamon_nnx as hn
        >>> m = hn.IsingModel.lattice((4, 4), coupling=0.3)
        >>> est = hn.ais(m, jax.random.key(0), n_runs=128, n_betas=200)
        >>> bool(abs(est.log_z - hn.exact.log_partition(m)) < 5 * est.stderr + 0.01)
        True
    """
    _, _, log_w, _, grid, _ = _anneal_runs(
        model, key, n_runs, n_betas, betas, n_sweeps, reference, collapse, device
    )
    return _summary(log_w, len(grid))


class AnnealedParticles(NamedTuple):
    """What `anneal_particles` returns.

    Attributes:
        x: (M, n) int8 final states of the runs, natural order of the model
            passed (an RBM annealed on one layer: joint (v, h) states, the
            summed-out layer drawn from its exact conditional).
        log_weights: (M,) float64 log-weights, log Z_ref included, the same
            numbers as `AISResult.log_weights`: log-mean-exp is log Z, and
            softmax(log_weights) are the particles' self-normalized weights.
        log_z_ref: log Z of the product reference (already in log_weights).
    """

    x: jax.Array
    log_weights: np.ndarray
    log_z_ref: float


def anneal_particles(
    model: EnergyModel,
    key: jax.Array,
    n_runs: int = 256,
    n_betas: int | None = None,
    *,
    betas: ArrayLike | None = None,
    n_sweeps: int = 1,
    reference: str | tuple[ArrayLike, ...] | ArrayLike = "uniform",
    collapse: bool | None = None,
    device: Any = "auto",
) -> AnnealedParticles:
    """The AIS runs themselves: final states and log-weights, a weighted sample of the model.

    The runs of `hn.ais` with the same arguments (the same draws and
    log-weights; ais is this without the states): (x_m, w_m) is a properly
    weighted sample of the model, sum_m w_m f(x_m) / sum_m w_m -> E[f(x)]
    as M grows. When the annealed model is an RBM's marginal
    (`collapse`, the default for a plain `hn.RBM` or `CategoricalRBM`),
    each final state of the kept layer is completed by an exact draw of
    the summed-out layer given it, which keeps the weights proper for the
    joint (v, h).

    Args:
        model: any hamon-nnx model.
        key: PRNG key.
        n_runs: independent annealing runs M.
        n_betas, betas, n_sweeps, reference, collapse, device: as `hn.ais`.

    Returns:
        AnnealedParticles (x (M, n) int8 natural order of `model`,
        log_weights (M,) float64 with log Z_ref included, log_z_ref).

    Example:
        >>> import jax, numpy as np, hamon_nnx as hn
        >>> rbm = hn.RBM.from_params(np.random.default_rng(0).normal(size=(6, 3)))
        >>> x, log_w, log_z_ref = hn.annealing.anneal_particles(rbm, jax.random.key(0), 64, 100)
        >>> x.shape, x.dtype, log_w.shape
        ((64, 9), dtype('int8'), (64,))
    """
    annealed, x, log_w, log_z_ref, _, completion_key = _anneal_runs(
        model, key, n_runs, n_betas, betas, n_sweeps, reference, collapse, device
    )
    if annealed is model:
        x = model.to_natural(x)
    else:  # the RBM's kept layer (one block per unit: internal order is natural)
        x = cast(RBMMarginal, annealed).complete(completion_key, x)
    return AnnealedParticles(x, log_w, log_z_ref)


def _anneal_runs(model, key, n_runs, n_betas, betas, n_sweeps, reference, collapse, device):
    """Checked arguments, then the annealing of `ais` and `anneal_particles`.

    Returns:
        (annealed model, internal-order final states (M, n'), float64
        log-weights with log Z_ref, log Z_ref, grid, a key the runs did
        not use) where the annealed model is `model` or its RBM marginal.
    """
    if not isinstance(model, EnergyModel):
        raise TypeError(f"model must be a hamon-nnx EnergyModel, got {type(model).__name__}")
    key = _check_key(key)
    n_runs = _check_count("n_runs", n_runs, 2)
    n_sweeps = _check_count("n_sweeps", n_sweeps, 1)
    grid = _check_betas(betas, n_betas)
    annealed = _collapsed(model, None, collapse)
    check_params_finite(annealed)
    rao_blackwell = _rbm_like(annealed)
    uniform = isinstance(reference, str) and reference == "uniform"
    reference = _resolve_reference(annealed, reference)
    log_z_ref = ref_lib.log_partition(annealed.blocks, reference)
    place = device_lib.resolve(device, n_chains=n_runs, n_variables=annealed.n_variables)
    graphdef, params = nnx.split(annealed)
    place.check_same({"key": key, "model": params, "n_runs, n_sweeps": (n_runs, n_sweeps),
                      "betas": grid}, "hn.ais's arguments")  # fmt: skip
    params, key, reference = place.replicate((params, key, reference))
    x, log_w, completion_key = _anneal(
        graphdef, params, key, grid, reference, n_runs, n_sweeps, rao_blackwell, uniform
    )
    log_w = log_w + log_z_ref
    if not np.all(np.isfinite(log_w)):
        raise ValueError("AIS log-weights are not finite: the model's energy overflowed")
    return annealed, x, log_w, log_z_ref, grid, completion_key


def _summary(log_w: np.ndarray, n_betas: int) -> AISResult:
    """Log-mean-exp, delta-method standard error and ESS of the log-weights."""
    top = log_w.max()
    w = np.exp(log_w - top)
    mean = w.mean()
    stderr = w.std(ddof=1) / (math.sqrt(len(w)) * mean)
    ess = w.sum() ** 2 / np.sum(w**2)
    return AISResult(float(top + math.log(mean)), float(stderr), log_w, float(ess), n_betas)
