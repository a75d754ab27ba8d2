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
