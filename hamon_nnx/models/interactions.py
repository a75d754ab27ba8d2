"""The interactions of an energy-only model: declared scopes or Hessian detection.

Two variables interact when some term of the energy (a pair or a
higher-order factor) holds both. The pairs come from the `interactions=`
scopes passed to `declare_variables` (`_scope_pairs`) or, for small models,
from the sparsity of the Hessian of the relaxed energy at random points,
with random parameter values so that a zero parameter does not hide an
interaction (`detect_interactions`). A nonzero second derivative within one
variable means the energy is not multilinear, and is refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ..core.layout import SPIN
from .variables import _group_offsets, describe_variable

if TYPE_CHECKING:
    import jax.core  # the Tracer class checked below

MAX_DETECTION_COORDINATES = 4096
"""Largest relaxed dimension (spins + binary units + q per categorical) for
which blocks are detected from the Hessian; larger models pass `interactions=`."""


def _scope_pairs(n: int, interactions) -> np.ndarray:
    """All pairs (P, 2) of variables sharing a scope; validates the scopes."""
    pairs = []
    for ids, arr in _scope_arrays(interactions):
        arr = _checked_scopes(n, ids, arr)
        k = arr.shape[1]
        for a in range(k):
            for b in range(a + 1, k):
                pairs.append(np.stack([arr[:, a], arr[:, b]], axis=1))
    if not pairs:
        return np.zeros((0, 2), np.int64)
    pairs = np.sort(np.concatenate(pairs), axis=1)
    return np.unique(pairs, axis=0)


def _scope_arrays(interactions) -> list:
    """The scopes as (interaction ids, (F, k) array) per scope length k."""
    if isinstance(interactions, np.ndarray) and interactions.ndim == 2:
        return [(np.arange(len(interactions)), interactions)]
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
    return scopes


def _checked_scopes(n: int, ids, arr) -> np.ndarray:
    """The (F, k) scopes as int64, refusing non-integers, out-of-range or repeated variables."""
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
    return arr


def _interaction_pairs(model, interactions, colouring, seed: int) -> np.ndarray:
    """The interacting pairs (P, 2): declared, detected, or none under a given colouring."""
    if interactions is None and colouring is not None:
        return np.zeros((0, 2), np.int64)  # a given colouring is trusted (check_model tests it)
    if interactions is None:
        return detect_interactions(model, seed=seed)
    return _scope_pairs(model.n_variables, interactions)


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
    """The pairs of `detect_interactions`, from the Hessians at random points (eager)."""
    key = jax.random.key(seed)
    if traced:
        rest = _concrete(rest)

    def energy(p, r):
        return nnx.merge(graphdef, p, rest).energy(r)

    hessian = jax.jit(jax.hessian(energy, argnums=1))
    param_sets = ([] if traced else [params]) + _random_parameters(params, key, n_points)
    var_of = _coordinate_variables(model.variable_groups)
    pattern = np.zeros((model.n_relaxed, model.n_relaxed), bool)
    evaluated = 0
    for i, p in enumerate(param_sets):
        for k in range(n_points):
            r = _random_relaxed(model, jax.random.fold_in(key, 10 * i + k))
            h = np.asarray(hessian(p, r))
            if not np.all(np.isfinite(h)):
                continue
            evaluated += 1
            nz = h != 0
            _check_multilinear(model, h, nz, var_of)
            pattern |= nz
    if evaluated == 0:
        raise ValueError(
            f"{type(model).__name__}.energy has a non-finite Hessian at every random point; "
            "pass interactions= to declare_variables"
        )
    return _pattern_pairs(pattern, var_of)


def _concrete(rest):
    """The non-parameter state with every traced leaf replaced by ones of its shape."""
    return jax.tree.map(
        lambda a: jnp.ones(a.shape, a.dtype) if isinstance(a, jax.core.Tracer) else a, rest
    )


def _random_parameters(params, key, n_points: int) -> list:
    """`n_points` copies of the parameters with standard normal floats (others kept)."""
    param_sets = []
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
    return param_sets


def _coordinate_variables(groups) -> np.ndarray:
    """The natural variable of every relaxed coordinate."""
    return np.concatenate(
        [
            np.repeat(np.arange(a, a + g.size), g.width)
            for g, a in zip(groups, _group_offsets(groups)[0], strict=False)
        ]
    )


def _check_multilinear(model, h, nz, var_of) -> None:
    """Refuse a nonzero second derivative within one variable (a non-multilinear energy)."""
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


def _pattern_pairs(pattern, var_of) -> np.ndarray:
    """The distinct variable pairs (i < j) of the nonzero Hessian entries."""
    rows, cols = np.nonzero(pattern)
    pairs = np.stack([var_of[rows], var_of[cols]], axis=1)
    pairs = pairs[pairs[:, 0] < pairs[:, 1]]
    return np.unique(pairs, axis=0) if len(pairs) else np.zeros((0, 2), np.int64)
