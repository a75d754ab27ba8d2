"""Graphs of pairwise interactions: validation, lattices, colourings, tables.

Everything here runs once, at model construction, in numpy.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


def validate_edges(n: int, edges) -> np.ndarray:
    """Return edges as an (E, 2) int64 array, or raise naming the problem.

    Raises:
        ValueError: wrong shape, non-integer entries, a node outside 0..n-1,
            a self-loop, or an edge given twice (in either orientation).
    """
    if int(n) != n or n <= 0:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    arr = np.asarray(edges)
    if arr.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"edges must have shape (E, 2), got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise ValueError(f"edges must hold integer node indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    bad = np.argwhere((arr < 0) | (arr >= n))
    if len(bad):
        e = bad[0][0]
        raise ValueError(
            f"edge {e} = {tuple(arr[e].tolist())} references a node outside 0..{n - 1} (n = {n})"
        )
    loops = np.flatnonzero(arr[:, 0] == arr[:, 1])
    if len(loops):
        e = loops[0]
        raise ValueError(f"edge {e} = {tuple(arr[e].tolist())} is a self-loop")
    key = np.sort(arr, axis=1)
    _, first, counts = np.unique(key, axis=0, return_index=True, return_counts=True)
    if np.any(counts > 1):
        dup = key[first[np.argmax(counts > 1)]]
        idx = np.flatnonzero(np.all(key == dup, axis=1))
        raise ValueError(
            f"edge {tuple(dup.tolist())} is repeated (edges {idx.tolist()}); merge the couplings instead"
        )
    return arr


def validate_lattice_shape(shape, periodic: bool) -> tuple[int, ...]:
    """Check a hypercubic lattice shape: 1 to 3 axes, sizes >= 2 (>= 3 if periodic)."""
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    if isinstance(shape, str):
        raise ValueError(f"lattice shape must be a tuple of ints, got {shape!r}")
    try:
        shape = tuple(int(s) for s in shape)
    except (TypeError, ValueError) as err:
        raise ValueError(f"lattice shape must be a tuple of ints, got {shape!r}") from err
    if not 1 <= len(shape) <= 3:
        raise ValueError(f"lattice shape must have 1, 2 or 3 axes, got {len(shape)}: {shape}")
    smallest = 3 if periodic else 2
    if any(s < smallest for s in shape):
        why = " (a periodic axis of size 2 would count each bond twice)" if periodic else ""
        raise ValueError(f"every lattice size must be >= {smallest}{why}, got {shape}")
    return shape


def lattice_edges(shape: tuple[int, ...], periodic: bool) -> tuple[np.ndarray, np.ndarray]:
    """Nearest-neighbour bonds of a hypercubic lattice, row-major site indices.

    Returns:
        (edges, axis): edges (E, 2) from site x to x + e_axis, and the axis
        of each bond.
    """
    idx = np.arange(int(np.prod(shape))).reshape(shape)
    edges, axes = [], []
    for a, size in enumerate(shape):
        nxt = np.roll(idx, -1, axis=a)
        src, dst = idx, nxt
        if not periodic:
            keep = [slice(None)] * len(shape)
            keep[a] = slice(0, size - 1)
            src, dst = idx[tuple(keep)], nxt[tuple(keep)]
        edges.append(np.stack([src.ravel(), dst.ravel()], axis=1))
        axes.append(np.full(src.size, a))
    return np.concatenate(edges), np.concatenate(axes)


def checkerboard_colouring(shape: tuple[int, ...]) -> np.ndarray:
    """Parity of the coordinate sum: a proper 2-colouring when it is one."""
    grids = np.indices(shape)
    return (grids.sum(axis=0) % 2).ravel()


def row_parity(shape: tuple[int, ...]) -> np.ndarray:
    """Checkerboard colour of each row's first site, shaped (*shape[:-1], 1).

    Rows run along the last axis; in a row of parity p the black sites
    (colour 0) sit at last coordinate 2k + p, the white ones at 2k + 1 - p.
    """
    rows = tuple(shape[:-1])
    if not rows:
        return np.zeros((1,), dtype=bool)
    return (np.indices(rows).sum(axis=0) % 2 == 1)[..., None]


def is_proper_colouring(edges: np.ndarray, colours: np.ndarray) -> bool:
    return bool(np.all(colours[edges[:, 0]] != colours[edges[:, 1]]))


def adjacency_lists(n: int, edges: np.ndarray) -> list[list[int]]:
    """Neighbour lists of an undirected graph on n vertices."""
    adjacency = [[] for _ in range(n)]
    for a, b in edges:
        adjacency[a].append(b)
        adjacency[b].append(a)
    return adjacency


def greedy_colouring(n: int, edges: np.ndarray, order: str = "degree") -> np.ndarray:
    """Greedy colouring: each vertex takes the smallest colour its neighbours lack.

    Args:
        n: number of vertices.
        edges: (E, 2) vertex pairs.
        order: "degree" (Welsh-Powell: largest degree first, at most
            max_degree + 1 colours) or "index" (vertex order: optimal on
            row-major lattices of even size).

    Exact 2-colourings of bipartite graphs are not guaranteed
    (`bipartite_colouring` finds them), so callers with a known colouring pass it.
    """
    adjacency = adjacency_lists(n, edges)
    if order == "degree":
        degree = np.array([len(a) for a in adjacency])
        vertices = np.argsort(-degree, kind="stable")
    elif order == "index":
        vertices = range(n)
    else:
        raise ValueError(f"order must be 'degree' or 'index', got {order!r}")
    colours = np.full(n, -1, dtype=np.int64)
    for v in vertices:
        used = {colours[u] for u in adjacency[v]}
        c = 0
        while c in used:
            c += 1
        colours[v] = c
    return colours


def bipartite_colouring(n: int, edges: np.ndarray) -> np.ndarray | None:
    """An exact 2-colouring by breadth-first search, or None if an odd cycle exists."""
    if len(edges) == 0:
        return np.zeros(n, np.int64)
    adjacency = adjacency_lists(n, edges)
    colours = np.full(n, -1, np.int64)
    for root in range(n):
        if colours[root] >= 0:
            continue
        colours[root] = 0
        frontier = [root]
        while frontier:
            nxt = []
            for v in frontier:
                for u in adjacency[v]:
                    if colours[u] < 0:
                        colours[u] = 1 - colours[v]
                        nxt.append(u)
                    elif colours[u] == colours[v]:
                        return None
            frontier = nxt
    return colours


class NeighbourTables(NamedTuple):
    """Padded neighbour tables of a coloured graph, in internal order.

    order[i] is the natural index of internal site i; sites of colour c
    form the contiguous slice [offsets[c], offsets[c+1]). For each internal
    site: neighbour internal indices (padding 0), edge ids (padding E, so
    that an appended zero coupling masks it) and side (0 if the site is
    edges[e, 0], else 1).
    """

    order: np.ndarray
    offsets: tuple[int, ...]
    neighbour: np.ndarray
    edge_id: np.ndarray
    side: np.ndarray


def neighbour_tables(n: int, edges: np.ndarray, colours: np.ndarray) -> NeighbourTables:
    order = np.argsort(colours, kind="stable")
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(n)
    n_colours = int(colours.max()) + 1 if n else 0
    counts = np.bincount(colours, minlength=n_colours)
    offsets = tuple(int(v) for v in np.concatenate([[0], np.cumsum(counts)]))
    n_edges = len(edges)
    # one row per (site, incident edge) entry, both orientations
    site = np.concatenate([edges[:, 0], edges[:, 1]])
    other = np.concatenate([edges[:, 1], edges[:, 0]])
    eid = np.concatenate([np.arange(n_edges), np.arange(n_edges)])
    side = np.concatenate([np.zeros(n_edges, np.int64), np.ones(n_edges, np.int64)])
    degree = np.bincount(site, minlength=n)
    dmax = max(int(degree.max()) if n_edges else 0, 1)
    sort = np.argsort(position[site], kind="stable")
    rows = position[site][sort]
    slot = np.arange(len(rows)) - np.searchsorted(rows, rows)
    neighbour = np.zeros((n, dmax), dtype=np.int32)
    edge_id = np.full((n, dmax), n_edges, dtype=np.int32)
    side_t = np.zeros((n, dmax), dtype=np.int8)
    neighbour[rows, slot] = position[other[sort]]
    edge_id[rows, slot] = eid[sort]
    side_t[rows, slot] = side[sort]
    return NeighbourTables(order.astype(np.int32), offsets, neighbour, edge_id, side_t)
