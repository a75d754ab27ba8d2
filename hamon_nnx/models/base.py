"""The model contract shared by every discrete energy-based model.

A state is one int8 vector per chain. Spins take the values -1/+1, binary
units 0/1 and categorical (Potts) variables 0..q-1. A model may keep its
variables in an *internal order* in which each block of conditionally
independent variables is a contiguous slice; `to_internal` / `to_natural`
convert between that order and the user's natural order.

Public methods and their order conventions:

* `energy(x)`: natural order, shape (..., n) -> (...) float32.
* `block_logits(x, b)`: internal order, a single chain x of shape (n,);
  returns the conditional logits of block b at beta = 1: shape (m,) for
  spins (log P(+1)/P(-1)) and binary units (log P(1)/P(0)), (m, q) for
  categorical variables. Any shape holding the m variables in internal
  order (row-major) may stand for (m,), e.g. a sublattice's shape.
* `internal_energy(x)`: internal order; what samplers call.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ..core.layout import BINARY, CATEGORICAL, KINDS, SPIN, Block, check_states, kind_values
from . import custom
from .structure import Structure

if TYPE_CHECKING:
    import jax.core  # the Tracer class checked below

__all__ = [
    "BINARY",
    "CATEGORICAL",
    "KINDS",
    "SPIN",
    "Block",
    "EnergyModel",
    "Structure",
    "kind_values",
    "model_from_config",
    "register_model",
]


class EnergyModel(nnx.Module):
    """Base class of every discrete EBM in hamon-nnx.

    Two ways to write a model:

    * Energy only (custom models): call `self.declare_variables(...)` in
      `__init__` (after creating the parameters) and write `energy(x)`,
      multilinear in the spins / binary units / one-hot vectors that
      `self.unpack(x)` returns. Blocks, the internal order and
      `block_logits` (one `jax.grad` of the relaxed energy) come for free;
      see `hamon_nnx.models.custom` and check it with `hn.check_model`.
    * Hand-written: set `n_variables` and `blocks` (static) and implement
      `energy` and `block_logits`; models that reorder override
      `to_internal` and `to_natural`.

    A model may also provide `gibbs_sweep(u, x, beta, keep, reference)`, a faster
    sweep with the same stationary distribution (dense models use it).

    Example:
        >>> import jax, jax.numpy as jnp, hamon_nnx as hn
        >>> from flax import nnx
        >>> class Triangle(hn.EnergyModel):  # E = -J s0 s1 s2 - h sum(s)
        ...     def __init__(self, J=1.0, h=0.1):
        ...         self.J = nnx.Param(jnp.float32(J))
        ...         self.h = nnx.Param(jnp.float32(h))
        ...         self.declare_variables(hn.Spins(3, name="s"))
        ...     def energy(self, x):
        ...         s = self.unpack(x)["s"]
        ...         return -self.J * s[..., 0] * s[..., 1] * s[..., 2] - self.h * s.sum(-1)
        >>> m = Triangle()
        >>> len(m.blocks)  # one factor holds all three spins: one block each
        3
        >>> hn.sample(m, jax.random.key(0), n_samples=4, n_chains=2).shape
        (2, 4, 3)
    """

    n_variables: int
    blocks: tuple[Block, ...]

    # -- configuration (rebuild without code) ----------------------------------
    def __init_subclass__(cls, *, register_as: str | None = None, **kwargs):
        """Register every subclass in the model registry under its class name.

        `class MyModel(EnergyModel, register_as="my_model")` picks another name.
        """
        super().__init_subclass__(**kwargs)
        register_model(cls, register_as)

    @classmethod
    def registered_name(cls) -> str:
        """The name under which this class is registered (the config's "class")."""
        name = _REGISTERED_NAMES.get(cls)
        if name is None or _MODEL_REGISTRY.get(name) is not cls:
            raise ValueError(
                f"{cls.__module__}.{cls.__qualname__} is not the class registered as "
                f"{cls.__name__!r} (another class took the name); define it with a unique "
                f"name: class {cls.__name__}(..., register_as='unique_name')"
            )
        return name

    def config(self) -> dict:
        """A JSON-serialisable description from which `model_from_config` rebuilds it.

        Holds the registered class name under "class" and the structural
        constructor arguments (sizes, graph, boundary conditions, parameter
        shapes), never the parameter values: the rebuilt model has the same
        `nnx.graphdef` and parameter shapes, with placeholder values.
        Custom models implement it, and `from_config` when their constructor
        does not take the config's keys as keyword arguments.
        """
        raise NotImplementedError(
            f"{type(self).__name__} does not implement config(); a custom model must "
            "return {'class': type(self).registered_name(), **structural_args} and, "
            "unless its constructor takes those keys as keyword arguments, from_config()"
        )

    @classmethod
    def from_config(cls, config: dict) -> EnergyModel:
        """Rebuild from `config()`: by default `cls(**config_without_class)`."""
        return cls(**{k: v for k, v in config.items() if k != "class"})

    # -- declared variables (custom models; see models/custom.py) -------------
    def declare_variables(self, *groups, interactions=None, colouring=None, seed: int = 0):
        """Declare the variables of an energy-only model; sets blocks and order.

        Call it at the end of `__init__`: it evaluates the energy once to
        check its signature (and, without `interactions`, its Hessian).

        Args:
            *groups: `hn.Spins(shape)`, `hn.Binary(shape)`,
                `hn.Categorical(shape, q)`, in natural order, any mix.
            interactions: the scopes of the energy's terms, each a tuple of
                natural variable indices (pairs or higher-order factors), or
                an (F, k) array; `variable_index(name)` gives a group's
                indices. None: detected from the Hessian of the relaxed
                energy (small models only).
            colouring: optional block id per variable (natural order),
                checked against the interactions.
            seed: seed of the random points of the Hessian detection.
        """
        custom.declare_variables(self, groups, interactions, colouring, seed)

    def unpack(self, x) -> dict:
        """The declared groups of states x as float32 arrays, by name.

        Spins and binary units come as (..., *shape), categorical variables
        as one-hot vectors (..., *shape, q). Accepts int8 states (..., n) and
        the relaxed float states (..., n_relaxed) that the autodiff
        conditionals differentiate; an energy written with it serves both.
        """
        return custom.unpack(self, x)

    def variable_index(self, name: str) -> np.ndarray:
        """Natural indices of the variables of group `name`, in its shape."""
        return custom.variable_index(self, name)

    # -- order -------------------------------------------------------------
    def to_internal(self, x: jax.Array) -> jax.Array:
        """Natural order (..., n) -> internal order (..., n)."""
        if getattr(self, "variable_groups", None):
            return custom.to_internal(self, x)
        return x

    def to_natural(self, x: jax.Array) -> jax.Array:
        """Internal order (..., n) -> natural order (..., n)."""
        if getattr(self, "variable_groups", None):
            return custom.to_natural(self, x)
        return x

    # -- energies ------------------------------------------------------------
    def energy(self, x: jax.Array) -> jax.Array:
        """Energy at beta = 1 of natural-order states x of shape (..., n)."""
        raise NotImplementedError

    def internal_energy(self, x: jax.Array) -> jax.Array:
        """Energy of internal-order states; samplers call this."""
        return self.energy(self.to_natural(x))

    def block_logits(self, x: jax.Array, b: int) -> jax.Array:
        """Conditional logits of block `b` given the internal state `x` (n,).

        Default: autodiff of the relaxed energy for models that declared their
        variables (`declare_variables`); hand-written models override it.
        """
        return custom.autodiff_block_logits(self, x, b)

    # -- cluster updates -----------------------------------------------------
    def cluster_problem(self) -> str | None:
        """Why the cluster explorers (Swendsen-Wang, Wolff) cannot run on this
        model, or None when they can: pairwise Ising models (couplings of any
        sign) and Potts models with ferromagnetic delta couplings override it."""
        return f"{type(self).__name__} is not a pairwise Ising or Potts model"

    def cluster_bonds(self):
        """Edges, couplings and fields in internal order (`core.clusters.Bonds`)."""
        raise NotImplementedError(self.cluster_problem())

    def cluster_grid(self) -> bool:
        """Whether `cluster_bonds` is a periodic grid (array shifts, the cheaper path)."""
        return False

    # -- variables -----------------------------------------------------------
    def variable_kinds(self) -> tuple[np.ndarray, np.ndarray]:
        """Per variable, in natural order: (kind index into KINDS, q)."""
        if getattr(self, "variable_groups", None):  # declared: no array ops, safe under jit
            return custom.variable_kinds(self)
        kind = np.empty(self.n_variables, dtype=np.int8)
        q = np.empty(self.n_variables, dtype=np.int32)
        for blk in self.blocks:
            kind[blk.start : blk.stop] = KINDS.index(blk.kind)
            q[blk.start : blk.stop] = blk.q
        nat_kind = np.asarray(self.to_natural(jnp.asarray(kind)))
        nat_q = np.asarray(self.to_natural(jnp.asarray(q)))
        return nat_kind, nat_q

    def variable_values(self) -> list[np.ndarray]:
        """The allowed values of every variable, in natural order."""
        kinds, qs = self.variable_kinds()
        return [kind_values(KINDS[k], int(q)) for k, q in zip(kinds, qs, strict=True)]

    def variable_values_first(self) -> np.ndarray:
        """The smallest allowed value of every variable, in natural order."""
        kinds, _ = self.variable_kinds()
        return np.where(kinds == KINDS.index(SPIN), -1, 0).astype(np.int8)

    def validate_state(self, x, name: str = "x") -> jax.Array:
        """Check shape, dtype and values of natural-order states; return int8.

        Raises:
            ValueError: wrong trailing dimension, non-integer values or a
                value outside a variable's domain (the first offender is named).
        """
        arr = np.asarray(x)
        if arr.ndim == 0 or arr.shape[-1] != self.n_variables:
            raise ValueError(
                f"{name} must have shape (..., {self.n_variables}) for this "
                f"{type(self).__name__}, got shape {arr.shape}"
            )
        kinds, qs = self.variable_kinds()
        return jnp.asarray(check_states(arr, kinds, qs, name))


_MODEL_REGISTRY: dict[str, type[EnergyModel]] = {}
_REGISTERED_NAMES: dict[type, str] = {}


def register_model(cls: type[EnergyModel], name: str | None = None) -> type[EnergyModel]:
    """Register `cls` for `model_from_config` under `name` (default: its class name).

    Every `EnergyModel` subclass registers itself when defined; call this
    only to add another name. Redefining a class (same module and qualified
    name, e.g. a re-run notebook cell) replaces the old entry; another class
    of the same name also replaces it, with a warning, and the displaced
    class can no longer be saved (its `registered_name` raises).
    """
    name = cls.__name__ if name is None else str(name)
    old = _MODEL_REGISTRY.get(name)
    if (
        old is not None
        and old is not cls
        and (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__)
    ):
        warnings.warn(
            f"model class name {name!r} of {cls.__module__}.{cls.__qualname__} was already "
            f"registered by {old.__module__}.{old.__qualname__}; the new class replaces it "
            "in model_from_config (pass register_as='...' to keep both)",
            stacklevel=3,
        )
    _MODEL_REGISTRY[name] = cls
    _REGISTERED_NAMES[cls] = name
    return cls


def registered_models() -> dict[str, type[EnergyModel]]:
    """Registered classes that can be rebuilt from a config (they implement `config`)."""
    return {
        name: cls
        for name, cls in sorted(_MODEL_REGISTRY.items())
        if cls.config is not EnergyModel.config
    }


def model_from_config(config: dict) -> EnergyModel:
    """Rebuild a model of the structure `model.config()` describes.

    The result has the original's class, `nnx.graphdef` and parameter
    shapes; parameter values are placeholders (restore them from a
    checkpoint, e.g. `hamon_nnx.training.checkpoint.load`).

    Raises:
        ValueError: not a dict with a "class" name, an unknown class (the
            message lists the known ones), a missing key or an invalid value.
    """
    if not isinstance(config, dict) or not isinstance(config.get("class"), str):
        raise ValueError(
            f"a model config must be a dict with a 'class' name, got {type(config).__name__}"
            + (f" with keys {sorted(config)}" if isinstance(config, dict) else "")
        )
    name = config["class"]
    cls = _MODEL_REGISTRY.get(name)
    if cls is None or cls.config is EnergyModel.config:
        known = ", ".join(registered_models()) or "none"
        raise ValueError(
            f"unknown model class {name!r}; known model classes: {known}. A custom model "
            "must be defined (its module imported) before its config is rebuilt."
        )
    try:
        return cls.from_config(config)
    except KeyError as err:
        raise ValueError(f"the {name} config lacks the key {err.args[0]!r}") from err


def check_finite(name: str, value) -> np.ndarray | jax.core.Tracer:
    """Return `value` as a float32 numpy array, or raise if it holds NaN/inf."""
    arr = np.asarray(value, dtype=np.float32) if not isinstance(value, jax.core.Tracer) else value
    if isinstance(arr, np.ndarray) and not np.all(np.isfinite(arr)):
        idx = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"{name} holds a non-finite value at index {tuple(int(i) for i in idx)}")
    return arr


def check_params_finite(model: nnx.Module) -> None:
    """Raise ValueError naming the first nnx.Param holding NaN or inf."""
    for path, value in nnx.to_flat_state(nnx.state(model, nnx.Param)):
        arr = np.asarray(value.get_value() if hasattr(value, "get_value") else value.value)
        if not np.all(np.isfinite(arr)):
            name = ".".join(str(p) for p in path)
            raise ValueError(f"model parameter {name!r} holds NaN or inf; cannot sample")


class GraphLayout:
    """Mixin: a coloured sparse graph with padded neighbour tables.

    Sets `n_variables`, `blocks` (one per colour), the `edges` (natural
    indices) and the tables that `to_internal` / `to_natural` and the
    subclasses' `block_logits` use. Sites of one colour are contiguous.
    """

    def _init_layout(self, n: int, edges: np.ndarray, colours, kind: str, q: int) -> None:
        from ..core import graph

        edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
        if colours is None:
            colours = graph.greedy_colouring(n, edges)
        tables = graph.neighbour_tables(n, edges, np.asarray(colours))
        self.n_variables = int(n)
        self.blocks = tuple(
            Block(a, b, kind, q)
            for a, b in zip(tables.offsets[:-1], tables.offsets[1:], strict=True)
        )
        self.edges = Structure(jnp.asarray(edges, jnp.int32))
        self.order = Structure(jnp.asarray(tables.order))
        self.position = Structure(jnp.asarray(np.argsort(tables.order).astype(np.int32)))
        self.neighbour = Structure(jnp.asarray(tables.neighbour))
        self.edge_id = Structure(jnp.asarray(tables.edge_id))
        self.side = Structure(jnp.asarray(tables.side))

    @property
    def n_edges(self) -> int:
        return int(self.edges.shape[0])

    def colouring(self) -> list[int]:
        """The colour (block index) of every variable, natural order, as a list."""
        order = np.asarray(self.order[...])
        colours = np.empty(self.n_variables, dtype=np.int64)
        for b, blk in enumerate(self.blocks):
            colours[order[blk.start : blk.stop]] = b
        return colours.tolist()

    def to_internal(self, x):
        return jnp.take(x, self.order[...], axis=-1)

    def to_natural(self, x):
        return jnp.take(x, self.position[...], axis=-1)

    def _neighbours(self, x, b: int):
        """Neighbour values (m, dmax) and edge ids (m, dmax) of block b."""
        rows = self.blocks[b].slice
        return x[self.neighbour[rows]], self.edge_id[rows]
