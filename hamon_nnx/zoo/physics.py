"""Named spin models with their known critical points, and a beta scan.

Every constructor returns the model at inverse temperature `beta`: its
couplings and fields are the unit-coupling model's times beta, so that the
model at beta = 1 (what every sampler targets, and the cold end of an NRPT
ladder) is the physical system at beta. `beta="critical"` picks the known
critical point (thermodynamic limit). Conventions are the library's:
E = -sum J s_i s_j - sum h s_i for Ising models, E = -sum J delta(s_i, s_j)
for Potts models.

Example:
    >>> import jax, hamon_nnx as hn
    >>> m = hn.zoo.ising_2d(size=8, beta="critical")
    >>> round(float(m.coupling[...]), 5)
    0.44069
    >>> scan = hn.zoo.beta_scan(m, jax.random.key(0), [0.5, 1.0], n_samples=20, n_chains=2)
    >>> scan.energy.shape
    (2,)
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..models import IsingModel, PottsModel
from ..models.base import KINDS
from ..models.ising import SparseIsing

# 2-D square lattice (Onsager 1944): sinh(2 beta_c) = 1.
ISING_2D_CRITICAL_BETA = math.log(1.0 + math.sqrt(2.0)) / 2.0
# 3-D simple cubic lattice: K_c = 0.221654626(5) (Ferrenberg, Xu & Landau 2018).
ISING_3D_CRITICAL_BETA = 0.221654626
# 3-D Edwards-Anderson +-J spin glass: T_c = 1.1019(29) (Baity-Jesi et al., Janus 2013).
EA_3D_CRITICAL_BETA = 1.0 / 1.1019
# Sherrington-Kirkpatrick with J_ij ~ N(0, 1/N): T_c = 1 (Sherrington & Kirkpatrick 1975).
SK_CRITICAL_BETA = 1.0


def potts_2d_critical_beta(q: int) -> float:
    """beta_c = ln(1 + sqrt(q)) of the q-state Potts model on the square lattice (Baxter 1973)."""
    return math.log(1.0 + math.sqrt(q))


def _beta(beta, critical: float | None, name: str) -> float:
    if isinstance(beta, str):
        if beta != "critical":
            raise ValueError(f"beta must be a number >= 0 or 'critical', got {beta!r}")
        if critical is None:
            raise ValueError(f"{name} has no finite-temperature critical point; pass a number")
        return float(critical)
    if isinstance(beta, bool) or not isinstance(beta, (int, float, np.floating, np.integer)):
        raise ValueError(f"beta must be a number >= 0 or 'critical', got {beta!r}")
    if not math.isfinite(beta) or beta < 0:
        raise ValueError(f"beta must be finite and >= 0, got {beta!r}")
    return float(beta)


def _size(name: str, value, minimum: int = 3) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def ising_2d(size: int = 32, beta=1.0, field: float = 0.0, periodic: bool = True) -> IsingModel:
    """Ferromagnetic Ising model on a size x size square lattice at inverse temperature beta.

    Critical point (infinite lattice): beta_c = ln(1 + sqrt 2) / 2 = 0.4406868
    (Onsager 1944). Exact finite periodic lattices: `hn.exact.ising_lattice_log_partition`.

    Example:
        >>> import hamon_nnx as hn
        >>> hn.zoo.ising_2d(4, beta=0.3).n_variables
        16
    """
    b = _beta(beta, ISING_2D_CRITICAL_BETA, "the 2-D Ising model")
    size = _size("size", size, 3 if periodic else 2)
    return IsingModel.lattice((size, size), coupling=b, field=b * field, periodic=periodic)


def ising_3d(size: int = 16, beta=1.0, field: float = 0.0, periodic: bool = True) -> IsingModel:
    """Ferromagnetic Ising model on a size^3 simple cubic lattice at inverse temperature beta.

    Critical point: beta_c = 0.221654626(5) (Ferrenberg, Xu & Landau 2018).

    Example:
        >>> import hamon_nnx as hn
        >>> hn.zoo.ising_3d(4, beta="critical").n_variables
        64
    """
    b = _beta(beta, ISING_3D_CRITICAL_BETA, "the 3-D Ising model")
    size = _size("size", size, 3 if periodic else 2)
    return IsingModel.lattice((size,) * 3, coupling=b, field=b * field, periodic=periodic)


def edwards_anderson(size: int = 8, dims: int = 3, seed: int = 0, beta=1.0) -> IsingModel:
    """Edwards-Anderson +-J spin glass: J_ij = +-1 with equal probability, periodic lattice.

    The couplings are a pure function of `seed` (numpy's default_rng), one
    per nearest-neighbour bond of the periodic size^dims lattice in the
    order of `hamon_nnx.core.graph.lattice_edges`. Critical point in 3-D:
    T_c = 1.1019(29), beta_c = 0.9075 (Baity-Jesi et al. 2013); in 2-D
    there is no transition at T > 0.

    Example:
        >>> import numpy as np, hamon_nnx as hn
        >>> a = hn.zoo.edwards_anderson(4, dims=3, seed=1)
        >>> b = hn.zoo.edwards_anderson(4, dims=3, seed=1)
        >>> bool(np.array_equal(a.coupling[...], b.coupling[...])), a.n_edges
        (True, 192)
    """
    from ..core import graph

    if dims not in (2, 3):
        raise ValueError(f"dims must be 2 or 3, got {dims!r}")
    critical = EA_3D_CRITICAL_BETA if dims == 3 else None
    b = _beta(beta, critical, "the 2-D Edwards-Anderson model")
    size = _size("size", size, 3)
    shape = (size,) * dims
    edges, _ = graph.lattice_edges(shape, True)
    signs = np.random.default_rng(_seed(seed)).choice(np.array([-1.0, 1.0]), size=len(edges))
    n = int(np.prod(shape))
    colours = graph.checkerboard_colouring(shape)
    if not graph.is_proper_colouring(edges, colours):  # odd sizes: not bipartite
        colours = graph.greedy_colouring(n, edges)
    couplings = (b * signs).astype(np.float32)
    return SparseIsing(n, edges, couplings, np.zeros(n, np.float32), colours=colours)


def sherrington_kirkpatrick(n: int = 64, seed: int = 0, beta=1.0) -> IsingModel:
    """Sherrington-Kirkpatrick spin glass: J_ij ~ N(0, 1/n) for i < j, no field.

    The couplings are a pure function of `seed`. Critical point (n -> inf):
    beta_c = 1 (Sherrington & Kirkpatrick 1975).

    Example:
        >>> import hamon_nnx as hn
        >>> hn.zoo.sherrington_kirkpatrick(8, seed=0).n_variables
        8
    """
    b = _beta(beta, SK_CRITICAL_BETA, "the SK model")
    n = _size("n", n, 2)
    rng = np.random.default_rng(_seed(seed))
    upper = np.triu(rng.standard_normal((n, n)) / math.sqrt(n), k=1)
    J = (b * (upper + upper.T)).astype(np.float32)
    return IsingModel.dense(J, np.zeros(n, np.float32))


def potts_2d(size: int = 32, q: int = 3, beta=1.0, periodic: bool = True) -> PottsModel:
    """Ferromagnetic q-state Potts model on a size x size square lattice.

    E = -sum_(ij) delta(s_i, s_j) at beta = 1; the model returned has
    coupling beta. Critical point: beta_c = ln(1 + sqrt q) (Baxter 1973),
    continuous for q <= 4, first order for q > 4.

    Example:
        >>> import hamon_nnx as hn
        >>> p = hn.zoo.potts_2d(6, q=3, beta="critical")
        >>> p.q, round(float(p.coupling[...]), 3)
        (3, 1.005)
    """
    q = PottsModel._check_q(q)
    b = _beta(beta, potts_2d_critical_beta(q), "the Potts model")
    size = _size("size", size, 3 if periodic else 2)
    return PottsModel.lattice((size, size), q=q, coupling=b, periodic=periodic)


class BetaScan(NamedTuple):
    """Per-variable energy and order parameter at each beta, with standard errors.

    The errors are standard errors of the mean over independent chains
    (each chain's time average is one value), so they account for
    autocorrelation within a chain.
    """

    betas: np.ndarray
    energy: np.ndarray
    energy_stderr: np.ndarray
    magnetization: np.ndarray
    magnetization_stderr: np.ndarray


def order_parameter(model, samples) -> np.ndarray:
    """|magnetization| per state: |mean s| for spins, (q max_k f_k - 1)/(q - 1) for Potts.

    Binary units give their mean. Shape: samples' leading axes.
    """
    x = np.asarray(samples)
    kinds, qs = model.variable_kinds()
    kind = KINDS[int(kinds[0])]
    if kind == "spin":
        return np.abs(x.mean(axis=-1, dtype=np.float64))
    if kind == "binary":
        return x.mean(axis=-1, dtype=np.float64)
    q = int(qs[0])
    counts = np.stack([(x == k).mean(axis=-1) for k in range(q)], axis=-1)
    return (q * counts.max(axis=-1) - 1.0) / (q - 1.0)


def beta_scan(
    model,
    key: jax.Array,
    betas,
    *,
    n_samples: int = 200,
    n_chains: int = 8,
    n_warmup: int = 200,
    thin: int = 1,
) -> BetaScan:
    """Energy and |magnetization| per variable of `model` at several inverse temperatures.

    One `hn.sample` call runs `n_chains` independent Gibbs chains at every
    beta at once (the beta axis is folded into the chain axis). The
    energies are those of the model at beta = 1 (`model.energy / n`);
    multiply the model's couplings by 1/beta_unit first if it was built at
    a temperature (e.g. `ising_2d(L)` has beta = 1, unit coupling).

    Args:
        model: any hamon-nnx model.
        key: PRNG key.
        betas: inverse temperatures, a sequence of numbers >= 0.
        n_samples, n_chains, n_warmup, thin: per beta, as in `hn.sample`.

    Returns:
        BetaScan with arrays of shape (len(betas),).
    """
    from ..sampling import sample

    betas = np.asarray(betas, np.float64).ravel()
    if betas.size == 0 or not np.all(np.isfinite(betas)) or np.any(betas < 0):
        raise ValueError(f"betas must be a non-empty sequence of numbers >= 0, got {betas}")
    if isinstance(n_chains, bool) or int(n_chains) != n_chains or n_chains < 2:
        raise ValueError(f"n_chains must be an integer >= 2 (for error bars), got {n_chains!r}")
    per_chain = np.repeat(betas, int(n_chains))
    s = sample(
        model, key, n_samples=n_samples, n_chains=len(per_chain), n_warmup=n_warmup, thin=thin,
        beta=per_chain,
    )  # fmt: skip
    n = model.n_variables
    energy = np.asarray(model.energy(jnp.asarray(s)))
    e_chain = energy.astype(np.float64).mean(axis=1).reshape(len(betas), n_chains) / n
    m_chain = order_parameter(model, np.asarray(s)).mean(axis=1).reshape(len(betas), n_chains)

    def stats(a):
        return a.mean(axis=1), a.std(axis=1, ddof=1) / math.sqrt(n_chains)

    e, e_err = stats(e_chain)
    m, m_err = stats(m_chain)
    return BetaScan(betas, e, e_err, m, m_err)
