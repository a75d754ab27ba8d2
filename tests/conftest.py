import jax
import pytest

# Implicit dtype promotion hides bugs (int8 states silently becoming float64
# on the host, float32 parameters becoming float64): forbid it in tests.
jax.config.update("jax_numpy_dtype_promotion", "strict")


@pytest.fixture
def key():
    return jax.random.key(20261126)
