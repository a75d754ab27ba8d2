"""Where sampling runs: device routing, chain sharding, compile cache.

Every entry point (`hn.sample`, `hn.nrpt`, `hn.autotune`, `hn.autosample`,
`hn.ising_sample`, `hn.Trainer`) takes `device=` and turns it into a
`Placement` once, through `resolve`:

* `None`: placement untouched; JAX runs the program where its inputs are
  (its default device).
* `"auto"` (the default): in a run over several processes
  (`hn.distributed.initialize`), the chains are sharded over every device
  of every process. Otherwise, with no accelerator visible, placement untouched.
  With one, work that is dispatch-bound goes to the CPU and the rest stays
  on the accelerator. The work score is the variable updates of one sweep,
  chains x free variables: both a CPU sweep and an accelerator sweep cost
  (fixed launch latency) + (per-update cost) x work, so the number of
  sweeps multiplies both sides and does not move the crossover. Work at or
  above the threshold (`DEFAULT_THRESHOLD`, or the value
  `benchmarks/device_crossover.py` measures on your machine) runs on the
  accelerator.
* `"cpu"`, `"gpu"`: the first local device of that kind; "gpu" with no GPU
  visible is an error, never a silent fallback.
* a `jax.Device`: that device.
* several devices, as a list of `jax.Device` or a `jax.sharding.Mesh` with an
  axis named "chains" (`chain_mesh()` builds one over all devices): the
  chain axis (the ladder axis for NRPT, the batch and negative chains for
  training) is sharded over them with `NamedSharding(mesh, P("chains"))`;
  parameters and keys are replicated, and `jax.jit` partitions the program.
  The chain count must be a multiple of the number of devices.

Environment overrides for "auto" (explicit arguments win over them):

* `HAMON_DEVICE=cpu|gpu|none|auto`: force the CPU, force the GPU, leave
  placement to JAX, or decide by work.
* `HAMON_DEVICE_THRESHOLD=<updates per sweep>`: the crossover work score.

Sharding changes no sample: the random bits of chain c in sweep t, block b
are a hash of the counters (c, word) under `fold_in(fold_in(key, t), b)`
(`core.random`), and every other draw is an elementwise
`jax.random` draw (threefry in its partitionable mode hashes each element's
own index), so each device computes exactly the rows it holds; tests check
bit-identical draws on 1, 2 and 4 devices. Training reductions over a
sharded batch are summed per device first, so trained parameters agree to
float32 rounding, not bit for bit.

Several processes (`hn.distributed`, tested with 2 processes x 2 CPU
devices): every process calls `hn.distributed.initialize()` first (or is
started by `python -m hamon_nnx.launch -n N -- COMMAND`), then runs the same
calls with the same arguments; "auto" placement then shards over every
device of every process (a Mesh spanning processes works as `device=` too).
Inputs are built in each process from its own copy (`put`: they depend only
on the key and the arguments, and `Placement.check_same` compares them
before any work), so draws, log Z, plans, AIS weights and trained parameters
are bit-identical to one process with one device. Chains come back as
global arrays: `hn.distributed.gather(x)` gives each process the whole
array; small statistics are replicated. One caveat measured on CPUs: XLA's
CPU matrix products may split a reduction over a device's threads, so a
device with a different thread count (two devices sharing one process's
pool) can round a large training gradient differently; separate processes
with one device each match one process with one device.

Example:
    >>> import hamon_nnx as hn
    >>> place = hn.resolve_device("cpu")
    >>> place.device.platform
    'cpu'
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from collections.abc import Sequence
from typing import Any, cast

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

CHAINS = "chains"  # the mesh axis the chain (ladder, batch) axis is sharded over
DEVICE_NAMES = ("auto", "cpu", "gpu")
ENV_DEVICE = "HAMON_DEVICE"
ENV_DEVICE_VALUES = ("cpu", "gpu", "none", "auto")
ENV_THRESHOLD = "HAMON_DEVICE_THRESHOLD"
# Variable updates per sweep above which an accelerator beats the CPU. An
# estimate from a ~30 us launch-bound accelerator sweep against ~1 update per
# ns on a CPU; benchmarks/device_crossover.py measures the real crossover.
DEFAULT_THRESHOLD = 2**15


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where a computation runs: untouched, one device, or a mesh of devices.

    Attributes:
        device: the single device everything is put on, or None.
        mesh: a Mesh with a "chains" axis the chain axis is sharded over, or None.
        reason: a short note on how the placement was chosen.

    With neither `device` nor `mesh`, inputs are left where they are.

    Example:
        >>> import jax.numpy as jnp, hamon_nnx as hn
        >>> place = hn.resolve_device("cpu")
        >>> x = place.shard_chains(jnp.zeros((4, 3)))
        >>> sorted(d.platform for d in x.devices())
        ['cpu']
    """

    device: jax.Device | None = None  # pyright: ignore[reportInvalidTypeForm]
    mesh: Mesh | None = None
    reason: str = ""

    @property
    def n_devices(self) -> int:
        """Devices the chain axis is split over (1 unless sharded)."""
        return 1 if self.mesh is None else int(self.mesh.shape[CHAINS])

    @property
    def sharded(self) -> bool:
        return self.mesh is not None

    @property
    def chain_sharding(self) -> NamedSharding | None:
        """The sharding of arrays whose leading axis is the chain axis (hashable)."""
        if self.mesh is None:
            return None
        return NamedSharding(self.mesh, PartitionSpec(CHAINS))

    @property
    def ladder_sharding(self) -> NamedSharding | None:
        """The sharding of (replica, ladder slot, ...) tempering arrays: slots split."""
        if self.mesh is None:
            return None
        return NamedSharding(self.mesh, PartitionSpec(None, CHAINS))

    @property
    def replicated(self) -> NamedSharding | None:
        if self.mesh is None:
            return None
        return NamedSharding(self.mesh, PartitionSpec())

    def round_up(self, n_chains: int) -> int:
        """The smallest multiple of the device count that is >= n_chains."""
        d = self.n_devices
        return d * math.ceil(n_chains / d)

    def check_chains(self, n_chains: int, name: str = "n_chains") -> None:
        """Raise unless `n_chains` splits evenly over the devices."""
        d = self.n_devices
        if n_chains % d:
            raise ValueError(
                f"{name} = {n_chains} must be a multiple of the {d} devices the chains are "
                f"sharded over (e.g. {d * math.ceil(n_chains / d)}), or use fewer devices"
            )

    @property
    def multi_process(self) -> bool:
        """Whether the mesh spans several processes (`jax.distributed`)."""
        return self.mesh is not None and len({d.process_index for d in self.mesh.devices.flat}) > 1

    def check_same(self, values: dict, what: str = "the arguments") -> None:
        """Over several processes: raise unless each value is the same in all of them."""
        if self.multi_process:
            from . import distributed

            distributed.check_same(values, what)

    def replicate(self, tree):
        """Put every array of `tree` on the device, or a full copy on every mesh device."""
        target = self.device if self.mesh is None else self.replicated
        if target is None:
            return tree
        return put(tree, target)

    def shard_chains(self, tree, axis: int = 0):
        """Put arrays whose axis `axis` is the chain axis: split over the mesh."""
        if self.mesh is None:
            return tree if self.device is None else jax.device_put(tree, self.device)
        for leaf in jax.tree.leaves(tree):
            self.check_chains(int(np.shape(leaf)[axis]), "the chain axis")
        spec = PartitionSpec(*([None] * axis), CHAINS)
        return put(tree, NamedSharding(self.mesh, spec))


def put(tree, sharding):
    """`jax.device_put(tree, sharding)`, also when the sharding spans several processes.

    Over processes (`jax.distributed`), each process builds its own shards
    from its copy of the value (`jax.make_array_from_callback`): the values
    are the same in every process by construction (they depend only on the
    key and the arguments, which `distributed.check_same` compares).
    Arrays already spread over the processes are resharded by a copy
    program.
    """
    if not isinstance(sharding, NamedSharding) or sharding.is_fully_addressable:
        return jax.device_put(tree, sharding)
    return jax.tree.map(lambda x: _put_global(x, sharding), tree)


def _put_global(x, sharding: NamedSharding):
    if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):  # pyright: ignore[reportPrivateImportUsage]
        data = _put_global(jax.random.key_data(x), _extend(sharding, x.ndim + 1))
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        return jax.jit(lambda a: a, out_shardings=sharding)(x)
    host = np.asarray(x)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def _extend(sharding: NamedSharding, ndim: int) -> NamedSharding:
    """The same sharding for an array with trailing axes added (a key's data)."""
    spec = tuple(sharding.spec) + (None,) * (ndim - len(sharding.spec))
    return NamedSharding(sharding.mesh, PartitionSpec(*spec[:ndim]))


def constrain_chains(x, sharding: NamedSharding | None):
    """Inside a jitted program: keep the chain axis of x sharded as `sharding` says."""
    if sharding is None:
        return x
    return jax.lax.with_sharding_constraint(x, sharding)


def replicate_within(tree, sharding: NamedSharding | None):
    """Inside a jitted program: a full copy of `tree` on every device of the mesh.

    Used on small per-round statistics so that every host can read them.
    """
    if sharding is None:
        return tree
    full = NamedSharding(sharding.mesh, PartitionSpec())
    return jax.lax.with_sharding_constraint(tree, full)


def accelerators() -> list[jax.Device]:  # pyright: ignore[reportInvalidTypeForm]
    """Local devices of the default backend when it is not the CPU, else []."""
    if jax.default_backend() == "cpu":
        return []
    return list(jax.local_devices())


def _local(platform: str) -> list[jax.Device]:  # pyright: ignore[reportInvalidTypeForm]
    try:
        return list(jax.local_devices(backend=platform))
    except RuntimeError:  # backend not present or not initialised
        return []


def _gpu() -> jax.Device:  # pyright: ignore[reportInvalidTypeForm]
    gpus = _local("gpu")
    if not gpus:
        visible = ", ".join(str(d) for d in jax.devices()) or "none"
        raise RuntimeError(
            f"device='gpu' was requested but JAX sees no GPU (visible devices: {visible}). "
            "Install a CUDA or ROCm build of jaxlib, check JAX_PLATFORMS, or use "
            "device='auto' / 'cpu'"
        )
    return gpus[0]


def _cpu() -> jax.Device:  # pyright: ignore[reportInvalidTypeForm]
    cpus = _local("cpu")
    if not cpus:
        raise RuntimeError("device='cpu' was requested but JAX has no CPU backend (JAX_PLATFORMS)")
    return cpus[0]


def threshold() -> float:
    """The crossover work score: `HAMON_DEVICE_THRESHOLD` if set, else the default.

    Raises:
        ValueError: the environment variable is not a number >= 0.
    """
    raw = os.environ.get(ENV_THRESHOLD, "").strip()
    if not raw:
        return float(DEFAULT_THRESHOLD)
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise ValueError(
            f"{ENV_THRESHOLD} must be a number >= 0 (variable updates per sweep, e.g. 32768), "
            f"got {raw!r}"
        )
    return value


def _env_device() -> str:
    raw = os.environ.get(ENV_DEVICE, "").strip().lower()
    if not raw:
        return "auto"
    if raw not in ENV_DEVICE_VALUES:
        raise ValueError(
            f"{ENV_DEVICE} must be one of {', '.join(ENV_DEVICE_VALUES)}, "
            f"got {os.environ[ENV_DEVICE]!r}"
        )
    return raw


def chain_mesh(devices: int | Sequence[Any] | None = None) -> Mesh:
    """A one-axis Mesh named "chains" to shard chains over.

    Args:
        devices: the devices, an int (the first that many of `jax.devices()`),
            or None for all of `jax.devices()` (global across hosts after
            `jax.distributed.initialize`).

    Returns:
        `jax.sharding.Mesh` with axis "chains"; pass it as `device=`.

    Example:
        >>> import hamon_nnx as hn
        >>> hn.chain_mesh(1).shape["chains"]
        1
    """
    all_devices = jax.devices()
    if devices is None:
        devices = all_devices
    elif isinstance(devices, int) and not isinstance(devices, bool):
        if not 1 <= devices <= len(all_devices):
            raise ValueError(
                f"chain_mesh({devices}): there are {len(all_devices)} devices, "
                f"ask for 1 to {len(all_devices)}"
            )
        devices = all_devices[:devices]
    devices = list(cast(Sequence[Any], devices))  # an int is sliced above
    if not devices or not all(isinstance(d, jax.Device) for d in devices):
        raise TypeError("chain_mesh needs a non-empty sequence of jax.Device (or an int / None)")
    if len({d.id for d in devices}) != len(devices):
        raise ValueError("chain_mesh: the same device is listed twice")
    return Mesh(np.array(devices, dtype=object), (CHAINS,))


def _from_mesh(mesh: Mesh) -> Placement:
    if CHAINS not in mesh.axis_names:
        raise ValueError(
            f"a Mesh given as device= needs an axis named {CHAINS!r} to shard the chains over, "
            f"got axes {mesh.axis_names}; build one with hn.chain_mesh(devices)"
        )
    if mesh.size == 1:
        return Placement(device=mesh.devices.flat[0], reason="one-device mesh")
    return Placement(mesh=mesh, reason=f"chains sharded over {mesh.shape[CHAINS]} devices")


def _bad_device(device) -> ValueError:
    return ValueError(
        f"device must be one of {', '.join(repr(n) for n in DEVICE_NAMES)}, None, a jax.Device, "
        f"a sequence of jax.Device or a Mesh with a 'chains' axis; got {device!r}"
    )


def check(device) -> None:
    """Validate a `device=` argument without choosing anything (for constructors)."""
    if device is None or isinstance(device, (jax.Device, Mesh)):
        if isinstance(device, Mesh):
            _from_mesh(device)
        return
    if isinstance(device, str):
        if device.strip().lower() not in DEVICE_NAMES:
            raise _bad_device(device)
        return
    if isinstance(device, Sequence) and device and all(isinstance(d, jax.Device) for d in device):
        return
    raise _bad_device(device)


def resolve(
    device: Any = "auto", *, n_chains: int | None = None, n_variables: int | None = None
) -> Placement:
    """Turn a `device=` argument into a `Placement`; see the module doc.

    Args:
        device: "auto", "cpu", "gpu", None, a `jax.Device`, a sequence of
            devices or a Mesh with a "chains" axis.
        n_chains: chains (ladder slots, batch rows) of the work, for "auto".
        n_variables: free variables per chain, for "auto".

    Returns:
        Placement.

    Raises:
        ValueError: unknown device string, or a bad `HAMON_DEVICE` /
            `HAMON_DEVICE_THRESHOLD`.
        RuntimeError: "gpu" requested (or forced) with no GPU visible.

    Example:
        >>> import hamon_nnx as hn
        >>> hn.resolve_device(None).device is None
        True
    """
    check(device)
    if device is None:
        return Placement(reason="device=None: placement left to JAX")
    if isinstance(device, jax.Device):
        return Placement(device=device, reason=f"device={device}")
    if isinstance(device, Mesh):
        return _from_mesh(device)
    if not isinstance(device, str):
        return _from_mesh(chain_mesh(device))
    name = device.strip().lower()
    if name == "cpu":
        return Placement(device=_cpu(), reason="device='cpu'")
    if name == "gpu":
        return Placement(device=_gpu(), reason="device='gpu'")
    forced = _env_device()
    if forced == "none":
        return Placement(reason=f"{ENV_DEVICE}=none: placement left to JAX")
    if forced == "cpu":
        return Placement(device=_cpu(), reason=f"{ENV_DEVICE}=cpu")
    if forced == "gpu":
        return Placement(device=_gpu(), reason=f"{ENV_DEVICE}=gpu")
    limit = threshold()  # validated even when unused, so a typo shows up at once
    if jax.process_count() > 1:  # a run over several processes: all of their devices
        mesh = chain_mesh()
        return Placement(mesh=mesh, reason=f"auto: {jax.process_count()} processes, chains "
                         f"sharded over their {mesh.size} devices")  # fmt: skip
    if not accelerators():
        return Placement(reason="auto: no accelerator, placement left to JAX")
    if n_chains is None or n_variables is None:
        return Placement(reason="auto: work unknown, placement left to JAX")
    work = work_score(n_chains, n_variables)
    if work >= limit:
        return Placement(reason=f"auto: work {work} >= threshold {limit:g}, accelerator")
    cpus = _local("cpu")
    if not cpus:
        return Placement(reason="auto: small work but no CPU backend, placement left to JAX")
    return Placement(device=cpus[0], reason=f"auto: work {work} < threshold {limit:g}, CPU")


resolve_device = resolve  # the public name, `hn.resolve_device`


def work_score(n_chains: int, n_variables: int) -> int:
    """Variable updates per sweep: chains x free variables."""
    return int(n_chains) * int(n_variables)


# -- persistent compile cache --------------------------------------------------

_CACHE_OPTIONS = (
    "jax_compilation_cache_dir",
    "jax_persistent_cache_min_compile_time_secs",
    "jax_persistent_cache_min_entry_size_bytes",
    "jax_compilation_cache_max_size",
)
_saved_cache_options: dict | None = None
CACHE_ENV = "HAMON_NNX_COMPILE_CACHE"  # "0" (or off/false/no) opts out; a path moves it
CACHE_MAX_BYTES = 2**30  # beyond 1 GiB the least recently used programs are evicted
_OFF = ("0", "off", "false", "no")


def default_cache_dir() -> str:
    """`$XDG_CACHE_HOME/hamon_nnx/jax` (default `~/.cache/hamon_nnx/jax`)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "hamon_nnx", "jax")


def _reset_jax_cache() -> None:
    # JAX opens its cache on the first compile; reset so a new directory is used
    from jax.experimental.compilation_cache import compilation_cache

    compilation_cache.reset_cache()


def enable_compile_cache(
    path=None, *, min_compile_time_s: float = 0.0, max_size_bytes: int = CACHE_MAX_BYTES
) -> str:
    """Turn on JAX's persistent compilation cache, so new processes skip compiles.

    `import hamon_nnx` already does this (`use_default_compile_cache`) unless
    the environment opts out; call it to choose another folder or bounds. It
    sets JAX's `jax_compilation_cache_dir`, the minimum compile time and entry
    size worth caching, and the cache's size bound for this process (JAX
    evicts the least recently used programs beyond it).
    `disable_compile_cache()` restores the previous values. Cached programs
    are the programs JAX would compile: the same key gives the same draws
    with and without the cache.

    Args:
        path: cache folder (created); default `default_cache_dir()`.
        min_compile_time_s: programs that compile faster are not cached.
        max_size_bytes: the cache's size bound (-1: none).

    Returns:
        The absolute cache folder.

    Example:
        >>> import tempfile, hamon_nnx as hn
        >>> path = hn.enable_compile_cache(tempfile.mkdtemp())
        >>> hn.disable_compile_cache()
    """
    global _saved_cache_options
    value = float(min_compile_time_s)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"min_compile_time_s must be a number >= 0, got {min_compile_time_s!r}")
    if isinstance(max_size_bytes, bool) or not isinstance(max_size_bytes, int):
        raise TypeError(f"max_size_bytes must be an int, got {max_size_bytes!r}")
    if max_size_bytes < -1 or max_size_bytes == 0:
        raise ValueError(f"max_size_bytes must be > 0 or -1 (no bound), got {max_size_bytes}")
    path = os.path.abspath(os.path.expanduser(os.fspath(path or default_cache_dir())))
    os.makedirs(path, exist_ok=True)
    if _saved_cache_options is None:
        _saved_cache_options = {name: getattr(jax.config, name) for name in _CACHE_OPTIONS}
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", value)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    jax.config.update("jax_compilation_cache_max_size", int(max_size_bytes))
    _reset_jax_cache()
    return path


def use_default_compile_cache() -> str | None:
    """The cache `import hamon_nnx` turns on: the folder, or None where it is off.

    On by default, every backend, in `default_cache_dir()` with every program
    cached (compiles of a few tenths of a second add up to most of a first
    call) and at most `CACHE_MAX_BYTES` on disk. Left alone where JAX
    already has a cache folder (`JAX_COMPILATION_CACHE_DIR` or the user's own
    `jax.config` setting). `HAMON_NNX_COMPILE_CACHE=0` (or off, false, no)
    turns it off; any other value is the folder to use. A folder that cannot
    be created leaves the cache off with a warning.
    """
    setting = os.environ.get(CACHE_ENV, "").strip()
    if setting.lower() in _OFF:
        return None
    if jax.config.jax_compilation_cache_dir:  # pyright: ignore[reportAttributeAccessIssue]
        return jax.config.jax_compilation_cache_dir  # pyright: ignore[reportAttributeAccessIssue]
    try:
        return enable_compile_cache(setting or None)
    except OSError as err:
        warnings.warn(
            f"hamon-nnx could not create its compile cache ({err}); compiling without it. "
            f"Set {CACHE_ENV}=<folder> to choose another, or {CACHE_ENV}=0 to silence this",
            stacklevel=2,
        )
        return None


def disable_compile_cache() -> None:
    """Turn the persistent cache off: JAX's cache settings as before hamon-nnx set them."""
    global _saved_cache_options
    if _saved_cache_options is None:
        return
    for name, value in _saved_cache_options.items():
        jax.config.update(name, value)
    _saved_cache_options = None
    _reset_jax_cache()
