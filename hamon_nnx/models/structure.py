"""Non-trainable model data as an nnx Variable type of its own."""

from __future__ import annotations

from flax import nnx


class Structure(nnx.Variable):
    """Non-trainable model data (neighbour tables, permutations).

    A separate Variable type so that `nnx.Optimizer(..., wrt=nnx.Param)`
    leaves it alone while it still travels through `jax.jit` as an array.
    """
