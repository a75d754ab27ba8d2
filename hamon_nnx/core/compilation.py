"""How much of a call JAX spent compiling: counted from JAX's monitoring events.

JAX reports every compile it makes (tracing to a jaxpr, lowering to MLIR, the
backend's compile or its load from the persistent cache) as a duration
event. A listener registered once sums them; `counting()` gives the share of
one call:

    >>> import jax, jax.numpy as jnp
    >>> from hamon_nnx.core import compilation
    >>> with compilation.counting() as spent:
    ...     _ = jax.jit(lambda x: jnp.cos(x) + 1.5)(jnp.ones(3))
    >>> spent.programs >= 1 and spent.seconds > 0
    True

Reports (`NRPTReport.compile_seconds`) and the Trainer's history
(`compile_seconds`) read it, so a user sees how much of a first call was
compilation and how much a warm cache saved. Counts of programs and cache
hits are exact; seconds are the wall time of those phases, including time
the machine spent on other work.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading

from jax import monitoring

_TRACE = "/jax/core/compile/jaxpr_trace_duration"
_LOWER = "/jax/core/compile/jaxpr_to_mlir_module_duration"
_BACKEND = "/jax/core/compile/backend_compile_duration"  # includes persistent-cache loads
_CACHE_HIT = "/jax/compilation_cache/cache_hits"


@dataclasses.dataclass
class CompileTime:
    """Compilation inside a `counting()` block (or since the process started).

    Attributes:
        seconds: trace + lower + backend seconds.
        backend_seconds: the backend's part (XLA's compile, or the load of a
            cached program).
        programs: programs the backend compiled or loaded.
        cache_hits: of those, the ones loaded from the persistent cache.
    """

    seconds: float = 0.0
    backend_seconds: float = 0.0
    programs: int = 0
    cache_hits: int = 0

    def __sub__(self, other: CompileTime) -> CompileTime:
        return CompileTime(
            *(getattr(self, f.name) - getattr(other, f.name) for f in dataclasses.fields(self))
        )

    def __add__(self, other: CompileTime) -> CompileTime:
        return CompileTime(
            *(getattr(self, f.name) + getattr(other, f.name) for f in dataclasses.fields(self))
        )


_total = CompileTime()
_lock = threading.Lock()


def _on_duration(event: str, duration: float, **_) -> None:
    if event not in (_TRACE, _LOWER, _BACKEND):
        return
    with _lock:
        _total.seconds += duration
        if event == _BACKEND:
            _total.backend_seconds += duration
            _total.programs += 1


def _on_event(event: str, **_) -> None:
    if event == _CACHE_HIT:
        with _lock:
            _total.cache_hits += 1


monitoring.register_event_duration_secs_listener(_on_duration)  # pyright: ignore[reportArgumentType]
monitoring.register_event_listener(_on_event)


def total() -> CompileTime:
    """Compilation of this process so far (a copy)."""
    with _lock:
        return dataclasses.replace(_total)


@contextlib.contextmanager
def counting():
    """A `CompileTime` filled, when the block ends, with the block's compilation."""
    spent = CompileTime()
    before = total()
    try:
        yield spent
    finally:
        delta = total() - before
        for f in dataclasses.fields(spent):
            setattr(spent, f.name, getattr(delta, f.name))
