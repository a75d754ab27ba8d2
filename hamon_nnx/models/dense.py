"""The sequential sweep of fully connected models, in groups of sites.

A dense model (SK glass, protein Potts model) has one block per site: the
heat bath must visit the sites one after the other. Doing so one site per
loop iteration over incrementally updated fields makes every site pay for
a pass over all fields. Here the sites run in groups of `k`:

1. the fields of the group's k sites are computed from the current state
   (a product with the group's k rows of the couplings: n multiply-adds
   per site, the arithmetic a sweep cannot avoid);
2. the k sites are updated one after the other, each change pushed into
   the fields of the group's later sites through the group's own k x k
   couplings (cheap: k per site).

The result is exactly the site-by-site heat bath in site order; the
program holds one group, whatever the number of sites.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
from jax import lax

UNROLL = 8  # site updates per loop iteration inside a group (loop overhead)


def grouped_sweep(
    x: jax.Array,
    k: int,
    fields: Callable[[jax.Array, jax.Array], jax.Array],
    site: Callable[[jax.Array, jax.Array, jax.Array, jax.Array], tuple[jax.Array, jax.Array]],
) -> jax.Array:
    """One sweep of a single chain over sites in groups of k.

    Args:
        x: (n,) state of one chain, n a multiple of k (pad the model).
        k: group size.
        fields: `fields(start, x)` -> the fields of sites start..start+k-1
            (leading axis k) given the whole current state.
        site: `site(start, j, xg, f)` -> (new value of site start + j,
            updated fields f of the group); `xg` holds the group's values,
            sites before j already updated.

    Returns:
        The swept state (n,).
    """
    n = x.shape[0]
    if n % k:
        raise ValueError(f"the state length {n} must be a multiple of the group size {k}")

    def group(g, x):
        start = g * k
        xg = lax.dynamic_slice_in_dim(x, start, k)

        def one(j, carry):
            xg, f = carry
            new, f = site(start, j, xg, f)
            return xg.at[j].set(new), f

        xg, _ = lax.fori_loop(0, k, one, (xg, fields(start, x)), unroll=min(UNROLL, k))
        return lax.dynamic_update_slice_in_dim(x, xg, start, 0)

    return lax.fori_loop(0, n // k, group, x)
