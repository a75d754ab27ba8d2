"""The sampler core: pure JAX kernels over int8 states, usable without nnx.

Kernels have one shape, as in blackjax: `state = init(...)`, then
`state, info = step(key, state, model, ...)`; the key comes first, then the
state, then the model. A `model` here is any object with static `blocks`
(`layout.Block`s) and a single-chain `block_logits(x, b)`; tempering also
needs `internal_energy(x)`. The nnx models of `hamon_nnx.models` are such
objects, and so is a plain Python class.

* `gibbs.init(x)` / `gibbs.step(key, state, model, beta, clamp, reference)`:
  one systematic-scan block Gibbs sweep of a batch of chains (C, n), each at
  its own beta; `gibbs.sweep` is the same without the state bookkeeping,
  `gibbs.sweeps(key, x, model, beta, start, stop)` a run of them. A model
  with a `multispin()` kernel (periodic Ising lattices) is swept on packed
  words, 32 spins to a uint32 (`multispin`), packed once per run.
* `tempering.init(x, ladder)` / `tempering.step(key, state, model,
  n_explore=...)`: one non-reversible parallel tempering round of one ladder
  (explore, energies, deterministic even-odd swaps, round trips);
  `tempering.run` drives many rounds of several replica ladders.
* `evidence.stepping_stone`, `diagnostics` (R-hat, ESS), `schedule`
  (barrier, ladders), `observers` (streaming statistics), `random` (exact
  Bernoulli and categorical draws), `multispin` (bit-packed lattice heat
  bath), `explorers` and `clusters` (Swendsen-Wang, Wolff, Houdayer),
  `graph` (colourings), `reference`
  (product references), `layout` (blocks and variable kinds), `device`.

Example: a chain of four spins written without nnx, sampled by scanning
the Gibbs kernel.

    >>> import jax, jax.numpy as jnp
    >>> from hamon_nnx.core import gibbs, layout
    >>> class Chain:  # E = -sum_i s_i s_(i+1); even sites, then odd sites
    ...     blocks = (layout.Block(0, 2, layout.SPIN, 2), layout.Block(2, 4, layout.SPIN, 2))
    ...     def block_logits(self, x, b):  # log P(+1) / P(-1) = 2 * (sum of neighbours)
    ...         s = x.astype(jnp.float32)  # internal order: sites 0, 2, 1, 3
    ...         even, odd = s[:2], s[2:]
    ...         if b == 0:  # sites 0, 2: neighbours 1 | 1, 3
    ...             return 2.0 * jnp.stack([odd[0], odd[0] + odd[1]])
    ...         return 2.0 * jnp.stack([even[0] + even[1], even[1]])  # sites 1, 3
    >>> state = gibbs.init(jnp.ones((8, 4), jnp.int8))
    >>> def body(state, _):
    ...     state, _ = gibbs.step(jax.random.key(0), state, Chain(), jnp.full(8, 0.5))
    ...     return state, state.x
    >>> state, draws = jax.lax.scan(body, state, None, length=100)
    >>> draws.shape, int(state.sweeps)
    ((100, 8, 4), 100)
"""

from . import device as device
from . import diagnostics as diagnostics
from . import evidence as evidence
from . import gibbs as gibbs
from . import graph as graph
from . import layout as layout
from . import multispin as multispin
from . import observers as observers
from . import random as random
from . import reference as reference
from . import schedule as schedule
from . import tempering as tempering
