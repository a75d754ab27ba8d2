import jax
import pytest

# Implicit dtype promotion hides bugs (int8 states silently becoming float64
# on the host, float32 parameters becoming float64): forbid it in tests.
jax.config.update("jax_numpy_dtype_promotion", "strict")


@pytest.fixture
def key():
    return jax.random.key(20261126)


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop each test module's compiled programs when it ends: one process
    runs the whole suite, and hundreds of executables held to the end made
    XLA's compiler crash late in a CI run (a segfault in backend compile)."""
    yield
    jax.clear_caches()
