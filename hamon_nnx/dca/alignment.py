"""Multiple sequence alignments in, statistics out, for Boltzmann-machine DCA.

A family of proteins, RNAs or DNAs is read from an aligned FASTA or a
Stockholm file (either may be gzipped) into an `Alignment`: int8 states
0..q-1 with the gap as state 0, the layout of `hn.PottsModel.dense`, and one
weight per sequence that discounts near-duplicates. Its `frequencies` are the
targets a Boltzmann machine fits; `one_hot_statistics` gives the same
statistics for the model's Markov chains inside a training loop, and `pearson`
compares the two the way adabmDCA decides convergence.

The conventions follow adabmDCA (github.com/spqb/adabmDCApy, module
``adabmDCA/fasta.py`` for alphabets and weights, ``adabmDCA/stats.py`` for
frequencies and the Pearson score, ``adabmDCA/scripts/train.py`` for the
defaults), so that weights, Meff and the convergence score can be compared
number for number with it.

Reading policy (every rule is counted in `Alignment.report`):

* Uppercase letters of the alphabet are residues; ``-`` and ``.`` are gaps.
* Lowercase letters (insert states in A2M and Stockholm) are read as the
  same residue uppercased. A3M files, whose rows only agree in length once
  the lowercase inserts are dropped, are refused with an error saying so.
* With ``alphabet="rna"`` a T is read as U, with ``"dna"`` a U as T.
* Any other letter (X, B, Z, U in proteins, N in nucleic acids, ...)
  becomes a gap. adabmDCA drops such sequences instead; a gap keeps the
  sequence and only loses the unknown position.
* Duplicated sequences (equal after encoding) are dropped, keeping the first.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "ALPHABETS",
    "Alignment",
    "connected_correlations",
    "msa",
    "one_hot_statistics",
    "pearson",
    "sequence_weights",
]

# Gap first (state 0), then the residues in adabmDCA's order
# (adabmDCA/fasta.py: TOKENS_PROTEIN, TOKENS_RNA, TOKENS_DNA).
ALPHABETS = {"protein": "-ACDEFGHIKLMNPQRSTVWY", "rna": "-ACGU", "dna": "-ACGT"}

# Letters that the nucleic-acid alphabets read as their counterpart.
_SWAPS = {ALPHABETS["rna"]: {"T": "U"}, ALPHABETS["dna"]: {"U": "T"}}
_GZIP_MAGIC = b"\x1f\x8b"
_MAX_Q = 127  # int8 states
# Rows of the one-hot matrix per numpy matmul in `Alignment.frequencies`.
_FREQ_BLOCK = 1024


# -- Alphabets ----------------------------------------------------------------
def _resolve_alphabet(alphabet: str) -> str:
    """The alphabet string for a name or a custom alphabet, validated."""
    if not isinstance(alphabet, str):
        raise TypeError(f"alphabet must be a string, got {type(alphabet).__name__}")
    if alphabet.lower() in ALPHABETS:
        return ALPHABETS[alphabet.lower()]
    if not alphabet.startswith("-"):
        raise ValueError(
            f"unknown alphabet {alphabet!r}: use one of {sorted(ALPHABETS)} or a custom "
            "string of letters whose first character is the gap '-' (e.g. '-ACGU')"
        )
    if len(alphabet) < 2 or len(alphabet) > _MAX_Q:
        raise ValueError(
            f"custom alphabet {alphabet!r} must have 2 to {_MAX_Q} letters, got {len(alphabet)}"
        )
    seen = set()
    duplicates = sorted({c for c in alphabet if c in seen or seen.add(c)})
    if duplicates:
        raise ValueError(f"custom alphabet {alphabet!r} has duplicate letters {duplicates}")
    bad = [c for c in alphabet[1:] if c in "-." or not (c.isascii() and c.isprintable())]
    bad += [c for c in alphabet if c.isspace()]
    if bad:
        raise ValueError(
            f"custom alphabet {alphabet!r} has letters {sorted(set(bad))} that cannot be "
            "residues: '-' only as the first (gap) character, no '.', whitespace or non-ASCII"
        )
    return alphabet


def _byte_table(alphabet: str):
    """For each ASCII byte: its state and how it was read.

    Returns (states, dot, lowered, swapped, unknown): int8 states (unknown
    letters become gaps), whether the byte is '.', whether it is a lowercase
    letter read uppercased, the swap ('T->U') it was read through, and the
    (uppercased) letter of each byte outside the alphabet.
    """
    swap = _SWAPS.get(alphabet, {})
    index = {c: k for k, c in enumerate(alphabet)}
    states = np.zeros(256, np.int8)
    dot = np.zeros(256, bool)
    unknown: dict[int, str] = {}
    lowered = np.zeros(256, bool)
    swapped: dict[int, str] = {}
    for b in range(128):
        c = chr(b)
        if c in index:
            states[b] = index[c]
            continue
        if c in "-.":
            dot[b] = c == "."
            continue
        u = c.upper()
        lowered[b] = u != c
        if u in swap:
            swapped[b] = f"{u}->{swap[u]}"
            u = swap[u]
        if u in index:
            states[b] = index[u]
        else:
            unknown[b] = u
    return states, dot, lowered, swapped, unknown


# -- File formats -------------------------------------------------------------
def _read_text(path: Path) -> tuple[str, bool]:
    """The file's text, gunzipped when it starts with gzip's magic bytes."""
    raw = path.read_bytes()
    compressed = raw[:2] == _GZIP_MAGIC
    if compressed:
        raw = gzip.decompress(raw)
    return raw.decode("utf-8", errors="replace"), compressed


def _parse_fasta(lines: list[str], path: Path):
    """(names, sequences, line numbers of the headers) of a FASTA file."""
    names, chunks, where = [], [], []
    for n, line in enumerate(lines, start=1):
        line = line.strip()
        if not line or line.startswith(";"):
            continue
        if line.startswith(">"):
            names.append(line[1:].strip())
            chunks.append([])
            where.append(n)
        else:
            chunks[-1].append("".join(line.split()))
    return names, ["".join(c) for c in chunks], where


def _parse_stockholm(lines: list[str], path: Path):
    """(names, sequences, first line numbers) of the first alignment of a
    Stockholm file; blocks of the same sequence are concatenated by name."""
    seqs: dict[str, list[str]] = {}
    where: dict[str, int] = {}
    for n, line in enumerate(lines, start=1):
        line = line.strip()
        if line == "//":
            break
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) != 2:
            raise ValueError(
                f"{path}, line {n}: a Stockholm sequence line must be 'name sequence', "
                f"got {len(fields)} fields: {line[:60]!r}"
            )
        name, chunk = fields
        if name not in seqs:
            seqs[name] = []
            where[name] = n
        seqs[name].append(chunk)
    names = list(seqs)
    return names, ["".join(seqs[k]) for k in names], [where[k] for k in names]


def _read_records(path: Path):
    """(format, compressed, names, sequences, line numbers) of an MSA file."""
    text, compressed = _read_text(path)
    lines = text.splitlines()
    first = next((line.strip() for line in lines if line.strip()), None)
    if first is None:
        raise ValueError(f"{path}: the file is empty")
    if first.startswith(">"):
        fmt, parsed = "fasta", _parse_fasta(lines, path)
    elif first.upper().startswith("# STOCKHOLM"):
        fmt, parsed = "stockholm", _parse_stockholm(lines, path)
    else:
        raise ValueError(
            f"{path}: neither FASTA (first line starting with '>') nor Stockholm "
            f"(first line '# STOCKHOLM 1.0'); the first line is {first[:60]!r}"
        )
    names, seqs, where = parsed
    if not seqs or not any(seqs):
        raise ValueError(f"{path}: no sequences found in this {fmt} file")
    return fmt, compressed, names, seqs, where


def _check_rectangular(path, names, seqs, where):
    """Raise naming the first row whose length differs from the first row's."""
    lengths = np.fromiter(map(len, seqs), np.int64, len(seqs))
    if np.all(lengths == lengths[0]):
        return
    k = int(np.argmax(lengths != lengths[0]))
    trimmed = {sum(1 for c in s if not (c.islower() or c == ".")) for s in seqs}
    if len(trimmed) == 1:
        raise ValueError(
            f"{path}: rows have different lengths ({lengths.min()} to {lengths.max()}) but "
            f"equal lengths ({trimmed.pop()}) once lowercase letters and '.' are removed: "
            "this looks like A3M, whose lowercase insert states are not alignment columns; "
            "remove the lowercase letters and '.' (or convert to aligned FASTA / A2M) first"
        )
    raise ValueError(
        f"{path}: ragged alignment: sequence {names[k]!r} (line {where[k]}) has "
        f"{lengths[k]} columns but the first sequence {names[0]!r} (line {where[0]}) has "
        f"{lengths[0]}; all rows of an alignment must have the same length"
    )


def _encode(seqs: list[str], alphabet: str):
    """Sequences (all of length L) to int8 states, and the counts of the
    reading policy for `Alignment.report`."""
    # A non-ASCII character becomes '?', an unknown letter.
    raw = "".join(seqs).encode("ascii", errors="replace")
    codes = np.frombuffer(raw, np.uint8).reshape(len(seqs), -1)
    states, dot, lowered, swapped, unknown = _byte_table(alphabet)
    counts = np.bincount(codes.ravel(), minlength=256)
    converted: dict[str, int] = {}
    for b, rule in swapped.items():
        if counts[b]:
            converted[rule] = converted.get(rule, 0) + int(counts[b])
    unknown_counts: dict[str, int] = {}
    for b, letter in unknown.items():
        if counts[b]:
            unknown_counts[letter] = unknown_counts.get(letter, 0) + int(counts[b])
    report = {
        "lowercase_uppercased": int(counts[lowered].sum()),
        "dots_as_gaps": int(counts[dot].sum()),
        "converted": converted,
        "unknown_as_gap": dict(sorted(unknown_counts.items())),
    }
    return states[codes], report


def _raise_unknown(path, names, seqs, letters: set) -> None:
    for name, seq in zip(names, seqs, strict=True):
        for column, c in enumerate(seq):
            if c in letters or c.upper() in letters or not c.isascii():
                raise ValueError(
                    f"{path}: letter {c!r} in sequence {name!r}, column {column}, is not in the "
                    f"alphabet ({len(letters)} unknown letters in all: "
                    f"{''.join(sorted(letters))}); pass unknown='gap' to read them as gaps"
                )


# -- Weights ------------------------------------------------------------------
def _min_matches(theta: float, L: int) -> int:
    """Fewest equal positions for identity > 1 - theta, at most L."""
    # Round before flooring so that e.g. (1 - 0.2) * 5 = 4.000...01 counts as 4.
    return min(math.floor(round((1.0 - theta) * L, 9)) + 1, L)


@functools.partial(jax.jit, static_argnames=("q", "block"))
def _neighbour_counts(x, min_matches, *, q: int, block: int):
    """For each row of x (padded with -1 rows to a multiple of block): how
    many rows share at least min_matches positions with it. Never holds more
    than a (block, block) match matrix."""
    n, L = x.shape
    blocks = x.reshape(n // block, block, L)

    def one_hot(s):
        # A -1 padding row is all zeros: it matches nothing.
        return jax.nn.one_hot(s.astype(jnp.int32), q, dtype=jnp.float32).reshape(block, L * q)

    def row_block(rows):
        left = one_hot(rows)

        def column_block(count, cols):
            # 0/1 inputs and float32 sums of at most L < 2**24: exact at any precision.
            matches = left @ one_hot(cols).T
            return count + jnp.sum(matches >= min_matches, axis=1, dtype=jnp.int32), None

        count, _ = jax.lax.scan(column_block, jnp.zeros(block, jnp.int32), blocks)
        return count

    return jax.lax.map(row_block, blocks).reshape(n)


def sequence_weights(sequences, q: int, theta: float = 0.2, *, block_size: int = 512) -> np.ndarray:
    """Weight 1 / (number of sequences within identity 1 - theta), as adabmDCA.

    The identity of two aligned sequences is the fraction of the L columns
    where they hold the same state, gaps included. A sequence's weight is one
    over the number of sequences, itself included, whose identity with it
    exceeds ``1 - theta`` (strictly: adabmDCA's ``compute_weights`` in
    ``adabmDCA/fasta.py`` counts ``seq_id > th`` with ``th = 0.8``, although
    its docstring says ``>=``; the two differ only when ``(1 - theta) * L`` is
    a whole number). At ``theta = 0`` no identity exceeds 1, so there the
    identical sequences are counted.

    The match counts come from one-hot matrix products in JAX over blocks of
    ``block_size`` x ``block_size`` sequence pairs, so memory stays
    O(block_size**2 + N L) and 10**5 sequences never need an N x N matrix.

    Args:
        sequences: int array (N, L) of states 0..q-1.
        q: number of states.
        theta: identity threshold 1 - theta, in [0, 1); 0.2 by default.
        block_size: sequences per block, at least 1.

    Returns:
        float32 array (N,) of weights in (0, 1].

    Raises:
        ValueError: theta outside [0, 1), a block size below 1, or sequences
            that are not a non-empty (N, L) array of states 0..q-1.

    Example:
        >>> import numpy as np
        >>> from hamon_nnx.dca.alignment import sequence_weights
        >>> x = np.array([[1, 2, 3, 4, 1], [1, 2, 3, 4, 2], [4, 3, 2, 1, 0]])
        >>> sequence_weights(x, q=5, theta=0.3)
        array([0.5, 0.5, 1. ], dtype=float32)
    """
    theta = _check_theta(theta)
    x = np.asarray(sequences)
    if x.ndim != 2 or x.size == 0 or not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"sequences must be a non-empty int array (N, L), got {x.dtype} {x.shape}")
    if x.min() < 0 or x.max() >= q:
        raise ValueError(f"sequences hold states outside 0..{q - 1}")
    if int(block_size) < 1:
        raise ValueError(f"block_size must be at least 1, got {block_size}")
    n, L = x.shape
    block = min(int(block_size), n)
    padded = np.full((-(-n // block) * block, L), -1, np.int8)
    padded[:n] = x
    counts = _neighbour_counts(
        jnp.asarray(padded), jnp.float32(_min_matches(theta, L)), q=int(q), block=block
    )
    return (1.0 / np.asarray(counts[:n], np.float64)).astype(np.float32)


# -- Alignment ----------------------------------------------------------------
@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Alignment:
    """A weighted multiple sequence alignment, encoded for a dense Potts model.

    Attributes:
        sequences: read-only int8 array (N, L) of states, gap = 0, in the
            order of `alphabet`.
        weights: read-only float32 array (N,): see `sequence_weights`.
        names: the N sequence names (FASTA header lines without '>', or
            Stockholm names).
        alphabet: the letters of states 0..q-1, gap first.
        meff: effective number of sequences, the sum of the weights.
        pseudocount: the pseudocount `frequencies` applies by default.
        report: how the file was read: path, format, gzip, n_read, length,
            lowercase_uppercased, dots_as_gaps, converted (e.g. {'T->U': 3}),
            unknown_as_gap (letter -> count), n_gappy_removed, n_duplicates,
            n_sequences, theta.
    """

    sequences: np.ndarray
    weights: np.ndarray
    names: list[str]
    alphabet: str
    meff: float
    pseudocount: float
    report: dict

    @property
    def L(self) -> int:
        """Number of alignment columns."""
        return self.sequences.shape[1]

    @property
    def q(self) -> int:
        """Number of states, the gap included."""
        return len(self.alphabet)

    @property
    def n_sequences(self) -> int:
        """Number of sequences N."""
        return self.sequences.shape[0]

    def __repr__(self) -> str:
        return (
            f"Alignment(n_sequences={self.n_sequences}, L={self.L}, q={self.q}, "
            f"meff={self.meff:.1f}, alphabet={self.alphabet!r})"
        )

    def frequencies(self, pseudocount: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Weighted one- and two-site frequencies with adabmDCA's pseudocount.

        With normalized weights w and pseudocount pc (``self.pseudocount`` when
        None), as ``get_freq_single_point`` and ``get_freq_two_points`` in
        ``adabmDCA/stats.py``::

            f_i(a)    = (1 - pc) sum_n w_n [x_ni = a] + pc / q
            f_ij(a,b) = (1 - pc) sum_n w_n [x_ni = a][x_nj = b] + pc / q**2
            f_ii(a,a) = f_i(a)

        so the diagonal blocks hold f_i on their diagonal and pc / q**2 off it
        (adabmDCA overwrites only the diagonal of its (Lq, Lq) matrix).
        adabmDCA stores f_ij as (L, q, L, q); here it is (L, L, q, q), the
        layout of the couplings of `hn.PottsModel.dense`. Computed in float64
        by one-hot matrix products over blocks of rows.

        Args:
            pseudocount: in [0, 1); None for ``self.pseudocount``.

        Returns:
            (f_i, f_ij): float64 arrays (L, q) and (L, L, q, q).

        Example:
            >>> import numpy as np
            >>> from hamon_nnx.dca.alignment import Alignment
            >>> aln = Alignment(np.array([[1, 2], [1, 0]], np.int8), np.ones(2, np.float32),
            ...                 ["a", "b"], "-AC", 2.0, 0.0, {})
            >>> fi, fij = aln.frequencies()
            >>> fi
            array([[0. , 1. , 0. ],
                   [0.5, 0. , 0.5]])
            >>> fij[0, 1]
            array([[0. , 0. , 0. ],
                   [0.5, 0. , 0.5],
                   [0. , 0. , 0. ]])
        """
        pc = self.pseudocount if pseudocount is None else _check_pseudocount(pseudocount)
        L, q = self.L, self.q
        w = np.asarray(self.weights, np.float64)
        w = w / w.sum()
        eye = np.eye(q)
        pair = np.zeros((L * q, L * q))
        for start in range(0, self.n_sequences, _FREQ_BLOCK):
            rows = slice(start, start + _FREQ_BLOCK)
            one_hot = eye[self.sequences[rows]].reshape(-1, L * q)
            pair += (one_hot * w[rows, None]).T @ one_hot
        fi = (1.0 - pc) * np.diag(pair).reshape(L, q) + pc / q
        fij = (1.0 - pc) * pair + pc / q**2
        fij[np.diag_indices(L * q)] = fi.ravel()
        fij = np.ascontiguousarray(fij.reshape(L, q, L, q).transpose(0, 2, 1, 3))
        return fi, fij

    def to_fasta(self, path) -> None:
        """Write the sequences as letters of `alphabet` to a FASTA file
        (gzipped when the path ends in ``.gz``).

        Example:
            >>> import pathlib, tempfile
            >>> import numpy as np
            >>> from hamon_nnx.dca.alignment import Alignment
            >>> aln = Alignment(np.array([[1, 0, 4]], np.int8), np.ones(1, np.float32),
            ...                 ["s1"], "-ACGU", 1.0, 0.0, {})
            >>> path = pathlib.Path(tempfile.mkdtemp()) / "out.fasta"
            >>> aln.to_fasta(path)
            >>> path.read_text()
            '>s1\\nA-U\\n'
        """
        letters = np.frombuffer(self.alphabet.encode("ascii"), np.uint8)[self.sequences]
        rows = [row.tobytes().decode("ascii") for row in letters]
        text = "".join(f">{name}\n{row}\n" for name, row in zip(self.names, rows, strict=True))
        path = Path(path)
        if path.name.endswith(".gz"):
            path.write_bytes(gzip.compress(text.encode()))
        else:
            path.write_text(text)


def _check_theta(theta) -> float:
    theta = float(theta)
    if not 0.0 <= theta < 1.0:
        raise ValueError(f"theta must be in [0, 1) (identity threshold 1 - theta), got {theta}")
    return theta


def _check_pseudocount(pseudocount) -> float:
    pseudocount = float(pseudocount)
    if not 0.0 <= pseudocount < 1.0:
        raise ValueError(f"pseudocount must be in [0, 1), got {pseudocount}")
    return pseudocount


def _read_only(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


def msa(
    path,
    alphabet: str = "protein",
    *,
    theta: float = 0.2,
    pseudocount: float | None = None,
    dedupe: bool = True,
    max_gap_fraction: float | None = None,
    unknown: str = "gap",
) -> Alignment:
    """Read an aligned FASTA or Stockholm file into a weighted `Alignment`.

    The format is detected from the content: a first line starting with '>'
    is FASTA, ``# STOCKHOLM 1.0`` is Stockholm (``#=`` annotation lines are
    skipped, the blocks of a sequence are joined by name, reading stops at
    the first ``//``); gzip is detected by its magic bytes. How letters are
    read is described in the module docstring and counted in the report.

    Steps, in adabmDCA's order (``DatasetDCA`` in ``adabmDCA/dataset.py``
    with ``remove_duplicates=True`` as ``adabmDCA/scripts/train.py`` sets it):
    encode; drop sequences whose gap fraction exceeds ``max_gap_fraction``;
    drop duplicates (keeping the first of each); weigh the sequences left
    (`sequence_weights`), so duplicates do not enter the weights. Meff is the
    sum of the weights and the default pseudocount is 1 / Meff (adabmDCA
    1.0.0 uses 1 / Meff as well).

    Args:
        path: file to read.
        alphabet: "protein", "rna", "dna" (see `ALPHABETS`) or a custom string
            of distinct letters whose first character is the gap '-'.
        theta: sequences with identity above 1 - theta share their weight;
            in [0, 1).
        pseudocount: in [0, 1); None for 1 / Meff.
        dedupe: drop duplicated sequences.
        max_gap_fraction: if given, drop sequences with a larger fraction of
            gaps (unknown letters included), in [0, 1].
        unknown: "gap" reads a letter outside the alphabet as a gap and counts
            it in ``report["unknown_as_gap"]``; "error" raises, naming the
            first such letter, its sequence and column.

    Returns:
        The `Alignment`.

    Raises:
        ValueError: an empty file or one without sequences, a file neither
            FASTA nor Stockholm, ragged rows (naming the first offending
            sequence, its line and both lengths) or A3M inserts, an unknown
            alphabet name or a bad custom alphabet, theta or pseudocount
            outside [0, 1), no sequence left after filtering, or (with
            ``unknown="error"``) a letter outside the alphabet.

    Example:
        >>> import pathlib, tempfile
        >>> from hamon_nnx.dca.alignment import msa
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "toy.fasta"
        >>> _ = path.write_text(">a\\nAC-GU\\n>b\\nACAGU\\n>c\\nacagt\\n>d\\nGGNGU\\n")
        >>> aln = msa(path, alphabet="rna", theta=0.3)
        >>> aln.sequences
        array([[1, 2, 0, 3, 4],
               [1, 2, 1, 3, 4],
               [3, 3, 0, 3, 4]], dtype=int8)
        >>> aln.weights, aln.meff
        (array([0.5, 0.5, 1. ], dtype=float32), 2.0)
        >>> {k: aln.report[k] for k in ("n_duplicates", "converted", "unknown_as_gap")}
        {'n_duplicates': 1, 'converted': {'T->U': 1}, 'unknown_as_gap': {'N': 1}}
    """
    alphabet = _resolve_alphabet(alphabet)
    theta = _check_theta(theta)
    if pseudocount is not None:
        pseudocount = _check_pseudocount(pseudocount)
    if max_gap_fraction is not None and not 0.0 <= float(max_gap_fraction) <= 1.0:
        raise ValueError(f"max_gap_fraction must be in [0, 1], got {max_gap_fraction}")
    if unknown not in ("gap", "error"):
        raise ValueError(f"unknown must be 'gap' or 'error', got {unknown!r}")
    path = Path(path)
    fmt, compressed, names, seqs, where = _read_records(path)
    _check_rectangular(path, names, seqs, where)
    x, counts = _encode(seqs, alphabet)
    if unknown == "error" and counts["unknown_as_gap"]:
        _raise_unknown(path, names, seqs, set(counts["unknown_as_gap"]))
    report = {"path": str(path), "format": fmt, "gzip": compressed, "n_read": len(seqs)}
    report["length"] = x.shape[1]
    report.update(counts)

    keep = np.ones(len(x), bool)
    if max_gap_fraction is not None:
        keep = np.mean(x == 0, axis=1) <= float(max_gap_fraction)
    report["n_gappy_removed"] = int(np.sum(~keep))
    kept = np.flatnonzero(keep)
    if dedupe and len(kept):
        _, first = np.unique(x[kept], axis=0, return_index=True)
        unique = kept[np.sort(first)]
        report["n_duplicates"] = len(kept) - len(unique)
        kept = unique
    else:
        report["n_duplicates"] = 0
    if not len(kept):
        raise ValueError(
            f"{path}: no sequence has a gap fraction at most max_gap_fraction={max_gap_fraction}"
        )
    x = x[kept]
    report["n_sequences"] = len(x)
    report["theta"] = theta

    weights = sequence_weights(x, len(alphabet), theta)
    meff = float(np.sum(weights, dtype=np.float64))
    return Alignment(
        sequences=_read_only(x),
        weights=_read_only(weights),
        names=[names[k] for k in kept],
        alphabet=alphabet,
        meff=meff,
        pseudocount=1.0 / meff if pseudocount is None else pseudocount,
        report=report,
    )


# -- Statistics ---------------------------------------------------------------
def connected_correlations(fi, fij):
    """Connected correlations C_ij(a, b) = f_ij(a, b) - f_i(a) f_j(b).

    Args:
        fi: one-site frequencies (L, q), numpy or JAX.
        fij: two-site frequencies (L, L, q, q).

    Returns:
        Array (L, L, q, q) of the same kind as the inputs.

    Example:
        >>> import numpy as np
        >>> from hamon_nnx.dca.alignment import connected_correlations
        >>> fi = np.array([[0.5, 0.5], [0.5, 0.5]])
        >>> fij = np.zeros((2, 2, 2, 2)); fij[0, 1] = fij[1, 0] = np.eye(2) / 2
        >>> connected_correlations(fi, fij)[0, 1]
        array([[ 0.25, -0.25],
               [-0.25,  0.25]])
    """
    return fij - fi[:, None, :, None] * fi[None, :, None, :]


def pearson(fi_data, fij_data, fi_model, fij_model) -> float:
    """adabmDCA's convergence score: Pearson correlation of the connected
    correlations of the data and of the model.

    As ``get_correlation_two_points`` / ``extract_Cij_from_freq`` in
    ``adabmDCA/stats.py``: C_ij(a, b) for the pairs i > j
    (``torch.tril_indices(L, L, offset=-1)``) and all q**2 letter pairs
    (a, b), gaps included; no diagonal blocks. For symmetric f_ij this is the
    same set of numbers as the pairs i < j. adabmDCA passes the data
    frequencies with the pseudocount and the chains' without; it computes in
    float32, here in float64.

    Args:
        fi_data, fij_data: data frequencies (L, q) and (L, L, q, q).
        fi_model, fij_model: model (chain) frequencies, same shapes.

    Returns:
        The Pearson correlation coefficient, a float.

    Example:
        >>> import numpy as np
        >>> from hamon_nnx.dca.alignment import pearson
        >>> fi = np.full((3, 2), 0.5)
        >>> fij = np.random.default_rng(0).uniform(size=(3, 3, 2, 2))
        >>> round(pearson(fi, fij, fi, fij), 6)
        1.0
    """
    c_data = np.asarray(connected_correlations(*map(np.asarray, (fi_data, fij_data))))
    c_model = np.asarray(connected_correlations(*map(np.asarray, (fi_model, fij_model))))
    if c_data.shape != c_model.shape:
        raise ValueError(
            f"data and model statistics differ in shape: {c_data.shape} vs {c_model.shape}"
        )
    i, j = np.tril_indices(c_data.shape[0], k=-1)
    x = c_data[i, j].astype(np.float64).ravel()
    y = c_model[i, j].astype(np.float64).ravel()
    return float(np.corrcoef(x, y)[0, 1])


@functools.partial(jax.jit, static_argnames="q")
def one_hot_statistics(x, q: int, weights=None):
    """One- and two-site frequencies of int8 chains by one-hot matrix products.

    For the model's Markov chains inside a training loop: jitted, float32,
    no pseudocount (adabmDCA's chains statistics have none either). The
    diagonal blocks are f_ii(a, b) = f_i(a) [a = b].

    Args:
        x: int array (C, L) of states 0..q-1.
        q: number of states (static).
        weights: optional (C,) non-negative weights, normalized here; None
            for uniform.

    Returns:
        (f_i, f_ij): float32 arrays (L, q) and (L, L, q, q).

    Example:
        >>> import jax.numpy as jnp
        >>> from hamon_nnx.dca.alignment import one_hot_statistics
        >>> fi, fij = one_hot_statistics(jnp.array([[0, 1], [1, 1]], jnp.int8), q=2)
        >>> fi
        Array([[0.5, 0.5],
               [0. , 1. ]], dtype=float32)
        >>> fij[0, 1]
        Array([[0. , 0.5],
               [0. , 0.5]], dtype=float32)
    """
    C, L = x.shape
    one_hot = jax.nn.one_hot(x.astype(jnp.int32), q, dtype=jnp.float32).reshape(C, L * q)
    if weights is None:
        # 0/1 products summed in float32 are exact at any matmul precision (TF32 on GPUs).
        pair = (one_hot.T @ one_hot) / jnp.float32(C)
    else:
        w = weights.astype(jnp.float32)
        w = w / jnp.sum(w)
        pair = jnp.matmul((one_hot * w[:, None]).T, one_hot, precision=jax.lax.Precision.HIGHEST)
    fi = jnp.diagonal(pair).reshape(L, q)
    fij = pair.reshape(L, q, L, q).transpose(0, 2, 1, 3)
    return fi, fij
