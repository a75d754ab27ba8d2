"""The contrastive loss: one autodiff path trains every model.

For data x and negatives x~ drawn from the model, the gradient of
    L(theta) = mean F(x) - mean F(stop_gradient(x~))
is minus the log-likelihood gradient, E_data[grad F] - E_model[grad F],
when x~ are exact model samples; F is the free energy (hidden units summed
out, as for the RBM) or the energy of a fully visible model.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .. import exact
from ..core.layout import check_states
from ..models.base import SPIN, kind_values


def n_data_variables(model) -> int:
    """Variables a data vector holds: the visible units, or all variables."""
    return int(getattr(model, "n_visible", model.n_variables))


def visible(model, x: jax.Array) -> jax.Array:
    """The data part of full states (..., n): visible units first by convention."""
    return x[..., : n_data_variables(model)]


def free_energy(model, x: jax.Array) -> jax.Array:
    """F(x) for data vectors x (..., n_data_variables)."""
    if hasattr(model, "free_energy"):
        return model.free_energy(x)
    return model.energy(x)


def contrastive_loss(model, data: jax.Array, negatives: jax.Array) -> jax.Array:
    """mean F(data) - mean F(negatives); negatives carry no gradient.

    Args:
        model: an EnergyModel.
        data: (B, n_data_variables) observed vectors.
        negatives: (M, n_data_variables) model samples.

    Example:
        >>> import jax.numpy as jnp, hamon_nnx as hn
        >>> from flax import nnx
        >>> rbm = hn.RBM(4, 2, rngs=nnx.Rngs(0))
        >>> x = jnp.ones((3, 4), jnp.int8)
        >>> float(hn.training.contrastive_loss(rbm, x, x))
        0.0
    """
    negatives = jax.lax.stop_gradient(negatives)
    return jnp.mean(free_energy(model, data)) - jnp.mean(free_energy(model, negatives))


_CHUNK = 2**14  # states per chunk of the differentiable enumeration


def log_partition(model) -> jax.Array:
    """Differentiable exact log Z by enumeration (a plain RBM sums its smaller layer).

    States are generated from their index in chunks (`lax.map`, each chunk
    rematerialised on the backward pass), so memory stays at one chunk;
    the state count is checked by `hn.exact.check_enumerable` (ValueError
    naming it and `MAX_ENUMERATION_STATES`).
    """
    n_states = exact.check_enumerable(model, "ExactNegative (exact log Z)")
    if exact.is_plain_rbm(model):
        W, b, c = model.W[...], model.visible_bias[...], model.hidden_bias[...]
        if model.n_hidden > model.n_visible:
            W, b, c = W.T, c, b
        m = W.shape[1]

        def chunk_terms(index):
            h = ((index[:, None] >> jnp.arange(m)[None, :]) & 1).astype(jnp.float32)
            return h @ c + jnp.sum(jax.nn.softplus(h @ W.T + b), axis=-1)

    elif exact.is_categorical_rbm(model) and 2**model.n_hidden <= model.q**model.n_visible:
        # the hidden configurations, visible units summed: a logsumexp over q per unit
        nv, q, nh = model.n_visible, model.q, model.n_hidden
        W, b, c = model.W[...].reshape(nv * q, nh), model.visible_bias[...], model.hidden_bias[...]

        def chunk_terms(index):
            h = ((index[:, None] >> jnp.arange(nh)[None, :]) & 1).astype(jnp.float32)
            a = (h @ W.T).reshape(-1, nv, q) + b
            return h @ c + jnp.sum(jax.nn.logsumexp(a, axis=-1), axis=-1)

    elif exact.is_categorical_rbm(model):
        # the visible configurations, hidden units summed: -F(v)
        strides = (model.q ** np.arange(model.n_visible - 1, -1, -1)).astype(np.int32)

        def chunk_terms(index):
            return -model.free_energy((index[:, None] // strides) % model.q)

    else:
        # enumerate in internal order, from the static blocks alone: log Z does not
        # depend on the order, and the order's permutation may be traced here
        def per_variable(value_of_block):
            values = [np.full(blk.size, value_of_block(blk)) for blk in model.blocks]
            return np.concatenate(values).astype(np.int32)

        q = per_variable(lambda blk: blk.q)
        strides = np.concatenate([np.cumprod(q[::-1])[::-1][1:], [1]]).astype(np.int32)
        low = per_variable(lambda blk: kind_values(blk.kind, blk.q)[0])
        step = per_variable(lambda blk: 2 if blk.kind == SPIN else 1)  # spins: -1, +1

        def chunk_terms(index):
            states = (low + step * ((index[:, None] // strides) % q)).astype(jnp.int8)
            return -jax.vmap(model.internal_energy)(states)

    size = min(n_states, _CHUNK)
    n_chunks = -(-n_states // size)

    @jax.checkpoint
    def chunk_log_sum(k):
        index = k * size + jnp.arange(size, dtype=jnp.int32)
        terms = chunk_terms(jnp.minimum(index, n_states - 1))
        return jax.nn.logsumexp(jnp.where(index < n_states, terms, -jnp.inf))

    return jax.nn.logsumexp(lax.map(chunk_log_sum, jnp.arange(n_chunks)))


def check_data(model, data, name: str = "data") -> np.ndarray:
    """Data vectors (B, n_data) as int8 numpy, or a ValueError naming the bad rows.

    n_data is the model's data variables (an RBM's visible units, every
    variable otherwise); values go through `core.layout.check_states`.
    """
    arr = np.asarray(data)
    n_data = n_data_variables(model)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != n_data:
        raise ValueError(f"{name} must have shape (n_samples, {n_data}), got {np.shape(data)}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    kinds, qs = model.variable_kinds()
    return check_states(arr, kinds[:n_data], qs[:n_data], name)


def exact_loss(model, data: jax.Array) -> jax.Array:
    """Minus the mean log-likelihood, exactly: mean F(data) + log Z."""
    return jnp.mean(free_energy(model, data)) + log_partition(model)
