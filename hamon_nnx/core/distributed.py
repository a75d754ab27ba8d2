"""Several processes, one global device mesh: `jax.distributed`, set up for this library.

A run over several processes is the same program started once per process
(per host, or per accelerator), each calling `initialize()` first; after
it, `jax.devices()` lists every device of every process, `hn.chain_mesh()`
builds a mesh over all of them, and every entry point given `device=mesh`
shards its chains over the processes. Same key, same draws: every result
equals that of one process with one device, bit for bit (tests run 2
processes x 2 CPU devices on 127.0.0.1).

Where the processes find each other, first match wins:

1. the arguments of `initialize`;
2. `HAMON_NNX_COORDINATOR` (host:port of process 0),
   `HAMON_NNX_NUM_PROCESSES`, `HAMON_NNX_PROCESS_ID` (what
   `python -m hamon_nnx.launch` sets), and `HAMON_NNX_LOCAL_DEVICES` (CPU
   devices per process, for runs on CPUs);
3. JAX's own cluster detection (SLURM, Open MPI, Kubernetes, Cloud TPU).

On CPUs the processes exchange data over Gloo
(`jax_cpu_collectives_implementation`). A process that dies makes the
others fail at their next collective, or at the latest when the
coordination service misses its heartbeat (`heartbeat_timeout_s`, 20 s by
default here, JAX's 100 s): no run waits forever on a dead peer.

Results: arrays sharded over the chain axis live on the processes that
hold their rows; `gather(x)` gives every process the whole array as numpy.
Small per-round statistics (NRPT's swap rates, log Z, plans, losses) are
replicated, so every process reads them directly.

Example:
    >>> import hamon_nnx as hn
    >>> hn.distributed.process_count(), hn.distributed.is_writer()
    (1, True)
"""

from __future__ import annotations

import os

import jax
import numpy as np

ENV_COORDINATOR = "HAMON_NNX_COORDINATOR"
ENV_NUM_PROCESSES = "HAMON_NNX_NUM_PROCESSES"
ENV_PROCESS_ID = "HAMON_NNX_PROCESS_ID"
ENV_LOCAL_DEVICES = "HAMON_NNX_LOCAL_DEVICES"
HEARTBEAT_TIMEOUT_S = 20
INITIALIZATION_TIMEOUT_S = 120


def _env_int(name: str) -> int | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None


def launched() -> bool:
    """Whether this process was started by `hamon_nnx.launch` (or given its variables)."""
    return bool(os.environ.get(ENV_NUM_PROCESSES, "").strip())


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    local_cpu_devices: int | None = None,
    heartbeat_timeout_s: int = HEARTBEAT_TIMEOUT_S,
    initialization_timeout_s: int = INITIALIZATION_TIMEOUT_S,
) -> None:
    """Join this process to the others: call once, first, before any JAX work.

    Args:
        coordinator_address: "host:port" of process 0 (it serves there).
        num_processes: processes in the run.
        process_id: this process's index, 0 .. num_processes - 1.
        local_cpu_devices: CPU devices this process exposes (CPU runs; on
            accelerators each process sees its own).
        heartbeat_timeout_s: a process silent this long is declared dead
            and the others stop with an error.
        initialization_timeout_s: how long to wait for every process to join.

    Arguments left None come from the `HAMON_NNX_*` variables, else from
    JAX's cluster detection. Calling it again after success does nothing.

    Raises:
        ValueError: inconsistent arguments (a process id outside the range).
        RuntimeError: the processes did not all join in time.
    """
    if jax.distributed.is_initialized():
        return
    coordinator_address = coordinator_address or os.environ.get(ENV_COORDINATOR) or None
    num_processes = num_processes if num_processes is not None else _env_int(ENV_NUM_PROCESSES)
    process_id = process_id if process_id is not None else _env_int(ENV_PROCESS_ID)
    local = local_cpu_devices if local_cpu_devices is not None else _env_int(ENV_LOCAL_DEVICES)
    if num_processes is not None and num_processes < 1:
        raise ValueError(f"num_processes must be >= 1, got {num_processes}")
    if process_id is not None and num_processes is not None:
        if not 0 <= process_id < num_processes:
            raise ValueError(f"process_id {process_id} is outside 0..{num_processes - 1}")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if local is not None:
        jax.config.update("jax_num_cpu_devices", int(local))
    jax.distributed.initialize(
        coordinator_address=coordinator_address,
        num_processes=num_processes,
        process_id=process_id,
        heartbeat_timeout_seconds=heartbeat_timeout_s,
        initialization_timeout=initialization_timeout_s,
    )


def process_count() -> int:
    """Processes in the run (1 without `initialize`)."""
    return jax.process_count()


def process_index() -> int:
    """This process's index (0 without `initialize`)."""
    return jax.process_index()


def is_writer() -> bool:
    """Whether this process writes files (samples, plots, reports): process 0 only."""
    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Wait until every process reaches the barrier called `name` (no-op alone)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def gather(tree):
    """Every array of `tree` as a whole numpy array, in every process.

    One process: `np.asarray` of each leaf. Several: arrays spread over the
    processes are all-gathered (`multihost_utils.process_allgather`), so
    all processes must call it together.

    Example:
        >>> import jax.numpy as jnp, hamon_nnx as hn
        >>> hn.distributed.gather({"x": jnp.arange(3)})["x"].tolist()
        [0, 1, 2]
    """
    if jax.process_count() == 1:
        return jax.tree.map(np.asarray, tree)
    from jax.experimental import multihost_utils

    def one(x):
        if not isinstance(x, jax.Array) or x.is_fully_addressable or x.is_fully_replicated:
            return np.asarray(x)
        return np.asarray(multihost_utils.process_allgather(x, tiled=True))

    return jax.tree.map(one, tree)


def check_same(values: dict, what: str = "the arguments") -> None:
    """Raise unless every value of `values` is the same in every process.

    Entry points call it before any work on a mesh that spans processes, so
    a run whose processes were given different keys, models or chain counts
    stops at once, naming what differs. Values: arrays (PRNG keys too),
    numbers, strings, and trees of them (an nnx state).

    Example:
        >>> import hamon_nnx as hn
        >>> hn.distributed.check_same({"n_chains": 64})  # one process: nothing to compare
    """
    if jax.process_count() == 1:
        return
    from jax.experimental import multihost_utils

    names = list(values)
    mine = np.stack([np.frombuffer(_digest(values[k]), np.uint8) for k in names])
    everyone = np.asarray(multihost_utils.process_allgather(mine))  # (processes, k, 32)
    differ = [k for i, k in enumerate(names) if np.any(everyone[:, i] != everyone[0, i])]
    if differ:
        raise ValueError(
            f"{what} differ between the processes: {', '.join(differ)}; every process of a run "
            "must be given the same ones (same key, model, data and counts)"
        )


def _digest(value) -> bytes:
    import hashlib
    import json

    h = hashlib.sha256()
    for leaf in jax.tree.leaves(value):
        if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):  # pyright: ignore[reportPrivateImportUsage]
            leaf = jax.random.key_data(leaf)
        if isinstance(leaf, (jax.Array, np.ndarray)):
            a = np.asarray(gather(leaf))
            h.update(str((a.dtype, a.shape)).encode() + a.tobytes())
        else:
            h.update(json.dumps(leaf, default=repr).encode())
    return h.digest()
