"""Blocks of an energy-only model and its internal order.

Variables whose kinds differ never share a block; within a kind, two
variables share a block only if they do not interact, so that a block's
variables are conditionally independent given the rest: a colouring of the
interaction graph per (kind, q) class (`colour_variables`, or a given
`colouring` checked by `_check_colouring`). The internal order sorts the
variables by block, so each block is a contiguous slice. When every group's
colouring is periodic (lattices), `to_internal` / `to_natural` are
reshapes, transposes and static slices; otherwise a gather.
"""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np

from ..core import graph
from ..core.layout import CATEGORICAL, Block
from .structure import Structure
from .variables import _group_offsets, describe_variable


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


def _set_provisional_layout(model, relaxed_start) -> None:
    """Attach the identity order, so that the energy can be called before the blocks exist."""
    n = model.n_variables
    # a provisional identity layout so that the energy can be called; concrete
    # even under tracing (hn.load), so the Hessian detection can use it
    with jax.ensure_compile_time_eval():
        model.variable_order = Structure(jnp.arange(n, dtype=jnp.int32))
        model.variable_position = Structure(jnp.arange(n, dtype=jnp.int32))
        model.relaxed_coordinate = Structure(jnp.asarray(relaxed_start, jnp.int32))
    model.natural_order = True
    model.layout_periods = None


def _set_layout(model, groups, classes, class_list, colours, relaxed_start) -> None:
    """Attach the blocks and the internal order that sorts the variables by block."""
    n = model.n_variables
    # internal order: class by class, colour by colour; within a block by
    # group and residue class of a periodic colouring (see _strided_layout),
    # then natural order
    periods = _strided_layout(groups, colours)
    group_of = np.concatenate([np.full(g.size, i) for i, g in enumerate(groups)])
    residue = _residues(groups, periods)
    order = np.lexsort((np.arange(n), residue, group_of, colours, classes)).astype(np.int64)
    model.blocks = _blocks(order, classes, colours, class_list)
    model.layout_periods = periods
    model.layout_pieces = _layout_pieces(model.blocks, periods, group_of[order], residue[order])
    position = np.argsort(order)
    model.natural_order = bool(np.all(order == np.arange(n)))
    model.variable_order = Structure(jnp.asarray(order, jnp.int32))
    model.variable_position = Structure(jnp.asarray(position, jnp.int32))
    # relaxed offset of the variable at each internal position
    model.relaxed_coordinate = Structure(jnp.asarray(relaxed_start[order], jnp.int32))


def _blocks(order, classes, colours, class_list) -> tuple[Block, ...]:
    """One block per run of equal (class, colour) in the internal order."""
    n = len(order)
    blocks = []
    start = 0
    keys = list(zip(classes[order], colours[order], strict=True))
    for i in range(1, n + 1):
        if i == n or keys[i] != keys[start]:
            kind, q = class_list[keys[start][0]]
            blocks.append(Block(start, i, kind, q))
            start = i
    return tuple(blocks)


def _layout_pieces(blocks, periods, group_of, residue):
    """Per block, its (group, residue class) pieces in order (plain ints); None if not strided.

    `group_of` and `residue` are given in internal order.
    """
    if periods is None:
        return None
    # plain ints: hashable static metadata
    return tuple(
        tuple(
            (int(g), int(r))
            for g, r in dict.fromkeys(zip(group_of[blk.slice], residue[blk.slice], strict=True))
        )
        for blk in blocks
    )


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
