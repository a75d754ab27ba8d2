"""Custom models from an energy function alone: autodiff conditionals.

A user subclasses `hn.EnergyModel`, declares the variables with
`self.declare_variables(...)` and writes `energy(x)` in natural order;
block Gibbs, NRPT, exact enumeration, log Z and training then work without
a hand-written `block_logits`.

The rule that makes one `jax.grad` enough: write the energy as a
*multilinear* polynomial of the spins, binary units and one-hot vectors of
the categorical variables (no power of a variable above one). Every energy
of discrete variables has such a form, and then the relaxed energy, the
same formula evaluated at real-valued spins / units / one-hot vectors, is
affine in each variable, so

* spin s_i:       E(s_i=+1) - E(s_i=-1) = 2 dE/ds_i,  logit = -2 dE/ds_i;
* binary x_i:     E(x_i=1) - E(x_i=0) = dE/dx_i,      logit = -dE/dx_i;
* categorical c:  E(c=k) - E(one-hot = 0) = dE/do_k,  logits = -dE/do.

The derivative of every variable comes out of one gradient at the current
state, and the block's logits are a slice of it.

What breaks the rule, and how to write it instead:

* `s_i**2` (or `s_i * s_i`): it is 1 on every spin state, but its relaxed
  derivative 2 s_i is not 0, so the conditional of s_i comes out wrong.
  Write the constant 1 (it drops out of every conditional); for binary
  units write `x_i` for `x_i**2`; for a one-hot vector `o`, write
  `jnp.sum(o * w)` for `jnp.sum((o * w)**2)` with w squared elementwise.
* anything that only looks at the discrete values: `jnp.where(x == 1, ...)`,
  indexing a table with a state (`J[x_i, x_j]`), `jnp.abs(s)`, `jax.nn.one_hot`
  of a state. Read categorical variables through `self.unpack(x)`, which
  hands the energy one-hot vectors, and contract them with the table
  (`o_i @ J @ o_j`).

`hn.check_model(model)` compares the conditionals with brute force on
random states and names the first variable that breaks the rule.

Blocks: variables whose kinds differ never share a block; within a kind,
two variables share a block only if no interaction scope (a pair or a
higher-order factor) holds both, so that a block's variables are
conditionally independent given the rest. The scopes come from the
`interactions=` the user passes or, for small models, from the sparsity
of the Hessian of the relaxed energy at random points (with random
parameter values, so that a zero parameter does not hide an interaction).
The internal order sorts the variables by block, so each block is a
contiguous slice.
"""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.extend import source_info_util
from jax.extend.core import Literal

from ..core import graph
from ..core.layout import BINARY, CATEGORICAL, KINDS, SPIN, Block
from .structure import Structure

MAX_DETECTION_COORDINATES = 4096
"""Largest relaxed dimension (spins + binary units + q per categorical) for
which blocks are detected from the Hessian; larger models pass `interactions=`."""


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
        shape = tuple(int(s) for s in shape)
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


# -- declaration -------------------------------------------------------------
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


def _scope_pairs(n: int, interactions) -> np.ndarray:
    """All pairs (P, 2) of variables sharing a scope; validates the scopes."""
    if isinstance(interactions, np.ndarray) and interactions.ndim == 2:
        scopes = [interactions]
    else:
        try:
            items = list(interactions)
        except TypeError:
            raise ValueError(
                "interactions must be a sequence of scopes (tuples of variable indices) "
                f"or an (F, k) integer array, got {type(interactions).__name__}"
            ) from None
        by_len: dict[int, list] = {}
        for f, scope in enumerate(items):
            s = np.asarray(scope).reshape(-1)
            if s.size and not np.issubdtype(s.dtype, np.integer):
                raise ValueError(
                    f"interaction {f} = {scope!r} must hold integer variable indices "
                    "(natural order; see variable_index(name))"
                )
            by_len.setdefault(s.size, []).append((f, s.astype(np.int64)))
        scopes = []
        for k, entries in by_len.items():
            arr = np.stack([s for _, s in entries]) if k else np.zeros((len(entries), 0), int)
            scopes.append((np.array([f for f, _ in entries]), arr))
    pairs = []
    for entry in scopes:
        ids, arr = entry if isinstance(entry, tuple) else (np.arange(len(entry)), entry)
        arr = np.asarray(arr)
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"interactions must hold integer variable indices, got {arr.dtype}")
        arr = arr.astype(np.int64)
        bad = np.argwhere((arr < 0) | (arr >= n))
        if len(bad):
            f = int(ids[bad[0][0]])
            raise ValueError(
                f"interaction {f} = {arr[bad[0][0]].tolist()} references a variable outside "
                f"0..{n - 1} (the model has {n} variables)"
            )
        k = arr.shape[1]
        srt = np.sort(arr, axis=1)
        rep = np.flatnonzero(np.any(srt[:, 1:] == srt[:, :-1], axis=1)) if k > 1 else []
        if len(rep):
            f = int(ids[rep[0]])
            raise ValueError(
                f"interaction {f} = {arr[rep[0]].tolist()} names a variable twice; a scope "
                "lists distinct variables"
            )
        for a in range(k):
            for b in range(a + 1, k):
                pairs.append(np.stack([arr[:, a], arr[:, b]], axis=1))
    if not pairs:
        return np.zeros((0, 2), np.int64)
    pairs = np.sort(np.concatenate(pairs), axis=1)
    return np.unique(pairs, axis=0)


def colour_variables(n: int, pairs: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Colour each (kind, q) class so that no interacting pair shares a colour.

    Tries an exact bipartite colouring, greedy in index order and greedy by
    degree (Welsh-Powell), keeping the one with the fewest colours.

    Args:
        n: number of variables.
        pairs: (P, 2) interacting pairs.
        classes: (n,) class index of each variable.

    Returns:
        (n,) colours, numbered from 0 within each class.
    """
    colours = np.zeros(n, np.int64)
    for c in np.unique(classes):
        members = np.flatnonzero(classes == c)
        local = np.full(n, -1, np.int64)
        local[members] = np.arange(len(members))
        sub = pairs[(classes[pairs[:, 0]] == c) & (classes[pairs[:, 1]] == c)]
        sub = local[sub]
        m = len(members)
        candidates = [graph.greedy_colouring(m, sub, "index"), graph.greedy_colouring(m, sub)]
        two = graph.bipartite_colouring(m, sub)
        if two is not None:
            candidates.insert(0, two)
        best = min(candidates, key=lambda col: int(col.max()) if m else 0)
        colours[members] = best
    return colours


def _set_groups(model, groups) -> None:
    """Attach the variable groups (enough for `unpack` and `relax`)."""
    model.variable_groups = groups
    model.n_variables = int(sum(g.size for g in groups))
    starts, rstarts = _group_offsets(groups)
    model.n_relaxed = int(rstarts[-1])


def declare_variables(
    model,
    groups,
    interactions=None,
    colouring=None,
    seed: int = 0,
) -> None:
    """Implementation of `EnergyModel.declare_variables` (see there)."""
    groups = _check_groups(tuple(groups))
    _set_groups(model, groups)
    n = model.n_variables
    starts, rstarts = _group_offsets(groups)
    relaxed_start = np.concatenate(
        [rstarts[i] + np.arange(g.size) * g.width for i, g in enumerate(groups)]
    ).astype(np.int64)
    classes, class_list = _variable_classes(groups)
    # a provisional identity layout so that the energy can be called; concrete
    # even under tracing (hn.load), so the Hessian detection can use it
    with jax.ensure_compile_time_eval():
        model.variable_order = Structure(jnp.arange(n, dtype=jnp.int32))
        model.variable_position = Structure(jnp.arange(n, dtype=jnp.int32))
        model.relaxed_coordinate = Structure(jnp.asarray(relaxed_start, jnp.int32))
    model.natural_order = True
    model.layout_periods = None
    _check_energy_signature(model)
    if interactions is None and colouring is not None:
        pairs = np.zeros((0, 2), np.int64)  # a given colouring is trusted (check_model tests it)
    elif interactions is None:
        pairs = detect_interactions(model, seed=seed)
    else:
        pairs = _scope_pairs(n, interactions)
    if colouring is None:
        colours = colour_variables(n, pairs, classes)
    else:
        colours = _check_colouring(model, colouring, pairs, classes)
    # internal order: class by class, colour by colour; within a block by
    # group and residue class of a periodic colouring (see _strided_layout),
    # then natural order
    periods = _strided_layout(groups, colours)
    group_of = np.concatenate([np.full(g.size, i) for i, g in enumerate(groups)])
    residue = _residues(groups, periods)
    order = np.lexsort((np.arange(n), residue, group_of, colours, classes)).astype(np.int64)
    blocks = []
    start = 0
    keys = list(zip(classes[order], colours[order], strict=True))
    for i in range(1, n + 1):
        if i == n or keys[i] != keys[start]:
            kind, q = class_list[keys[start][0]]
            blocks.append(Block(start, i, kind, q))
            start = i
    model.blocks = tuple(blocks)
    model.layout_periods = periods
    model.layout_pieces = (
        None
        if periods is None
        else tuple(
            tuple(
                dict.fromkeys(
                    zip(group_of[order[blk.slice]], residue[order[blk.slice]], strict=True)
                )
            )
            for blk in blocks
        )
    )
    if periods is not None:  # plain ints: hashable static metadata
        model.layout_pieces = tuple(
            tuple((int(g), int(r)) for g, r in pieces) for pieces in model.layout_pieces
        )
    position = np.argsort(order)
    model.natural_order = bool(np.all(order == np.arange(n)))
    model.variable_order = Structure(jnp.asarray(order, jnp.int32))
    model.variable_position = Structure(jnp.asarray(position, jnp.int32))
    # relaxed offset of the variable at each internal position
    model.relaxed_coordinate = Structure(jnp.asarray(relaxed_start[order], jnp.int32))


def _strided_layout(groups, colours) -> tuple[tuple[int, ...], ...] | None:
    """Per group, the smallest periods (<= 4 per axis) of its colouring, or None.

    When the colour of every variable of a group depends only on its index
    modulo the periods (lattices: checkerboards, sublattices), the internal
    order can be reached by reshapes, transposes and static slices: no
    gathers in the hot loop. None when some group's colouring is not periodic.
    """
    out = []
    start = 0
    for g in groups:
        c = colours[start : start + g.size].reshape(g.shape)
        start += g.size
        options = [[p for p in (1, 2, 3, 4) if size % p == 0] for size in g.shape]
        best = None
        for ps in itertools.product(*options):
            if best is not None and math.prod(ps) >= math.prod(best):
                continue
            split = c.reshape(
                [v for size, p in zip(g.shape, ps, strict=True) for v in (size // p, p)]
            )
            first = split[tuple(v for _ in ps for v in (slice(0, 1), slice(None)))]
            if np.all(split == first):
                best = tuple(ps)
        if best is None:
            return None
        out.append(best)
    return tuple(out)


def _residues(groups, periods) -> np.ndarray:
    """Residue class (row-major over the periods) of every natural variable."""
    if periods is None:
        return np.zeros(sum(g.size for g in groups), np.int64)
    parts = []
    for g, ps in zip(groups, periods, strict=True):
        idx = np.indices(g.shape).reshape(len(g.shape), -1)
        parts.append(np.ravel_multi_index(tuple(i % p for i, p in zip(idx, ps, strict=True)), ps))
    return np.concatenate(parts).astype(np.int64)


def _to_residue_rows(arr, shape, ps, trailing: int):
    """(*lead, size, *trail) -> (*lead, P, size / P, *trail), rows by residue class."""
    lead = arr.shape[: arr.ndim - 1 - trailing]
    trail = arr.shape[arr.ndim - trailing :]
    d, nl = len(shape), len(lead)
    split = [v for size, p in zip(shape, ps, strict=True) for v in (size // p, p)]
    arr = arr.reshape(*lead, *split, *trail)
    outer = [nl + 2 * k for k in range(d)]
    inner = [nl + 2 * k + 1 for k in range(d)]
    rest = list(range(nl + 2 * d, nl + 2 * d + trailing))
    arr = jnp.transpose(arr, [*range(nl), *inner, *outer, *rest])
    n_res = math.prod(ps)
    return arr.reshape(*lead, n_res, math.prod(shape) // n_res, *trail)


def _from_residue_rows(arr, shape, ps, trailing: int):
    """Inverse of `_to_residue_rows`."""
    lead = arr.shape[: arr.ndim - 2 - trailing]
    trail = arr.shape[arr.ndim - trailing :]
    d, nl = len(shape), len(lead)
    arr = arr.reshape(*lead, *ps, *(size // p for size, p in zip(shape, ps, strict=True)), *trail)
    axes = list(range(nl))
    for k in range(d):
        axes += [nl + d + k, nl + k]
    axes += list(range(nl + 2 * d, nl + 2 * d + trailing))
    return jnp.transpose(arr, axes).reshape(*lead, math.prod(shape), *trail)


def _group_rows(model, x, relaxed: bool):
    """Per group, its part of x (natural, or relaxed natural) as residue rows."""
    groups = model.variable_groups
    starts, rstarts = _group_offsets(groups)
    rows = []
    for i, (g, ps) in enumerate(zip(groups, model.layout_periods, strict=True)):
        if relaxed:
            part = x[..., rstarts[i] : rstarts[i + 1]]
            trailing = 1 if g.kind == CATEGORICAL else 0
            if trailing:
                part = part.reshape(*part.shape[:-1], g.size, g.q)
        else:
            part, trailing = x[..., starts[i] : starts[i + 1]], 0
        rows.append(_to_residue_rows(part, g.shape, ps, trailing))
    return rows


def _block_from_rows(model, rows, b: int, trailing: int):
    pieces = [
        rows[g][(..., r, slice(None)) + (slice(None),) * trailing]
        for g, r in model.layout_pieces[b]
    ]
    return pieces[0] if len(pieces) == 1 else jnp.concatenate(pieces, axis=-1 - trailing)


def to_internal(model, x):
    """Natural (..., n) -> internal order: reshapes and slices when strided, else a gather."""
    if model.natural_order:
        return x
    if model.layout_periods is None:
        return jnp.take(x, model.variable_order[...], axis=-1)
    rows = _group_rows(model, x, relaxed=False)
    parts = [_block_from_rows(model, rows, b, 0) for b in range(len(model.blocks))]
    return jnp.concatenate(parts, axis=-1)


def to_natural(model, x):
    """Internal (..., n) -> natural order (inverse of `to_internal`)."""
    if model.natural_order:
        return x
    if model.layout_periods is None:
        return jnp.take(x, model.variable_position[...], axis=-1)
    pieces: dict[tuple[int, int], jax.Array] = {}
    for blk, block_pieces in zip(model.blocks, model.layout_pieces, strict=True):
        m = blk.size // len(block_pieces)
        for k, piece in enumerate(block_pieces):
            a = blk.start + k * m
            pieces[piece] = x[..., a : a + m]
    parts = []
    for i, (g, ps) in enumerate(zip(model.variable_groups, model.layout_periods, strict=True)):
        rows = jnp.stack([pieces[(i, r)] for r in range(math.prod(ps))], axis=-2)
        parts.append(_from_residue_rows(rows, g.shape, ps, 0))
    return parts[0] if len(parts) == 1 else jnp.concatenate(parts, axis=-1)


def colouring(model) -> list[int]:
    """The block of every variable (natural order) of a model with declared variables.

    Pass it back as `declare_variables(..., colouring=...)` (e.g. from a
    config) to rebuild the same blocks without detecting them again.

    Example:
        >>> import hamon_nnx as hn
        >>> from hamon_nnx.models.custom import colouring
        >>> colouring(hn.PlaquetteIsing((4, 4)))[:4]
        [0, 1, 0, 1]
    """
    order = np.asarray(model.variable_order[...])
    out = np.empty(model.n_variables, np.int64)
    for b, blk in enumerate(model.blocks):
        out[order[blk.start : blk.stop]] = b
    return out.tolist()


def _check_colouring(model, colouring, pairs, classes) -> np.ndarray:
    n = model.n_variables
    colours = np.asarray(colouring)
    if colours.shape != (n,) or not np.issubdtype(colours.dtype, np.integer):
        raise ValueError(
            f"colouring must be ({n},) integers (a block id per variable, natural order), "
            f"got shape {colours.shape} and dtype {colours.dtype}"
        )
    if np.any(colours < 0):
        raise ValueError("colouring must hold non-negative integers")
    same = (colours[pairs[:, 0]] == colours[pairs[:, 1]]) & (
        classes[pairs[:, 0]] == classes[pairs[:, 1]]
    )
    if same.any():
        i, j = pairs[np.argmax(same)]
        raise ValueError(
            f"the colouring puts variables {i} ({describe_variable(model, i)}) and {j} "
            f"({describe_variable(model, j)}) in one block (colour {colours[i]}), but they "
            "share an interaction, so they are not conditionally independent"
        )
    return colours.astype(np.int64)


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


def _check_energy_signature(model) -> None:
    """The energy maps (n,) states and (N,) relaxed vectors to float scalars."""
    name = type(model).__name__
    tests = [
        ("a state of shape", jax.ShapeDtypeStruct((model.n_variables,), jnp.int8)),
        ("a relaxed state of shape", jax.ShapeDtypeStruct((model.n_relaxed,), jnp.float32)),
        ("a batch of states of shape", jax.ShapeDtypeStruct((3, model.n_variables), jnp.int8)),
    ]
    for what, arg in tests:
        try:
            out = jax.eval_shape(model.energy, arg)
        except AttributeError as err:
            raise AttributeError(
                f"{name}.energy failed on {what} {arg.shape}: {err}. declare_variables "
                "calls the energy once to check it: create the parameters before calling it"
            ) from err
        except Exception as err:
            raise ValueError(
                f"{name}.energy failed on {what} {arg.shape} ({type(err).__name__}: {err}). "
                "An energy must accept int8 states (..., n) and float32 relaxed states "
                "(..., n_relaxed); read the variables with self.unpack(x)"
            ) from err
        want = arg.shape[:-1]
        if out.shape != want:
            raise ValueError(
                f"{name}.energy must return one value per state: shape {want} for {what} "
                f"{arg.shape}, got {out.shape}"
            )
        if not jnp.issubdtype(out.dtype, jnp.floating):
            raise ValueError(
                f"{name}.energy must return floats (the autodiff conditionals differentiate "
                f"it), got dtype {out.dtype}"
            )
    _check_relaxed_energy(model)


# primitives that only see the discrete values: on the relaxed state they
# break the multilinear rule (their derivative is 0 or undefined)
_DISCRETE_PRIMITIVES = frozenset(
    "eq ne lt le gt ge sign floor ceil round abs max min reduce_max reduce_min argmax "
    "argmin sort clamp rem".split()
)
_INDEX_PRIMITIVES = frozenset(
    "gather dynamic_slice dynamic_update_slice scatter scatter-add scatter_add".split()
)


def _discrete_use(jaxpr, dependent: set) -> object | None:
    """The first equation that compares, casts to integers or indexes with the state."""
    for eqn in jaxpr.eqns:
        uses = [not isinstance(v, Literal) and v in dependent for v in eqn.invars]
        if not any(uses):
            continue
        name = eqn.primitive.name
        if name in _DISCRETE_PRIMITIVES:
            return eqn
        if name == "convert_element_type" and not jnp.issubdtype(
            eqn.params["new_dtype"], jnp.floating
        ):
            return eqn
        if name in _INDEX_PRIMITIVES and any(uses[1:]):
            if name not in ("dynamic_update_slice", "scatter", "scatter-add", "scatter_add") or any(
                uses[2:]
            ):
                return eqn
        if name == "select_n" and uses[0]:
            return eqn
        for param in eqn.params.values():
            subs = param if isinstance(param, (tuple, list)) else (param,)
            for sub in subs:
                inner = getattr(sub, "jaxpr", sub)
                if not hasattr(inner, "eqns"):
                    continue
                invars = inner.invars
                if len(invars) == len(eqn.invars):
                    inner_dep = {w for w, u in zip(invars, uses, strict=True) if u}
                else:  # cond, while, scan: any dependent input taints every input
                    inner_dep = set(invars)
                found = _discrete_use(inner, inner_dep)
                if found is not None:
                    return found
        dependent.update(eqn.outvars)
    return None


def _check_relaxed_energy(model) -> None:
    """Refuse an energy that compares, casts or indexes with the (relaxed) state."""
    arg = jax.ShapeDtypeStruct((model.n_relaxed,), jnp.float32)
    jaxpr = jax.make_jaxpr(model.energy)(arg).jaxpr
    eqn = _discrete_use(jaxpr, set(jaxpr.invars))
    if eqn is None:
        return
    summary = source_info_util.summarize(eqn.source_info)
    where = f" at {summary}" if summary.strip(" .") else ""
    raise ValueError(
        f"{type(model).__name__}.energy applies `{eqn.primitive.name}` to the state{where}. "
        "The autodiff conditionals differentiate the energy at real-valued (relaxed) states, "
        "so it must be a multilinear polynomial of the spins / binary units / one-hot "
        "vectors: do not compare, cast to integers, index with, or take abs/max of the "
        "state; read categorical variables as one-hot vectors through self.unpack(x) and "
        "contract them with tables (o_i @ J @ o_j). Or write block_logits by hand."
    )


# -- relaxation ----------------------------------------------------------------
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


# -- Hessian sparsity ------------------------------------------------------------
def _random_relaxed(model, key) -> jax.Array:
    """A random interior point of the relaxed domain."""
    parts = []
    for g in model.variable_groups:
        key, sub = jax.random.split(key)
        size = g.size * g.width
        lo = -1.0 if g.kind == SPIN else 0.0
        parts.append(jax.random.uniform(sub, (size,), jnp.float32, lo, 1.0))
    return jnp.concatenate(parts)


def detect_interactions(model, seed: int = 0, n_points: int = 2) -> np.ndarray:
    """Interacting pairs (P, 2) from the Hessian sparsity of the relaxed energy.

    The Hessian is evaluated at `n_points` random relaxed states, with the
    model's parameters and with random ones (a parameter that happens to be
    0 must not hide an interaction); any nonzero entry between two variables
    makes them interact. A nonzero second derivative within one variable
    means the energy is not multilinear: a ValueError names the variable.
    """
    n_relaxed = model.n_relaxed
    if n_relaxed > MAX_DETECTION_COORDINATES:
        raise ValueError(
            f"{type(model).__name__} has {n_relaxed} relaxed coordinates, more than "
            f"MAX_DETECTION_COORDINATES = {MAX_DETECTION_COORDINATES}: detecting its blocks "
            "from the Hessian would be slow; pass interactions=[scope, ...] (tuples of the "
            "variable indices of every pair or higher-order factor) to declare_variables"
        )
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    traced = any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves((params, rest)))
    if traced:
        # built under tracing (hn.load rebuilds models under nnx.eval_shape): the
        # pattern needs no actual values, so detect it with concrete random ones
        if any(
            isinstance(leaf, jax.core.Tracer) and not jnp.issubdtype(leaf.dtype, jnp.floating)
            for leaf in jax.tree.leaves(rest)
        ):
            raise ValueError(
                f"{type(model).__name__}: blocks cannot be detected from the Hessian while "
                "the model is traced and holds non-float state; pass interactions= to "
                "declare_variables, or colouring= (e.g. keep "
                "hamon_nnx.models.custom.colouring(model) in the model's config)"
            )
    # eager even inside a trace (hn.load's nnx.eval_shape): the pattern is read on the host
    with jax.ensure_compile_time_eval():
        return _detect(model, graphdef, params, rest, seed, n_points, traced)


def _detect(model, graphdef, params, rest, seed, n_points, traced):
    n_relaxed = model.n_relaxed
    key = jax.random.key(seed)
    if traced:
        rest = jax.tree.map(
            lambda a: jnp.ones(a.shape, a.dtype) if isinstance(a, jax.core.Tracer) else a, rest
        )

    def energy(p, r):
        return nnx.merge(graphdef, p, rest).energy(r)

    hessian = jax.jit(jax.hessian(energy, argnums=1))
    param_sets = [] if traced else [params]
    for k in range(n_points):
        leaves, treedef = jax.tree.flatten(params)
        keys = jax.random.split(jax.random.fold_in(key, 1000 + k), max(len(leaves), 1))
        rand = [
            jax.random.normal(kk, jnp.shape(a), jnp.float32).astype(a.dtype)
            if jnp.issubdtype(jnp.asarray(a).dtype, jnp.floating)
            else a
            for kk, a in zip(keys, leaves, strict=False)
        ]
        param_sets.append(jax.tree.unflatten(treedef, rand))
    groups = model.variable_groups
    var_of = np.concatenate(
        [
            np.repeat(np.arange(a, a + g.size), g.width)
            for g, a in zip(groups, _group_offsets(groups)[0], strict=False)
        ]
    )
    pattern = np.zeros((n_relaxed, n_relaxed), bool)
    evaluated = 0
    for i, p in enumerate(param_sets):
        for k in range(n_points):
            r = _random_relaxed(model, jax.random.fold_in(key, 10 * i + k))
            h = np.asarray(hessian(p, r))
            if not np.all(np.isfinite(h)):
                continue
            evaluated += 1
            nz = h != 0
            same = nz & (var_of[:, None] == var_of[None, :])
            if same.any():
                a, b = np.argwhere(same)[0]
                v = int(var_of[a])
                raise ValueError(
                    f"{type(model).__name__}.energy is not multilinear in variable {v} "
                    f"({describe_variable(model, v)}): its relaxed second derivative is "
                    f"{h[a, b]:.4g} at a random point, where a multilinear energy has 0. "
                    "Write powers of a variable out: s**2 = 1 for a spin, x**2 = x for a "
                    "binary unit, and contract one-hot vectors linearly (see "
                    "hamon_nnx.models.custom)"
                )
            pattern |= nz
    if evaluated == 0:
        raise ValueError(
            f"{type(model).__name__}.energy has a non-finite Hessian at every random point; "
            "pass interactions= to declare_variables"
        )
    rows, cols = np.nonzero(pattern)
    pairs = np.stack([var_of[rows], var_of[cols]], axis=1)
    pairs = pairs[pairs[:, 0] < pairs[:, 1]]
    return np.unique(pairs, axis=0) if len(pairs) else np.zeros((0, 2), np.int64)
