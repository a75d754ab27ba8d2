"""Explorers: the local move a tempering round (and `hn.sample`) makes.

An explorer is a pure kernel over a batch of chains, each at its own beta:

    x = explorer(key, x, model, beta, clamp=None, reference=None)

with x (C, n) int8 internal-order states, beta (C,), a `gibbs.Clamp` and
the product reference of the tempered path (logits per block). It leaves
pi_beta(x) ~ exp(-beta E(x) - (1 - beta) E_ref(x)) invariant, keeps
clamped variables, and draws from counters per chain (a chain's moves never
depend on how many chains run beside it).

* `GIBBS`: one systematic-scan block Gibbs sweep (`core.gibbs.sweep`), for
  every model; the default.
* `SWENDSEN_WANG`, `WOLFF`: cluster updates (`core.clusters`) for pairwise
  Ising models and ferromagnetic delta-coupled Potts models; near a
  critical point and in ordered phases they decorrelate in a few updates
  where Gibbs needs hundreds of sweeps.
* `Cycle(parts)`: the parts one after the other, e.g. "swendsen_wang+gibbs".

Example: below the critical point a block Gibbs chain keeps its
magnetization for thousands of sweeps; Swendsen-Wang flips it about every
other update.

    >>> import jax, numpy as np, hamon_nnx as hn
    >>> m = hn.IsingModel.lattice((16, 16), coupling=0.6)
    >>> s = hn.sample(m, jax.random.key(0), n_samples=200, n_chains=2, explorer="swendsen_wang")
    >>> sign = np.sign(np.asarray(s, np.float64).mean(axis=-1))
    >>> bool(np.mean(sign[:, 1:] != sign[:, :-1]) > 0.3)
    True

Explorers are frozen dataclasses (hashable: compiled programs take them
as static arguments). `cost` is the work of one update in Gibbs sweeps,
a fixed number (measured once, see `Explorer.cost`), so the tuner's
choice by ESS per unit of work never reads a clock: same key, same choice.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from jax import lax

from . import clusters, gibbs


def _joined(reference):
    return None if reference is None else jnp.concatenate([r.reshape(-1) for r in reference])


@dataclasses.dataclass(frozen=True)
class Explorer:
    """A local move; subclasses define `__call__`, `name` and `cost`."""

    name = "explorer"

    def __call__(self, key, x, model, beta, clamp=None, reference=None):
        raise NotImplementedError

    def run(self, key, x, model, beta, start, stop, clamp=None, reference=None):
        """Updates t = start .. stop - 1 (traced bounds), update t drawing from `fold_in(key, t)`."""

        def update(t, x):
            return self(jax.random.fold_in(key, t), x, model, beta, clamp, reference)

        return lax.fori_loop(start, stop, update, x)

    def cost(self, model, reference=None) -> float:
        """Work of one update in Gibbs sweeps of `model` (fixed numbers, never timed)."""
        return 1.0

    def problem(self, model) -> str | None:
        """Why this explorer cannot run on `model`, or None."""
        return None

    def __str__(self) -> str:
        return self.name


@dataclasses.dataclass(frozen=True)
class Gibbs(Explorer):
    """One systematic-scan block Gibbs sweep (the streams of `core.gibbs.sweep`).

    Models with a multispin kernel (periodic Ising lattices) sweep 32 spins
    to a word (`core.multispin`); `Gibbs(packed=False)` keeps the int8
    kernel (same law, other draws).
    """

    packed: bool = True
    name = "gibbs"

    def __call__(self, key, x, model, beta, clamp=None, reference=None):
        return gibbs.sweep(key, x, model, beta, clamp, reference, self.packed)

    def run(self, key, x, model, beta, start, stop, clamp=None, reference=None):
        return gibbs.sweeps(key, x, model, beta, start, stop, clamp, reference, self.packed)

    def cost(self, model, reference=None) -> float:
        """1 (the unit), or less on packed words (`multispin.Lattice.sweep_cost`)."""
        kernel = gibbs.multispin_kernel(model, reference, self.packed)
        return 1.0 if kernel is None else kernel.lattice.sweep_cost


@dataclasses.dataclass(frozen=True)
class _Cluster(Explorer):
    # The work of one cluster update in Gibbs sweeps of the same model,
    # measured on the project's 2-core AMD EPYC (jitted loops of 100-200
    # updates): Ising 32x32, 26 chains at betas 0..0.5: 1.66 ms on the grid
    # (bonds by array shifts), 3.6 ms on an edge list (gathers and
    # scatters), against 0.125 ms a sweep; q = 3 Potts 32x32, 8 chains at
    # beta_c: 0.64 ms (grid) and 1.26 ms (edges) against 0.30 / 0.38 ms a
    # sweep (a Potts sweep is dearer, so the ratio is smaller). Fixed
    # numbers keep tuning deterministic; on other machines the ratios move
    # a little, the choice with them only near a tie.
    # Costs count int8 Gibbs sweeps even where Gibbs runs on packed words
    # (`Gibbs.cost` is then below 1).
    ISING_COST = {True: 13.0, False: 30.0}  # by cluster_grid()
    POTTS_COST = {True: 2.0, False: 3.5}

    def cost(self, model, reference=None) -> float:
        grid = bool(getattr(model, "cluster_grid", lambda: False)())
        spins = model.blocks[0].kind == "spin"
        return (self.ISING_COST if spins else self.POTTS_COST)[grid]

    def problem(self, model) -> str | None:
        return (
            model.cluster_problem()
            if hasattr(model, "cluster_problem")
            else (f"{type(model).__name__} does not define cluster_bonds()")
        )


@dataclasses.dataclass(frozen=True)
class SwendsenWang(_Cluster):
    """Swendsen-Wang: every FK cluster redrawn from its heat bath (`core.clusters`)."""

    name = "swendsen_wang"

    def __call__(self, key, x, model, beta, clamp=None, reference=None):
        return clusters.swendsen_wang(key, x, model, beta, clamp, _joined(reference))


@dataclasses.dataclass(frozen=True)
class Wolff(_Cluster):
    """Wolff: the FK cluster of one random site flipped by Metropolis (`core.clusters`)."""

    name = "wolff"

    def __call__(self, key, x, model, beta, clamp=None, reference=None):
        return clusters.wolff(key, x, model, beta, clamp, _joined(reference))


@dataclasses.dataclass(frozen=True)
class Cycle(Explorer):
    """The parts one after the other; part k draws from `fold_in(key, k)`."""

    parts: tuple[Explorer, ...] = ()

    @property
    def name(self) -> str:  # type: ignore[override]
        return "+".join(p.name for p in self.parts)

    def __call__(self, key, x, model, beta, clamp=None, reference=None):
        for k, part in enumerate(self.parts):
            x = part(jax.random.fold_in(key, k), x, model, beta, clamp, reference)
        return x

    def cost(self, model, reference=None) -> float:
        return sum(p.cost(model, reference) for p in self.parts)

    def problem(self, model) -> str | None:
        return next((p.problem(model) for p in self.parts if p.problem(model)), None)


@dataclasses.dataclass(frozen=True)
class Choice(Explorer):
    """Several explorers in one compiled program; `select(which)` picks one at run time.

    The tuner compares candidate explorers on the same model: as one static
    `Choice` the candidates compile once, together, instead of one program
    each, and the plan that samples afterwards runs the same program. A run
    of `select(k)` draws exactly what `parts[k]` draws alone (`lax.switch`
    over the parts' `run`s, the same keys).
    """

    parts: tuple[Explorer, ...] = ()
    name = "choice"

    def select(self, which) -> Explorer:
        """The explorer `parts[which]`, `which` a traced int32 (inside a program)."""
        return _Selected(self.parts, which)

    def cost(self, model, reference=None) -> float:
        raise TypeError("a Choice has no cost of its own: ask the selected part")


class _Selected(Explorer):
    """`Choice.select`: a traced pick among parts (built inside a traced program)."""

    parts: tuple[Explorer, ...]
    which: jax.Array

    def __init__(self, parts, which):
        object.__setattr__(self, "parts", parts)
        object.__setattr__(self, "which", which)

    def __call__(self, key, x, model, beta, clamp=None, reference=None):
        branches = [lambda x, p=p: p(key, x, model, beta, clamp, reference) for p in self.parts]
        return lax.switch(self.which, branches, x)

    def run(self, key, x, model, beta, start, stop, clamp=None, reference=None):
        def branch(part):
            return lambda x: part.run(key, x, model, beta, start, stop, clamp, reference)

        return lax.switch(self.which, [branch(p) for p in self.parts], x)


def multispin(explorer: Explorer, model, reference=None) -> bool:
    """Whether `explorer` makes Gibbs sweeps of `model` on packed words (`core.multispin`)."""
    parts = explorer.parts if isinstance(explorer, Cycle) else (explorer,)
    sweeps = any(isinstance(p, Gibbs) and p.packed for p in parts)
    return sweeps and gibbs.multispin_kernel(model, reference) is not None


GIBBS = Gibbs()
SWENDSEN_WANG = SwendsenWang()
WOLFF = Wolff()
NAMES = {e.name: e for e in (GIBBS, SWENDSEN_WANG, WOLFF)}


def resolve(explorer) -> Explorer:
    """An Explorer from a name ("gibbs", "swendsen_wang", "wolff", parts
    joined by "+") or an Explorer; None is Gibbs."""
    if explorer is None:
        return GIBBS
    if isinstance(explorer, Explorer):
        return explorer
    if isinstance(explorer, str):
        parts = explorer.split("+")
        unknown = [p for p in parts if p not in NAMES]
        if unknown:
            raise ValueError(
                f"unknown explorer {unknown[0]!r}; expected one of {sorted(NAMES)} "
                "or parts joined by '+' (e.g. 'swendsen_wang+gibbs')"
            )
        return NAMES[parts[0]] if len(parts) == 1 else Cycle(tuple(NAMES[p] for p in parts))
    raise TypeError(f"explorer must be a name or an Explorer, got {type(explorer).__name__}")


def check(explorer, model) -> Explorer:
    """`resolve(explorer)`, or a ValueError saying why it cannot run on `model`."""
    explorer = resolve(explorer)
    problem = explorer.problem(model)
    if problem:
        raise ValueError(f"explorer {explorer.name!r} cannot run on this model: {problem}")
    return explorer


def candidates(model) -> tuple[Explorer, ...]:
    """The explorers the tuner compares on `model`: Gibbs, plus Swendsen-Wang
    where the model supports it.

    Wolff is left out: on the device it draws every bond like Swendsen-Wang
    and moves one cluster, and in tempering it scored 0.01-0.07 of the best
    (32x32 Ising at beta 0.5: its hot slots barely move); pass
    `explorer="wolff"` to use it. Models with `tune_clusters = False`
    (fully connected ones: n^2 / 2 bonds, clusters that percolate at once)
    are tuned with Gibbs only; they can still ask for a cluster explorer.
    """
    if SWENDSEN_WANG.problem(model) is None and getattr(model, "tune_clusters", True):
        return (GIBBS, SWENDSEN_WANG)
    return (GIBBS,)
