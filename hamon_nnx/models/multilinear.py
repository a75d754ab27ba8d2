"""Checks of an energy-only model's energy before its gradient is trusted.

`declare_variables` calls `_check_energy_signature`: the energy must map
int8 states and float32 relaxed states to one float per state, and, read
from its jaxpr, must not compare, cast to integers or index with the state
(operations that see only the discrete values break the multilinear rule
of `hamon_nnx.models.custom`). The error names the primitive and where the
energy applies it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
from jax.extend import source_info_util
from jax.extend.core import Literal

if TYPE_CHECKING:
    from jax.extend.core import JaxprEqn


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


def _discrete_use(jaxpr, dependent: set) -> JaxprEqn | None:
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
