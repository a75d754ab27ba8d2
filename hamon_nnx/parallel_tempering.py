"""`hn.nrpt`: non-reversible parallel tempering of any model on a fixed ladder."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from .core import device as device_lib
from .core import evidence, gibbs, schedule, tempering
from .core import explorers as explorers_lib
from .core import observers as obs_lib
from .core import reference as ref_lib
from .deprecation import UNSET, renamed
from .models.base import EnergyModel, check_params_finite
from .sampling import _check_count, _check_key, check_clamp

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

# Incremented each time the NRPT program is traced (tests count retraces).
TRACE_COUNT = 0


@functools.partial(
    jax.jit,
    static_argnames=(
        "graphdef",
        "capacity",
        "observers",
        "ladder_sharding",
        "explorer",
        "houdayer",
    ),
)
def _nrpt_program(
    graphdef,
    params,
    key,
    state,
    clamp_mask,
    reference,
    counts,
    observed,
    *,
    capacity,
    observers,
    ladder_sharding=None,
    explorer=explorers_lib.GIBBS,
    houdayer=False,
):
    global TRACE_COUNT
    TRACE_COUNT += 1
    model = nnx.merge(graphdef, params)
    clamp = None if clamp_mask is None else gibbs.Clamp(clamp_mask)
    n_rounds, n_explore, thin, phase, which = counts
    if isinstance(explorer, explorers_lib.Choice):
        explorer = explorer.select(which)
    state = state._replace(x=device_lib.constrain_chains(state.x, ladder_sharding))
    state, info = tempering.run(
        key,
        state,
        model,
        n_rounds=n_rounds,
        capacity=capacity,
        n_explore=n_explore,
        clamp=clamp,
        reference=reference,
        thin=thin,
        phase=phase,
        observers=dict(observers) if observers else None,
        observed=observed,
        explorer=explorer,
        houdayer=houdayer,
    )
    # the records of a chunk are few (capacity rows): always taken, kept by the caller if asked
    info = info._replace(cold=model.to_natural(info.cold))
    # per-round statistics and the beta = 1 records are small next to the
    # ladders: a full copy everywhere, readable on every host
    return state, device_lib.replicate_within(info, ladder_sharding)


init_state = jax.jit(tempering.init)  # one small program, not one per array it builds


class Rounds(NamedTuple):
    """The rounds of one `Runner.run` call, replica axis first.

    energy, acceptance and swapped are host arrays over every round; `cold`
    (the recorded beta = 1 states, natural order) stays on the run's device.
    """

    energy: np.ndarray  # (R, rounds, N) float32 V per slot before the swaps
    acceptance: np.ndarray  # (R, rounds, N-1)
    swapped: np.ndarray  # (R, rounds, N-1) bool
    cold: jax.Array | None  # (R, rounds // thin, n) int8, or None without `record`
    observed: dict | None  # observer states after the run


@functools.partial(jax.jit, static_argnames=("graphdef", "n_chains", "chain_sharding"))
def _initial_states(
    graphdef, params, key, clamp_mask, clamp_values, *, n_chains, chain_sharding=None
):
    model = nnx.merge(graphdef, params)
    x = gibbs.random_states(key, model.blocks, n_chains)
    if clamp_mask is not None:
        x = jnp.where(clamp_mask, clamp_values, x)
    return device_lib.constrain_chains(x, chain_sharding)


class Runner:
    """A model split once, with its clamp and reference, ready to run rounds.

    Orchestrators (tuning, plans) keep one Runner so that every call reuses
    the compiled program of the model's structure. The device is resolved
    once, here (`n_chains` is the ladder size "auto" judges the work by), and
    every round runs there; with several devices the ladder axis is sharded.
    """

    def __init__(
        self, model: EnergyModel, clamp=None, reference=None, device=None, n_chains=16,
        houdayer: bool = False, candidates: tuple = (),
    ):  # fmt: skip
        if not isinstance(model, EnergyModel):
            raise TypeError(f"model must be a hamon-nnx EnergyModel, got {type(model).__name__}")
        check_params_finite(model)
        self.model = model
        self.houdayer = houdayer  # every run's default: Houdayer moves between replica pairs
        self.candidates = tuple(candidates)  # explorers that share one compiled program
        self.graphdef, self.params = nnx.split(model)
        self.clamp = check_clamp(model, clamp)
        self.reference = reference
        n_free = model.n_variables - (0 if self.clamp is None else int(np.sum(self.clamp[0])))
        self.placement = device_lib.resolve(device, n_chains=n_chains, n_variables=n_free)
        self.placement.check_same({"model": self.params, "clamp": self.clamp}, "the models")
        self.params, self.clamp = self.placement.replicate((self.params, self.clamp))

    def _place(self, state: tempering.NRPTState) -> tempering.NRPTState:
        """The ladder axis of the chains split over the devices, the rest replicated."""
        if state.x.ndim != 3:
            raise ValueError(
                "an NRPT state has chains of shape (replicas, N, n), got "
                f"{tuple(state.x.shape)}; pass the state of an hn.nrpt result or a plan"
            )
        self.placement.check_chains(int(state.x.shape[1]), "the ladder size N")
        rest = self.placement.replicate(state._replace(x=None))
        return rest._replace(x=self.placement.shard_chains(state.x, axis=1))

    @property
    def n_variables(self) -> int:
        return self.model.n_variables

    def initial_state(self, key: jax.Array, ladder, n_replicas: int = 1) -> tempering.NRPTState:
        """Uniformly random states (clamps applied) of `n_replicas` ladders."""
        ladder = jnp.asarray(schedule.check_ladder(ladder), jnp.float32)
        mask, values = self.clamp if self.clamp is not None else (None, None)
        n_chains = int(ladder.shape[0])
        self.placement.check_chains(n_chains, "the ladder size N")
        x = _initial_states(
            self.graphdef,
            self.params,
            self.placement.replicate(key),
            mask,
            values,
            n_chains=n_replicas * n_chains,
            chain_sharding=self.placement.chain_sharding,
        )
        return self._place(init_state(x.reshape(n_replicas, n_chains, -1), ladder))

    def log_z_reference(self) -> float:
        blocks = self.model.blocks
        reference = ref_lib.uniform(blocks) if self.reference is None else self.reference
        log_z = ref_lib.log_partition(blocks, reference)
        if self.clamp is not None:
            # clamped variables are fixed: remove their share of the reference
            log_z -= _clamped_reference_log_z(blocks, reference, self.clamp)
        return log_z

    def capacity(self, n_replicas: int) -> int:
        """Rounds per compiled call: 256, fewer for big models (buffer memory)."""
        rounds = 2 ** int(np.log2(max(2**22 // max(self.n_variables * n_replicas, 1), 1)))
        return int(np.clip(rounds, 8, 256))

    def run(
        self,
        key,
        state,
        n_rounds: int,
        n_explore: int,
        *,
        thin: int = 1,
        record: bool = True,
        observers: dict | None = None,
        observed: dict | None = None,
        explorer: explorers_lib.Explorer = explorers_lib.GIBBS,
        houdayer: bool | None = None,
    ) -> tuple[tempering.NRPTState, Rounds]:
        """`n_rounds` rounds in chunks of `capacity`, one compiled program for all.

        Every `thin`-th round (counted from this call's start) is recorded:
        stored with `record`, and fed to `observers` (continuing `observed`).
        Each round makes `n_explore` updates by `explorer` (one compiled
        program per explorer) and, with `houdayer`, a Houdayer move between
        the chains of replicas 2k and 2k + 1 at each beta (default: the
        Runner's `houdayer`).
        """
        houdayer = self.houdayer if houdayer is None else houdayer
        self.placement.check_same({"key": key, "n_rounds, n_explore, thin": (n_rounds, n_explore,
                                   thin), "explorer": repr(explorer)}, "the NRPT run's arguments")  # fmt: skip
        program_explorer, which = explorer, 0
        if len(self.candidates) > 1 and explorer in self.candidates:
            # the candidates share one program: compiled once for the tuner and the plan
            program_explorer = explorers_lib.Choice(self.candidates)
            which = self.candidates.index(explorer)
        mask = None if self.clamp is None else self.clamp[0]
        state = self._place(state)
        key, reference = self.placement.replicate((key, self.reference))
        capacity = self.capacity(int(state.x.shape[0]))
        if observers and observed is None:
            observed = self.placement.replicate(obs_lib.init_all(observers, self.model))
        static_observers = tuple(sorted(observers.items())) if observers else None
        host, cold = [], []
        done = 0
        while done < n_rounds:
            active, phase = min(capacity, n_rounds - done), done % thin
            counts = tuple(jnp.int32(c) for c in (active, n_explore, thin, phase, which))
            state, info = _nrpt_program(
                self.graphdef,
                self.params,
                key,
                state,
                mask,
                reference,
                counts,
                observed,
                capacity=capacity,
                observers=static_observers,
                ladder_sharding=self.placement.ladder_sharding,
                explorer=program_explorer,
                houdayer=houdayer,
            )
            observed = info.observed
            stats = jax.device_get((info.energy, info.acceptance, info.swapped))
            host.append([a[:, :active] for a in stats])
            n_kept = (phase + active) // thin - phase // thin
            if record and n_kept:
                cold.append(info.cold if n_kept == capacity else info.cold[:, :n_kept])
            done += active
        energy, acceptance, swapped = (np.concatenate(a, axis=1) for a in zip(*host, strict=True))
        _check_finite(energy)
        if record:
            cold = _join(cold, state.x.shape[0], self.n_variables)
        # `_join` made the list one array when recording
        recorded = cast(jax.Array, cold) if record else None
        return state, Rounds(energy, acceptance, swapped, recorded, observed)


def _join(chunks: list, n_replicas: int, n: int) -> jax.Array:
    if len(chunks) <= 1:
        return chunks[0] if chunks else jnp.zeros((n_replicas, 0, n), jnp.int8)
    return jnp.concatenate(chunks, axis=1)


def _check_finite(energy: np.ndarray) -> None:
    if not np.all(np.isfinite(energy)):
        r, t, i = np.argwhere(~np.isfinite(energy))[0]
        raise ValueError(
            f"the model's energy is NaN or inf at round {t}, ladder slot {i} (replica {r}); "
            "check its parameters and energy function"
        )


def _cold_energy(runner: Runner, rounds: Rounds, thin: int) -> np.ndarray:
    """E of each recorded beta = 1 state (after its round's swaps), from the V's.

    The top slot holds, after the swaps, the state that was at slot N-2 when
    the last pair swapped, else its own; E = V + E_ref of that state.
    """
    energy = np.asarray(rounds.energy[:, thin - 1 :: thin], np.float64)
    swapped = np.asarray(rounds.swapped[:, thin - 1 :: thin, -1])
    v = np.where(swapped, energy[..., -2], energy[..., -1])
    if runner.reference is None:
        return v
    assert rounds.cold is not None  # called for recorded runs only
    cold = runner.model.to_internal(rounds.cold)  # the draws are in natural order
    e_ref = ref_lib.energy(cold.reshape(-1, cold.shape[-1]), runner.model.blocks, runner.reference)
    return v + np.asarray(e_ref, np.float64).reshape(v.shape)


def _clamped_reference_log_z(blocks, reference, clamp) -> float:
    """log of the reference mass of the clamped variables' free alternatives.

    With variables held fixed the reference normaliser runs over the free
    variables only, times exp(eta(clamped values)): subtract the clamped
    variables' log-partition and add their fixed log-weights.
    """
    mask, values = (np.asarray(a) for a in clamp)
    total = 0.0
    for blk, logits in zip(blocks, reference, strict=True):
        m = mask[blk.slice]
        if not m.any():
            continue
        sub = np.asarray(logits)[m]
        v = values[blk.slice][m].astype(np.int64)
        if blk.kind == "spin":
            total += float(np.sum(np.logaddexp(sub / 2, -sub / 2)) - np.sum(v * sub / 2))
        elif blk.kind == "binary":
            total += float(np.sum(np.logaddexp(0.0, sub)) - np.sum(v * sub))
        else:
            lse = np.log(np.sum(np.exp(sub - sub.max(-1, keepdims=True)), -1)) + sub.max(-1)
            total += float(np.sum(lse) - np.sum(np.take_along_axis(sub, v[:, None], -1)))
    return total


@dataclasses.dataclass
class NRPTResult:
    """The outcome of `hn.nrpt`; R = `n_replicas` independent ladders.

    Attributes:
        samples: int8 (R, n_rounds // thin, n): the beta = 1 chain of every
            replica after every `thin`-th round (after that round's swaps),
            natural order, on the device the run used (ArviZ layout: chain,
            draw, variable; `hn.rhat(result.samples)` compares replicas).
            None with `record=False`.
        sample_energy: (R, n_rounds // thin) float64: the model energy E at
            beta = 1 of each draw in `samples`, for reweighting them to other
            betas (None with `record=False`).
        state: the final `NRPTState`, replica axis first (pass it back as
            `state=` to continue).
        energy: (R, n_rounds, N) path energies V = E - E_ref per ladder slot
            and round, after exploration and before the round's swaps (what
            the swaps and the stepping stone use; E_ref = 0 for the uniform
            reference, so V = E). Every round, also with `thin`: N floats a
            round are all a run keeps when it records nothing.
        acceptance: (R, n_rounds, N-1) swap acceptance probabilities per pair.
        ladder: (N,) inverse temperatures.
        log_z_reference: exact log Z of the path's beta = 0 end (the reference).
        observed: observer states fed every recorded round's beta = 1 state
            of every replica, streamed inside the run (`observers=`).
    """

    samples: jax.Array | None
    state: tempering.NRPTState
    energy: np.ndarray
    acceptance: np.ndarray
    ladder: np.ndarray
    log_z_reference: float
    observed: dict | None = None
    sample_energy: np.ndarray | None = None

    @property
    def log_z(self) -> evidence.LogZ:
        """The stepping-stone log Z of the run: Bennett's ratio pooled over the
        replicas, whose error bar sees the spread between them.

        Raises:
            core.evidence.TooFewRounds: the run is too short for an error bar.
        """
        return evidence.stepping_stone(self.energy, self.ladder, self.log_z_reference)

    @property
    def n_replicas(self) -> int:
        return int(self.energy.shape[0])

    @property
    def rejection(self) -> np.ndarray:
        """Mean rejection rate per neighbouring pair (over replicas and rounds)."""
        return 1.0 - self.acceptance.mean(axis=(0, 1))

    @property
    def total_barrier(self) -> float:
        return schedule.total_barrier(self.rejection)

    @property
    def round_trips(self) -> int:
        """Round trips of all replicas together."""
        return int(np.sum(self.state.round_trips))


def check_houdayer(houdayer, model, n_replicas: int) -> None:
    """A clear error unless Houdayer moves can run: an Ising model, even `n_replicas`."""
    if not isinstance(houdayer, (bool, np.bool_)):
        raise TypeError(f"houdayer must be True or False, got {houdayer!r}")
    if not houdayer:
        return
    if n_replicas < 2 or n_replicas % 2:
        raise ValueError(
            f"houdayer=True pairs replicas 2k and 2k + 1: n_replicas must be even, got {n_replicas}"
        )
    if any(blk.kind != "spin" for blk in model.blocks):
        raise ValueError("houdayer=True needs an Ising model (spin variables)")
    problem = explorers_lib.SWENDSEN_WANG.problem(model)
    if problem:
        raise ValueError(f"houdayer=True cannot run on this model: {problem}")


def _start(runner: Runner, key, betas, init, n_replicas: int) -> tempering.NRPTState:
    state = runner.initial_state(key, betas, n_replicas)
    if init is None:
        return state
    model = runner.model
    x = model.validate_state(init, name="init")
    shape = tuple(state.x.shape)
    if x.shape not in (shape[2:], shape[1:], shape):
        raise ValueError(f"init must have shape {shape[2:]}, {shape[1:]} or {shape}, got {x.shape}")
    x = model.to_internal(jnp.broadcast_to(x, shape))
    if runner.clamp is not None:
        x = jnp.where(runner.clamp[0], runner.clamp[1], x)
    return runner._place(state._replace(x=x))


def nrpt(
    model: EnergyModel,
    key: jax.Array,
    betas: ArrayLike | None = None,
    n_rounds: int = 1000,
    n_explore: int = 1,
    n_betas: int = UNSET,
    init: ArrayLike | None = None,
    clamp: tuple[ArrayLike, ArrayLike] | None = None,
    reference: Sequence[jax.Array] | None = None,
    state: tempering.NRPTState | None = None,
    device: Any = "auto",
    observers: dict | None = None,
    n_warmup: int | None = None,
    n_replicas: int = 1,
    record: bool = True,
    thin: int = 1,
    n_chains: int | None = None,
    explorer: str | explorers_lib.Explorer = "gibbs",
    houdayer: bool = False,
) -> NRPTResult:
    """Non-reversible parallel tempering on a fixed ladder.

    A fresh run first warms up: `n_warmup` rounds run and are discarded, so
    the samples, the swap statistics and log Z come from the production
    rounds only (uniformly random starting states would otherwise bias log Z
    low). A run continued with `state=` is already warm and, by default,
    continues without warm-up exactly as one longer run would.

    Memory: the draws kept are `n_rounds // thin` per replica (none with
    `record=False`); observers stream inside the compiled program; besides
    these, a run keeps N energies and N-1 acceptances per round and replica
    (what log Z and the swap statistics need).

    Args:
        model: any hamon-nnx model.
        key: PRNG key. Continuing with `state=` and the same key is the same
            as one longer run.
        betas: the ladder, strictly increasing from 0 to 1 (default: `n_betas`
            evenly spaced values). Use `hn.autotune` for a tuned ladder.
        n_rounds: production rounds to run.
        n_explore: explorer updates (Gibbs sweeps by default) per chain per round.
        n_betas: ladder size N when `betas` is None (default 16): the number
            of temperatures, one chain at each, per replica.
        init: optional initial states, natural order: (n,), (N, n) or
            (n_replicas, N, n).
        clamp: optional `(mask, values)` held fixed in every chain.
        reference: optional product reference (logits per block, internal
            order) for the beta = 0 end; uniform by default.
        state: an `NRPTState` to continue from (ignores betas, init and
            n_replicas).
        device: where to run: "auto", "cpu", "gpu", a `jax.Device`, None, or
            several devices (a list or `hn.chain_mesh()`) to shard the ladder
            over (N a multiple of the device count), with identical results;
            see `hamon_nnx.core.device`.
        observers: optional dict name -> observer (`hn.observers.Moments()`,
            ...) fed the beta = 1 state of every replica after every `thin`-th
            round, inside the run; their states are in `result.observed`.
        n_warmup: rounds run first and discarded (default: a quarter of
            `n_rounds`, at least 32, for a fresh run; 0 with `state=`).
        n_replicas: independent ladders run together (their chains explore
            as one batch, each ladder swaps within itself): R-hat across
            them, and a log Z pooled over them whose error bar includes
            their spread.
        record: keep the draws (default); False keeps none (observers and
            log Z still see every round).
        thin: record (and observe) every `thin`-th round.
        n_chains: the old name of `n_betas` (deprecated: in `hn.sample`,
            `n_chains` counts independent chains).
        explorer: the local move of every chain between swaps:
            "gibbs" (block Gibbs sweeps, every model), "swendsen_wang" or
            "wolff" (cluster updates of Ising and ferromagnetic Potts
            models, `core.clusters`), parts joined by "+" (one after the
            other), or a `core.explorers.Explorer`.
        houdayer: Houdayer cluster moves (2001) between replicas 2k and
            2k + 1 at each beta, every round (Ising models, an even
            `n_replicas`): where two replicas of a spin glass differ, whole
            clusters of the difference swap between them, always accepted.

    Returns:
        NRPTResult with the cold-chain samples, log Z and swap statistics.

    Example:
        >>> import jax, hamon_nnx as hn
        >>> m = hn.IsingModel.lattice((8, 8), coupling=0.5)
        >>> res = hn.nrpt(m, jax.random.key(0), n_rounds=200, n_betas=8, n_replicas=2)
        >>> res.samples.shape, res.energy.shape
        ((2, 200, 64), (2, 200, 8))
    """
    key = _check_key(key)
    n_betas = renamed("hn.nrpt", "n_chains", n_chains, "n_betas", n_betas, 16)
    n_rounds = _check_count("n_rounds", n_rounds, 1)
    n_explore = _check_count("n_explore", n_explore, 1)
    n_replicas = _check_count("n_replicas", n_replicas, 1)
    thin = _check_count("thin", thin, 1)
    if not isinstance(record, (bool, np.bool_)):
        raise TypeError(f"record must be True or False, got {record!r}")
    if n_warmup is None:
        n_warmup = 0 if state is not None else max(32, n_rounds // 4)
    n_warmup = _check_count("n_warmup", n_warmup, 0)
    observers = None if observers is None else obs_lib.check_observers(observers)
    if state is None and betas is None:
        betas = np.linspace(0.0, 1.0, _check_count("n_betas", n_betas, 2))
    # betas is set above when there is no state
    size = np.size(cast("ArrayLike", betas)) if state is None else int(state.ladder.shape[-1])
    explorer = explorers_lib.check(explorer, model)
    check_houdayer(houdayer, model, n_replicas if state is None else int(state.x.shape[0]))
    runner = Runner(
        model, clamp=clamp, reference=reference, device=device, n_chains=size, houdayer=houdayer
    )
    init_key, run_key = jax.random.split(key)
    if state is None:
        state = _start(runner, init_key, betas, init, n_replicas)
    if n_warmup:
        state, _ = runner.run(run_key, state, n_warmup, n_explore, record=False, explorer=explorer)
        zero = jnp.zeros_like(state.round_trips)
        state = tempering.reset_statistics(state)._replace(round_trips=zero, restarts=zero)
    state, rounds = runner.run(
        run_key, state, n_rounds, n_explore, thin=thin, record=record, observers=observers,
        explorer=explorer,
    )  # fmt: skip
    ladder = np.asarray(state.ladder[0], np.float64)
    energy = np.asarray(rounds.energy, np.float64)
    return NRPTResult(
        samples=rounds.cold,
        sample_energy=_cold_energy(runner, rounds, thin) if record else None,
        state=state,
        energy=energy,
        acceptance=np.asarray(rounds.acceptance, np.float64),
        ladder=ladder,
        log_z_reference=runner.log_z_reference(),
        observed=rounds.observed,
    )
