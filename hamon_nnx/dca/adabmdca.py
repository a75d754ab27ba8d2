"""adabmDCA's parameter text file, read into and written from a `DensePotts`.

The format (adabmDCApy, `adabmDCA/io.py`: `save_params`, `load_params`)
is one parameter a line, separated by single spaces, no header:

    J i j a b value      couplings J_ij(a, b), only i < j, i then j then a then b
    h i a value          fields h_i(a), i then a, after all J lines

with 0-based site indices i, j and the states a, b written as the letters
of the alphabet ("protein" is "-ACDEFGHIKLMNPQRSTVWY", gap first, so the
gap is state 0 as in this package). A pruned (edDCA) model leaves out the
zero couplings. Files of the older format (`load_params_oldformat`) carry
the states as numbers 0..q-1; `load_params` reads those too.

Energy (`adabmDCA/statmech.py`, `compute_energy`): E(s) = -sum_i h_i(s_i)
- 1/2 sum_(i != j) J_ij(s_i, s_j) = -sum_i h_i(s_i) - sum_(i<j) J_ij(s_i, s_j),
the same sign and form as `DensePotts`, so the numbers go across unchanged.
"""

from __future__ import annotations

import io
import os

import numpy as np

from hamon_nnx.models.potts import DensePotts, PottsModel

ALPHABETS = {
    "protein": "-ACDEFGHIKLMNPQRSTVWY",
    "rna": "-ACGU",
    "dna": "-ACGT",
}


def alphabet_tokens(alphabet: str) -> str:
    """The state letters of a named alphabet ("protein", "rna", "dna"), or
    `alphabet` itself as its own letters, state a being letter a.

    Example:
        >>> alphabet_tokens("rna")
        '-ACGU'
        >>> alphabet_tokens("-AB")
        '-AB'
    """
    if not isinstance(alphabet, str):
        raise TypeError(f"alphabet must be a str, got {type(alphabet).__name__}")
    tokens = ALPHABETS.get(alphabet, alphabet)
    if len(tokens) < 2 or len(set(tokens)) != len(tokens) or any(c.isspace() for c in tokens):
        raise ValueError(
            f"alphabet must be one of {sorted(ALPHABETS)} or a string of at least 2 distinct "
            f"non-blank letters, got {alphabet!r}"
        )
    return tokens


def _blocks(path) -> tuple[str, str]:
    """The text of the J lines and of the h lines. adabmDCA writes all J
    lines, then all h lines: two slices of the file; any other order goes
    line by line."""
    with open(path) as f:
        text = f.read()
    text = text if text.endswith("\n") else text + "\n"
    if text.startswith("h "):
        first_h = 0
    else:
        first_h = text.find("\nh ") + 1 or len(text)
    J, h = text[:first_h], text[first_h:]
    n_J, n_h = ("\n" + J).count("\nJ "), ("\n" + h).count("\nh ")
    if J.count("\n") == n_J and h.count("\n") == n_h:
        return J, h
    lines = text.splitlines(keepends=True)
    return (
        "".join(x for x in lines if x.startswith("J ")),
        "".join(x for x in lines if x.startswith("h ")),
    )


def _parse(text: str, tag: str, path) -> np.ndarray:
    """'J i j a b value' or 'h i a value' lines into a structured array
    (numpy's C parser: about two seconds for the four million coupling
    lines of L = 135, q = 21)."""
    fields = [("i", np.int64), ("j", np.int64), ("a", "U8"), ("b", "U8"), ("v", np.float64)]
    fields = fields if tag == "J" else [fields[0], fields[2], fields[4]]
    if not text:
        return np.zeros(0, fields)
    try:
        return np.atleast_1d(
            np.loadtxt(io.StringIO(text), dtype=fields, usecols=range(1, len(fields) + 1))
        )
    except ValueError as e:
        form = "i j a b value" if tag == "J" else "i a value"
        raise ValueError(f"{path}: a '{tag}' line is not '{tag} {form}' ({e})") from None


def _state_indices(letters: np.ndarray, tokens: str | None, path) -> np.ndarray:
    if tokens is None:  # numbers: the older format
        return letters.astype(np.int64)
    letters = np.ascontiguousarray(letters)
    codes = letters.view(np.uint32).reshape(len(letters), -1)
    if np.any(codes[:, 1:] != 0) or any(len(c) > 1 for c in tokens):
        unique, inverse = np.unique(letters, return_inverse=True)
        index = {c: n for n, c in enumerate(tokens)}
        states = np.array([index.get(c, -1) for c in unique], np.int64)[inverse]
    else:  # one letter each: a lookup table by code point
        table = np.full(max(map(ord, tokens)) + 1, -1, np.int64)
        table[[ord(c) for c in tokens]] = np.arange(len(tokens))
        first = codes[:, 0]
        states = np.where(first < len(table), table[np.minimum(first, len(table) - 1)], -1)
    if np.any(states < 0):
        unknown = sorted(set(letters[states < 0].tolist()))
        raise ValueError(f"{path}: states {unknown} are not in the alphabet {tokens!r}")
    return states


def _infer_tokens(h_letters: np.ndarray, path) -> str | None:
    """None for numbered states; else the named alphabet whose letters are
    exactly those of the h lines (every state has a field line)."""
    used = set(np.unique(h_letters).tolist())
    if all(c.isdigit() for c in used):
        return None
    for tokens in ALPHABETS.values():
        if used == set(tokens):
            return tokens
    raise ValueError(
        f"{path}: the field lines use the states {''.join(sorted(used))!r}, not exactly the "
        f"letters of a known alphabet ({', '.join(ALPHABETS)}); pass alphabet= (the letters "
        "in state order)"
    )


def load_params(path: str | os.PathLike, alphabet: str | None = None) -> DensePotts:
    """Read an adabmDCA parameter file into a `DensePotts`.

    Coupling lines may come for i < j (what adabmDCA writes) or either
    order; like adabmDCA's reader, J_ij(a, b) read from a line becomes
    both J[i, j, a, b] and J[j, i, b, a] (lines for both (i, j) and (j, i)
    add up), and lines left out are zero.

    Args:
        path: the file (adabmDCA's `<label>_params.dat`).
        alphabet: "protein", "rna", "dna" or the state letters in order;
            None infers it from the letters of the field lines, or reads
            numbered states (the older format) as they are.

    Returns:
        The model, with q the size of the alphabet (numbered states: the
        largest state plus one) and L the largest site plus one.

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "params.dat")
        >>> with open(path, "w") as f:
        ...     _ = f.write("J 0 1 A C 0.5\\nh 0 - 0\\nh 0 A 1\\nh 0 C 0\\nh 0 G 0\\nh 0 U 0\\n")
        >>> m = load_params(path)
        >>> m.n_variables, m.q, float(m.coupling[0, 1, 1, 2]), float(m.coupling[1, 0, 2, 1])
        (2, 5, 0.5, 0.5)
    """
    J_text, h_text = _blocks(path)
    J_lines, h_lines = _parse(J_text, "J", path), _parse(h_text, "h", path)
    del J_text, h_text
    if len(h_lines) == 0 and len(J_lines) == 0:
        raise ValueError(f"{path}: no 'J' or 'h' lines; is it an adabmDCA parameter file?")
    if alphabet is not None:
        tokens = alphabet_tokens(alphabet)
    elif len(h_lines):
        tokens = _infer_tokens(h_lines["a"], path)
    else:
        tokens = _infer_tokens(np.concatenate([J_lines["a"], J_lines["b"]]), path)
    ha = _state_indices(h_lines["a"], tokens, path)
    Ja = _state_indices(J_lines["a"], tokens, path)
    Jb = _state_indices(J_lines["b"], tokens, path)
    sites = np.concatenate([h_lines["i"], J_lines["i"], J_lines["j"]])
    if sites.min() < 0:
        raise ValueError(f"{path}: negative site index {sites.min()}")
    L = int(sites.max()) + 1
    q = len(tokens) if tokens is not None else int(np.concatenate([ha, Ja, Jb, [1]]).max()) + 1
    PottsModel._check_q(q)

    self_pairs = J_lines["i"] == J_lines["j"]
    if np.any(J_lines["v"][self_pairs] != 0):
        i = int(J_lines["i"][self_pairs][0])
        raise ValueError(f"{path}: a coupling of site {i} to itself (J {i} {i} ...)")
    keep = ~self_pairs
    J = np.zeros((L, L, q, q), np.float32)
    J[J_lines["i"][keep], J_lines["j"][keep], Ja[keep], Jb[keep]] = J_lines["v"][keep]
    J = J + J.transpose(1, 0, 3, 2)  # adabmDCA's reader: a line for (j, i) adds to (i, j)
    h = np.zeros((L, q), np.float32)
    h[h_lines["i"], ha] = h_lines["v"]
    return PottsModel.dense(J, h)


def save_params(model: DensePotts, path: str | os.PathLike, alphabet: str | None = None) -> None:
    """Write a `DensePotts` as an adabmDCA parameter file.

    All couplings J_ij(a, b) with i < j (zeros too, as adabmDCA writes a
    fully connected model), then all fields, each number with 9
    significant digits (enough to give the same float32 back).

    Args:
        model: the model (any gauge: the file keeps it).
        path: where to write.
        alphabet: "protein", "rna", "dna" or the state letters in order,
            of length q; None means "protein" (q = 21 only).

    Example:
        >>> import tempfile, os, numpy as np, hamon_nnx as hn
        >>> J = np.zeros((3, 3, 5, 5)); J[0, 2, 1, 4] = J[2, 0, 4, 1] = -0.25
        >>> path = os.path.join(tempfile.mkdtemp(), "params.dat")
        >>> save_params(hn.PottsModel.dense(J), path, alphabet="rna")
        >>> [line for line in open(path).read().split("\\n") if "-0.25" in line]
        ['J 0 2 A U -0.25']
    """
    L, q = model.n_variables, model.q
    if alphabet is None and q != len(ALPHABETS["protein"]):
        raise ValueError(
            f"q = {q} is not the protein alphabet's 21 states; pass alphabet= "
            "('rna', 'dna' or the state letters in order)"
        )
    tokens = alphabet_tokens("protein" if alphabet is None else alphabet)
    if len(tokens) != q:
        raise ValueError(f"alphabet {tokens!r} has {len(tokens)} letters, the model q = {q}")
    J = np.asarray(model.coupling[...], np.float64)
    h = np.asarray(model.field[...], np.float64)
    pairs = [f"{a} {b}" for a in tokens for b in tokens]
    with open(path, "w") as f:
        for i in range(L):
            for j in range(i + 1, L):
                head = f"J {i} {j} "
                values = J[i, j].ravel().tolist()
                f.writelines(f"{head}{ab} {v:.9g}\n" for ab, v in zip(pairs, values, strict=True))
        for i in range(L):
            f.writelines(f"h {i} {a} {v:.9g}\n" for a, v in zip(tokens, h[i].tolist(), strict=True))
