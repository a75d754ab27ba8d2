"""`hn.nrpt`: non-reversible parallel tempering of any model on a fixed ladder."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from .core import device as device_lib
from .core import evidence, gibbs, schedule, tempering
from .core import observers as obs_lib
from .core import reference as ref_lib
from .models.base import EnergyModel, check_params_finite
from .sampling import _check_count, _check_key, check_clamp

# Incremented each time the NRPT program is traced (tests count retraces).
TRACE_COUNT = 0


@functools.partial(jax.jit, static_argnames=("graphdef", "capacity", "chain_sharding"))
def _nrpt_program(
    graphdef,
    params,
    key,
    state,
    clamp_mask,
    reference,
    n_rounds,
    n_explore,
    *,
    capacity,
    chain_sharding=None,
):
    global TRACE_COUNT
    TRACE_COUNT += 1
    model = nnx.merge(graphdef, params)
    clamp = None if clamp_mask is None else gibbs.Clamp(clamp_mask)
    state = state._replace(x=device_lib.constrain_chains(state.x, chain_sharding))
    state, info = tempering.run(
        key,
        state,
        model,
        n_rounds=n_rounds,
        capacity=capacity,
        n_explore=n_explore,
        clamp=clamp,
        reference=reference,
    )
    # per-round statistics are small: a full copy everywhere, readable on every host
    info = device_lib.replicate_within(
        info._replace(cold=model.to_natural(info.cold)), chain_sharding
    )
    return state, info


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

    def __init__(self, model: EnergyModel, clamp=None, reference=None, device=None, n_chains=16):
        if not isinstance(model, EnergyModel):
            raise TypeError(f"model must be a hamon-nnx EnergyModel, got {type(model).__name__}")
        check_params_finite(model)
        self.model = model
        self.graphdef, self.params = nnx.split(model)
        self.clamp = check_clamp(model, clamp)
        self.reference = reference
        n_free = model.n_variables - (0 if self.clamp is None else int(np.sum(self.clamp[0])))
        self.placement = device_lib.resolve(device, n_chains=n_chains, n_variables=n_free)
        self.params, self.clamp = self.placement.replicate((self.params, self.clamp))

    def _place(self, state: tempering.NRPTState) -> tempering.NRPTState:
        """The ladder axis of the chains split over the devices, the rest replicated."""
        self.placement.check_chains(int(state.x.shape[0]), "the ladder size N")
        rest = self.placement.replicate(state._replace(x=None))
        return rest._replace(x=self.placement.shard_chains(state.x))

    @property
    def n_variables(self) -> int:
        return self.model.n_variables

    def initial_state(self, key: jax.Array, ladder) -> tempering.NRPTState:
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
            n_chains=n_chains,
            chain_sharding=self.placement.chain_sharding,
        )
        return self._place(tempering.init(x, ladder))

    def log_z_reference(self) -> float:
        blocks = self.model.blocks
        reference = ref_lib.uniform(blocks) if self.reference is None else self.reference
        log_z = float(ref_lib.log_partition(blocks, reference))
        if self.clamp is not None:
            # clamped variables are fixed: remove their share of the reference
            log_z -= _clamped_reference_log_z(blocks, reference, self.clamp)
        return log_z

    @property
    def capacity(self) -> int:
        """Rounds per compiled call: 256, fewer for big models (buffer memory)."""
        rounds = 2 ** int(np.log2(max(2**22 // max(self.n_variables, 1), 1)))
        return int(np.clip(rounds, 8, 256))

    def run(self, key, state, n_rounds: int, n_explore: int):
        """`n_rounds` rounds in chunks of `capacity`, one compiled program for all."""
        mask = None if self.clamp is None else self.clamp[0]
        state = self._place(state)
        key, reference = self.placement.replicate((key, self.reference))
        chunks = []
        done = 0
        while done < n_rounds:
            active = min(self.capacity, n_rounds - done)
            state, info = _nrpt_program(
                self.graphdef,
                self.params,
                key,
                state,
                mask,
                reference,
                jnp.int32(active),
                jnp.int32(n_explore),
                capacity=self.capacity,
                chain_sharding=self.placement.chain_sharding,
            )
            # slice and join on the host: eager device slicing compiles per length
            chunks.append(jax.tree.map(lambda a, k=active: np.asarray(a)[:k], info))
            done += active
        info = jax.tree.map(lambda *a: np.concatenate(a), *chunks)
        energy = info.energy
        if not np.all(np.isfinite(energy)):
            r, i = np.argwhere(~np.isfinite(energy))[0]
            raise ValueError(
                f"the model's energy is NaN or inf at round {r}, ladder slot {i}; "
                "check its parameters and energy function"
            )
        return state, info


def _cold_energy(runner: Runner, info) -> np.ndarray:
    """E of the beta = 1 state after each round's swaps, from the recorded V.

    The top slot holds, after the swaps, the state that was at slot N-2 when
    the last pair swapped, else its own; E = V + E_ref of that state.
    """
    energy = np.asarray(info.energy, np.float64)
    swapped = np.asarray(info.swapped)[:, -1]
    v = np.where(swapped, energy[:, -2], energy[:, -1])
    if runner.reference is None:
        return v
    cold = runner.model.to_internal(jnp.asarray(info.cold))  # the draws are in natural order
    e_ref = ref_lib.energy(cold, runner.model.blocks, runner.reference)
    return v + np.asarray(e_ref, np.float64)


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
    """The outcome of `hn.nrpt`.

    Attributes:
        samples: int8 (1, n_rounds, n): the beta = 1 chain after every round
            (after that round's swaps), natural order (ArviZ layout: chain,
            draw, variable).
        sample_energy: (1, n_rounds) float64: the model energy E at beta = 1
            of each draw in `samples`, for reweighting them to other betas.
        state: the final `NRPTState` (pass it back as `state=` to continue).
        energy: (n_rounds, N) path energies V = E - E_ref per ladder slot and
            round, after exploration and before the round's swaps (what the
            swaps and the stepping stone use; E_ref = 0 for the uniform
            reference, so V = E).
        acceptance: (n_rounds, N-1) swap acceptance probabilities per pair.
        ladder: (N,) inverse temperatures.
        log_z: `core.evidence.LogZ` (stepping stone, both directions).
    """

    samples: jax.Array
    state: tempering.NRPTState
    energy: np.ndarray
    acceptance: np.ndarray
    ladder: np.ndarray
    log_z: evidence.LogZ | None
    observed: dict | None = None  # observer states over the cold chain (`observers=`)
    sample_energy: np.ndarray | None = None

    @property
    def rejection(self) -> np.ndarray:
        """Mean rejection rate per neighbouring pair."""
        return 1.0 - self.acceptance.mean(axis=0)

    @property
    def total_barrier(self) -> float:
        return schedule.total_barrier(self.rejection)

    @property
    def round_trips(self) -> int:
        return int(self.state.round_trips)


def nrpt(
    model: EnergyModel,
    key: jax.Array,
    betas=None,
    n_rounds: int = 1000,
    n_explore: int = 1,
    n_chains: int = 16,
    init=None,
    clamp=None,
    reference=None,
    state: tempering.NRPTState | None = None,
    device="auto",
    observers=None,
    n_warmup: int | None = None,
) -> NRPTResult:
    """Non-reversible parallel tempering on a fixed ladder.

    A fresh run first warms up: `n_warmup` rounds run and are discarded, so
    the samples, the swap statistics and log Z come from the production
    rounds only (uniformly random starting states would otherwise bias log Z
    low). A run continued with `state=` is already warm and, by default,
    continues without warm-up exactly as one longer run would.

    Args:
        model: any hamon-nnx model.
        key: PRNG key. Continuing with `state=` and the same key is the same
            as one longer run.
        betas: the ladder, strictly increasing from 0 to 1 (default: `n_chains`
            evenly spaced values). Use `hn.autotune` for a tuned ladder.
        n_rounds: rounds to run; every round records the beta = 1 state.
        n_explore: Gibbs sweeps per chain per round.
        n_chains: ladder size when `betas` is None.
        init: optional (N, n) or (n,) initial states, natural order.
        clamp: optional `(mask, values)` held fixed in every chain.
        reference: optional product reference (logits per block, internal
            order) for the beta = 0 end; uniform by default.
        state: an `NRPTState` to continue from (ignores betas and init).
        device: where to run: "auto", "cpu", "gpu", a `jax.Device`, None, or
            several devices (a list or `hn.chain_mesh()`) to shard the ladder
            over (N a multiple of the device count), with identical results;
            see `hamon_nnx.core.device`.
        observers: optional dict name -> observer (`hn.observers.Moments()`,
            ...) fed the beta = 1 chain after every round; their states are
            in `result.observed`.
        n_warmup: rounds run first and discarded (default: a quarter of
            `n_rounds`, at least 32, for a fresh run; 0 with `state=`).

    Returns:
        NRPTResult with the cold-chain samples, log Z and swap statistics.

    Example:
        >>> import jax, hamon_nnx as hn
        >>> m = hn.IsingModel.lattice((8, 8), coupling=0.5)
        >>> res = hn.nrpt(m, jax.random.key(0), n_rounds=200, n_chains=8)
        >>> res.samples.shape
        (1, 200, 64)
    """
    key = _check_key(key)
    n_rounds = _check_count("n_rounds", n_rounds, 1)
    n_explore = _check_count("n_explore", n_explore, 1)
    if n_warmup is None:
        n_warmup = 0 if state is not None else max(32, n_rounds // 4)
    n_warmup = _check_count("n_warmup", n_warmup, 0)
    if state is None and betas is None:
        betas = np.linspace(0.0, 1.0, _check_count("n_chains", n_chains, 2))
    size = np.size(betas if state is None else state.ladder)
    runner = Runner(model, clamp=clamp, reference=reference, device=device, n_chains=size)
    init_key, run_key = jax.random.split(key)
    if state is None:
        state = runner.initial_state(init_key, betas)
        if init is not None:
            x = model.validate_state(init, name="init")
            x = jnp.broadcast_to(x, state.x.shape) if x.ndim == 1 else x
            if x.shape != state.x.shape:
                raise ValueError(f"init must have shape {state.x.shape[1:]} or {state.x.shape}")
            x = model.to_internal(x)
            if runner.clamp is not None:
                x = jnp.where(runner.clamp[0], runner.clamp[1], x)
            state = state._replace(x=x)
    if n_warmup:
        state, _ = runner.run(run_key, state, n_warmup, n_explore)
        zero = jnp.zeros((), jnp.int32)
        state = tempering.reset_statistics(state)._replace(round_trips=zero, restarts=zero)
    state, info = runner.run(run_key, state, n_rounds, n_explore)
    ladder = np.asarray(state.ladder, np.float64)
    energy = np.asarray(info.energy, np.float64)
    try:
        log_z = evidence.stepping_stone(energy, ladder, runner.log_z_reference())
    except ValueError:
        log_z = None  # too few rounds for an error bar
    return NRPTResult(
        samples=jnp.asarray(info.cold[None]),
        sample_energy=_cold_energy(runner, info)[None],
        state=state,
        energy=energy,
        acceptance=np.asarray(info.acceptance, np.float64),
        ladder=ladder,
        log_z=log_z,
        observed=None if observers is None else obs_lib.observe_draws(observers, model, info.cold),
    )
