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

from .conditionals import autodiff_block_logits as autodiff_block_logits
from .conditionals import relaxed_gradient as relaxed_gradient
from .interactions import MAX_DETECTION_COORDINATES as MAX_DETECTION_COORDINATES
from .interactions import _interaction_pairs
from .interactions import detect_interactions as detect_interactions
from .internal_order import _check_colouring, _set_layout, _set_provisional_layout
from .internal_order import colour_variables as colour_variables
from .internal_order import colouring as colouring
from .internal_order import to_internal as to_internal
from .internal_order import to_natural as to_natural
from .multilinear import _check_energy_signature
from .variables import Binary as Binary
from .variables import Categorical as Categorical
from .variables import Spins as Spins
from .variables import VariableGroup as VariableGroup
from .variables import _check_groups, _relaxed_starts, _set_groups, _variable_classes
from .variables import describe_variable as describe_variable
from .variables import has_categorical as has_categorical
from .variables import relax as relax
from .variables import unpack as unpack
from .variables import variable_index as variable_index
from .variables import variable_kinds as variable_kinds


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
    relaxed_start = _relaxed_starts(groups)
    classes, class_list = _variable_classes(groups)
    _set_provisional_layout(model, relaxed_start)
    _check_energy_signature(model)
    pairs = _interaction_pairs(model, interactions, colouring, seed)
    if colouring is None:
        colours = colour_variables(model.n_variables, pairs, classes)
    else:
        colours = _check_colouring(model, colouring, pairs, classes)
    _set_layout(model, groups, classes, class_list, colours, relaxed_start)
