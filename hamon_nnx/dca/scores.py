"""What a trained DCA model is used for: contact scores, sequence energies,
mutational scans, and the files they go in and out of.

Contact scores follow adabmDCA (adabmDCApy, `adabmDCA/dca.py`:
`set_zerosum_gauge`, `get_contact_map`; `adabmDCA/scripts/contacts.py`
for the file), so the two give the same numbers for the same model.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from hamon_nnx.dca.adabmdca import alphabet_tokens
from hamon_nnx.models.potts import DensePotts

GAP = 0  # the gap is state 0 (adabmDCA's alphabets put "-" first)


def contact_scores(model: DensePotts, *, apc: bool = True, drop_gap: bool = True) -> np.ndarray:
    """Average-product corrected Frobenius norms of the couplings (L, L).

    In adabmDCA's order: first the couplings go to the zero-sum gauge over
    all q states, gap included; then the gap rows and columns are dropped
    and F_ij is the Frobenius norm of the remaining (q - 1, q - 1) block.
    With the diagonal F_ii = 0 the correction is

        F_ij - (sum_k F_ik)(sum_k F_kj) / sum_kl F_kl,

    adabmDCA's sums, which are means over all L sites with the zero
    diagonal counted. (Means over k != i instead would scale the
    subtracted term by L / (L - 1).) The diagonal of the result is 0.

    Args:
        model: a `DensePotts` in any gauge.
        apc: subtract the average-product correction.
        drop_gap: leave the gap state (0) out of the norm.

    Returns:
        Symmetric float64 scores, larger meaning more likely in contact.

    Example:
        >>> import numpy as np, hamon_nnx as hn
        >>> J = np.zeros((4, 4, 3, 3)); J[0, 2, 1, 1] = J[2, 0, 1, 1] = 1.0
        >>> F = contact_scores(hn.PottsModel.dense(J), apc=False)
        >>> np.unravel_index(F.argmax(), F.shape), bool(np.allclose(F, F.T))
        ((np.int64(0), np.int64(2)), True)
    """
    _check_dense(model)
    F = np.asarray(_frobenius(model.coupling[...], drop_gap), np.float64)
    return _corrected(F, apc)


def _corrected(F: np.ndarray, apc: bool) -> np.ndarray:
    """Symmetrized norms with a zero diagonal, average-product corrected when `apc`."""
    F = 0.5 * (F + F.T)  # blocks ij and ji are transposes: equal up to float32 summation order
    np.fill_diagonal(F, 0.0)
    if apc:
        total = F.sum()
        if total > 0:
            F = F - np.outer(F.sum(1), F.sum(0)) / total
        np.fill_diagonal(F, 0.0)
    return F


def mean_field_contact_scores(alignment, *, apc: bool = True) -> np.ndarray:
    """The mean-field DCA baseline (Morcos et al. 2011), as adabmDCA's `contacts` without a model.

    The weighted covariance of the one-hot sequences (no pseudocount), shrunk
    by 4.5 / sqrt(N) on its diagonal, inverted: J = -C^-1; the blocks of
    partial correlations J_ij(a, b) / sqrt(J_ia,ia J_jb,jb), gap rows and
    columns dropped, Frobenius norms, average-product corrected (as
    `contact_scores`).

    Args:
        alignment: an `Alignment` (`hn.dca.msa`).
        apc: subtract the average-product correction.

    Returns:
        Symmetric (L, L) float64 scores.

    Example:
        >>> import numpy as np, os, tempfile, hamon_nnx as hn
        >>> x = np.random.default_rng(0).integers(0, 5, size=(300, 6)); x[:, 4] = x[:, 1]
        >>> path = os.path.join(tempfile.mkdtemp(), "a.fasta")
        >>> _ = open(path, "w").write("".join(f">{i}\\n{''.join('-ACGU'[v] for v in r)}\\n"
        ...                                   for i, r in enumerate(x)))
        >>> F = mean_field_contact_scores(hn.dca.msa(path, "rna"))
        >>> np.unravel_index(F.argmax(), F.shape)
        (np.int64(1), np.int64(4))
    """
    fi, fij = alignment.frequencies(pseudocount=0.0)
    L, q = fi.shape
    C = fij - fi[:, None, :, None] * fi[None, :, None, :]
    C = C.transpose(0, 2, 1, 3).reshape(L * q, L * q)
    C = C + 4.5 / np.sqrt(alignment.n_sequences) * np.eye(L * q)
    J = -np.linalg.inv(C)
    d = np.diag(J)  # negative: the product of two is not
    pcc = (J / np.sqrt(d[:, None] * d[None, :])).reshape(L, q, L, q)
    keep = np.arange(q) != GAP
    pcc = pcc[:, keep][:, :, :, keep]
    return _corrected(np.sqrt(np.sum(pcc**2, axis=(1, 3))), apc)


def _check_dense(model):
    if not isinstance(model, DensePotts):
        raise TypeError(
            f"expected a DensePotts (hn.PottsModel.dense(J, h)), got {type(model).__name__}"
        )


@partial(jax.jit, static_argnums=1)
def _frobenius(J, drop_gap):
    J = J - J.mean(2, keepdims=True) - J.mean(3, keepdims=True) + J.mean((2, 3), keepdims=True)
    if drop_gap:  # after the gauge, as adabmDCA
        J = J[:, :, GAP + 1 :, GAP + 1 :]
    return jnp.sqrt(jnp.sum(jnp.square(J), axis=(2, 3)))


def ranked_pairs(scores: np.ndarray, min_separation: int = 4) -> list[tuple[int, int, float]]:
    """Pairs (i, j, score) with i < j and j - i > min_separation, best first.

    Ties keep the order i, then j.

    Example:
        >>> import numpy as np
        >>> S = np.zeros((8, 8)); S[1, 7] = S[7, 1] = 2.0; S[0, 6] = S[6, 0] = 1.0
        >>> ranked_pairs(S)[:2]
        [(1, 7, 2.0), (0, 6, 1.0)]
    """
    scores = _square(scores)
    i, j = np.triu_indices(len(scores), k=min_separation + 1)
    values = scores[i, j]
    order = np.argsort(-values, kind="stable")
    return list(
        zip(i[order].tolist(), j[order].tolist(), values[order].astype(float).tolist(), strict=True)
    )


def _square(scores) -> np.ndarray:
    scores = np.asarray(scores)
    if scores.ndim != 2 or scores.shape[0] != scores.shape[1]:
        raise ValueError(f"scores must be a square (L, L) matrix, got shape {scores.shape}")
    return scores


def write_scores(path: str | os.PathLike, scores: np.ndarray) -> None:
    """Write scores as adabmDCA's `contacts` does: one `i,j,score` line for
    every ordered pair, diagonal included (i outer, j inner), 0-based,
    comma-separated, no header.

    Example:
        >>> import tempfile, os, numpy as np
        >>> path = os.path.join(tempfile.mkdtemp(), "contact_map.txt")
        >>> write_scores(path, np.array([[0.0, 0.25], [0.25, 0.0]]))
        >>> open(path).read().split()
        ['0,0,0.0', '0,1,0.25', '1,0,0.25', '1,1,0.0']
    """
    scores = _square(scores)
    with open(path, "w") as f:
        for i, row in enumerate(scores.tolist()):
            f.writelines(f"{i},{j},{v!r}\n" for j, v in enumerate(row))


def read_scores(path: str | os.PathLike) -> np.ndarray:
    """Read an `i,j,score` file (adabmDCA's, or `write_scores`') into (L, L).

    Spaces may separate the fields instead of commas; a file that lists
    each pair once (i < j or i > j) gives a symmetric matrix.

    Example:
        >>> import tempfile, os, numpy as np
        >>> path = os.path.join(tempfile.mkdtemp(), "scores.txt")
        >>> _ = open(path, "w").write("0 2 0.5\\n")
        >>> read_scores(path)[2, 0]
        np.float64(0.5)
    """
    with open(path) as f:
        rows = [line.replace(",", " ").split() for line in f if line.strip()]
    if not rows or any(len(r) != 3 for r in rows):
        raise ValueError(f"{path}: expected lines 'i,j,score'")
    i, j = (np.array([int(r[k]) for r in rows]) for k in (0, 1))
    v = np.array([float(r[2]) for r in rows])
    L = int(max(i.max(), j.max())) + 1
    scores, seen = np.zeros((L, L)), np.zeros((L, L), bool)
    scores[i, j], seen[i, j] = v, True
    mirror = ~seen & seen.T
    scores[mirror] = scores.T[mirror]
    return scores


def precision_at(
    ranked: Sequence[tuple[int, int, float]],
    contacts: np.ndarray,
    ks: int | Iterable[int],
    *,
    mapped: np.ndarray | None = None,
) -> dict[int, float]:
    """Fraction of the top-k ranked pairs that are contacts, for each k.

    Args:
        ranked: pairs (i, j, score), best first (`ranked_pairs`).
        contacts: boolean (L, L) contact map (`structure.contact_map`).
        ks: the k (or one k); a k beyond the number of pairs is an error.
        mapped: optional (L,) mask of columns with a structure residue;
            pairs touching an unmapped column are skipped before counting.

    Example:
        >>> import numpy as np
        >>> C = np.zeros((8, 8), bool); C[1, 7] = C[7, 1] = True
        >>> precision_at([(1, 7, 2.0), (0, 6, 1.0)], C, [1, 2])
        {1: 1.0, 2: 0.5}
    """
    contacts = np.asarray(contacts, bool)
    pairs = [(i, j) for i, j, _ in ranked]
    if mapped is not None:
        mapped = np.asarray(mapped, bool)
        pairs = [(i, j) for i, j in pairs if mapped[i] and mapped[j]]
    hits = np.cumsum([contacts[i, j] for i, j in pairs])
    out = {}
    for k in [ks] if isinstance(ks, int | np.integer) else ks:
        k = int(k)
        if not 1 <= k <= len(pairs):
            raise ValueError(f"k = {k} is outside 1..{len(pairs)} (the number of ranked pairs)")
        out[k] = float(hits[k - 1]) / k
    return out


def _states(model: DensePotts, sequences, ndim: int) -> np.ndarray:
    s = np.asarray(sequences)
    if not np.issubdtype(s.dtype, np.integer):
        raise TypeError(f"sequences must be integer states 0..q-1, got dtype {s.dtype}")
    if s.ndim != ndim or s.shape[-1] != model.n_variables:
        want = "(n, L)" if ndim == 2 else "(L,)"
        raise ValueError(
            f"sequences must have shape {want}, L = {model.n_variables}; got {s.shape}"
        )
    if s.size and (s.min() < 0 or s.max() >= model.q):
        raise ValueError(f"states must be in 0..{model.q - 1}, got {s.min()}..{s.max()}")
    return s.astype(np.int8)


@partial(jax.jit, static_argnums=0)
def _batch_energy(graphdef, state, x):
    return nnx.merge(graphdef, state).energy(x)


def sequence_energies(model: DensePotts, sequences, batch_size: int | None = None) -> np.ndarray:
    """DCA energies of many sequences (float32), in fixed-size batches.

    Args:
        model: the model.
        sequences: integer states (n, L) (or (L,) for one sequence).
        batch_size: sequences per compiled call (one compilation; the last
            batch is padded); None sizes it to about 16M couplings read.

    Returns:
        (n,) energies (a float32 scalar for one sequence).

    Example:
        >>> import numpy as np, hamon_nnx as hn
        >>> J = np.zeros((3, 3, 2, 2)); J[0, 1, 1, 1] = J[1, 0, 1, 1] = 1.0
        >>> m = hn.PottsModel.dense(J, np.full((3, 2), 0.5))
        >>> sequence_energies(m, np.array([[1, 1, 0], [0, 1, 1]], np.int8))
        array([-2.5, -1.5], dtype=float32)
    """
    one = np.ndim(sequences) == 1
    s = _states(model, np.atleast_2d(sequences), 2)
    n, L = s.shape
    if batch_size is None:
        batch_size = int(np.clip(2**24 // (L * L), 1, 4096))
    batch_size = max(1, min(batch_size, n))
    graphdef, state = nnx.split(model)
    out = np.empty(n, np.float32)
    for start in range(0, n, batch_size):
        batch = s[start : start + batch_size]
        m = len(batch)
        if m < batch_size:
            batch = np.concatenate([batch, np.zeros((batch_size - m, L), np.int8)])
        out[start : start + m] = np.asarray(_batch_energy(graphdef, state, batch))[:m]
    return out[0] if one else out


@jax.jit
def _mutant_scan(J, h, s):
    L = s.shape[0]
    # local field f_i(a) = h_i(a) + sum_(j != i) J_ij(a, s_j)
    sites = jnp.arange(L)
    pair = J[:, sites, :, s]  # (j, i, a): J[i, j, a, s_j]
    pair = jnp.where((sites[:, None] != sites[None, :])[..., None], pair, 0.0)
    f = h + jnp.sum(pair, axis=0)
    return jnp.take_along_axis(f, s[:, None], axis=1) - f


def single_mutant_scan(model: DensePotts, sequence) -> np.ndarray:
    """Energy changes E(mutant) - E(wild type) of all single mutants (L, q).

    Entry (i, a) is the change when site i goes from s_i to a:
    -(h_i(a) - h_i(s_i)) - sum_(j != i) (J_ij(a, s_j) - J_ij(s_i, s_j)),
    from the local fields in one pass; (i, s_i) is 0. Negative is more
    favourable (adabmDCA's DMS "DCAscore" is the same difference).

    Example:
        >>> import numpy as np, hamon_nnx as hn
        >>> J = np.zeros((2, 2, 2, 2)); J[0, 1, 1, 1] = J[1, 0, 1, 1] = 1.0
        >>> single_mutant_scan(hn.PottsModel.dense(J), np.array([1, 1]))
        array([[1., 0.],
               [1., 0.]], dtype=float32)
    """
    _check_dense(model)
    s = _states(model, sequence, 1).astype(np.int32)
    return np.asarray(_mutant_scan(model.coupling[...], model.field[...], s))


def write_fasta(
    path: str | os.PathLike,
    sequences,
    alphabet: str,
    names: Sequence[str] | None = None,
) -> None:
    """Write integer sequences as FASTA, one line per sequence.

    Args:
        path: where to write.
        sequences: states (n, L), state a written as letter a of the alphabet.
        alphabet: "protein", "rna", "dna" or the letters in state order.
        names: one header per sequence; None gives `sequence_0`, `sequence_1`, ...

    Example:
        >>> import tempfile, os, numpy as np
        >>> path = os.path.join(tempfile.mkdtemp(), "out.fasta")
        >>> write_fasta(path, np.array([[1, 0, 4]]), "rna", names=["wt"])
        >>> open(path).read()
        '>wt\\nA-U\\n'
    """
    tokens = np.array(list(alphabet_tokens(alphabet)))
    s = np.asarray(sequences)
    if s.ndim != 2 or not np.issubdtype(s.dtype, np.integer):
        raise ValueError(
            f"sequences must be integer states of shape (n, L), got {s.dtype} {s.shape}"
        )
    if s.size and (s.min() < 0 or s.max() >= len(tokens)):
        raise ValueError(f"states must be in 0..{len(tokens) - 1}, got {s.min()}..{s.max()}")
    if names is None:
        names = [f"sequence_{n}" for n in range(len(s))]
    names = list(names)
    if len(names) != len(s):
        raise ValueError(f"{len(names)} names for {len(s)} sequences")
    with open(path, "w") as f:
        for name, row in zip(names, tokens[s], strict=True):
            f.write(f">{name}\n{''.join(row.tolist())}\n")
