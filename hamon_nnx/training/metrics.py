"""Training metrics: exact and estimated log-likelihood, pseudo-likelihood,
reconstruction error. Values are nats per data vector, averaged."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from .. import exact
from .losses import check_data, free_energy, n_data_variables


@functools.partial(jax.jit, static_argnums=0)
def _free_energy_program(graphdef, state, x):
    return free_energy(nnx.merge(graphdef, state), x)


def _free_energies(model, data) -> np.ndarray:
    """F of every data vector; compiled once per model structure and data shape."""
    graphdef, state = nnx.split(model)
    return np.asarray(_free_energy_program(graphdef, state, jnp.asarray(data)), np.float64)


def log_likelihood(model, data, log_z: float) -> float:
    """Mean log p(x) = -F(x) - log Z over data vectors, for a given log Z.

    Example:
        >>> import numpy as np, hamon_nnx as hn
        >>> from flax import nnx
        >>> rbm = hn.RBM(6, 3, rngs=nnx.Rngs(0))
        >>> x = np.zeros((5, 6), np.int8)
        >>> log_z = hn.exact.log_partition(rbm)
        >>> ll = hn.training.log_likelihood(rbm, x, log_z)
        >>> bool(abs(ll - hn.training.exact_log_likelihood(rbm, x)) < 1e-9)
        True
    """
    return float(-_free_energies(model, check_data(model, data)).mean() - log_z)


def exact_log_likelihood(model, data, log_z: float | None = None) -> float:
    """Mean log p(x) = -F(x) - log Z, with log Z exact by enumeration.

    RBMs sum their smaller layer (up to 2^24 states, so ~24 units on the
    smaller side); fully visible models enumerate every state.

    Example:
        >>> import numpy as np, hamon_nnx as hn
        >>> from flax import nnx
        >>> rbm = hn.RBM(6, 3, rngs=nnx.Rngs(0))
        >>> ll = hn.training.exact_log_likelihood(rbm, np.zeros((5, 6), np.int8))
        >>> bool(ll < 0)
        True
    """
    return log_likelihood(model, data, exact.log_partition(model) if log_z is None else log_z)


def estimated_log_partition(model, key, n_samples: int = 2000, **autotune) -> tuple[float, float]:
    """log Z from tuned NRPT (stepping stone): (estimate, standard error).

    Args:
        model: any hamon-nnx model.
        key: PRNG key.
        n_samples: NRPT rounds after tuning.
        **autotune: passed to `hn.autotune` (e.g. `max_rounds`).
    """
    from ..tuning import autotune as tune

    plan = tune(model, key, **autotune)
    plan.sample(jax.random.fold_in(key, 1), n_samples)
    return plan.log_z()


def estimated_log_likelihood(
    model, data, key, n_samples: int = 2000, **autotune
) -> tuple[float, float]:
    """Mean log p(x) with log Z from tuned NRPT: (estimate, standard error).

    The standard error is the one of log Z (the data average is exact).

    Example:
        >>> import jax, numpy as np, hamon_nnx as hn
        >>> from flax import nnx
        >>> rbm = hn.RBM(6, 3, rngs=nnx.Rngs(0))
        >>> x = np.zeros((5, 6), np.int8)
        >>> ll, se = hn.training.estimated_log_likelihood(
        ...     rbm, x, jax.random.key(0), n_samples=200, max_rounds=64)
        >>> bool(abs(ll - hn.training.exact_log_likelihood(rbm, x)) < 5 * se + 1e-3)
        True
    """
    log_z, stderr = estimated_log_partition(model, key, n_samples, **autotune)
    return log_likelihood(model, data, log_z), stderr


@functools.partial(jax.jit, static_argnums=0)
def _pseudo_log_likelihood_program(graphdef, state, x, values, allowed):
    """sum_i log p(x_i | x_-i) per row: F with x_i set to each of its values."""
    model = nnx.merge(graphdef, state)
    n, n_values = values.shape

    def free_energy_with(i, value):
        return free_energy(model, x.at[:, i].set(value))  # (B,)

    def per_variable(i):
        energies = jax.vmap(lambda v: free_energy_with(i, v))(values[i])  # (n_values, B)
        logits = jnp.where(allowed[i][:, None], -energies, -jnp.inf)
        observed = jnp.argmax(values[i][:, None] == x[None, :, i], axis=0)  # (B,)
        picked = jnp.take_along_axis(logits, observed[None], axis=0)[0]
        return picked - jax.nn.logsumexp(logits, axis=0)

    return jnp.sum(jax.lax.map(per_variable, jnp.arange(n)), axis=0)


def pseudo_log_likelihood(model, data) -> float:
    """Mean sum_i log p(x_i | x_-i) over the data variables, exact (every i).

    Each conditional tries every value of x_i (both spin signs, both binary
    values, all q categories) with the rest held fixed. For an RBM the
    conditionals come from free-energy differences, so hidden units are
    summed out.

    Example:
        >>> import numpy as np, hamon_nnx as hn
        >>> potts = hn.PottsModel.lattice((3, 3), q=3, coupling=0.0)
        >>> x = np.zeros((4, 9), np.int8)
        >>> round(hn.training.pseudo_log_likelihood(potts, x), 4)  # 9 uniform 3-way choices
        -9.8875
    """
    n_data = n_data_variables(model)
    x = check_data(model, data)
    domains = model.variable_values()[:n_data]
    n_values = max(len(d) for d in domains)
    values = np.zeros((n_data, n_values), np.float32)
    allowed = np.zeros((n_data, n_values), bool)
    for i, domain in enumerate(domains):
        values[i, : len(domain)] = domain
        values[i, len(domain) :] = domain[0]
        allowed[i, : len(domain)] = True
    graphdef, state = nnx.split(model)
    per_row = _pseudo_log_likelihood_program(
        graphdef, state, jnp.asarray(x, jnp.float32), jnp.asarray(values), jnp.asarray(allowed)
    )
    return float(np.mean(np.asarray(per_row, np.float64)))


@functools.partial(jax.jit, static_argnums=0)
def _reconstruction_program(graphdef, state, v):
    """Mean squared error of v -> p(h|v) -> p(v|h), one compiled program."""
    model = nnx.merge(graphdef, state)
    h = jax.nn.sigmoid(model.hidden_logits(v))
    logits = model.visible_logits(h)
    if logits.ndim == v.ndim + 1:  # categorical visible units: (..., n_visible, q)
        recon = jax.nn.softmax(logits, axis=-1)
        target = jax.nn.one_hot(v.astype(jnp.int32), logits.shape[-1], dtype=jnp.float32)
        return jnp.mean(jnp.sum((recon - target) ** 2, axis=-1))
    return jnp.mean((jax.nn.sigmoid(logits) - v) ** 2)


def reconstruction_error(model, data) -> float:
    """Mean squared error of the mean-field reconstruction v -> p(h|v) -> p(v|h).

    Categorical visible units (`hn.CategoricalRBM`) compare p(v_i | h) with the
    one-hot v_i: the squared error summed over the q states, averaged over units.

    Example:
        >>> import numpy as np, hamon_nnx as hn
        >>> from flax import nnx
        >>> rbm = hn.RBM(4, 2, rngs=nnx.Rngs(0), init_scale=0.0)
        >>> hn.training.reconstruction_error(rbm, np.ones((3, 4), np.int8))  # p(v) = 1/2
        0.25
    """
    if not hasattr(model, "hidden_logits"):
        raise ValueError(
            f"reconstruction error needs hidden units; {type(model).__name__} has none"
        )
    v = jnp.asarray(check_data(model, data)).astype(jnp.float32)
    graphdef, state = nnx.split(model)
    return float(_reconstruction_program(graphdef, state, v))
