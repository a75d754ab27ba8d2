"""Non-reversible parallel tempering (Syed, Bouchard-Cote, Deligiannidis and
Doucet 2021, arXiv:1905.02939): the round kernel and its state.

Chains sit at the slots of an increasing ladder 0 = beta_0 < ... < beta_{N-1}
= 1 on the path pi_beta(x) ~ exp(-E_ref(x) - beta V(x)), V = E - E_ref, from
a product reference (uniform by default) to the model. A round:

1. explore: `n_explore` updates of every chain at its beta by the explorer
   (`core.explorers`: block Gibbs sweeps by default, or cluster updates);
2. one energy V per chain;
3. deterministic even-odd swaps (DEO): on even rounds the pairs (0,1),
   (2,3), ..., on odd rounds (1,2), (3,4), ... all try to swap at once with
   acceptance min(1, exp((beta_{i+1} - beta_i)(V_{i+1} - V_i))).

States move between slots, so a slot always holds the chain at its beta;
`replica[i]` says which replica is at slot i (the index process). A round
trip is a replica's journey from the reference to the target and back.
The round counter lives in the state and seeds each round's randomness, so
running R1 rounds then R2 more is the same as running R1 + R2 at once.

`run` advances R independent ladders (replicas) together: every field of
the state has a leading replica axis, and replica r draws from
`fold_in(key, r)`. Replicas give R-hat across ladders and a log Z error bar
that sees the spread between them.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from . import clusters, gibbs
from . import explorers as explorers_lib
from . import reference as ref_lib


class NRPTState(NamedTuple):
    """Everything a run needs to continue; a pytree of arrays."""

    # shapes of one ladder; `run` takes states with a leading replica axis R
    x: jax.Array  # (N, n) int8 internal-order states, slot i at ladder[i]
    ladder: jax.Array  # (N,) float32, increasing from 0 to 1
    replica: jax.Array  # (N,) int32: replica id at each slot
    last_end: jax.Array  # (N,) int8 per replica: -1 none yet, 0 reference, 1 target
    round: jax.Array  # () int32: rounds run so far (sets DEO parity)
    rejection: jax.Array  # (N-1,) float32: sum over rounds of 1 - acceptance
    n_stats: jax.Array  # () int32: rounds summed in `rejection`
    round_trips: jax.Array  # () int32
    restarts: jax.Array  # () int32: reference -> target journeys


class RoundInfo(NamedTuple):
    """What one round records (stacked over rounds by `run`)."""

    energy: jax.Array  # (N,) V at each slot after exploration, before swaps
    acceptance: jax.Array  # (N-1,) swap acceptance probability of every pair
    swapped: jax.Array  # (N-1,) bool: the pair swapped this round
    cold: jax.Array  # (n,) int8: the beta = 1 state after the round (internal)


def init(x: jax.Array, ladder: jax.Array) -> NRPTState:
    """A fresh state: chains x (..., N, n) at the ladder slots, statistics zero.

    Leading axes of x are independent replica ladders (all on `ladder`);
    `run` takes states with exactly one such axis.
    """
    batch, n_chains = x.shape[:-2], ladder.shape[0]
    return NRPTState(
        x=x,
        ladder=jnp.broadcast_to(ladder.astype(jnp.float32), (*batch, n_chains)),
        replica=jnp.broadcast_to(jnp.arange(n_chains, dtype=jnp.int32), (*batch, n_chains)),
        last_end=jnp.full((*batch, n_chains), -1, jnp.int8),
        round=jnp.zeros(batch, jnp.int32),
        rejection=jnp.zeros((*batch, n_chains - 1), jnp.float32),
        n_stats=jnp.zeros(batch, jnp.int32),
        round_trips=jnp.zeros(batch, jnp.int32),
        restarts=jnp.zeros(batch, jnp.int32),
    )


def reset_statistics(state: NRPTState, ladder: jax.Array | None = None) -> NRPTState:
    """Zero the swap statistics (after a ladder change), keep chains and counters.

    With a leading replica axis, a (N,) `ladder` is given to every replica.
    """
    if ladder is not None:
        ladder = jnp.broadcast_to(jnp.asarray(ladder, jnp.float32), state.ladder.shape)
    return state._replace(
        ladder=state.ladder if ladder is None else ladder,
        rejection=jnp.zeros_like(state.rejection),
        n_stats=jnp.zeros_like(state.n_stats),
    )


def path_energy(model, x: jax.Array, reference) -> jax.Array:
    """V = E - E_ref for internal-order states (N, n)."""
    energy = jax.vmap(model.internal_energy)(x)
    if reference is not None:
        energy = energy - ref_lib.energy(x, model.blocks, reference)
    return energy


def deo_swap(key: jax.Array, ladder: jax.Array, energy: jax.Array, parity: jax.Array):
    """The DEO swap decisions of one round.

    Returns:
        (acceptance (N-1,), swapped (N-1,) bool, permutation (N,)): slot i
        takes the chain from slot permutation[i].
    """
    n_chains = ladder.shape[0]
    log_alpha = (ladder[1:] - ladder[:-1]) * (energy[1:] - energy[:-1])
    acceptance = jnp.exp(jnp.minimum(log_alpha, 0.0))
    pairs = jnp.arange(n_chains - 1)
    attempted = (pairs % 2) == parity
    u = jax.random.uniform(key, (n_chains - 1,), dtype=jnp.float32)
    swapped = attempted & (u < acceptance)
    slots = jnp.arange(n_chains)
    up = jnp.concatenate([swapped, jnp.zeros((1,), bool)])
    down = jnp.concatenate([jnp.zeros((1,), bool), swapped])
    permutation = jnp.where(up, slots + 1, jnp.where(down, slots - 1, slots))
    return acceptance, swapped, permutation


def track_round_trips(state: NRPTState, replica: jax.Array) -> NRPTState:
    """Update the index process after a swap: round trips and restarts."""
    at_reference, at_target = replica[0], replica[-1]
    trip = state.last_end[at_reference] == 1
    restart = state.last_end[at_target] == 0
    last_end = state.last_end.at[at_reference].set(0).at[at_target].set(1)
    return state._replace(
        replica=replica,
        last_end=last_end,
        round_trips=state.round_trips + trip.astype(jnp.int32),
        restarts=state.restarts + restart.astype(jnp.int32),
    )


def _explore(key, state: NRPTState, model, n_explore, clamp, reference, explorer) -> jax.Array:
    """The chains of one ladder after the round's exploration (its first half)."""
    explore_key, _ = jax.random.split(jax.random.fold_in(key, state.round))
    return explorer.run(explore_key, state.x, model, state.ladder, 0, n_explore, clamp, reference)


def _swap(key, state: NRPTState, x: jax.Array, model, reference) -> tuple[NRPTState, RoundInfo]:
    """Energies, DEO swaps and statistics of one ladder whose chains explored to `x`."""
    _, swap_key = jax.random.split(jax.random.fold_in(key, state.round))
    energy = path_energy(model, x, reference)
    acceptance, swapped, permutation = deo_swap(swap_key, state.ladder, energy, state.round % 2)
    x = x[permutation]
    state = track_round_trips(state, state.replica[permutation])
    state = state._replace(
        x=x,
        round=state.round + 1,
        rejection=state.rejection + (1.0 - acceptance),
        n_stats=state.n_stats + 1,
    )
    return state, RoundInfo(energy, acceptance, swapped, x[-1])


def ladder_round(
    key: jax.Array,
    state: NRPTState,
    model,
    *,
    n_explore: int | jax.Array,
    clamp: gibbs.Clamp | None = None,
    reference=None,
    explorer: explorers_lib.Explorer = explorers_lib.GIBBS,
) -> tuple[NRPTState, RoundInfo]:
    """One NRPT round of one ladder (no replica axis): explore, energies, DEO swaps, statistics.

    Args:
        key: the run's key; this round uses `fold_in(key, state.round)`.
        state: NRPTState.
        model: see `core.gibbs`; also needs `internal_energy`.
        n_explore: explorer updates per chain per round (may be traced).
        clamp: optional Clamp shared by all chains.
        reference: optional product reference (logits per block).
        explorer: the local move (`core.explorers`), block Gibbs by default.
    """
    x = _explore(key, state, model, n_explore, clamp, reference, explorer)
    return _swap(key, state, x, model, reference)


HOUDAYER = 2**31 - 3  # fold_in tag of a round's Houdayer key


def round_kernel(
    key: jax.Array,
    state: NRPTState,
    model,
    *,
    n_explore: int | jax.Array,
    clamp: gibbs.Clamp | None = None,
    reference=None,
    explorer: explorers_lib.Explorer = explorers_lib.GIBBS,
    houdayer: bool = False,
) -> tuple[NRPTState, RoundInfo]:
    """One round of R replica ladders (a leading replica axis on every field).

    Replica r runs `ladder_round` with `fold_in(key, r)`; a single replica
    runs it without `vmap` (batched keys make every random draw of the
    sweeps a vmapped generator, several times slower on lattices).

    With `houdayer`, replicas 2k and 2k + 1 (R even; all replicas share the
    ladder) make a Houdayer cluster move (`core.clusters.houdayer`) between
    their chains at each beta after exploring and before the swaps.
    """

    keys = jax.vmap(lambda r: jax.random.fold_in(key, r))(jnp.arange(state.x.shape[0]))
    if houdayer:
        x = jax.vmap(lambda k, s: _explore(k, s, model, n_explore, clamp, reference, explorer))(
            keys, state
        )
        pair_key = jax.random.fold_in(jax.random.fold_in(key, HOUDAYER), state.round[0])
        n_pairs, n_chains, n = x.shape[0] // 2, x.shape[1], x.shape[2]
        xa, xb = x[0::2].reshape(-1, n), x[1::2].reshape(-1, n)
        xa, xb = clusters.houdayer(pair_key, xa, xb, model)
        pairs = jnp.stack([xa.reshape(n_pairs, n_chains, n), xb.reshape(n_pairs, n_chains, n)], 1)
        x = pairs.reshape(x.shape)
        return jax.vmap(lambda k, s, xs: _swap(k, s, xs, model, reference))(keys, state, x)

    def one(k, s):
        return ladder_round(
            k, s, model, n_explore=n_explore, clamp=clamp, reference=reference, explorer=explorer
        )

    if state.x.shape[0] == 1:
        state, info = one(keys[0], jax.tree.map(lambda a: a[0], state))
        return jax.tree.map(lambda a: a[None], (state, info))
    return jax.vmap(one)(keys, state)


step = ladder_round  # the kernel of one ladder: step(key, state, model, n_explore=...)


class RunInfo(NamedTuple):
    """What `run` returns besides the state: per-round buffers of every replica.

    Rows past the chunk's `n_rounds` (and records past `n_records`) are unset.
    """

    energy: jax.Array  # (R, capacity, N) V per slot, after exploration, before swaps
    acceptance: jax.Array  # (R, capacity, N-1)
    swapped: jax.Array  # (R, capacity, N-1) bool
    cold: jax.Array | None  # (R, capacity, n) int8 recorded beta = 1 states, or None
    observed: dict | None  # observer states fed the recorded rounds of every replica


def run(
    key: jax.Array,
    state: NRPTState,
    model,
    *,
    n_rounds: int | jax.Array,
    capacity: int,
    n_explore: int | jax.Array,
    clamp: gibbs.Clamp | None = None,
    reference=None,
    thin: int | jax.Array = 1,
    phase: int | jax.Array = 0,
    record: bool = True,
    observers: dict | None = None,
    observed: dict | None = None,
    explorer: explorers_lib.Explorer = explorers_lib.GIBBS,
    houdayer: bool = False,
) -> tuple[NRPTState, RunInfo]:
    """Up to `capacity` rounds of R independent ladders (replicas) at once.

    `state` carries a leading replica axis on every field (`jax.vmap` of
    `init`); see `round_kernel`; `explorer` is the local move, `houdayer`
    adds Houdayer moves between replica pairs. The
    counts `n_rounds`, `n_explore`, `thin` and `phase` may be traced, so one
    compiled program serves every run length: callers loop over chunks of
    `capacity` rounds.

    A round is recorded when (phase + its index in the chunk + 1) is a
    multiple of `thin` (`phase`: rounds since the last record when the
    chunk starts). Recorded beta = 1 states are stored only with `record`
    (`capacity` rows at most) and are fed, in natural order, to
    `observers` (dict name -> observer, a batch of R chains per round)
    starting from the states `observed`: they stream inside the program,
    so nothing grows with the run length but the per-round energies.

    Returns:
        (state, RunInfo); `RunInfo.observed` holds the updated observer states.
    """
    n_replicas, n_chains, n = state.x.shape
    buffers = RunInfo(
        energy=jnp.zeros((n_replicas, capacity, n_chains), jnp.float32),
        acceptance=jnp.zeros((n_replicas, capacity, n_chains - 1), jnp.float32),
        swapped=jnp.zeros((n_replicas, capacity, n_chains - 1), bool),
        cold=jnp.zeros((n_replicas, capacity, n), jnp.int8) if record else None,
        observed=observed,
    )

    def keep(buffers: RunInfo, cold: jax.Array, slot: jax.Array) -> RunInfo:
        if record:
            assert buffers.cold is not None  # the buffer exists when recording
            buffers = buffers._replace(cold=buffers.cold.at[:, slot].set(cold))
        if observers:
            assert buffers.observed is not None  # observers come with their states
            x = model.to_natural(cold)
            states = {k: obs.update(buffers.observed[k], x, model) for k, obs in observers.items()}
            buffers = buffers._replace(observed=states)
        return buffers

    def body(i, carry):
        state, buffers = carry
        state, info = round_kernel(
            key, state, model, n_explore=n_explore, clamp=clamp, reference=reference,
            explorer=explorer, houdayer=houdayer,
        )  # fmt: skip
        buffers = buffers._replace(
            energy=buffers.energy.at[:, i].set(info.energy),
            acceptance=buffers.acceptance.at[:, i].set(info.acceptance),
            swapped=buffers.swapped.at[:, i].set(info.swapped),
        )
        slot = (phase + i) // thin - phase // thin  # records before this round
        recorded = (phase + i + 1) % thin == 0
        buffers = lax.cond(recorded, lambda b: keep(b, info.cold, slot), lambda b: b, buffers)
        return state, buffers

    return lax.fori_loop(0, n_rounds, body, (state, buffers))
