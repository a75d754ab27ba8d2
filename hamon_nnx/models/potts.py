"""q-state Potts models on sparse graphs and lattices.

E(s) = -sum_(ij) J_ij delta(s_i, s_j) - sum_i h_i(s_i), or with a q x q
matrix per edge E = -sum_(ij) J_ij[s_i, s_j] - sum_i h_i(s_i); s in 0..q-1.
For an edge (i, j) given as [i, j], the matrix is indexed [s_i, s_j].
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ..core import graph
from .base import CATEGORICAL, EnergyModel, GraphLayout, check_finite


def _coupling_array(couplings, n_edges: int, q: int, shared_ok: bool) -> np.ndarray:
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

    def __init__(self, n, q, edges, couplings, fields, colours=None):
        self.q = int(q)
        self._init_layout(n, edges, colours, CATEGORICAL, self.q)
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
        return cls(n, q, edges, coupling, field, colours=colours)

    @staticmethod
    def _check_q(q) -> int:
        if isinstance(q, bool) or int(q) != q or not 2 <= q <= 127:
            raise ValueError(f"q must be an integer in 2..127 (int8 states), got {q!r}")
        return int(q)

    @classmethod
    def from_edges(cls, n: int, q: int, edges, couplings=1.0, fields=None) -> PottsModel:
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
        return cls(n, q, edges, coupling, _field_array(field, n, q), colours=colours)

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
