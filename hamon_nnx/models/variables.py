"""Declared variable groups of an energy-only model and the views of a state they give.

`Spins`, `Binary` and `Categorical` build the groups that
`EnergyModel.declare_variables` takes; with them declared, a natural-order
state can be unpacked by group name (`unpack`), relaxed to the real-valued
vector the autodiff conditionals differentiate (`relax`: one-hot vectors for
categorical variables), and a variable named by group and index
(`variable_index`, `describe_variable`). See `hamon_nnx.models.custom`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, NamedTuple, cast

import jax
import jax.numpy as jnp
import numpy as np

from ..core.layout import BINARY, CATEGORICAL, KINDS, SPIN


class VariableGroup(NamedTuple):
    """A named group of variables of one kind, laid out with `shape`.

    Build it with `Spins`, `Binary` or `Categorical`.
    """

    name: str | None
    kind: str
    shape: tuple[int, ...]
    q: int

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def width(self) -> int:
        """Relaxed coordinates per variable: 1, or q for a one-hot vector."""
        return self.q if self.kind == CATEGORICAL else 1


def _shape(shape) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (int(shape),)
    try:
        # any other value is tried as an iterable of ints (TypeError caught below)
        shape = tuple(int(s) for s in cast(Iterable[Any], shape))
    except (TypeError, ValueError):
        raise ValueError(
            f"a variable group's shape must be an int or a tuple of ints, got {shape!r}"
        ) from None
    if not shape or any(s < 1 for s in shape):
        raise ValueError(f"a variable group's shape must have positive sizes, got {shape}")
    return shape


def Spins(shape, name: str | None = None) -> VariableGroup:  # noqa: N802 - reads as a type
    """A group of spins (-1/+1) of the given shape (an int or a tuple).

    Example:
        >>> import hamon_nnx as hn
        >>> hn.Spins((2, 3), name="s").size
        6
    """
    return VariableGroup(name, SPIN, _shape(shape), 2)


def Binary(shape, name: str | None = None) -> VariableGroup:  # noqa: N802
    """A group of binary units (0/1) of the given shape.

    Example:
        >>> import hamon_nnx as hn
        >>> hn.Binary(4).kind
        'binary'
    """
    return VariableGroup(name, BINARY, _shape(shape), 2)


def Categorical(shape, q: int, name: str | None = None) -> VariableGroup:  # noqa: N802
    """A group of categorical variables with values 0..q-1 (2 <= q <= 127).

    Example:
        >>> import hamon_nnx as hn
        >>> hn.Categorical(3, q=4).q
        4
    """
    if isinstance(q, bool) or not isinstance(q, (int, np.integer)) or not 2 <= q <= 127:
        raise ValueError(f"q must be an integer in 2..127 (int8 states), got {q!r}")
    return VariableGroup(name, CATEGORICAL, _shape(shape), int(q))


def _check_groups(groups) -> tuple[VariableGroup, ...]:
    if (
        len(groups) == 1
        and isinstance(groups[0], (list, tuple))
        and not isinstance(groups[0], VariableGroup)
    ):
        groups = tuple(groups[0])
    if not groups:
        raise ValueError(
            "declare_variables needs at least one variable group, e.g. "
            "self.declare_variables(hn.Spins(16))"
        )
    out, seen = [], set()
    counts: dict[str, int] = {}
    for i, g in enumerate(groups):
        if not isinstance(g, VariableGroup):
            raise TypeError(
                f"variable group {i} is a {type(g).__name__}; declare groups with "
                "hn.Spins(shape), hn.Binary(shape) or hn.Categorical(shape, q)"
            )
        if g.kind not in KINDS:
            raise ValueError(f"variable group {i} has unknown kind {g.kind!r}; expected {KINDS}")
        name = g.name
        if name is None:
            counts[g.kind] = counts.get(g.kind, 0) + 1
            name = g.kind if counts[g.kind] == 1 else f"{g.kind}{counts[g.kind]}"
        if not isinstance(name, str) or not name:
            raise ValueError(f"variable group {i} needs a non-empty string name, got {name!r}")
        if name in seen:
            raise ValueError(f"two variable groups are named {name!r}; names must be unique")
        seen.add(name)
        out.append(g._replace(name=name))
    return tuple(out)


def _group_offsets(groups) -> tuple[np.ndarray, np.ndarray]:
    """Natural start and relaxed start of every group (each with a final total)."""
    sizes = np.array([g.size for g in groups])
    widths = np.array([g.size * g.width for g in groups])
    return (
        np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
        np.concatenate([[0], np.cumsum(widths)]).astype(np.int64),
    )


def _relaxed_starts(groups) -> np.ndarray:
    """Relaxed start of every natural variable (its first coordinate in the relaxed state)."""
    _, rstarts = _group_offsets(groups)
    return np.concatenate(
        [rstarts[i] + np.arange(g.size) * g.width for i, g in enumerate(groups)]
    ).astype(np.int64)


def _variable_classes(groups) -> tuple[np.ndarray, list[tuple[str, int]]]:
    """Per natural variable, the index of its (kind, q) class; the classes in order."""
    classes: list[tuple[str, int]] = []
    per_var = []
    for g in groups:
        c = (g.kind, g.q)
        if c not in classes:
            classes.append(c)
        per_var.append(np.full(g.size, classes.index(c)))
    return np.concatenate(per_var), classes


def _set_groups(model, groups) -> None:
    """Attach the variable groups (enough for `unpack` and `relax`)."""
    model.variable_groups = groups
    model.n_variables = int(sum(g.size for g in groups))
    starts, rstarts = _group_offsets(groups)
    model.n_relaxed = int(rstarts[-1])


def has_categorical(model) -> bool:
    return any(g.kind == CATEGORICAL for g in model.variable_groups)


def relax(model, x: jax.Array) -> jax.Array:
    """Natural-order states (..., n) -> relaxed float32 (..., n_relaxed)."""
    x = jnp.asarray(x)
    if not has_categorical(model):
        return x.astype(jnp.float32)
    lead = x.shape[:-1]
    starts, _ = _group_offsets(model.variable_groups)
    parts = []
    for g, a in zip(model.variable_groups, starts, strict=False):
        v = x[..., a : a + g.size]
        if g.kind == CATEGORICAL:
            v = jax.nn.one_hot(v.astype(jnp.int32), g.q, dtype=jnp.float32)
            parts.append(v.reshape(*lead, g.size * g.q))
        else:
            parts.append(v.astype(jnp.float32))
    return jnp.concatenate(parts, axis=-1)


def unpack(model, x) -> dict[str, jax.Array]:
    """Implementation of `EnergyModel.unpack` (see there)."""
    groups = getattr(model, "variable_groups", None)
    if not groups:
        raise ValueError(
            f"{type(model).__name__} declares no variables; call "
            "self.declare_variables(hn.Spins(...), ...) in __init__"
        )
    x = jnp.asarray(x)
    n, n_relaxed = model.n_variables, model.n_relaxed
    if x.ndim == 0 or x.shape[-1] not in (n, n_relaxed):
        raise ValueError(
            f"{type(model).__name__}: states must have shape (..., {n})"
            + (f" or relaxed (..., {n_relaxed})" if n_relaxed != n else "")
            + f", got {x.shape}"
        )
    lead = x.shape[:-1]
    relaxed = x.shape[-1] == n_relaxed and n_relaxed != n
    starts, rstarts = _group_offsets(groups)
    out = {}
    for i, g in enumerate(groups):
        if relaxed:
            v = x[..., rstarts[i] : rstarts[i + 1]].astype(jnp.float32)
            out[g.name] = v.reshape(*lead, *g.shape, *((g.q,) if g.kind == CATEGORICAL else ()))
        else:
            v = x[..., starts[i] : starts[i + 1]]
            if g.kind == CATEGORICAL:
                v = jax.nn.one_hot(v.astype(jnp.int32), g.q, dtype=jnp.float32)
                out[g.name] = v.reshape(*lead, *g.shape, g.q)
            else:
                out[g.name] = v.astype(jnp.float32).reshape(*lead, *g.shape)
    return out


def variable_kinds(model) -> tuple[np.ndarray, np.ndarray]:
    """Per natural variable: (kind index into KINDS, q), from the declared groups."""
    groups = model.variable_groups
    kinds = np.concatenate([np.full(g.size, KINDS.index(g.kind), np.int8) for g in groups])
    qs = np.concatenate([np.full(g.size, g.q, np.int32) for g in groups])
    return kinds, qs


def variable_index(model, name: str) -> np.ndarray:
    """Natural indices of a group's variables, in the group's shape."""
    groups = getattr(model, "variable_groups", None) or ()
    starts, _ = _group_offsets(groups) if groups else (np.zeros(1, np.int64), None)
    for i, g in enumerate(groups):
        if g.name == name:
            return np.arange(starts[i], starts[i + 1]).reshape(g.shape)
    known = ", ".join(repr(g.name) for g in groups) or "none declared"
    raise KeyError(f"no variable group named {name!r}; groups: {known}")


def describe_variable(model, i: int) -> str:
    """'group[index]' of natural variable i of a model with declared variables."""
    groups = getattr(model, "variable_groups", None)
    if not groups:
        return f"variable {i}"
    starts, _ = _group_offsets(groups)
    g = int(np.searchsorted(starts, i, side="right") - 1)
    idx = np.unravel_index(i - starts[g], groups[g].shape)
    label = ", ".join(str(int(k)) for k in idx)
    return f"{groups[g].name}[{label}]"
