"""q-state Potts models on sparse graphs and lattices.

E(s) = -sum_(ij) J_ij delta(s_i, s_j) - sum_i h_i(s_i), or with a q x q
matrix per edge E = -sum_(ij) J_ij[s_i, s_j] - sum_i h_i(s_i); s in 0..q-1.
For an edge (i, j) given as [i, j], the matrix is indexed [s_i, s_j].
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax import lax
from numpy.typing import ArrayLike

from ..core import graph
from ..core.clusters import Bonds
from .base import CATEGORICAL, Block, EnergyModel, GraphLayout, check_finite
from .dense import grouped_sweep

if TYPE_CHECKING:
    import jax.core  # the Tracer class checked below


def _coupling_array(
    couplings, n_edges: int, q: int, shared_ok: bool
) -> np.ndarray | jax.core.Tracer:
    arr = check_finite("couplings", couplings)
    allowed = [(), (n_edges,), (n_edges, q, q)] + ([(q, q)] if shared_ok else [])
    if arr.shape not in allowed:
        raise ValueError(
            f"couplings must be a scalar, one value per edge ({n_edges},), or one "
            f"q x q matrix per edge ({n_edges}, {q}, {q}); got shape {arr.shape}"
        )
    return arr


def _field_array(fields, n: int, q: int) -> np.ndarray:
    arr = check_finite("fields", 0.0 if fields is None else fields)
    if arr.shape in ((), (q,)):
        arr = np.broadcast_to(arr, (n, q))
    if arr.shape != (n, q):
        raise ValueError(f"fields must be a scalar, shape ({q},) or ({n}, {q}); got {arr.shape}")
    return np.array(arr)


class PottsModel(GraphLayout, EnergyModel):
    """q-state Potts model; values are int8 0..q-1.

    Couplings are stored as given: a scalar J shared by all edges, one J
    per edge (E,), a shared q x q matrix, or one q x q matrix per edge.

    Example:
        >>> import jax, hamon_nnx as hn
        >>> p = hn.PottsModel.lattice((8, 8), q=3, coupling=1.0)
        >>> hn.sample(p, jax.random.key(0), n_samples=5, n_chains=2).shape
        (2, 5, 64)
    """

    def __init__(self, n, q, edges, couplings, fields, colours=None, grid=None):
        self.q = int(q)
        self._init_layout(n, edges, colours, CATEGORICAL, self.q)
        # (shape, periodic) when built by `lattice`: the edges are the lattice's
        # bonds in `graph.lattice_edges` order, which cluster updates use as a grid
        self.grid = None if grid is None else (tuple(int(d) for d in grid[0]), bool(grid[1]))
        self.coupling = nnx.Param(jnp.asarray(couplings, jnp.float32))
        self.field = nnx.Param(jnp.asarray(fields, jnp.float32))

    def config(self) -> dict:
        """Sites, q, edges (nested lists), colouring and the coupling and field shapes."""
        return {
            "class": type(self).registered_name(),
            "n": self.n_variables,
            "q": self.q,
            "edges": np.asarray(self.edges[...]).tolist(),
            "colours": self.colouring(),
            "coupling_shape": [int(d) for d in self.coupling[...].shape],
            "field_shape": [int(d) for d in self.field[...].shape],
            "grid": None if self.grid is None else [list(self.grid[0]), self.grid[1]],
        }

    @classmethod
    def from_config(cls, config: dict) -> PottsModel:
        """Zero couplings and fields on the configured graph, q and colouring."""
        n = int(config["n"])
        q = cls._check_q(config["q"])
        edges = graph.validate_edges(n, config["edges"])
        colours = np.asarray(config["colours"], dtype=np.int64)
        if colours.shape != (n,) or not graph.is_proper_colouring(edges, colours):
            raise ValueError(f"colours must be a proper colouring of the {n} sites")
        coupling_shape = tuple(int(d) for d in config["coupling_shape"])
        field_shape = tuple(int(d) for d in config["field_shape"])
        E = len(edges)
        if coupling_shape not in ((), (E,), (q, q), (E, q, q)):
            raise ValueError(f"coupling_shape {coupling_shape} does not fit {E} edges, q = {q}")
        coupling = jnp.zeros(coupling_shape, jnp.float32)
        field = jnp.zeros(field_shape, jnp.float32)
        grid = config.get("grid")
        if grid is not None:
            shape = graph.validate_lattice_shape(grid[0], bool(grid[1]))
            expected, _ = graph.lattice_edges(shape, bool(grid[1]))
            if not np.array_equal(expected, edges):
                raise ValueError(f"the edges are not those of the {shape} lattice the grid names")
            grid = (shape, bool(grid[1]))
        return cls(n, q, edges, coupling, field, colours=colours, grid=grid)

    @staticmethod
    def _check_q(q) -> int:
        if isinstance(q, bool) or int(q) != q or not 2 <= q <= 127:
            raise ValueError(f"q must be an integer in 2..127 (int8 states), got {q!r}")
        return int(q)

    @classmethod
    def from_edges(
        cls,
        n: int,
        q: int,
        edges: ArrayLike,
        couplings: ArrayLike = 1.0,
        fields: ArrayLike | None = None,
    ) -> PottsModel:
        """Any sparse graph.

        Args:
            n: number of variables.
            q: number of states per variable.
            edges: (E, 2) node pairs.
            couplings: scalar, (E,) for J delta(s_i, s_j), or (E, q, q) matrices.
            fields: None, scalar, (q,) or (n, q).
        """
        q = cls._check_q(q)
        edges = graph.validate_edges(n, edges)
        couplings = _coupling_array(couplings, len(edges), q, shared_ok=False)
        return cls(int(n), q, edges, couplings, _field_array(fields, int(n), q))

    @classmethod
    def lattice(cls, shape, q: int, coupling=1.0, field=None, periodic: bool = True) -> PottsModel:
        """A 1-D/2-D/3-D hypercubic lattice (row-major sites).

        Args:
            shape: lattice sizes.
            q: number of states.
            coupling: scalar J (delta coupling) or one q x q matrix for every bond.
            field: None, scalar, (q,) or (n, q).
            periodic: periodic or open boundaries.
        """
        q = cls._check_q(q)
        shape = graph.validate_lattice_shape(shape, periodic)
        edges, _ = graph.lattice_edges(shape, periodic)
        n = int(np.prod(shape))
        coupling = check_finite("coupling", coupling)
        if coupling.shape not in ((), (q, q)):
            raise ValueError(
                f"coupling must be a scalar or a ({q}, {q}) matrix, got {coupling.shape}"
            )
        colours = graph.checkerboard_colouring(shape)
        if not graph.is_proper_colouring(edges, colours):
            colours = None
        grid = (shape, periodic)
        return cls(n, q, edges, coupling, _field_array(field, n, q), colours=colours, grid=grid)

    @staticmethod
    def dense(J, h=None) -> DensePotts:
        """Fully connected: couplings J (L, L, q, q) with J[i, j] = J[j, i].T and
        zero diagonal blocks, fields h (L, q) (None: zero). See `DensePotts`."""
        J = check_finite("J", J)
        if J.ndim != 4 or J.shape[0] != J.shape[1] or J.shape[2] != J.shape[3]:
            raise ValueError(f"J must have shape (L, L, q, q), got {J.shape}")
        L, q = J.shape[0], PottsModel._check_q(J.shape[2])
        bad = ~np.isclose(J, J.transpose(1, 0, 3, 2), atol=1e-6)
        if bad.any():
            i, j, a, b = np.argwhere(bad)[0]
            raise ValueError(
                f"J must be symmetric, J[i, j] = J[j, i].T; J[{i}, {j}, {a}, {b}] = "
                f"{J[i, j, a, b]} != J[{j}, {i}, {b}, {a}] = {J[j, i, b, a]}"
            )
        diagonal = J[np.arange(L), np.arange(L)]
        if np.any(diagonal != 0):
            i = int(np.argwhere(np.any(diagonal != 0, axis=(1, 2)))[0, 0])
            raise ValueError(
                f"J must have zero diagonal blocks J[i, i] (a site does not couple to itself); "
                f"J[{i}, {i}] is not zero"
            )
        h = check_finite("h", 0.0 if h is None else h)
        if h.shape not in ((), (q,), (L, q)):
            raise ValueError(f"h must be a scalar, shape ({q},) or ({L}, {q}); got {h.shape}")
        return DensePotts(J, np.broadcast_to(h, (L, q)))

    def cluster_problem(self) -> str | None:
        """None for delta couplings J >= 0 (scalar or one per edge), else why not."""
        J = self.coupling[...]
        if J.ndim > 1:
            return (
                "Swendsen-Wang and Wolff need delta couplings J delta(s_i, s_j); this Potts "
                f"model has q x q coupling matrices (shape {tuple(J.shape)})"
            )
        if isinstance(J, jax.core.Tracer):
            return None
        if np.any(np.asarray(J) < 0):
            return (
                "Swendsen-Wang and Wolff need ferromagnetic Potts couplings J >= 0; "
                f"the smallest is {float(np.min(np.asarray(J))):.4g}"
            )
        return None

    def cluster_grid(self) -> bool:
        return self.grid is not None

    def cluster_bonds(self) -> Bonds:
        """The bonds as a grid (natural order) for lattices, else the edges in
        internal (colour) order; J per edge, fields (n, q)."""
        J = jnp.broadcast_to(self.coupling[...], (self.n_edges,))
        if self.grid is None:
            edges = self.position[...][self.edges[...]]
            return Bonds(edges, J, self.field[...][self.order[...]])
        shape, periodic = self.grid
        edges, axis = graph.lattice_edges(shape, periodic)
        grid = jnp.zeros((len(shape), self.n_variables), jnp.float32).at[axis, edges[:, 0]].set(J)
        return Bonds(None, grid.reshape(len(shape), *shape), self.field[...], grid=shape)

    def _edge_matrix(self):
        """Couplings as matrices: (E, q, q), or (q, q) when shared."""
        J = self.coupling[...]
        eye = jnp.eye(self.q, dtype=jnp.float32)
        if J.ndim == 0:
            return J * eye
        if J.ndim == 1:
            return J[:, None, None] * eye
        return J

    def energy(self, x):
        x = jnp.asarray(x)
        onehot = jax.nn.one_hot(x, self.q, dtype=jnp.float32)
        e = self.edges[...]
        a, b = jnp.take(onehot, e[:, 0], axis=-2), jnp.take(onehot, e[:, 1], axis=-2)
        J = self.coupling[...]
        if J.ndim <= 1:
            pair = jnp.sum(jnp.sum(a * b, axis=-1) * J, axis=-1)
        elif J.ndim == 2:
            pair = jnp.einsum("...eq,qr,...er->...", a, J, b)
        else:
            pair = jnp.einsum("...eq,eqr,...er->...", a, J, b)
        return -pair - jnp.sum(onehot * self.field[...], axis=(-2, -1))

    def block_logits(self, x, b):
        rows = self.blocks[b].slice
        neighbours, edge_id = self._neighbours(x, b)
        valid = (edge_id < self.n_edges).astype(jnp.float32)[..., None]
        onehot = jax.nn.one_hot(neighbours, self.q, dtype=jnp.float32) * valid
        J = self.coupling[...]
        if J.ndim == 0:
            local = J * jnp.sum(onehot, axis=-2)
        elif J.ndim == 1:
            Jt = jnp.concatenate([J, jnp.zeros((1,), jnp.float32)])[edge_id]
            local = jnp.sum(Jt[..., None] * onehot, axis=-2)
        else:
            if J.ndim == 2:
                M = jnp.broadcast_to(J, (*edge_id.shape, self.q, self.q))
            else:
                M = jnp.concatenate([J, jnp.zeros((1, self.q, self.q), jnp.float32)])[edge_id]
            # this site is the row index of J_e when it is edges[e, 0], the column otherwise
            M = jnp.where(self.side[rows][..., None, None] == 1, jnp.swapaxes(M, -1, -2), M)
            local = jnp.einsum("mdkr,mdr->mk", M, onehot)
        return local + self.field[...][self.order[rows]]


class DensePotts(EnergyModel):
    """Fully connected Potts model of a protein family (bmDCA / adabmDCA form).

    E(s) = -sum_(i<j) J_ij(s_i, s_j) - sum_i h_i(s_i), s_i in 0..q-1, with
    couplings J of shape (L, L, q, q), J[i, j] = J[j, i].T and zero diagonal
    blocks, and fields h of shape (L, q). Build it with `PottsModel.dense`.

    Gauge: adding g(s_i) to every J_ij(s_i, .) and subtracting it from
    h_i leaves every energy difference unchanged, so of the L q + L^2 q^2
    stored numbers only L (q - 1) + L (L - 1) / 2 (q - 1)^2 are identified
    by the distribution (`n_gauge_invariant_parameters`).
    `to_zero_sum_gauge()` gives the equivalent model whose couplings sum
    to zero over each state index and fields over each site (the gauge
    DCA contact scores are computed in).

    Sampling: the sequential heat bath over sites in groups of `GROUP`,
    each group's fields gathered from the current state in one pass over
    its couplings (L q additions per site update). The sampler reads the
    stored `coupling` as symmetric with zero diagonal blocks: the
    constructor checks it, and training keeps it exactly (the energy is
    -1/2 sum over i != j, whose gradient is symmetric); set `coupling`
    by hand only to such arrays.

    Example:
        >>> import jax, numpy as np, hamon_nnx as hn
        >>> L, q = 5, 3
        >>> J = np.random.default_rng(0).normal(size=(L, L, q, q)) * 0.3
        >>> J = J + J.transpose(1, 0, 3, 2); J[range(L), range(L)] = 0
        >>> m = hn.PottsModel.dense(J, np.zeros((L, q)))
        >>> hn.sample(m, jax.random.key(0), n_samples=4, n_chains=2).shape
        (2, 4, 5)
        >>> m.n_gauge_invariant_parameters()
        50
    """

    GROUP = 8  # sites per group: a group's slab of couplings stays in cache

    def __init__(self, J, h):
        L, q = int(J.shape[0]), int(J.shape[-1])
        self.n_variables, self.q = L, q
        self.blocks = tuple(Block(i, i + 1, CATEGORICAL, q) for i in range(L))
        self.coupling = nnx.Param(jnp.asarray(J, jnp.float32))
        self.field = nnx.Param(jnp.asarray(h, jnp.float32))

    def config(self) -> dict:
        """Number of sites L and states q."""
        return {"class": type(self).registered_name(), "L": self.n_variables, "q": self.q}

    @classmethod
    def from_config(cls, config: dict) -> DensePotts:
        """Zero couplings and fields for the configured L and q."""
        L, q = int(config["L"]), PottsModel._check_q(config["q"])
        if L < 1:
            raise ValueError(f"L must be a positive integer, got {L}")
        return cls(jnp.zeros((L, L, q, q), jnp.float32), jnp.zeros((L, q), jnp.float32))

    def energy(self, x):
        # -1/2 sum over i != j of J_ij(s_i, s_j): the energy of the symmetrized
        # couplings whatever is stored, and a gradient that is itself symmetric
        # (J_ij(a, b) and J_ji(b, a) get the same one), so training by any
        # elementwise optimizer keeps J symmetric with zero diagonal blocks
        s = jnp.asarray(x).astype(jnp.int32)
        L = self.n_variables
        i, j = np.arange(L)[:, None], np.arange(L)[None, :]
        pair = self.coupling[...][i, j, s[..., :, None], s[..., None, :]]  # (..., L, L)
        pair = jnp.sum(jnp.where(i != j, pair, 0.0), axis=(-2, -1))
        field = jnp.sum(self.field[...][np.arange(L), s], axis=-1)
        return -0.5 * pair - field

    def block_logits(self, x, b):
        # J_bj(., x_j) read as J_jb(x_j, .): q contiguous numbers per site j
        J = self.coupling[...]
        sites = jnp.arange(self.n_variables)
        local = jnp.sum(jnp.where((sites != b)[:, None], J[sites, b, x.astype(jnp.int32)], 0), 0)
        return (local + self.field[...][b])[None]

    def gibbs_sweep(self, u, x, beta, keep, reference=None):
        """Site-by-site heat bath in site order, in groups (`models.dense`).

        Reads the stored couplings as they are (symmetric, zero diagonal
        blocks: what the constructor checks and training keeps); a group's
        fields J_(group) j(., s_j) are gathered as J_j (group)(s_j, .), q
        contiguous numbers per site and group member, with no transpose.
        """
        L, q, k = self.n_variables, self.q, min(self.GROUP, self.n_variables)
        pad = -(-L // k) * k - L
        J = self.coupling[...]
        if pad:  # padded sites: no couplings
            J = jnp.pad(J, ((0, pad), (0, pad), (0, 0), (0, 0)))
        h = jnp.pad(self.field[...], ((0, pad), (0, 0)))
        u = jnp.pad(u, (0, pad))
        ref = None if reference is None else jnp.pad(reference.reshape(L, q), ((0, pad), (0, 0)))
        kept = None if keep is None else jnp.pad(keep, (0, pad))
        sites = jnp.arange(L + pad)

        def fields(start, x):
            # sum_j J_j (group)(x_j, .) as one-hot(x) (L q) times the group's slab
            # (L q, k q): vmapped over chains, one matrix product per group
            slab = lax.dynamic_slice_in_dim(J, start, k, axis=1)  # (L, k, q, q)
            slab = slab.transpose(0, 2, 1, 3).reshape(sites.shape[0] * q, k * q)
            onehot = jax.nn.one_hot(x.astype(jnp.int32), q, dtype=J.dtype).reshape(-1)
            f = (onehot @ slab).reshape(k, q)
            return f + lax.dynamic_slice_in_dim(h, start, k)

        def site(start, j, xg, f):
            z = beta * f[j]
            if ref is not None:
                z = z + (1.0 - beta) * ref[start + j]
            cdf = jnp.cumsum(jnp.exp(z - jnp.max(z)))
            new = jnp.sum(u[start + j] * cdf[-1] >= cdf[:-1]).astype(jnp.int8)
            old = xg[j]
            if kept is not None:
                new = jnp.where(kept[start + j], old, new)

            def coupling_to_group(value):  # J_(start+j) (group)(value, .): (k, q)
                at = (start + j, start, value.astype(jnp.int32), 0)
                return lax.dynamic_slice(J, at, (1, k, 1, q)).reshape(k, q)

            return new, f + coupling_to_group(new) - coupling_to_group(old)

        x = jnp.pad(x, (0, pad))
        return grouped_sweep(x, k, fields, site)[:L]

    def n_gauge_invariant_parameters(self) -> int:
        """L (q - 1) fields and (q - 1)^2 couplings per pair: what the data can identify."""
        L, q = self.n_variables, self.q
        return L * (q - 1) + L * (L - 1) // 2 * (q - 1) ** 2

    def to_zero_sum_gauge(self) -> DensePotts:
        """The same distribution in the zero-sum (Ising) gauge, as a new model.

        J'_ij(a, b) = J_ij(a, b) - J_ij(., b) - J_ij(a, .) + J_ij(., .) and
        h'_i(a) = h_i(a) - h_i(.) + sum_j [J_ij(a, .) - J_ij(., .)], where
        "." is the mean over that state. Energies change by one constant.
        """
        J, h = self.coupling[...], self.field[...]
        row, col = J.mean(axis=3, keepdims=True), J.mean(axis=2, keepdims=True)
        both = J.mean(axis=(2, 3), keepdims=True)
        J0 = J - row - col + both
        h0 = h - h.mean(axis=1, keepdims=True) + jnp.sum(row[..., 0] - both[..., 0], axis=1)
        return DensePotts(J0, h0)
