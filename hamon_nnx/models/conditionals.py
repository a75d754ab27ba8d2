"""Autodiff conditionals: a block's logits from one gradient of the relaxed energy.

For an energy multilinear in the spins, binary units and one-hot vectors
(see `hamon_nnx.models.custom`), the relaxed energy is affine in each
variable, so the conditional logits are a slice of its gradient at the
current state: -2 dE/ds_i for a spin, -dE/dx_i for a binary unit, -dE/do
for a categorical variable's one-hot vector o.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..core.layout import CATEGORICAL, SPIN
from .internal_order import _block_from_rows, _group_rows
from .variables import relax


def relaxed_gradient(model, x_internal: jax.Array) -> jax.Array:
    """dE/d(relaxed natural state) at a single internal-order state (n,)."""
    x = model.to_natural(x_internal)
    return jax.grad(lambda r: model.energy(r))(relax(model, x))


def autodiff_block_logits(model, x: jax.Array, b: int) -> jax.Array:
    """Conditional logits of block b from one gradient of the relaxed energy."""
    if not getattr(model, "variable_groups", None):
        raise NotImplementedError(
            f"{type(model).__name__} has no block_logits: implement block_logits(x, b), or "
            "declare the variables in __init__ with self.declare_variables(hn.Spins(n), ...) "
            "and the conditionals come from autodiff of the energy"
        )
    blk = model.blocks[b]
    grad = relaxed_gradient(model, x)
    if model.layout_periods is not None:
        categorical = blk.kind == CATEGORICAL
        field = _block_from_rows(model, _group_rows(model, grad, relaxed=True), b, int(categorical))
        return -2.0 * field if blk.kind == SPIN else -field
    coordinate = model.relaxed_coordinate[blk.slice]
    if blk.kind == CATEGORICAL:
        return -grad[coordinate[:, None] + jnp.arange(blk.q, dtype=jnp.int32)]
    field = grad[coordinate]
    return -2.0 * field if blk.kind == SPIN else -field
