"""Ising models: E(s) = -sum_(ij) J_ij s_i s_j - sum_i h_i s_i, s in {-1, +1}.

Three layouts behind one class:

* `IsingModel.lattice` - hypercubic 1-D/2-D/3-D lattices. With every size
  even, the two checkerboard sublattices are stored one after the other and
  neighbour sums are array shifts (no gathers): the fast path. Periodic
  ones with a scalar coupling and field sweep 32 spins to a machine word
  (`core.multispin`). Other sizes fall back to the sparse layout.
* `IsingModel.from_edges` - any sparse graph, coloured once at construction,
  neighbour sums through padded neighbour tables.
* `IsingModel.dense` - fully connected (SK): updated site by site with
  incrementally maintained local fields.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax import lax
from numpy.typing import ArrayLike

from ..core import graph, multispin
from ..core.clusters import Bonds
from .base import SPIN, Block, EnergyModel, GraphLayout, check_finite
from .dense import grouped_sweep

if TYPE_CHECKING:
    import jax.core  # the Tracer class check_finite may return


def _scalar_or_array(name: str, value, shape: tuple[int, ...]) -> np.ndarray | jax.core.Tracer:
    arr = check_finite(name, 0.0 if value is None else value)
    if arr.ndim != 0 and arr.shape != shape:
        raise ValueError(f"{name} must be a scalar or have shape {shape}, got {arr.shape}")
    return arr


class IsingModel(EnergyModel):
    """Ising model on spins -1/+1. Build it with a constructor classmethod.

    Example:
        >>> import jax, hamon_nnx as hn
        >>> m = hn.IsingModel.lattice((8, 8), coupling=1.0, field=0.0)
        >>> s = hn.sample(m, jax.random.key(0), n_samples=10, n_chains=2)
        >>> s.shape
        (2, 10, 64)
    """

    def cluster_problem(self) -> str | None:
        """None: Swendsen-Wang and Wolff run on every Ising model (any signs, fields)."""
        return None

    @staticmethod
    def lattice(shape, coupling=1.0, field=0.0, periodic: bool = True) -> IsingModel:
        """A hypercubic lattice in 1, 2 or 3 dimensions.

        Args:
            shape: lattice sizes, e.g. (64, 64); sites are numbered row-major.
            coupling: J, a scalar or one value per axis (shape (d,)).
            field: h, a scalar or one value per site (shape `shape`).
            periodic: periodic (torus) or open boundaries.
        """
        shape = graph.validate_lattice_shape(shape, periodic)
        coupling = _scalar_or_array("coupling", coupling, (len(shape),))
        field = _scalar_or_array("field", field, shape)
        if all(s % 2 == 0 for s in shape):
            return LatticeIsing(shape, coupling, field, periodic)
        edges, axis = graph.lattice_edges(shape, periodic)
        colours = graph.checkerboard_colouring(shape)
        if not graph.is_proper_colouring(edges, colours):
            colours = graph.greedy_colouring(len(colours), edges)
        couplings = np.broadcast_to(coupling, (len(shape),))[axis]
        fields = np.broadcast_to(field, shape).ravel()
        return SparseIsing(int(np.prod(shape)), edges, couplings, fields, colours=colours)

    @staticmethod
    def from_edges(
        n: int, edges: ArrayLike, couplings: ArrayLike = 1.0, fields: ArrayLike = 0.0
    ) -> IsingModel:
        """Any sparse graph: `edges` (E, 2), couplings (E,) or scalar, fields (n,) or scalar."""
        edges = graph.validate_edges(n, edges)
        couplings = _scalar_or_array("couplings", couplings, (len(edges),))
        fields = _scalar_or_array("fields", fields, (int(n),))
        return SparseIsing(
            int(n),
            edges,
            np.broadcast_to(couplings, (len(edges),)),
            np.broadcast_to(fields, (int(n),)),
        )

    @staticmethod
    def dense(J, h=None) -> IsingModel:
        """Fully connected: symmetric J (n, n) with zero diagonal, fields h (n,)."""
        J = check_finite("J", J)
        if J.ndim != 2 or J.shape[0] != J.shape[1]:
            raise ValueError(f"J must be a square (n, n) matrix, got shape {J.shape}")
        if not np.allclose(J, J.T, atol=1e-6):
            i, j = np.argwhere(~np.isclose(J, J.T, atol=1e-6))[0]
            raise ValueError(
                f"J must be symmetric; J[{i},{j}] = {J[i, j]} != J[{j},{i}] = {J[j, i]}"
            )
        if np.any(np.diag(J) != 0):
            raise ValueError("J must have a zero diagonal (a self-coupling only shifts the energy)")
        h = _scalar_or_array("h", h, (J.shape[0],))
        return DenseIsing(J, np.broadcast_to(h, (J.shape[0],)))


class LatticeIsing(IsingModel):
    """Hypercubic lattice with even sizes: checkerboard sublattices, shift-based."""

    def __init__(self, shape, coupling, field, periodic: bool):
        self.shape = tuple(int(s) for s in shape)
        self.periodic = bool(periodic)
        self.coupling = nnx.Param(jnp.asarray(coupling, jnp.float32))
        self.field = nnx.Param(jnp.asarray(field, jnp.float32))
        n = int(np.prod(self.shape))
        self.n_variables = n
        self.blocks = (Block(0, n // 2, SPIN, 2), Block(n // 2, n, SPIN, 2))
        self.sub_shape = (*self.shape[:-1], self.shape[-1] // 2)

    def config(self) -> dict:
        """Lattice shape, boundaries and the coupling and field shapes."""
        return {
            "class": type(self).registered_name(),
            "shape": list(self.shape),
            "periodic": self.periodic,
            "coupling_shape": [int(d) for d in self.coupling[...].shape],
            "field_shape": [int(d) for d in self.field[...].shape],
        }

    @classmethod
    def from_config(cls, config: dict) -> LatticeIsing:
        """Zero couplings and fields of the configured shapes."""
        periodic = bool(config["periodic"])
        shape = graph.validate_lattice_shape(config["shape"], periodic)
        if any(s % 2 for s in shape):
            raise ValueError(f"a LatticeIsing needs even lattice sizes, got {shape}")
        coupling_shape = tuple(int(d) for d in config["coupling_shape"])
        field_shape = tuple(int(d) for d in config["field_shape"])
        if coupling_shape not in ((), (len(shape),)) or field_shape not in ((), shape):
            raise ValueError(
                f"coupling_shape {coupling_shape} / field_shape {field_shape} do not fit "
                f"the lattice {shape}"
            )
        coupling = jnp.zeros(coupling_shape, jnp.float32)
        return cls(shape, coupling, jnp.zeros(field_shape, jnp.float32), periodic)

    def to_internal(self, x):
        lead = x.shape[:-1]
        pairs = x.reshape(*lead, *self.sub_shape, 2)
        p = graph.row_parity(self.shape)
        black = jnp.where(p, pairs[..., 1], pairs[..., 0])
        white = jnp.where(p, pairs[..., 0], pairs[..., 1])
        return jnp.concatenate([black.reshape(*lead, -1), white.reshape(*lead, -1)], axis=-1)

    def to_natural(self, x):
        lead = x.shape[:-1]
        half = self.n_variables // 2
        black = x[..., :half].reshape(*lead, *self.sub_shape)
        white = x[..., half:].reshape(*lead, *self.sub_shape)
        p = graph.row_parity(self.shape)
        even = jnp.where(p, white, black)
        odd = jnp.where(p, black, white)
        return jnp.stack([even, odd], axis=-1).reshape(*lead, self.n_variables)

    def _couplings(self):
        return jnp.broadcast_to(self.coupling[...], (len(self.shape),))

    def _padded(self, o):
        """Pad every axis by one site: wrapped (periodic) or zero (open).

        Neighbour arrays are then static slices of one padded array, which
        XLA fuses into the update instead of materialising one roll each.
        """
        d = o.ndim
        if not self.periodic:
            return jnp.pad(o, 1)
        for a in range(d):
            first = lax.slice_in_dim(o, 0, 1, axis=a)
            last = lax.slice_in_dim(o, o.shape[a] - 1, o.shape[a], axis=a)
            o = jnp.concatenate([last, o, first], axis=a)
        return o

    def block_logits(self, x, b):
        half = self.n_variables // 2
        other = x[half:] if b == 0 else x[:half]
        padded = self._padded(other.reshape(self.sub_shape))
        d = len(self.shape)

        def neighbour(axis: int, step: int):
            """o[k + step] along `axis` as a slice of the padded array."""
            index = [slice(1, 1 + n) for n in self.sub_shape]
            index[axis] = slice(1 + step, 1 + step + self.sub_shape[axis])
            return padded[tuple(index)].astype(jnp.float32)

        J = self._couplings()
        local = J[d - 1] * neighbour(d - 1, 0)
        for a in range(d - 1):
            local = local + J[a] * (neighbour(a, -1) + neighbour(a, 1))
        # along the last axis one neighbour has the same k, the other k -/+ 1
        forward = graph.row_parity(self.shape) ^ bool(b)
        local = local + J[d - 1] * jnp.where(forward, neighbour(d - 1, 1), neighbour(d - 1, -1))
        h = self.field[...]
        if h.ndim:
            h = self.to_internal(h.reshape(-1))[self.blocks[b].slice].reshape(self.sub_shape)
        # sublattice shape: keeps XLA's fused loops free of index arithmetic
        return 2.0 * (local + h)

    def multispin(self) -> multispin.Kernel | None:
        """The bit-packed heat bath (`core.multispin`, 32 spins a word) where it
        applies: periodic boundaries with a scalar coupling and field; None
        (the int8 kernel) for open boundaries, per-axis couplings or site fields."""
        J, h = self.coupling[...], self.field[...]
        if not self.periodic or J.ndim or h.ndim:
            return None
        return multispin.Kernel(multispin.Lattice(self.shape), J, h)

    def cluster_grid(self) -> bool:
        return True

    def cluster_bonds(self) -> Bonds:
        """The lattice as a grid (natural order): J per axis, 0 across open boundaries."""
        d = len(self.shape)
        J = jnp.broadcast_to(self._couplings().reshape(d, *([1] * d)), (d, *self.shape))
        if not self.periodic:
            last = np.indices(self.shape) == np.reshape(self.shape, (d,) + (1,) * d) - 1
            J = jnp.where(last, 0.0, J)
        h = jnp.broadcast_to(self.field[...], self.shape).reshape(-1)
        return Bonds(None, J, h, grid=self.shape)

    def energy(self, x):
        s = jnp.asarray(x).astype(jnp.float32)
        lead = s.shape[:-1]
        s = s.reshape(*lead, *self.shape)
        J = self._couplings()
        d = len(self.shape)
        e = jnp.zeros(lead, jnp.float32)
        axes = tuple(range(-d, 0))
        for a in range(d):
            ax = a - d
            if self.periodic:
                bonds = s * jnp.roll(s, -1, axis=ax)
            else:
                n_a = self.shape[a]
                bonds = lax.slice_in_dim(s, 0, n_a - 1, axis=ax) * lax.slice_in_dim(
                    s, 1, n_a, axis=ax
                )
            e = e - J[a] * jnp.sum(bonds, axis=axes)
        return e - jnp.sum(self.field[...] * s, axis=axes)


class SparseIsing(GraphLayout, IsingModel):
    """Any sparse graph, coloured once; neighbour sums through padded tables."""

    def __init__(self, n, edges, couplings, fields, colours=None):
        self._init_layout(n, edges, colours, SPIN, 2)
        self.coupling = nnx.Param(jnp.asarray(couplings, jnp.float32).reshape(self.n_edges))
        self.field = nnx.Param(jnp.asarray(fields, jnp.float32).reshape(n))

    def config(self) -> dict:
        """Number of sites, edges (nested lists) and the colouring (block of each site)."""
        return {
            "class": type(self).registered_name(),
            "n": self.n_variables,
            "edges": np.asarray(self.edges[...]).tolist(),
            "colours": self.colouring(),
        }

    @classmethod
    def from_config(cls, config: dict) -> SparseIsing:
        """Zero couplings and fields on the configured graph and colouring."""
        n = int(config["n"])
        edges = graph.validate_edges(n, config["edges"])
        colours = np.asarray(config["colours"], dtype=np.int64)
        if colours.shape != (n,) or not graph.is_proper_colouring(edges, colours):
            raise ValueError(f"colours must be a proper colouring of the {n} sites")
        zeros = jnp.zeros((len(edges),), jnp.float32)
        return cls(n, edges, zeros, jnp.zeros((n,), jnp.float32), colours=colours)

    def block_logits(self, x, b):
        neighbours, edge_id = self._neighbours(x, b)
        J = jnp.concatenate([self.coupling[...], jnp.zeros((1,), jnp.float32)])
        local = jnp.sum(J[edge_id] * neighbours.astype(jnp.float32), axis=-1)
        h = self.field[...][self.order[self.blocks[b].slice]]
        return 2.0 * (local + h)

    def cluster_bonds(self) -> Bonds:
        """The graph's edges in internal (colour) order, one J each."""
        edges = self.position[...][self.edges[...]]
        return Bonds(edges, self.coupling[...], self.field[...][self.order[...]])

    def energy(self, x):
        s = jnp.asarray(x).astype(jnp.float32)
        e = self.edges[...]
        pair = jnp.take(s, e[:, 0], axis=-1) * jnp.take(s, e[:, 1], axis=-1)
        return -pair @ self.coupling[...] - s @ self.field[...]


class DenseIsing(IsingModel):
    """Fully connected (SK): site-by-site sweeps with incremental local fields."""

    def __init__(self, J, h):
        n = int(J.shape[0])
        self.n_variables = n
        self.blocks = tuple(Block(i, i + 1, SPIN, 2) for i in range(n))
        self.coupling = nnx.Param(jnp.asarray(J, jnp.float32))
        self.field = nnx.Param(jnp.asarray(h, jnp.float32).reshape(n))

    def config(self) -> dict:
        """Number of spins."""
        return {"class": type(self).registered_name(), "n": self.n_variables}

    @classmethod
    def from_config(cls, config: dict) -> DenseIsing:
        """Zero couplings and fields for the configured number of spins."""
        n = int(config["n"])
        if n < 1:
            raise ValueError(f"n must be a positive integer, got {n}")
        return cls(jnp.zeros((n, n), jnp.float32), jnp.zeros((n,), jnp.float32))

    def _J(self):
        # symmetric with zero diagonal whatever training did to the raw matrix
        J = self.coupling[...]
        return 0.5 * (J + J.T) * (1.0 - jnp.eye(self.n_variables, dtype=J.dtype))

    def cluster_bonds(self) -> Bonds:
        """Every pair i < j as an edge (n (n - 1) / 2 of them), J_ij each."""
        i, j = np.triu_indices(self.n_variables, k=1)
        edges = jnp.asarray(np.stack([i, j], axis=1), jnp.int32)
        return Bonds(edges, self._J()[i, j], self.field[...])

    def energy(self, x):
        s = jnp.asarray(x).astype(jnp.float32)
        return -0.5 * jnp.einsum("...i,ij,...j->...", s, self._J(), s) - s @ self.field[...]

    def block_logits(self, x, b):
        s = x.astype(jnp.float32)
        return 2.0 * (self._J()[b] @ s + self.field[...][b])[None]

    GROUP = 32  # sites whose fields come from one product with their rows of J
    tune_clusters = False  # autotune compares Gibbs only (n^2 / 2 bonds)

    def gibbs_sweep(self, u, x, beta, keep, reference=None):
        """The sequential heat bath in site order, in groups of `GROUP` sites
        (`models.dense.grouped_sweep`): a group's fields are one product of
        its rows of J with the state; inside the group each flip updates the
        later sites' fields through the group's block of J."""
        n, k = self.n_variables, min(self.GROUP, self.n_variables)
        pad = -(-n // k) * k - n
        J = jnp.pad(self._J(), ((0, pad), (0, pad)))  # padded spins: no couplings
        h = jnp.pad(self.field[...], (0, pad))
        u = jnp.pad(u, (0, pad))
        ref = None if reference is None else jnp.pad(reference, (0, pad))
        kept = None if keep is None else jnp.pad(keep, (0, pad))

        def fields(start, x):
            rows = lax.dynamic_slice_in_dim(J, start, k)
            return rows @ x.astype(jnp.float32) + lax.dynamic_slice_in_dim(h, start, k)

        def site(start, j, xg, f):
            z = 2.0 * beta * f[j]
            if ref is not None:
                z = z + (1.0 - beta) * ref[start + j]
            new = jnp.where(u[start + j] < jax.nn.sigmoid(z), jnp.int8(1), jnp.int8(-1))
            if kept is not None:
                new = jnp.where(kept[start + j], xg[j], new)
            delta = (new - xg[j]).astype(jnp.float32)
            return new, f + lax.dynamic_slice_in_dim(J[start + j], start, k) * delta

        x = jnp.pad(x, (0, pad), constant_values=1)
        return grouped_sweep(x, k, fields, site)[:n]
