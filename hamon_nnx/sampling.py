"""`hn.sample`: block Gibbs sampling of any model, compiled once per structure."""

from __future__ import annotations

import functools
import warnings
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from numpy.typing import ArrayLike

from .core import device as device_lib
from .core import explorers as explorers_lib
from .core import gibbs, random
from .core import observers as obs_lib
from .models.base import EnergyModel, check_params_finite

# Incremented each time the sampling program is traced (tests count retraces).
TRACE_COUNT = 0


def _check_count(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or int(value) != value or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_key(key) -> jax.Array:
    """A single typed threefry key (raw uint32 pairs are wrapped), or a clear error."""
    key = _as_key(key)
    random.check_threefry(key)
    return key


def _as_key(key) -> jax.Array:
    if not isinstance(key, jax.Array):
        raise TypeError(
            f"key must be a JAX PRNG key (jax.random.key(seed)), got {type(key).__name__}"
        )
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ValueError(f"key must be a single PRNG key, got shape {key.shape}")
        return key
    if key.shape == (2,) and key.dtype == jnp.uint32:
        return jax.random.wrap_key_data(key)
    raise TypeError(f"key must be a JAX PRNG key (jax.random.key(seed)), got dtype {key.dtype}")


def _check_beta(beta, n_chains: int) -> jax.Array:
    arr = np.asarray(beta, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full((n_chains,), float(arr))
    if arr.shape != (n_chains,):
        raise ValueError(
            f"beta must be a scalar or have shape (n_chains,) = ({n_chains},), got {arr.shape}"
        )
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"beta must be finite and >= 0, got {arr.tolist()[:8]}")
    return jnp.asarray(arr, jnp.float32)


def check_clamp(model: EnergyModel, clamp) -> tuple[jax.Array, jax.Array] | None:
    """Validate `clamp=(mask, values)` in natural order; return internal-order arrays."""
    if clamp is None:
        return None
    try:
        mask, values = clamp
    except (TypeError, ValueError) as err:
        raise ValueError("clamp must be a pair (mask, values) of arrays of shape (n,)") from err
    n = model.n_variables
    mask = np.asarray(mask)
    if mask.shape != (n,):
        raise ValueError(f"clamp mask must have shape ({n},) for this model, got {mask.shape}")
    if mask.dtype != np.bool_:
        if not np.all(np.isin(mask, (0, 1))):
            raise ValueError("clamp mask must be boolean (or 0/1)")
        mask = mask.astype(bool)
    values = np.asarray(values)
    if values.shape != (n,):
        raise ValueError(f"clamp values must have shape ({n},) for this model, got {values.shape}")
    # only the clamped entries must be valid values; fill the rest with a legal one
    filled = np.where(mask, values, np.asarray(model.variable_values_first()))
    values = model.validate_state(filled, name="clamp values")
    internal_mask = model.to_internal(jnp.asarray(mask))
    return internal_mask, model.to_internal(values)


@functools.partial(
    jax.jit, static_argnames=("graphdef", "n_chains", "has_init", "has_clamp", "chain_sharding")
)
def _start_program(
    graphdef, state, key, init, clamp_mask, clamp_values, *, n_chains, has_init, has_clamp,
    chain_sharding=None,
):  # fmt: skip
    """The chains' first states: `init` or uniformly random, clamps applied."""
    model = nnx.merge(graphdef, state)
    x = model.to_internal(init) if has_init else gibbs.random_states(key, model.blocks, n_chains)
    if has_clamp:
        x = jnp.where(clamp_mask, clamp_values, x)
    return device_lib.constrain_chains(x, chain_sharding)


@functools.partial(
    jax.jit, static_argnames=("graphdef", "capacity", "chain_sharding", "observers", "explorer")
)
def _chunk_program(
    graphdef, state, key, x, beta, clamp_mask, counts, observed, *, capacity,
    chain_sharding=None, observers=None, explorer=explorers_lib.GIBBS,
):  # fmt: skip
    """Warm-up sweeps, then up to `capacity` draws every `thin` sweeps.

    `counts` = (first sweep t0, warm-up sweeps, draws, thin) are traced, so
    one program serves every run length; sweep t uses `fold_in(key, t)`
    (the streams of `gibbs.run_chains`). The draws are stored in a buffer of
    `capacity` rows or, with `observers`, streamed into their states.
    """
    global TRACE_COUNT
    TRACE_COUNT += 1
    model = nnx.merge(graphdef, state)
    clamp = None if clamp_mask is None else gibbs.Clamp(clamp_mask)
    t0, n_warm, n_draws, thin = counts
    x = device_lib.constrain_chains(x, chain_sharding)

    def draw(i, carry):
        """Step 0 is the warm-up, step i > 0 the sweeps before draw i - 1: one
        explorer in the program, not two (half the compile)."""
        x, out = carry
        first = jnp.where(i == 0, t0, t0 + n_warm + (i - 1) * thin)
        x = explorer.run(key, x, model, beta, first, jnp.where(i == 0, t0 + n_warm, first + thin),
                         clamp)  # fmt: skip
        if observers:

            def observe(states):
                pairs = cast(tuple, observers)  # not None: inside `if observers:`
                return obs_lib.update_all(dict(pairs), states, model.to_natural(x), model)

            return x, jax.lax.cond(i > 0, observe, lambda states: states, out)
        return x, out.at[i].set(x)  # row 0: the warm-up's end, dropped

    buffer = observed if observers else jnp.zeros((capacity + 1, *x.shape), jnp.int8)
    x, out = jax.lax.fori_loop(0, n_draws + 1, draw, (x, buffer))
    if not observers:
        out = model.to_natural(jnp.swapaxes(out[1:], 0, 1))
        out = device_lib.constrain_chains(out, chain_sharding)
    return x, out


def _capacity(n_chains: int, n: int) -> int:
    """Draws per compiled call: a buffer of at most 16 MiB, 1 to 1024 rows."""
    rows = 2 ** int(np.log2(max(2**24 // max(n_chains * n, 1), 1)))
    return int(np.clip(rows, 1, 1024))


def sample(
    model: EnergyModel,
    key: jax.Array,
    n_samples: int = 1000,
    n_chains: int = 4,
    n_warmup: int = 100,
    thin: int = 1,
    beta: ArrayLike = 1.0,
    init: ArrayLike | None = None,
    clamp: tuple[ArrayLike, ArrayLike] | None = None,
    device: Any = "auto",
    observers: dict | None = None,
    explorer: str | explorers_lib.Explorer = "gibbs",
) -> jax.Array:
    """MCMC sampling from pi_beta(x) proportional to exp(-beta E(x)), block Gibbs by default.

    Compiles once per model structure and chain count: new parameter values,
    keys, betas, initial states and run lengths (`n_samples`, `n_warmup`,
    `thin`) reuse the compiled program, which runs the draws in chunks with
    traced counts.

    Args:
        model: any hamon-nnx model (IsingModel, PottsModel, RBM, ...).
        key: a PRNG key, `jax.random.key(seed)`.
        n_samples: draws kept per chain.
        n_chains: independent chains.
        n_warmup: sweeps discarded before the first draw.
        thin: sweeps between kept draws.
        beta: inverse temperature, a scalar or one per chain (n_chains,).
        init: optional initial states (n_chains, n) or (n,) in natural order;
            uniformly random by default.
        clamp: optional `(mask, values)`, arrays of shape (n,) in natural
            order: the masked variables are held at `values`.
        device: where to run: "auto" (small work on the CPU, large on an
            accelerator), "cpu", "gpu", a `jax.Device`, None (leave it to
            JAX), or several devices (a list or `hn.chain_mesh()`) to shard
            the chains over, with identical draws; see `hamon_nnx.core.device`.
        observers: deprecated: use `hn.observe`, which streams the draws into
            observers and returns their states (here the return type would
            change with this argument).
        explorer: the update between draws: "gibbs" (a block Gibbs sweep,
            every model; 32 spins a machine word on periodic Ising lattices
            with a scalar coupling and field, `core.multispin`), "swendsen_wang" or "wolff" (a cluster update of an
            Ising or ferromagnetic Potts model, `core.clusters`), parts
            joined by "+", or a `core.explorers.Explorer`; `n_warmup` and
            `thin` count its updates.

    Returns:
        int8 array (n_chains, n_samples, n) in natural order.

    Example:
        >>> import jax, hamon_nnx as hn
        >>> m = hn.IsingModel.lattice((16, 16), coupling=0.3)
        >>> s = hn.sample(m, jax.random.key(0), n_samples=100, n_chains=8)
        >>> s.shape, s.dtype
        ((8, 100, 256), dtype('int8'))
    """
    if observers is not None:
        warnings.warn(
            "hn.sample(..., observers=...) is now hn.observe(model, key, observers, ...): "
            "hn.sample always returns the draws",
            DeprecationWarning,
            stacklevel=2,
        )
    # the draws (the deprecated `observers` would make it their states)
    return cast(
        jax.Array,
        _run(
            model, key, n_samples, n_chains, n_warmup, thin, beta, init, clamp, device, observers,
            explorer,
        ),
    )  # fmt: skip


def observe(
    model: EnergyModel,
    key: jax.Array,
    observers: dict,
    n_samples: int = 1000,
    n_chains: int = 4,
    n_warmup: int = 100,
    thin: int = 1,
    beta: ArrayLike = 1.0,
    init: ArrayLike | None = None,
    clamp: tuple[ArrayLike, ArrayLike] | None = None,
    device: Any = "auto",
    explorer: str | explorers_lib.Explorer = "gibbs",
) -> dict:
    """Block Gibbs sampling streamed into observers: statistics, no stored draws.

    The same run as `hn.sample` with the same arguments (the same draws), but
    every kept draw is fed to the observers inside the compiled program and
    dropped, so memory does not grow with `n_samples`.

    Args:
        observers: dict name -> observer (`hn.observers.Moments()`,
            `Correlations()`, `Energy()`, ...).
        Others: as in `hn.sample`.

    Returns:
        dict name -> final observer state.

    Example:
        >>> import jax, hamon_nnx as hn
        >>> m = hn.IsingModel.lattice((8, 8), coupling=0.2)
        >>> out = hn.observe(m, jax.random.key(0), {"m": hn.observers.Moments()}, n_samples=50)
        >>> out["m"].n_draws()
        200
    """
    if observers is None:
        raise TypeError("observe needs observers, a dict name -> observer")
    return cast(
        dict,
        _run(
            model, key, n_samples, n_chains, n_warmup, thin, beta, init, clamp, device, observers,
            explorer,
        ),
    )  # fmt: skip


def _run(
    model, key, n_samples, n_chains, n_warmup, thin, beta, init, clamp, device, observers,
    explorer,
) -> jax.Array | dict:  # fmt: skip
    # the draws, or with `observers` the observers' final states
    if not isinstance(model, EnergyModel):
        raise TypeError(f"model must be a hamon-nnx EnergyModel, got {type(model).__name__}")
    explorer = explorers_lib.check(explorer, model)
    key = _check_key(key)
    n_samples = _check_count("n_samples", n_samples, 1)
    n_chains = _check_count("n_chains", n_chains, 1)
    n_warmup = _check_count("n_warmup", n_warmup, 0)
    thin = _check_count("thin", thin, 1)
    beta = _check_beta(beta, n_chains)
    check_params_finite(model)
    n = model.n_variables
    if init is not None:
        init = model.validate_state(init, name="init")
        if init.ndim == 1:
            init = jnp.broadcast_to(init, (n_chains, n))
        if init.shape != (n_chains, n):
            raise ValueError(f"init must have shape ({n},) or ({n_chains}, {n}), got {init.shape}")
    clamp = check_clamp(model, clamp)
    n_free = n if clamp is None else n - int(np.sum(np.asarray(clamp[0])))
    place = device_lib.resolve(device, n_chains=n_chains, n_variables=n_free)
    place.check_chains(n_chains)
    graphdef, state = nnx.split(model)
    place.check_same({"key": key, "model": state, "n_chains, n_samples, n_warmup, thin":
                      (n_chains, n_samples, n_warmup, thin), "beta": beta, "init": init,
                      "clamp": clamp}, "hn.sample's arguments")  # fmt: skip
    mask, values = clamp if clamp is not None else (None, None)
    state, key, mask, values = place.replicate((state, key, mask, values))
    beta, init = place.shard_chains((beta, init))
    observers = None if observers is None else obs_lib.check_observers(observers)
    init_key, run_key = jax.random.split(key)
    x = _start_program(
        graphdef, state, init_key, init, mask, values, n_chains=n_chains,
        has_init=init is not None, has_clamp=clamp is not None,
        chain_sharding=place.chain_sharding,
    )  # fmt: skip
    observed = None
    if observers is not None:
        observed = place.replicate(obs_lib.init_all(observers, model))
        observers = tuple(sorted(observers.items()))
    capacity = _capacity(n_chains, n)
    chunks, done, t = [], 0, 0
    while done < n_samples:
        n_draws, n_warm = min(capacity, n_samples - done), n_warmup if done == 0 else 0
        counts = tuple(jnp.int32(c) for c in (t, n_warm, n_draws, thin))
        x, out = _chunk_program(
            graphdef, state, run_key, x, beta, mask, counts, observed, capacity=capacity,
            chain_sharding=place.chain_sharding, observers=observers, explorer=explorer,
        )  # fmt: skip
        if observers is not None:
            observed = out
        else:
            chunks.append(out if n_draws == capacity else out[:, :n_draws])
        done, t = done + n_draws, t + n_warm + n_draws * thin
    if observers is not None:
        return cast(dict, observed)  # the states, set above with observers
    return chunks[0] if len(chunks) == 1 else jnp.concatenate(chunks, axis=1)
