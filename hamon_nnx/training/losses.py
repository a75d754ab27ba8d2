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

from ..models.base import kind_values


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


def log_partition(model) -> jax.Array:
    """Differentiable exact log Z by enumeration (an RBM sums its smaller layer).

    For small models only: the enumerated layer or state space must have at
    most 2^16 states (ValueError otherwise).
    """
    if hasattr(model, "n_hidden") and hasattr(model, "W"):
        W, b, c = model.W[...], model.visible_bias[...], model.hidden_bias[...]
        if model.n_hidden > model.n_visible:
            W, b, c = W.T, c, b
        m = W.shape[1]
        if m > 16:
            raise ValueError(f"exact log Z enumerates 2^{m} states; at most 2^16 are allowed here")
        states = ((jnp.arange(2**m)[:, None] >> jnp.arange(m)[None, :]) & 1).astype(jnp.float32)
        return jax.nn.logsumexp(states @ c + jnp.sum(jax.nn.softplus(states @ W.T + b), axis=-1))
    if model.n_variables > 16:
        raise ValueError(f"exact log Z enumerates {model.n_variables} variables; at most 16 here")
    # enumerate in internal order, from the static blocks alone: log Z does not
    # depend on the order, and the order's permutation may be traced here
    states = jnp.asarray(_internal_states(model.blocks))
    return jax.nn.logsumexp(-jax.vmap(model.internal_energy)(states))


def _internal_states(blocks) -> np.ndarray:
    """All states (K, n) int8 in internal order, from the blocks' kinds."""
    domains = [kind_values(blk.kind, blk.q) for blk in blocks for _ in range(blk.size)]
    grids = np.meshgrid(*domains, indexing="ij")
    return np.stack([g.ravel() for g in grids], axis=-1).astype(np.int8)


def exact_loss(model, data: jax.Array) -> jax.Array:
    """Minus the mean log-likelihood, exactly: mean F(data) + log Z."""
    return jnp.mean(free_energy(model, data)) + log_partition(model)
