"""Cluster updates for pairwise spin and Potts models: Swendsen-Wang and Wolff.

Both work on the Fortuin-Kasteleyn / Edwards-Sokal joint of states and
bonds. For an Ising edge (i, j) with coupling J (either sign) a bond is
placed with probability 1 - exp(-2 beta |J|) when the edge is satisfied
(J s_i s_j > 0); for a ferromagnetic Potts edge (J >= 0) with probability
1 - exp(-beta J) when s_i = s_j. Given the bonds, the clusters (connected
components) are independent: a cluster can only flip as a whole (Ising:
every spin negated, which keeps the satisfied bonds satisfied) or take one
new common value (Potts), weighted by its fields alone.

* `swendsen_wang` (Swendsen and Wang 1987): every cluster draws its
  orientation / value from its heat bath in the cluster's field.
* `wolff` (Wolff 1989): the cluster of one uniformly chosen site is
  proposed to flip (Ising) or to take a uniformly chosen other value
  (Potts), accepted by Metropolis in its field (always, without fields).
  It is the same bond configuration restricted to one cluster, so here it
  costs as much as a Swendsen-Wang step and does less: it is the classic
  choice for serial code, offered for comparison and for strong fields.

Fields are exact: the field term is a per-cluster weight (no ghost spin
needed). The tempered path of `core.tempering` (a product reference with
logits r at beta = 0) adds (1 - beta) r to the fields (r / 2 for spins, as
`core.reference` reads spin logits). Clamped variables freeze their
cluster. Every chain runs at its own beta.

Connected components run on the device by hooking and pointer jumping
(Shiloach-Vishkin style) over the edge list: each pass hooks the root of
one end of every bond onto the smaller label of the two ends, then jumps
pointers twice; labels only decrease and stay inside their component, so
the loop ends with one root label per cluster after O(log n) passes on
typical graphs, with no host round trip and one program for every beta.

A model opts in with `cluster_bonds()` returning `Bonds` in its internal
order (see `models.ising`, `models.potts`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from . import random
from .layout import CATEGORICAL, SPIN


class Bonds(NamedTuple):
    """The pairwise structure a cluster update needs.

    Either an edge list in internal order: edges (E, 2) int32 variable
    pairs, coupling (E,) J per edge; or a periodic grid (`grid` = the
    lattice shape, sites in natural row-major order, which the update then
    works in): coupling (d, *grid), J of the bond from each site to its +1
    neighbour along each axis (0 for bonds an open boundary cuts). Ising:
    E = -J s_i s_j, any sign; Potts: E = -J delta(s_i, s_j), J >= 0.
    field: (n,) spin fields h (E = -h s) or (n, q) Potts fields h(s)
    (E = -h_i(s_i)), in the order the update works in.
    """

    edges: jax.Array | None
    coupling: jax.Array
    field: jax.Array
    grid: tuple[int, ...] | None = None


def components(n: int, edges: jax.Array, active: jax.Array) -> jax.Array:
    """Connected components of one chain's bond graph.

    Args:
        n: number of vertices.
        edges: (E, 2) int32 vertex pairs.
        active: (E,) bool, the bonds present.

    Returns:
        (n,) int32 labels: one root vertex of each component, shared by all
        its vertices (not necessarily the smallest index).
    """
    i, j = edges[:, 0], edges[:, 1]

    def hook(label):
        li, lj = label[i], label[j]
        low = jnp.where(active, jnp.minimum(li, lj), n)  # n: no-op for absent bonds
        return label.at[li].min(low, mode="drop").at[lj].min(low, mode="drop")

    return _hook_and_jump(n, hook)


def _hook_and_jump(n: int, hook) -> jax.Array:
    """Labels 0..n-1 hooked by `hook` (label -> label) and pointer-jumped twice
    a pass, until a pass changes nothing."""

    def one_pass(carry):
        label, _ = carry
        new = hook(label)
        new = new[new]
        new = new[new]
        return new, jnp.any(new != label)

    start = (jnp.arange(n, dtype=jnp.int32), jnp.bool_(True))
    label, _ = lax.while_loop(lambda c: c[1], one_pass, start)
    return label


def grid_components(active: jax.Array) -> jax.Array:
    """Connected components of one chain's bonds on a periodic grid.

    Args:
        active: (d, *shape) bool, the bond from each site to its +1
            neighbour along each axis (wrapping around).

    Returns:
        (n,) int32 root labels of the row-major sites, as `components`.

    Each pass takes the smallest label among a site and its bonded
    neighbours (array shifts, no gathers), hooks the old root onto it and
    jumps pointers twice.
    """
    shape = active.shape[1:]
    n = math.prod(shape)

    def hook(label):
        grid = label.reshape(shape)
        low = grid
        for a in range(len(shape)):
            up, down = jnp.roll(grid, -1, axis=a), jnp.roll(grid, 1, axis=a)
            low = jnp.minimum(low, jnp.where(active[a], up, n))
            low = jnp.minimum(low, jnp.where(jnp.roll(active[a], 1, axis=a), down, n))
        low = low.reshape(n)
        return low.at[label].min(low)  # the old root follows its members

    return _hook_and_jump(n, hook)


def _bond_probability(J, beta, kind: str):
    if kind == SPIN:
        return -jnp.expm1(-2.0 * beta * jnp.abs(J))
    return -jnp.expm1(-beta * jnp.maximum(J, 0.0))


def _satisfied(si, sj, J, kind: str):
    if kind == SPIN:
        return (si * sj).astype(jnp.float32) * J > 0
    return si == sj


def _bond_ends(x, bonds: Bonds):
    """The values at both ends of every bond of every chain, shaped like the
    bonds with chains first: (C, E) for an edge list, (C, d, *grid) for a grid
    (the first end broadcast: (C, 1, *grid))."""
    if bonds.grid is None:
        assert bonds.edges is not None  # an edge list when there is no grid
        return x[:, bonds.edges[:, 0]], x[:, bonds.edges[:, 1]]
    s = x.reshape(x.shape[0], *bonds.grid)
    there = jnp.stack([jnp.roll(s, -1, axis=a + 1) for a in range(len(bonds.grid))], axis=1)
    return s[:, None], there


def _components_of(active, bonds: Bonds, n: int) -> jax.Array:
    """(C, n) root labels of every chain's `active` bonds (shaped as `_bond_ends`)."""
    if bonds.grid is None:
        edges = bonds.edges
        assert edges is not None  # an edge list when there is no grid
        return jax.vmap(lambda a: components(n, edges, a))(active)
    return jax.vmap(grid_components)(active)


def _labels(key, x, bonds: Bonds, beta, kind: str):
    """(C, n) cluster root labels: FK bonds drawn for every chain, then components."""
    n_chains, n = x.shape
    si, sj = _bond_ends(x, bonds)
    b = beta.reshape(n_chains, *([1] * (sj.ndim - 1)))
    J = bonds.coupling
    p = jnp.where(_satisfied(si, sj, J, kind), _bond_probability(J, b, kind), 0.0)
    active = random.bernoulli(key, p.reshape(n_chains, -1)).reshape(p.shape)
    return _components_of(active, bonds, n)


def _fields(bonds: Bonds, beta, reference, kind: str):
    """Per-chain fields in units of the log-weight: (C, n) spins, (C, n, q) Potts."""
    if kind == SPIN:
        f = beta[:, None] * bonds.field
        if reference is not None:
            f = f + (1.0 - beta[:, None]) * reference / 2.0
        return f
    f = beta[:, None, None] * bonds.field
    if reference is not None:
        f = f + (1.0 - beta[:, None, None]) * reference
    return f


def _in_update_order(update, key, x, model, beta, clamp, reference):
    """Run `update` in the order of the model's bonds (internal, or natural for a grid)."""
    kinds = {(blk.kind, blk.q) for blk in model.blocks}
    if len(kinds) != 1 or next(iter(kinds))[0] not in (SPIN, CATEGORICAL):
        raise ValueError(f"cluster updates need one kind of spin or Potts variable, got {kinds}")
    kind, q = next(iter(kinds))
    bonds = model.cluster_bonds()
    mask = None if clamp is None else clamp.mask
    if reference is not None and kind == CATEGORICAL:
        reference = reference.reshape(-1, q)
    if bonds.grid is None:
        return update(key, x, bonds, kind, q, beta, mask, reference)
    x = model.to_natural(x)
    mask = None if mask is None else model.to_natural(mask)
    if reference is not None:
        reference = model.to_natural(reference.T).T
    return model.to_internal(update(key, x, bonds, kind, q, beta, mask, reference))


def _clusters(key, x, bonds, kind, beta, mask, reference):
    """Labels, per-root field sums and per-root frozen flags of every chain."""
    n = x.shape[1]
    label = _labels(jax.random.fold_in(key, 0), x, bonds, beta, kind)
    f = _fields(bonds, beta, reference, kind)
    segment = jax.vmap(lambda v, lab: jax.ops.segment_sum(v, lab, num_segments=n))
    if kind == SPIN:
        weight = segment(f * x.astype(jnp.float32), label)  # H of each root's cluster
    else:
        weight = segment(f, label)  # (C, n, q): F(c) of each root's cluster
    frozen = None
    if mask is not None:
        count = segment(jnp.broadcast_to(mask, x.shape).astype(jnp.int32), label)
        frozen = count > 0
    return label, weight, frozen


def _at(a, index):
    """a[c, index[c]] for every chain c (a: (C, n, ...), index (C, ...))."""
    return jax.vmap(lambda row, i: row[i])(a, index)


def _swendsen_wang(key, x, bonds, kind, q, beta, mask, reference):
    label, weight, frozen = _clusters(key, x, bonds, kind, beta, mask, reference)
    draw_key = jax.random.fold_in(key, 1)
    if kind == SPIN:
        keep = random.bernoulli(draw_key, jax.nn.sigmoid(2.0 * weight))  # at the roots
        keep = _at(keep, label)
        if frozen is not None:
            keep = keep | _at(frozen, label)
        return jnp.where(keep, x, -x)
    value = _at(random.categorical(draw_key, weight), label)
    if frozen is not None:
        value = jnp.where(_at(frozen, label), x, value)
    return value.astype(jnp.int8)


def _wolff(key, x, bonds, kind, q, beta, mask, reference):
    label, weight, frozen = _clusters(key, x, bonds, kind, beta, mask, reference)
    n_chains, n = x.shape
    u = random.uniform(jax.random.fold_in(key, 1), n_chains, 3)
    seed = jnp.minimum((u[:, 0] * n).astype(jnp.int32), n - 1)
    root = _at(label, seed)
    inside = label == root[:, None]
    if kind == SPIN:
        log_ratio = -2.0 * _at(weight, root)
        new = -x
    else:
        old = _at(x, seed).astype(jnp.int32)
        shift = 1 + jnp.minimum((u[:, 2] * (q - 1)).astype(jnp.int32), q - 2)
        proposal = (old + shift) % q
        w = _at(weight, root)  # (C, q)
        log_ratio = _at(w, proposal) - _at(w, old)
        new = jnp.broadcast_to(proposal[:, None].astype(jnp.int8), x.shape)
    accept = u[:, 1] < jnp.exp(jnp.minimum(log_ratio, 0.0))
    if frozen is not None:
        accept = accept & ~_at(frozen, root)
    return jnp.where(inside & accept[:, None], new, x)


def swendsen_wang(key, x, model, beta, clamp=None, reference=None):
    """One Swendsen-Wang update of a batch of chains, each at its own beta.

    Args:
        key: PRNG key of this update.
        x: (C, n) int8 internal-order states.
        model: an object with `blocks` (all spin, or all categorical with one
            q) and `cluster_bonds()` returning `Bonds`.
        beta: (C,) inverse temperatures.
        clamp: optional `gibbs.Clamp`; a cluster holding a clamped variable
            keeps its values.
        reference: optional product reference logits, all blocks joined
            ((n,) spins, (n * q,) or (n, q) Potts), internal order.

    Returns:
        (C, n) int8 internal-order states.
    """
    return _in_update_order(_swendsen_wang, key, x, model, beta, clamp, reference)


def wolff(key, x, model, beta, clamp=None, reference=None):
    """One Wolff update of a batch of chains: the cluster of a random site.

    Arguments and result as in `swendsen_wang`. The seed is uniform over
    all variables (a clamped seed's cluster stays put); the flip (Ising) or
    the move to a uniformly chosen other value (Potts) is accepted with
    probability min(1, exp(change of the cluster's field log-weight)).
    """
    return _in_update_order(_wolff, key, x, model, beta, clamp, reference)


def _houdayer_pairs(key, xa, xb, bonds: Bonds):
    """The Houdayer move on spin pairs (C, n) in the order of `bonds`."""
    n_chains, n = xa.shape
    differ = xa != xb  # overlap q_i = -1
    here, there = _bond_ends(differ, bonds)
    label = _components_of(here & there & (bonds.coupling != 0), bonds, n)
    # the seed: uniform among the differing sites (none: no move)
    count = jnp.sum(differ, axis=1)
    u = random.uniform(key, n_chains, 1)[:, 0]
    k = jnp.minimum((u * count.astype(jnp.float32)).astype(jnp.int32), jnp.maximum(count - 1, 0))
    seed = jnp.argmax(jnp.cumsum(differ, axis=1) > k[:, None], axis=1)
    inside = differ & (label == _at(label, seed)[:, None]) & (count > 0)[:, None]
    return jnp.where(inside, xb, xa), jnp.where(inside, xa, xb)


def houdayer(key, xa, xb, model):
    """Houdayer's cluster move (2001) between two replicas at the same betas.

    Sites where the replicas differ (overlap -1) form clusters through the
    model's bonds; the cluster of a uniformly chosen differing site swaps
    its values between the replicas. E(a) + E(b) is unchanged (bonds inside
    the cluster swap, bonds leaving it touch sites where the replicas agree,
    fields and a product reference cancel between the two), and so is the
    overlap that picked the cluster, so the move is always accepted and
    leaves pi_beta(a) pi_beta(b) invariant; clamped variables agree in both
    replicas and never move. Spin models only.

    Args:
        key: PRNG key.
        xa, xb: (C, n) int8 internal-order spin states, chain c of both at
            the same beta.
        model: an object with spin `blocks` and `cluster_bonds()`.

    Returns:
        The two new batches (C, n).
    """
    if any(blk.kind != SPIN for blk in model.blocks):
        raise ValueError("Houdayer moves need spin variables (Ising models)")
    bonds = model.cluster_bonds()
    if bonds.grid is None:
        return _houdayer_pairs(key, xa, xb, bonds)
    na, nb = _houdayer_pairs(key, model.to_natural(xa), model.to_natural(xb), bonds)
    return model.to_internal(na), model.to_internal(nb)
