"""Energy-only models shipped with hamon-nnx: higher-order and mixed variables.

Each writes only `energy` (multilinear in spins / one-hot vectors) and
declares its variables and interaction scopes; the conditionals come from
autodiff (`hamon_nnx.models.custom`). All are registered models, so
`hn.save` / `hn.load` work.

* `PlaquetteIsing`: spins on a 2-D lattice with 4-spin plaquette terms,
  E = -J sum_<ij> s_i s_j - K sum_[ijkl] s_i s_j s_k s_l - h sum_i s_i.
* `ClockModel`: the q-state clock (vector Potts) model, angles
  theta_k = 2 pi k / q, E = -J sum_<ij> cos(theta_i - theta_j) - h . sum_i u_i
  with u = (cos theta, sin theta).
* `SpinLabelModel`: Ising spins and categorical labels in one model,
  E = -sum_<ij> J_ij s_i s_j - sum_i h_i s_i - sum_{i,a} s_i W[i, a, c_a]
      - sum_a b[a, c_a].
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import nnx

from ..core import graph
from .base import EnergyModel, Structure, check_finite
from .custom import Categorical, Spins


def _scalar(name: str, value) -> jnp.ndarray:
    arr = check_finite(name, value)
    if arr.shape != ():
        raise ValueError(f"{name} must be a scalar, got shape {arr.shape}")
    return jnp.asarray(arr, jnp.float32)


def _lattice_shape_2d(shape, periodic: bool) -> tuple[int, int]:
    shape = graph.validate_lattice_shape(shape, periodic)
    if len(shape) != 2:
        raise ValueError(f"a plaquette lattice must be 2-D, got shape {shape}")
    return shape


def _shift(s, axis: int, periodic: bool):
    """s[x + e_axis] over the lattice axes (the last two), zero past an open edge."""
    if periodic:
        return jnp.roll(s, -1, axis=axis)
    n = s.shape[axis]
    pad = [(0, 0)] * s.ndim
    pad[axis] = (0, 1)
    return jnp.pad(jnp.take(s, jnp.arange(1, n), axis=axis), pad)


def plaquette_scopes(shape: tuple[int, int], periodic: bool) -> np.ndarray:
    """Natural site indices (P, 4) of the elementary squares of a 2-D lattice."""
    L0, L1 = shape
    idx = np.arange(L0 * L1).reshape(shape)
    rows = range(L0) if periodic else range(L0 - 1)
    cols = range(L1) if periodic else range(L1 - 1)
    return np.array(
        [
            [idx[i, j], idx[i, (j + 1) % L1], idx[(i + 1) % L0, j], idx[(i + 1) % L0, (j + 1) % L1]]
            for i in rows
            for j in cols
        ],
        dtype=np.int64,
    )


class PlaquetteIsing(EnergyModel):
    """Ising spins on a 2-D lattice with nearest-neighbour and 4-spin plaquette terms.

    E(s) = -J sum_<ij> s_i s_j - K sum_plaquettes s_a s_b s_c s_d - h sum_i s_i.
    Blocks: the four sublattices (i mod 2, j mod 2), since a plaquette holds
    one site of each (fewer or more colours when a periodic size is odd).

    Args:
        shape: (L0, L1), sites row-major.
        coupling: J.
        plaquette: K.
        field: h.
        periodic: periodic (torus) or open boundaries.

    Example:
        >>> import jax, hamon_nnx as hn
        >>> m = hn.PlaquetteIsing((4, 4), coupling=0.1, plaquette=0.5)
        >>> len(m.blocks), hn.sample(m, jax.random.key(0), n_samples=3, n_chains=2).shape
        (4, (2, 3, 16))
    """

    def __init__(self, shape, coupling=0.0, plaquette=1.0, field=0.0, periodic: bool = True):
        self.shape = _lattice_shape_2d(shape, periodic)
        self.periodic = bool(periodic)
        self.coupling = nnx.Param(_scalar("coupling", coupling))
        self.plaquette = nnx.Param(_scalar("plaquette", plaquette))
        self.field = nnx.Param(_scalar("field", field))
        i, j = np.indices(self.shape)
        colouring = (2 * (i % 2) + (j % 2)).ravel()
        scopes = plaquette_scopes(self.shape, self.periodic)
        proper = not self.periodic or all(s % 2 == 0 for s in self.shape)
        self.declare_variables(
            Spins(self.shape, name="s"),
            interactions=scopes,
            colouring=colouring if proper else None,
        )

    def config(self) -> dict:
        """Lattice shape and boundaries (parameters are restored separately)."""
        return {
            "class": type(self).registered_name(),
            "shape": list(self.shape),
            "periodic": self.periodic,
        }

    def sufficient_statistics(self, x):
        """(bonds, plaquettes, magnetisation) sums per state: -dE/d(J, K, h)."""
        s = self.unpack(x)["s"]
        right, down = _shift(s, -1, self.periodic), _shift(s, -2, self.periodic)
        diag = _shift(right, -2, self.periodic)
        axes = (-2, -1)
        bonds = jnp.sum(s * right, axis=axes) + jnp.sum(s * down, axis=axes)
        plaquettes = jnp.sum(s * right * down * diag, axis=axes)
        return bonds, plaquettes, jnp.sum(s, axis=axes)

    def energy(self, x):
        bonds, plaquettes, magnetisation = self.sufficient_statistics(x)
        return (
            -self.coupling[...] * bonds
            - self.plaquette[...] * plaquettes
            - self.field[...] * magnetisation
        )


class ClockModel(EnergyModel):
    """The q-state clock (planar vector Potts) model on any sparse graph.

    Variable i takes k in 0..q-1, the angle theta = 2 pi k / q, the unit
    vector u = (cos theta, sin theta). E = -J sum_<ij> u_i . u_j - h . sum_i u_i
    with a scalar coupling J and a field vector h (2,). The energy is bilinear
    in one-hot vectors through u_i = onehot_i @ U.

    Args:
        n: number of sites.
        q: number of angles (2..127); q = 2 is the Ising model, q = 3 Potts.
        edges: (E, 2) interacting pairs.
        coupling: J.
        field: h, shape (2,).
        colours: optional block id per site (checked against the edges).
        shape: optional lattice shape of the sites (row-major, product n):
            a periodic colouring of a lattice then needs no gathers.

    Example:
        >>> import jax, hamon_nnx as hn
        >>> m = hn.ClockModel.lattice((4, 4), q=6, coupling=1.0)
        >>> hn.sample(m, jax.random.key(0), n_samples=3, n_chains=2).shape
        (2, 3, 16)
    """

    def __init__(self, n, q, edges, coupling=1.0, field=(0.0, 0.0), colours=None, shape=None):
        self.q = int(Categorical(1, q).q)
        edges = graph.validate_edges(n, edges)
        self.edges_ = Structure(jnp.asarray(edges, jnp.int32))
        field = check_finite("field", field)
        if field.shape != (2,):
            raise ValueError(f"field must be a 2-vector (h_x, h_y), got shape {field.shape}")
        self.coupling = nnx.Param(_scalar("coupling", coupling))
        self.field = nnx.Param(jnp.asarray(field, jnp.float32))
        angles = 2 * np.pi * np.arange(self.q) / self.q
        self.directions = Structure(
            jnp.asarray(np.stack([np.cos(angles), np.sin(angles)], axis=1), jnp.float32)
        )
        self.shape = (int(n),) if shape is None else tuple(int(v) for v in shape)
        if int(np.prod(self.shape)) != int(n):
            raise ValueError(f"shape {self.shape} does not hold n = {n} sites")
        self.declare_variables(
            Categorical(self.shape, self.q, name="theta"), interactions=edges, colouring=colours
        )

    @classmethod
    def lattice(cls, shape, q: int, coupling=1.0, field=(0.0, 0.0), periodic=True) -> ClockModel:
        """A 1-D/2-D/3-D hypercubic lattice, sites row-major.

        Example:
            >>> import hamon_nnx as hn
            >>> hn.ClockModel.lattice((3, 3), q=4).n_variables
            9
        """
        shape = graph.validate_lattice_shape(shape, periodic)
        edges, _ = graph.lattice_edges(shape, periodic)
        return cls(int(np.prod(shape)), q, edges, coupling, field, shape=shape)

    def config(self) -> dict:
        """Sites, q and edges (parameters are restored separately)."""
        return {
            "class": type(self).registered_name(),
            "n": self.n_variables,
            "q": self.q,
            "edges": np.asarray(self.edges_[...]).tolist(),
            "shape": list(self.shape),
        }

    def sufficient_statistics(self, x):
        """(sum_<ij> u_i . u_j, sum_i u_i) per state: -dE/dJ and -dE/dh."""
        o = self.unpack(x)["theta"]
        o = o.reshape(*o.shape[: o.ndim - 1 - len(self.shape)], self.n_variables, self.q)
        u = o @ self.directions[...]  # (..., n, 2)
        e = self.edges_[...]
        a, b = jnp.take(u, e[:, 0], axis=-2), jnp.take(u, e[:, 1], axis=-2)
        return jnp.sum(a * b, axis=(-2, -1)), jnp.sum(u, axis=-2)

    def energy(self, x):
        pair, total = self.sufficient_statistics(x)
        return -self.coupling[...] * pair - total @ self.field[...]


class SpinLabelModel(EnergyModel):
    """Ising spins and categorical labels in one model (mixed variables).

    Natural order: the `n_spins` spins (-1/+1), then the `n_labels` labels
    (0..q-1). E = -sum_<ij> J_ij s_i s_j - sum_i h_i s_i
    - sum_{i,a} s_i W[i, a, c_a] - sum_a b[a, c_a]: each label shifts the
    fields of all spins, like the class of a label-conditioned Ising model.
    Blocks: the labels (they interact only with spins) and a colouring of
    the spin graph.

    Args:
        n_spins: number of spins.
        n_labels: number of categorical labels.
        q: states per label.
        spin_edges: (E, 2) spin pairs with a coupling.
        rngs: `nnx.Rngs` for the initial W (keyword-only).
        init_scale: standard deviation of the initial W.

    Example:
        >>> import jax, hamon_nnx as hn
        >>> from flax import nnx
        >>> m = hn.SpinLabelModel(4, 1, q=3, spin_edges=[(0, 1), (1, 2), (2, 3)],
        ...                       rngs=nnx.Rngs(0))
        >>> [b.kind for b in m.blocks]
        ['spin', 'spin', 'categorical']
    """

    def __init__(
        self, n_spins, n_labels, q, spin_edges, *, rngs: nnx.Rngs, init_scale: float = 0.1
    ):
        for name, value in (("n_spins", n_spins), ("n_labels", n_labels)):
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.n_spins, self.n_labels = int(n_spins), int(n_labels)
        self.q = Categorical(1, q).q
        edges = graph.validate_edges(self.n_spins, spin_edges)
        self.spin_edges = Structure(jnp.asarray(edges, jnp.int32))
        self.coupling = nnx.Param(jnp.zeros((len(edges),), jnp.float32))
        self.field = nnx.Param(jnp.zeros((self.n_spins,), jnp.float32))
        shape = (self.n_spins, self.n_labels, self.q)
        self.W = nnx.Param(init_scale * nnx.initializers.normal(1.0)(rngs.params(), shape))
        self.label_field = nnx.Param(jnp.zeros((self.n_labels, self.q), jnp.float32))
        spins = np.arange(self.n_spins)
        labels = self.n_spins + np.arange(self.n_labels)
        cross = np.stack(np.meshgrid(spins, labels, indexing="ij"), -1).reshape(-1, 2)
        self.declare_variables(
            Spins(self.n_spins, name="s"),
            Categorical(self.n_labels, self.q, name="c"),
            interactions=np.concatenate([edges, cross]),
        )

    def config(self) -> dict:
        """Sizes, q and the spin edges (parameters are restored separately)."""
        return {
            "class": type(self).registered_name(),
            "n_spins": self.n_spins,
            "n_labels": self.n_labels,
            "q": self.q,
            "spin_edges": np.asarray(self.spin_edges[...]).tolist(),
        }

    @classmethod
    def from_config(cls, config: dict) -> SpinLabelModel:
        """Zero parameters of the configured structure."""
        keys = ("n_spins", "n_labels", "q", "spin_edges")
        return cls(*(config[k] for k in keys), rngs=nnx.Rngs(0), init_scale=0.0)

    def energy(self, x):
        v = self.unpack(x)
        s, c = v["s"], v["c"]  # (..., n_spins), (..., n_labels, q)
        e = self.spin_edges[...]
        pair = jnp.take(s, e[:, 0], axis=-1) * jnp.take(s, e[:, 1], axis=-1)
        label_fields = jnp.einsum("iaq,...aq->...i", self.W[...], c)  # field on each spin
        return (
            -pair @ self.coupling[...]
            - s @ self.field[...]
            - jnp.sum(s * label_fields, axis=-1)
            - jnp.sum(c * self.label_field[...], axis=(-2, -1))
        )
