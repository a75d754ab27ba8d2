"""Autotuned NRPT: ladder, chain count and exploration, then a reusable plan.

`autotune` runs the tuning steps in dependency order, each on the chains
the previous step left warm:

1. `tune_schedule` (Syed et al. 2021, Alg. 4): rounds double between
   adaptations; each adaptation moves the ladder to equal steps of the
   cumulative barrier estimated from the rejection rates.
2. `tune_chains`: N from the total barrier Lambda (about 2 Lambda + 1, the
   chain count that maximises round trips per unit of work when work grows
   with N), then the schedule is adapted again at the new N.
3. a variational reference (by default when it pays): a product reference
   fitted to the beta = 1 chain, then the schedule is adapted again; kept
   when Lambda drops by at least 5% (models with strong fields) and its
   log Z agrees with the uniform path's, else the uniform reference and its
   ladder come back.
4. `tune_exploration`: the explorer (block Gibbs, or Swendsen-Wang / Wolff
   cluster updates where the model supports them) and n_explore in 1, 2,
   4, ... by the ESS of the slowest slot's energy per unit of work (work
   counted in Gibbs sweeps, never timed: same key, same plan).

The result, an `NRPTPlan`, samples with `.sample` / `.extend`, estimates
log Z with `.log_z()` and describes itself with `.report()`.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import warnings
from collections.abc import Callable
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from numpy.typing import ArrayLike

from .core import compilation, diagnostics, evidence, gibbs, schedule, tempering
from .core import explorers as explorers_lib
from .core import reference as ref_lib
from .core.distributed import gather as _host
from .deprecation import UNSET, renamed
from .models.base import EnergyModel
from .models.categorical_rbm import CategoricalRBM
from .models.ising import IsingModel
from .models.rbm import RBM, RBMMarginal
from .parallel_tempering import Rounds, Runner, check_houdayer, init_state
from .sampling import _check_count, _check_key


@dataclasses.dataclass
class AdaptationStep:
    """One schedule adaptation: the ladder used, its rates, and what they gave."""

    ladder: np.ndarray
    rejection: np.ndarray
    n_rounds: int
    round_trips: int

    @property
    def total_barrier(self) -> float:
        return schedule.total_barrier(self.rejection)


def _rejection(state: tempering.NRPTState) -> np.ndarray:
    """Mean rejection per pair, pooled over the replicas."""
    total = _host(state.rejection).astype(np.float64).sum(axis=0)
    return total / max(int(np.sum(_host(state.n_stats))), 1)


def _round_trips(state: tempering.NRPTState) -> int:
    return int(np.sum(_host(state.round_trips)))


def tune_schedule(
    runner: Runner,
    key: jax.Array,
    state: tempering.NRPTState,
    *,
    n_explore: int = 1,
    first_rounds: int = 32,
    n_adaptations: int = 5,
    history: list | None = None,
    explorer: explorers_lib.Explorer = explorers_lib.GIBBS,
) -> tempering.NRPTState:
    """Adapt the ladder `n_adaptations` times, doubling the rounds each time.

    Returns the state on the adapted ladder (statistics reset); appends an
    `AdaptationStep` per adaptation to `history` when given.
    """
    n_rounds = first_rounds
    for step in range(n_adaptations):
        trips_before = _round_trips(state)
        key_step = jax.random.fold_in(key, step)
        state, _ = runner.run(key_step, state, n_rounds, n_explore, record=False, explorer=explorer)
        rejection = _rejection(state)
        ladder = _host(state.ladder)[0].astype(np.float64)
        if history is not None:
            history.append(
                AdaptationStep(ladder, rejection, n_rounds, _round_trips(state) - trips_before)
            )
        new = schedule.equal_barrier_ladder(ladder, rejection)
        state = tempering.reset_statistics(state, jnp.asarray(new, jnp.float32))
        n_rounds *= 2
    return state


def tune_chains(total_barrier: float, min_chains: int = 4, max_chains: int = 256) -> int:
    """Ladder size from the total barrier: ceil(2 Lambda) + 1, clipped.

    With N slots each pair rejects about r = Lambda / (N - 1); round trips
    per round are 1 / (2 + 2 (N - 1) r / (1 - r)), so round trips per unit
    of work (proportional to N) peak near r = 1/2, i.e. N = 2 Lambda + 1.
    """
    if not math.isfinite(total_barrier) or total_barrier < 0:
        raise ValueError(f"total barrier must be finite and >= 0, got {total_barrier}")
    return int(np.clip(math.ceil(2 * total_barrier) + 1, min_chains, max_chains))


def resize(state: tempering.NRPTState, ladder: np.ndarray) -> tempering.NRPTState:
    """Move to a new ladder (any size): each new slot takes the nearest old chain."""
    old = _host(state.ladder)[0].astype(np.float64)
    nearest = np.abs(ladder[:, None] - old[None, :]).argmin(axis=1)
    x = state.x[:, jnp.asarray(nearest)]  # on the devices: sharded chains stay off the host
    return init_state(x, jnp.asarray(ladder, jnp.float32))


def tune_exploration(
    runner: Runner,
    key: jax.Array,
    state: tempering.NRPTState,
    *,
    candidates=(1, 2, 4, 8),
    n_rounds: int = 256,
    explorers=(explorers_lib.GIBBS,),
) -> tuple[tuple[explorers_lib.Explorer, int], tempering.NRPTState, dict, Rounds]:
    """Pick the explorer and n_explore by ESS per round per unit of work.

    Tempering only helps when exploration refreshes every chain's energy
    between swaps (Syed et al.'s efficient local exploration); the slot
    whose energy decorrelates slowest (near a phase transition) limits the
    round trips, so the rate of a candidate is the smallest ESS of a slot's
    energy per round (ESS over every replica, `n_rounds` rounds of each).

    The energy is blind to mirror-image modes (the two magnetized states of
    a ferromagnet). Between several explorers, the rate is also capped by
    how fast the beta = 1 chain changes mode: by tempering, at most once per
    round trip (the rate predicted for the ladder from its swap rates), or
    by the explorer itself (`_own_mode_rate`: how many updates the chains,
    all at beta = 1 and started from 8 draws of the tempered beta = 1
    chain, every other one mirrored when E(-x) = E(x) or relabelled when
    Potts labels are symmetric (`_with_images`), take to forget the
    mean and a random projection of their start), whichever is faster.

    The score divides the rate by the work of a round, counted, not timed:
    n_explore times the explorer's `cost` (in Gibbs sweeps, a fixed number)
    plus one energy evaluation and swap, about one sweep more (sweeps of
    the int8 kernel: a multispin sweep counts less, `Lattice.sweep_cost`). The same key
    thus gives the same choice on any machine, at any load. Each explorer
    tries n_explore `candidates` in increasing order and stops at the first
    one that scores below its best so far.

    Returns:
        ((best explorer, best n_explore), warm state, {(explorer name,
        n_explore): ESS per round per sweep of work}, the rounds' statistics
        joined: all ran at the state's ladder).
    """
    scores, infos, choices, starts = {}, [], {}, None
    for e, explorer in enumerate(explorers):
        best_here, own = 0.0, None
        for i, n_explore in enumerate(candidates):
            key_i = jax.random.fold_in(key, i) if e == 0 else jax.random.fold_in(key, 100 * e + i)
            record = len(explorers) > 1 and starts is None
            trips_before = _round_trips(state)
            state, info = runner.run(
                key_i, state, n_rounds, n_explore, record=record, explorer=explorer
            )
            trips = _round_trips(state) - trips_before
            if record:  # 8 beta = 1 draws spread over the run: the modes the chain visits
                assert info.cold is not None  # recorded
                starts = _with_images(runner, key, info.cold[0, :: max(n_rounds // 8, 1)][:8])
            if len(explorers) > 1 and own is None:
                own = _own_mode_rate(
                    runner, jax.random.fold_in(key, 1000 + e), explorer, starts, state
                )
            infos.append(info)
            rate = _exploration_rate(info, None if own is None else own * n_explore, trips)
            score = rate / (n_explore * explorer.cost(runner.model, runner.reference) + 1)
            scores[(explorer.name, n_explore)] = score
            choices[(explorer.name, n_explore)] = (explorer, n_explore)
            if score < best_here:
                break  # past the peak: more updates per round only cost work
            best_here = score
    # get(k) is never None: k ranges over the keys of scores
    best = choices[max(scores, key=cast("Callable[[tuple], float]", scores.get))]
    joined = [np.concatenate([getattr(i, f) for i in infos], axis=1) for f in Rounds._fields[:3]]
    rounds = Rounds(*joined, cold=None, observed=None)
    return best, tempering.reset_statistics(state), scores, rounds


def _exploration_rate(info: Rounds, own: float | None, trips: int = 0) -> float:
    """ESS per round of a run's slowest slot energy, capped, when `own` (the
    explorer's own mode changes per round) is given, by the faster of `own`
    and the round-trip rate.

    The round-trip rate is the one predicted for the ladder's swap rates,
    but no more than the run's own count allows ((trips + 1) per replica
    and round): the prediction assumes every chain forgets its state
    between swaps, and an explorer that does not (Gibbs in an ordered
    phase) makes far fewer trips than its ladder promises."""
    n_replicas, n_rounds = info.energy.shape[:2]
    ess = diagnostics.ess(info.energy[:, :, 1:], method="bulk")
    ess = float(np.nanmin(ess)) if np.any(np.isfinite(ess)) else 0.0
    rate = ess / (n_replicas * n_rounds)
    if own is None:
        return rate
    predicted = schedule.predicted_round_trip_rate_for(1.0 - np.mean(info.acceptance, axis=(0, 1)))
    observed = (trips + 1) / (n_replicas * n_rounds)
    return min(rate, max(min(predicted, observed), min(1.0, own)))


def _mode_statistics(x: np.ndarray) -> np.ndarray:
    """(..., 2): the mean value of each state (host array) and a fixed random
    projection of it (seed 0: the same on every call)."""
    n = x.shape[-1]
    w = np.random.default_rng(0).standard_normal(n) / np.sqrt(n)
    x = np.asarray(x, np.float64)
    return np.stack([x.mean(axis=-1), x @ w], axis=-1)


@functools.partial(jax.jit, static_argnums=0)
def _internal_order(graphdef, params, natural):
    return nnx.merge(graphdef, params).to_internal(natural)


_LAGS = (1, 4, 16, 64, 256)  # updates after which the chains' modes are compared


def _own_mode_rate(runner: Runner, key, explorer, starts, like: tempering.NRPTState) -> float:
    """About 1 / (updates for the beta = 1 chain to forget its mode) under `explorer` alone.

    The chains of a state shaped like `like` (the tuning state: the compiled
    program is reused) start from `starts` (natural-order beta = 1 states,
    e.g. draws of the tempered chain and their mirror images) and all sit
    at beta = 1, where every swap is accepted and changes nothing but the
    slots. After 1, 4, 16, ... updates the correlation across chains of
    each chain's mode statistics (`_mode_statistics`) with its start is
    checked; the rate is 1 / the first lag where both fall below 1/2, and
    0 when none does (stuck in its mode for all 256 updates).
    """
    n_replicas, n_chains, n = like.x.shape
    # internal position k holds natural variable order[k] (a permutation)
    order = np.asarray(_internal_order(runner.graphdef, runner.params, np.arange(n)))
    pick = np.arange(n_replicas * n_chains) % starts.shape[0]
    x0 = starts[pick][:, order].reshape(like.x.shape)
    state = init_state(jnp.asarray(x0), jnp.ones((n_chains,), jnp.float32))
    first = _mode_statistics(x0.reshape(n_replicas * n_chains, n))  # both in internal order
    done = 0
    for i, lag in enumerate(_LAGS):
        state, _ = runner.run(
            jax.random.fold_in(key, i), state, lag - done, 1, record=False, explorer=explorer
        )
        done = lag
        # slot i holds chain replica[i]: put the chains back in their order
        chains = np.argsort(_host(state.replica), axis=-1)
        x = np.take_along_axis(_host(state.x), chains[..., None], axis=1)
        now = _mode_statistics(x.reshape(n_replicas * n_chains, n))
        corr = [abs(np.corrcoef(first[:, k], now[:, k])[0, 1]) for k in range(2)]
        corr = [c if np.isfinite(c) else 0.0 for c in corr]
        if max(corr) < 0.5:
            return 1.0 / lag
    return 0.0


@dataclasses.dataclass
class NRPTReport:
    """A readable summary of a plan; `str(report)` prints it."""

    n_betas: int
    n_explore: int
    total_barrier: float
    round_trips: int
    restarts: int
    n_rounds: int
    round_trip_rate: float
    predicted_round_trip_rate: float
    predicted_round_trip_rate_ladder: float
    acceptance: np.ndarray
    ladder: np.ndarray
    ess_energy: float
    log_z: float | None
    log_z_stderr: float | None
    reference: str
    n_replicas: int = 1
    rhat_energy: float = math.nan
    collapsed: str = ""  # "hidden" / "visible": the RBM layer tempered, the other summed out
    explorer: str = "gibbs"  # the local move between swaps (core.explorers)
    houdayer: bool = False  # Houdayer moves between replica pairs
    multispin: bool = False  # Gibbs sweeps run on packed words (core.multispin)
    exploration_scores: dict | None = None  # {(explorer, n_explore): ESS per sweep of work}
    compile_seconds: float = 0.0  # of the plan's tuning and sampling, spent compiling
    programs: int = 0  # programs compiled or loaded from the persistent cache
    cache_hits: int = 0  # of those, loaded from the cache
    plan: NRPTPlan | None = dataclasses.field(default=None, repr=False)

    @property
    def n_chains(self) -> int:
        """Deprecated name of `n_betas`."""
        warnings.warn("NRPTReport.n_chains is renamed n_betas", DeprecationWarning, stacklevel=2)
        return self.n_betas

    def __str__(self) -> str:
        lines = [
            f"NRPT plan: N = {self.n_betas} temperatures"
            f"{f' x {self.n_replicas} replicas' if self.n_replicas > 1 else ''}, "
            f"explorer {self.explorer}{' (multispin)' if self.multispin else ''}"
            f"{' + Houdayer' if self.houdayer else ''}, "
            f"n_explore = {self.n_explore}, {self.reference} reference"
            + (f", RBM tempered on its {self.collapsed} layer" if self.collapsed else ""),
            f"  barrier Lambda = {self.total_barrier:.3f}",
            f"  round trips = {self.round_trips} (restarts {self.restarts}) in {self.n_rounds} rounds"
            f"{f' x {self.n_replicas} replicas' if self.n_replicas > 1 else ''}: "
            f"{self.round_trip_rate:.4f}/round per ladder (predicted for this ladder "
            f"{self.predicted_round_trip_rate_ladder:.4f}, for many chains 1/(2+2 Lambda) = "
            f"{self.predicted_round_trip_rate:.4f})",
            f"  ESS of the beta = 1 energy = {self.ess_energy:.1f}, R-hat "
            f"{self.rhat_energy:.3f} ({self.n_replicas} replica"
            f"{'s' if self.n_replicas > 1 else ', halves compared'})",
        ]
        if self.exploration_scores:
            best = max(self.exploration_scores.values())
            lines.append(
                "  exploration (ESS per round per sweep of work, "
                "relative to the best): "
                + ", ".join(
                    f"{name} x {k} {score / best:.2f}" if best > 0 else f"{name} x {k} 0"
                    for (name, k), score in self.exploration_scores.items()
                )
            )
        if self.log_z is not None:
            lines.append(f"  log Z = {self.log_z:.4f} +- {self.log_z_stderr:.4f} (stepping stone)")
        lines.append("  acceptance per pair: " + " ".join(f"{a:.2f}" for a in self.acceptance))
        lines.append("  ladder: " + " ".join(f"{b:.3f}" for b in self.ladder))
        lines.append(
            f"  compiling: {self.compile_seconds:.2f} s, {self.programs} programs "
            f"({self.cache_hits} from the persistent cache)"
        )
        return "\n".join(lines)


_COMPLETE = 2**31 - 1  # fold_in tag of the key that completes collapsed draws


@functools.partial(jax.jit, static_argnums=0)
def _complete(graphdef, params, key, x):
    return nnx.merge(graphdef, params).complete(key, x)


class NRPTPlan:
    """A tuned NRPT run: warm chains on a tuned ladder, ready to sample.

    Draws have shape (n_replicas, draws, n_variables); for an RBM tempered
    through its marginal (`autotune(collapse=...)`) they are joint (v, h)
    states, the summed-out layer drawn from its exact conditional. The plan keeps the
    draws since the last `sample` (`plan.draws()`) and N energies per round
    and replica for log Z; `record=False` keeps no draws.

    Example:
        >>> import jax, hamon_nnx as hn
        >>> m = hn.IsingModel.lattice((6, 6), coupling=0.5)
        >>> plan = hn.autotune(m, jax.random.key(0), max_rounds=128)
        >>> s = plan.sample(jax.random.key(1), 200)
        >>> s.shape
        (1, 200, 36)
    """

    def __init__(
        self, runner: Runner, state, n_explore: int, history: list, tuned=None, start=None,
        collapsed: bool = False, explorer: str | explorers_lib.Explorer = explorers_lib.GIBBS,
        exploration_scores=None,
    ):  # fmt: skip
        self.runner = runner
        self.explorer = explorers_lib.resolve(explorer)
        self.exploration_scores = exploration_scores
        # tempering an RBM's marginal: draws get the summed-out layer back
        self.collapsed = collapsed
        self.state = state
        self.n_explore = n_explore
        self.history = history
        self._draws: list[jax.Array] = []
        # the last tuning rounds ran at the final ladder: log Z and the report
        # start from them, and sampling refines them
        self._energy: list[np.ndarray] = []
        self._acceptance: list[np.ndarray] = []
        if tuned is not None:
            self._energy.append(np.asarray(tuned.energy, np.float64))
            self._acceptance.append(np.asarray(tuned.acceptance, np.float64))
        start = state if start is None else start
        self._trips_at_start = _round_trips(start)
        self._restarts_at_start = int(np.sum(_host(start.restarts)))
        self.compile_time = compilation.CompileTime()  # tuning's (set by autotune) + sampling's

    @property
    def ladder(self) -> np.ndarray:
        return _host(self.state.ladder)[0].astype(np.float64)

    @property
    def n_betas(self) -> int:
        """The ladder size N: temperatures, one chain at each, per replica."""
        return int(self.state.ladder.shape[-1])

    @property
    def n_chains(self) -> int:
        """Deprecated name of `n_betas`."""
        warnings.warn("NRPTPlan.n_chains is renamed n_betas", DeprecationWarning, stacklevel=2)
        return self.n_betas

    @property
    def n_replicas(self) -> int:
        return int(self.state.x.shape[0])

    def _run(self, key, n: int, thin: int = 1, record: bool = True) -> jax.Array | None:
        key = _check_key(key)
        n = _check_count("n", n, 1)
        thin = _check_count("thin", thin, 1)
        with compilation.counting() as spent:
            self.state, rounds = self.runner.run(
                key, self.state, n * thin, self.n_explore, thin=thin, record=record,
                explorer=self.explorer,
            )  # fmt: skip
        self.compile_time += spent
        self._energy.append(np.asarray(rounds.energy, np.float64))
        self._acceptance.append(np.asarray(rounds.acceptance, np.float64))
        cold = rounds.cold
        if record and self.collapsed:
            runner = self.runner
            cold = _complete(
                runner.graphdef, runner.params, jax.random.fold_in(key, _COMPLETE), cold
            )
        if record:
            assert cold is not None  # recorded
            self._draws.append(cold)
        return cold

    def sample(self, key: jax.Array, n: int, *, thin: int = 1) -> jax.Array:
        """n new draws of every replica's beta = 1 chain, one every `thin`
        rounds: (n_replicas, n, n_variables), natural order, on the run's device.

        The chains continue from where they are; earlier draws are dropped
        from the plan's collection (log Z keeps using every round).
        """
        self._draws = []
        return cast(jax.Array, self._run(key, n, thin))  # recorded: the draws

    def extend(self, key: jax.Array, n: int, *, thin: int = 1) -> jax.Array:
        """n more draws (as `sample`), appended to the plan's collection.

        Returns only the new draws; `plan.draws()` joins all since the last
        `sample`. `sample(key, a)` then `extend(key2, b)` gives the draws of
        `sample` over a + b rounds exactly when the keys are equal.
        """
        return cast(jax.Array, self._run(key, n, thin))  # recorded: the draws

    def draws(self) -> jax.Array:
        """Every draw since the last `sample`: (n_replicas, draws, n_variables)."""
        if not self._draws:
            raise ValueError("the plan has no draws yet: call plan.sample(key, n) first")
        if len(self._draws) > 1:
            self._draws = [jnp.concatenate(self._draws, axis=1)]
        return self._draws[0]

    def sample_until(
        self, key: jax.Array, stderr: float, *, max_rounds: int = 100_000, first: int = 256,
        record: bool = False,
    ) -> tuple[float, float]:  # fmt: skip
        """Sample more rounds until log Z's standard error is at most `stderr`.

        Rounds run in doubling batches (`first`, 2 `first`, ...; batch i keyed
        by `fold_in(key, i)`) and log Z is checked after each. The stopping
        point depends only on the key and the estimates, so the same key
        gives the same run. Draws are not kept unless `record=True` (then
        they are collected as by `extend`).

        Args:
            key: PRNG key.
            stderr: the standard error to reach, in nats (> 0).
            max_rounds: the most rounds to run; reaching it without the target
                warns and returns the estimate so far.
            first: rounds of the first batch.
            record: keep the draws in the plan.

        Returns:
            (log Z, standard error) when the target is met or the limit hit.

        Example:
            >>> import jax, hamon_nnx as hn
            >>> plan = hn.autotune(hn.IsingModel.lattice((4, 4), coupling=0.3),
            ...                    jax.random.key(0), max_rounds=64)
            >>> log_z, err = plan.sample_until(jax.random.key(1), stderr=0.02)
            >>> err <= 0.02
            True
        """
        key = _check_key(key)
        if not (isinstance(stderr, (int, float)) and np.isfinite(stderr) and stderr > 0):
            raise ValueError(f"stderr must be a positive number of nats, got {stderr!r}")
        max_rounds = _check_count("max_rounds", max_rounds, 1)
        batch, done = _check_count("first", first, 8), 0
        estimate = None
        for i in itertools.count():
            if estimate is not None and estimate[1] <= stderr:
                return estimate
            if done >= max_rounds:
                break
            n = min(batch, max_rounds - done)
            self._run(jax.random.fold_in(key, i), n, record=record)
            done, batch = done + n, 2 * batch
            try:
                estimate = self.log_z()
            except evidence.TooFewRounds:  # not yet enough rounds for an error bar
                estimate = None
        warnings.warn(
            f"sample_until stopped at max_rounds={max_rounds} with log Z standard error "
            f"{'unknown' if estimate is None else f'{estimate[1]:.4g}'} above the target {stderr:g}",
            stacklevel=2,
        )
        return estimate if estimate is not None else (math.nan, math.inf)

    def energies(self) -> np.ndarray:
        """(n_replicas, rounds, N) energies of the last tuning round and every
        sampling round since."""
        if not self._energy:
            raise ValueError("the plan has no rounds yet: call plan.sample(key, n) first")
        if len(self._energy) > 1:
            self._energy = [np.concatenate(self._energy, axis=1)]
        return self._energy[0]

    def log_z(self) -> tuple[float, float]:
        """(log Z, standard error) in nats: the stepping stone of the last tuning
        rounds (at the final ladder) and of every sampling round since, pooled
        over the replicas."""
        est = self.log_z_details()
        return est.estimate, est.stderr

    def log_z_details(self) -> evidence.LogZ:
        return evidence.stepping_stone(self.energies(), self.ladder, self.runner.log_z_reference())

    def report(self) -> NRPTReport:
        energy = self.energies()
        acceptance = np.concatenate(self._acceptance, axis=1).mean(axis=(0, 1))
        barrier = schedule.total_barrier(1 - acceptance)
        ladder_rounds = energy.shape[0] * energy.shape[1]
        trips = _round_trips(self.state) - self._trips_at_start
        try:
            log_z, log_z_err = self.log_z()
        except evidence.TooFewRounds:  # the report says so
            log_z, log_z_err = None, None
        enough = energy.shape[1] >= 8
        cold = energy[..., -1]
        return NRPTReport(
            n_betas=self.n_betas,
            n_explore=self.n_explore,
            total_barrier=barrier,
            round_trips=trips,
            restarts=int(np.sum(_host(self.state.restarts))) - self._restarts_at_start,
            n_rounds=energy.shape[1],
            round_trip_rate=trips / ladder_rounds,
            predicted_round_trip_rate=schedule.predicted_round_trip_rate(barrier),
            predicted_round_trip_rate_ladder=schedule.predicted_round_trip_rate_for(1 - acceptance),
            acceptance=acceptance,
            ladder=self.ladder,
            ess_energy=float(diagnostics.ess(cold, method="bulk")) if enough else 0.0,
            log_z=log_z,
            log_z_stderr=log_z_err,
            reference="uniform" if self.runner.reference is None else "variational",
            n_replicas=self.n_replicas,
            rhat_energy=float(diagnostics.rhat(cold)) if enough else math.nan,
            # a collapsed plan tempers an RBM's marginal
            collapsed=cast(RBMMarginal, self.runner.model).keep if self.collapsed else "",
            explorer=self.explorer.name,
            houdayer=self.runner.houdayer,
            multispin=explorers_lib.multispin(
                self.explorer, self.runner.model, self.runner.reference
            ),
            exploration_scores=self.exploration_scores,
            compile_seconds=self.compile_time.seconds,
            programs=self.compile_time.programs,
            cache_hits=self.compile_time.cache_hits,
            plan=self,
        )


@functools.partial(jax.jit, static_argnums=(0, 3, 4))
def _energies_and_image(graphdef, params, key, n_states: int, image: str):
    """Energies of random states and of their images: "flip" (-x) or "shift" (x + 1 mod q)."""
    model = nnx.merge(graphdef, params)
    x = gibbs.random_states(key, model.blocks, n_states)
    if image == "flip":
        y = -x
    else:
        y = ((x.astype(jnp.int32) + 1) % model.blocks[0].q).astype(jnp.int8)
    energy = jax.vmap(model.internal_energy)
    return energy(x), energy(y)


def _invariant(model: EnergyModel, key, n_states: int, image: str) -> bool:
    energy, other = _energies_and_image(*nnx.split(model), key, n_states, image)
    energy, other = np.asarray(energy, np.float64), np.asarray(other, np.float64)
    return bool(np.all(np.abs(energy - other) <= 1e-5 * (1.0 + np.abs(energy).max())))


def label_symmetric(model: EnergyModel, key: jax.Array, n_states: int = 16) -> bool:
    """Whether a model of q-state variables (one q) has E(x + 1 mod q) = E(x)
    (e.g. a Potts model with delta couplings and no fields), on random states."""
    if (
        len({(blk.kind, blk.q) for blk in model.blocks}) != 1
        or model.blocks[0].kind != "categorical"
    ):
        return False
    return _invariant(model, key, n_states, "shift")


def _with_images(runner: Runner, key, draws) -> np.ndarray:
    """beta = 1 draws (natural order), every other one replaced by a symmetry
    image when the model has one (E(-x) = E(x) for spins, relabelling
    x + k mod q for Potts), so that the own-mode test sees the modes a chain
    stuck in one would miss."""
    starts = np.array(draws)
    if runner.clamp is not None:
        return starts
    if flip_symmetric(runner.model, key):
        starts[1::2] *= -1
    elif label_symmetric(runner.model, key):
        q = runner.model.blocks[0].q
        shift = 1 + np.arange(len(starts[1::2]))[:, None] % (q - 1)
        starts[1::2] = (starts[1::2].astype(np.int64) + shift) % q
    return starts


def flip_symmetric(model: EnergyModel, key: jax.Array, n_states: int = 16) -> bool:
    """Whether a model of spins only has E(-x) = E(x) (e.g. Ising without fields).

    Checked on random states. Every marginal of such a model is exactly 1/2,
    so the product reference matching its marginals is the uniform one; a
    fitted reference that is not uniform only says that the chain it was
    fitted to sat in one of the mirror-image modes, and steering the ladder
    toward that mode hides the other one from the estimates.
    """
    if any(blk.kind != "spin" for blk in model.blocks):
        return False
    return _invariant(model, key, n_states, "flip")


def _counts_compilation(tune):
    """`tune` (returning a plan) with its compilation added to the plan's `compile_time`."""

    @functools.wraps(tune)
    def counted(*args, **kwargs):
        with compilation.counting() as spent:
            plan = tune(*args, **kwargs)
        plan.compile_time = spent + plan.compile_time
        return plan

    return counted


LADDER_GRANULE = 8  # tuned ladder sizes are multiples of it: the same plan on 1, 2, 4, 8 devices


def _ladder_size(placement, n: int) -> int:
    """n rounded up to a multiple of `LADDER_GRANULE`, then of the device count.

    Not to the device count alone: the tuned plan (and every draw after it)
    must not depend on how many devices or processes run it.
    """
    return placement.round_up(LADDER_GRANULE * math.ceil(n / LADDER_GRANULE))


@_counts_compilation
def autotune(
    model: EnergyModel,
    key: jax.Array,
    *,
    n_betas: int | None = UNSET,
    n_explore: int | None = None,
    max_rounds: int = 1024,
    reference: str = "auto",
    clamp: tuple[ArrayLike, ArrayLike] | None = None,
    max_betas: int = UNSET,
    device: Any = "auto",
    n_replicas: int = 1,
    collapse: bool | None = None,
    n_chains: int | None = None,
    max_chains: int | None = None,
    explorer: str | explorers_lib.Explorer | None = None,
    houdayer: bool = False,
) -> NRPTPlan:
    """Tune NRPT for `model`: ladder, chain count, exploration; see module doc.

    Args:
        model: any hamon-nnx model.
        key: PRNG key.
        n_betas: fix the ladder size N (temperatures) instead of tuning it.
        n_explore: fix the explorer's updates per round instead of tuning them.
        max_rounds: rounds of the longest adaptation (rounds double up to it).
        reference: "auto" (default: the variational reference when its tuned
            barrier is at least 5% below the uniform one's and a short run's
            log Z agrees with the uniform path's within 3 standard errors,
            else uniform; both exact, the product reference's log Z is known;
            uniform for models symmetric under flipping every spin, see
            `flip_symmetric`), "uniform" or "variational" (a product
            reference fitted to the beta = 1 chain).
        clamp: optional `(mask, values)` held fixed in every chain.
        max_betas: upper limit for the tuned N (default 256).
        device: where to run, resolved once here and reused by the plan (so
            its compiled programs stay warm): "auto", "cpu", "gpu", a
            `jax.Device`, None, or several devices (a list or
            `hn.chain_mesh()`) to shard the ladder over; tuned ladder sizes
            are then rounded up to a multiple of the device count.
        n_replicas: independent ladders tuned and run together (vmapped):
            the schedule adapts to their pooled rejection rates, the report
            gives R-hat across them, and log Z pools them with an error bar
            that includes their spread.
        collapse: temper an RBM's smaller layer with the other summed out
            (`RBM.marginal`; same Z, draws completed to joint states). None
            (default): yes for an `hn.RBM` with the standard energy and no
            clamp, whose joint path crosses a sharp transition on trained
            models; False tempers the joint (v, h).
        n_chains, max_chains: the old names of `n_betas`, `max_betas`
            (deprecated: in `hn.sample`, `n_chains` counts independent chains).
        explorer: the local move between swaps. None (default): chosen with
            n_explore by ESS per unit of work among block Gibbs and, for
            Ising and ferromagnetic Potts models, Swendsen-Wang and Wolff
            cluster updates (`core.explorers.candidates`); the ladder is
            tuned with Gibbs first. A name ("gibbs", "swendsen_wang",
            "wolff", parts joined by "+") or an Explorer fixes it.
        houdayer: Houdayer moves between replicas 2k and 2k + 1 at each
            beta in every round of tuning and sampling (Ising models, even
            `n_replicas`; see `hn.nrpt`): on 2-D +-J glasses about 2.8x the
            round trips per round for 1.65x the work.

    Returns:
        NRPTPlan.
    """
    n_betas = renamed("hn.autotune", "n_chains", n_chains, "n_betas", n_betas, None)
    max_betas = renamed("hn.autotune", "max_chains", max_chains, "max_betas", max_betas, 256)
    if reference not in ("auto", "uniform", "variational"):
        raise ValueError(f"reference must be 'auto', 'uniform' or 'variational', got {reference!r}")
    key = _check_key(key)
    max_rounds = _check_count("max_rounds", max_rounds, 32)
    n_replicas = _check_count("n_replicas", n_replicas, 1)
    model = _collapsed(model, clamp, collapse)
    if explorer is None:
        candidates = explorers_lib.candidates(model)
    else:
        candidates = (explorers_lib.check(explorer, model),)
    if n_explore is not None:
        n_explore = _check_count("n_explore", n_explore, 1)
    n_adapt = max(1, int(math.log2(max_rounds)) - 4)  # 32, 64, ..., max_rounds
    keys = [jax.random.fold_in(key, i) for i in range(7)]
    start_n = _check_count("n_betas", n_betas, 2) if n_betas is not None else 16
    check_houdayer(houdayer, model, n_replicas)
    runner = Runner(
        model, clamp=clamp, device=device, n_chains=start_n, houdayer=houdayer,
        candidates=candidates,
    )  # fmt: skip
    if n_betas is None:
        start_n = _ladder_size(runner.placement, start_n)
    state = runner.initial_state(keys[0], np.linspace(0.0, 1.0, start_n), n_replicas)
    history: list[AdaptationStep] = []
    explore = n_explore or 1
    state = tune_schedule(
        runner, keys[1], state, n_explore=explore, n_adaptations=n_adapt, history=history
    )
    if n_betas is None:
        last = history[-1]
        n_new = _ladder_size(
            runner.placement, tune_chains(last.total_barrier, max_chains=max_betas)
        )
        if abs(n_new - start_n) > 0.25 * start_n:  # else keep the compiled program's size
            ladder = schedule.equal_barrier_ladder(last.ladder, last.rejection, n_new)
            state = resize(state, ladder)
            state = tune_schedule(
                runner, keys[2], state, n_explore=explore, first_rounds=max_rounds // 4,
                n_adaptations=2, history=history,
            )  # fmt: skip
    if reference == "auto" and runner.clamp is None and flip_symmetric(model, keys[3]):
        reference = "uniform"  # the marginals are 1/2: uniform is the matched reference
    if reference in ("variational", "auto"):
        uniform_state, n_uniform_steps = state, len(history)
        uniform_barrier = history[-1].total_barrier
        state, rounds = runner.run(keys[3], state, max_rounds // 2, explore)
        uniform_log_z = _log_z(runner, state, rounds)
        assert rounds.cold is not None  # recorded (run's default)
        cold = runner.model.to_internal(rounds.cold.reshape(-1, runner.n_variables))
        runner.reference = ref_lib.fit(cold, runner.model.blocks)
        state = tempering.reset_statistics(state)
        state = tune_schedule(
            runner, keys[4], state, n_explore=explore, first_rounds=max_rounds // 4,
            n_adaptations=2, history=history,
        )  # fmt: skip
        state, rounds = runner.run(keys[6], state, max_rounds // 2, explore, record=False)
        state = tempering.reset_statistics(state)
        agree = _agree(uniform_log_z, _log_z(runner, state, rounds))
        if reference == "auto" and (
            history[-1].total_barrier > 0.95 * uniform_barrier or not agree
        ):
            # less than 5% lower (within the estimates' noise), or a log Z
            # that contradicts the uniform path's (the fitted reference sat
            # in one mode and the path hides the others): back to the
            # uniform reference and its tuned ladder
            runner.reference = None
            state = uniform_state
            del history[n_uniform_steps:]
        elif not agree:
            warnings.warn(
                "the variational reference's log Z disagrees with the uniform path's by more "
                "than 3 standard errors: the chain it was fitted to may have missed modes; "
                'consider reference="uniform" or "auto"',
                stacklevel=2,
            )
    start = state
    scores = None
    if n_explore is None or len(candidates) > 1:
        counts = (1, 2, 4, 8) if n_explore is None else (n_explore,)
        (chosen, explore), state, scores, tuned = tune_exploration(
            runner, keys[5], state, candidates=counts, explorers=candidates
        )
    else:  # a last tuning round at the final ladder, for log Z and the report
        assert candidates  # at least one explorer (Gibbs)
        chosen = candidates[0]
        state, tuned = runner.run(keys[5], state, 256, explore, record=False, explorer=chosen)
        state = tempering.reset_statistics(state)
    collapsed = isinstance(model, RBMMarginal)
    return NRPTPlan(
        runner, state, explore, history, tuned=tuned, start=start, collapsed=collapsed,
        explorer=chosen, exploration_scores=scores,
    )  # fmt: skip


def _log_z(runner: Runner, state, rounds: Rounds) -> evidence.LogZ:
    ladder = _host(state.ladder)[0].astype(np.float64)
    return evidence.stepping_stone(rounds.energy, ladder, runner.log_z_reference())


def _agree(a: evidence.LogZ, b: evidence.LogZ, n_sigma: float = 3.0) -> bool:
    """Whether two independent log Z estimates agree within n_sigma joint errors."""
    return abs(a.estimate - b.estimate) <= n_sigma * math.hypot(a.stderr, b.stderr)


def _collapsed(model, clamp, collapse: bool | None):
    """The model autotune tempers: an RBM's marginal where asked or by default."""
    plain_rbm = any(
        isinstance(model, cls)
        and type(model).energy is cls.energy
        and type(model).free_energy is cls.free_energy
        for cls in (RBM, CategoricalRBM)
    )
    if collapse is None:
        collapse = plain_rbm and clamp is None
    elif collapse not in (True, False):
        raise TypeError(f"collapse must be None, True or False, got {collapse!r}")
    elif collapse and not plain_rbm:
        raise ValueError(
            "collapse=True sums out a layer of an hn.RBM or hn.CategoricalRBM with its own "
            "energy; "
            f"got {type(model).__name__}"
        )
    elif collapse and clamp is not None:
        raise ValueError("collapse=True cannot clamp variables: clamp the joint RBM instead")
    return model.marginal() if collapse else model


def autosample(
    model: EnergyModel, key: jax.Array, n_samples: int = 1000, **kwargs: Any
) -> tuple[jax.Array, NRPTReport]:
    """Autotune, then draw `n_samples` from the beta = 1 chain.

    Returns:
        (samples (1, n_samples, n) int8 natural order, NRPTReport); the tuned
        plan is `report.plan`.

    Example:
        >>> import jax, hamon_nnx as hn
        >>> m = hn.IsingModel.lattice((6, 6), coupling=0.6)
        >>> s, report = hn.autosample(m, jax.random.key(0), n_samples=100, max_rounds=64)
        >>> s.shape, report.plan.n_betas >= 4
        ((1, 100, 36), True)
    """
    n_samples = _check_count("n_samples", n_samples, 1)
    tune_key, sample_key = jax.random.split(_check_key(key))
    plan = autotune(model, tune_key, **kwargs)
    samples = plan.sample(sample_key, n_samples)
    return samples, plan.report()


def ising_sample(
    fields: ArrayLike, edges: ArrayLike, couplings: ArrayLike, *, key: jax.Array,
    beta: float = 1.0, n_samples: int = 1000, **kwargs: Any,
) -> tuple[jax.Array, NRPTReport]:  # fmt: skip
    """One call for Ising problems: build the model, autotune NRPT, sample.

    Args:
        fields: (n,) external fields h.
        edges: (E, 2) pairs of interacting spins.
        couplings: (E,) couplings J (E = -sum J s_i s_j - sum h s).
        key: PRNG key.
        beta: the inverse temperature of the draws, p(s) ~ exp(-beta E(s))
            (hamon's `ising_sample` argument; the model's J and h are scaled
            by it, so log Z in the report is that of exp(-beta E)).
        n_samples: draws of the beta = 1 chain.
        **kwargs: passed to `autotune` (e.g. `device=`, `max_rounds=`).

    Returns:
        (samples (1, n_samples, n) int8 spins, NRPTReport with `.plan`).

    Example:
        >>> import jax, numpy as np, hamon_nnx as hn
        >>> edges = np.array([[0, 1], [1, 2], [2, 0]])
        >>> s, report = hn.ising_sample(np.zeros(3), edges, np.ones(3), beta=0.5,
        ...                             key=jax.random.key(0), n_samples=100, max_rounds=64)
        >>> s.shape
        (1, 100, 3)
    """
    fields = np.asarray(fields, np.float32)
    if fields.ndim != 1:
        raise ValueError(f"fields must have shape (n,), got {fields.shape}")
    if isinstance(beta, str) or isinstance(beta, bool) or not np.isscalar(beta):
        raise TypeError(f"beta must be a number (an inverse temperature), got {beta!r}")
    beta = float(beta)  # pyright: ignore[reportArgumentType]
    if not math.isfinite(beta) or beta < 0:
        raise ValueError(f"beta must be a finite number >= 0, got {beta}")
    couplings = np.asarray(couplings, np.float32)
    model = IsingModel.from_edges(len(fields), edges, beta * couplings, beta * fields)
    return autosample(model, key, n_samples, **kwargs)
