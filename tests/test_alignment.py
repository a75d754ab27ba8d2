"""Alignments: reading policy, weights and statistics against brute force."""

import gzip
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from hamon_nnx.dca.alignment import (
    ALPHABETS,
    Alignment,
    connected_correlations,
    msa,
    one_hot_statistics,
    pearson,
    sequence_weights,
)

RF00379 = Path("/work/shared/data/RF00379.fasta")

FASTA = """>s1 first
AC-GU
>s2
ACAGU
>s3
ACAGU
>s4
GGUUA
"""

STOCKHOLM = """# STOCKHOLM 1.0
#=GF ID toy
s1 first AC-
s2       ACA
s3       ACA
s4       GGU
#=GC SS_cons <<.

s1 first GU
s2       GU
s3       GU
s4       UA
//
"""


def _write(tmp_path, text, name="aln.fasta"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _family(rng, n, L, q, n_templates=6, mutation=0.15):
    """Sequences mutated from a few templates, so that many pairs are close."""
    templates = rng.integers(0, q, size=(n_templates, L))
    x = templates[rng.integers(0, n_templates, size=n)]
    mutate = rng.random((n, L)) < mutation
    return np.where(mutate, rng.integers(0, q, size=(n, L)), x).astype(np.int8)


def _brute_weights(x, min_matches):
    matches = (x[:, None, :] == x[None, :, :]).sum(-1)
    return 1.0 / (matches >= min_matches).sum(1)


# -- weights ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("L", "theta", "min_matches"),
    [(20, 0.2, 17), (23, 0.35, 15), (20, 0.0, 20)],  # 0.8 * 20 = 16 is not > 0.8
)
def test_weights_match_brute_force(L, theta, min_matches):
    x = _family(np.random.default_rng(L), n=300, L=L, q=5)
    expected = _brute_weights(x, min_matches)
    assert expected.min() < 0.2  # the test has real clusters
    # 300 rows in blocks of 64: padding and off-diagonal blocks exercised.
    got = sequence_weights(x, q=5, theta=theta, block_size=64)
    assert got.dtype == np.float32 and got.shape == (300,)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    np.testing.assert_allclose(sequence_weights(x, q=5, theta=theta), expected, rtol=1e-6)


def test_weights_identity_counts_gaps_as_matches():
    x = np.array([[0, 0, 0, 0, 1], [0, 0, 0, 0, 2], [1, 1, 1, 1, 1]])
    np.testing.assert_allclose(sequence_weights(x, q=3, theta=0.3), [0.5, 0.5, 1.0])


# -- frequencies --------------------------------------------------------------
def _brute_frequencies(x, w, q, pc):
    n, L = x.shape
    w = w / w.sum()
    fi = np.zeros((L, q))
    fij = np.zeros((L, L, q, q))
    for s, ws in zip(x, w, strict=True):
        for i in range(L):
            fi[i, s[i]] += ws
            for j in range(L):
                fij[i, j, s[i], s[j]] += ws
    fi = (1 - pc) * fi + pc / q
    fij = (1 - pc) * fij + pc / q**2
    for i in range(L):
        fij[i, i] = np.where(np.eye(q, dtype=bool), fi[i][:, None], pc / q**2)
    return fi, fij


def _alignment(x, w, alphabet, pc):
    return Alignment(
        x, w.astype(np.float32), [str(k) for k in range(len(x))], alphabet, float(w.sum()), pc, {}
    )


@pytest.mark.parametrize("pc", [0.0, 0.1])
def test_frequencies_match_brute_force(pc):
    rng = np.random.default_rng(1)
    x = _family(rng, n=40, L=6, q=4)
    w = rng.uniform(0.2, 1.0, size=40).astype(np.float32)
    fi, fij = _alignment(x, w, "-ACG", pc).frequencies()
    efi, efij = _brute_frequencies(x, w.astype(np.float64), 4, pc)
    assert fi.dtype == fij.dtype == np.float64
    assert fi.shape == (6, 4) and fij.shape == (6, 6, 4, 4)
    np.testing.assert_allclose(fi, efi, atol=1e-12)
    np.testing.assert_allclose(fij, efij, atol=1e-12)
    np.testing.assert_allclose(fi.sum(1), 1.0)
    np.testing.assert_allclose(fij[0, 1].sum(), 1.0)


def test_frequencies_default_pseudocount_and_blocks(monkeypatch):
    import hamon_nnx.dca.alignment as module

    rng = np.random.default_rng(2)
    x = _family(rng, n=50, L=5, q=3)
    w = np.ones(50)
    aln = _alignment(x, w, "-AC", 0.05)
    monkeypatch.setattr(module, "_FREQ_BLOCK", 7)  # several row blocks
    fi, fij = aln.frequencies()
    efi, efij = _brute_frequencies(x, w, 3, 0.05)
    np.testing.assert_allclose(fi, efi, atol=1e-12)
    np.testing.assert_allclose(fij, efij, atol=1e-12)
    with pytest.raises(ValueError, match="pseudocount"):
        aln.frequencies(pseudocount=1.0)


@pytest.mark.parametrize("weighted", [False, True])
def test_one_hot_statistics_match_frequencies(weighted):
    rng = np.random.default_rng(3)
    x = _family(rng, n=64, L=7, q=5)
    w = rng.uniform(0.1, 1.0, size=64).astype(np.float32) if weighted else np.ones(64, np.float32)
    fi, fij = one_hot_statistics(jnp.asarray(x), 5, jnp.asarray(w) if weighted else None)
    assert fi.dtype == fij.dtype == jnp.float32
    efi, efij = _alignment(x, w, "-ACGU", 0.0).frequencies()
    np.testing.assert_allclose(np.asarray(fi), efi, atol=1e-6)
    np.testing.assert_allclose(np.asarray(fij), efij, atol=1e-6)


def test_connected_correlations_and_pearson():
    rng = np.random.default_rng(4)
    x = _family(rng, n=80, L=6, q=4)
    y = _family(rng, n=80, L=6, q=4)
    fi, fij = _alignment(x, np.ones(80), "-ACG", 0.01).frequencies()
    gi, gij = _alignment(y, np.ones(80), "-ACG", 0.0).frequencies()
    c = connected_correlations(fi, fij)
    np.testing.assert_allclose(c[2, 4, 1, 3], fij[2, 4, 1, 3] - fi[2, 1] * fi[4, 3])
    d = connected_correlations(gi, gij)
    lower = [(i, j) for i in range(6) for j in range(i)]
    expected = np.corrcoef(
        np.concatenate([c[i, j].ravel() for i, j in lower]),
        np.concatenate([d[i, j].ravel() for i, j in lower]),
    )[0, 1]
    assert pearson(fi, fij, gi, gij) == pytest.approx(expected, abs=1e-12)
    # Symmetric f_ij: pairs i > j and i < j give the same score.
    upper = np.corrcoef(
        np.concatenate([c[j, i].ravel() for i, j in lower]),
        np.concatenate([d[j, i].ravel() for i, j in lower]),
    )[0, 1]
    assert upper == pytest.approx(expected, abs=1e-12)
    assert pearson(fi, fij, fi, fij) == pytest.approx(1.0)
    # JAX statistics from a chain are accepted as they are.
    hi, hij = one_hot_statistics(jnp.asarray(y), 4)
    assert pearson(fi, fij, hi, hij) == pytest.approx(expected, abs=1e-5)


# -- reading ------------------------------------------------------------------
def test_fasta_reading_and_report(tmp_path):
    aln = msa(_write(tmp_path, FASTA), alphabet="rna")
    np.testing.assert_array_equal(
        aln.sequences, [[1, 2, 0, 3, 4], [1, 2, 1, 3, 4], [3, 3, 4, 4, 1]]
    )
    assert aln.sequences.dtype == np.int8 and not aln.sequences.flags.writeable
    assert aln.names == ["s1 first", "s2", "s4"]
    assert (aln.L, aln.q, aln.n_sequences) == (5, 5, 3)
    assert aln.report["n_read"] == 4 and aln.report["n_duplicates"] == 1
    assert aln.report["format"] == "fasta" and aln.report["gzip"] is False
    assert aln.meff == pytest.approx(3.0)  # identity 4/5 is not above 0.8
    assert aln.pseudocount == pytest.approx(1 / 3)
    kept = msa(_write(tmp_path, FASTA), alphabet="rna", dedupe=False, theta=0.3)
    assert kept.n_sequences == 4 and kept.report["n_duplicates"] == 0
    np.testing.assert_allclose(kept.weights, [1 / 3, 1 / 3, 1 / 3, 1])
    assert msa(_write(tmp_path, FASTA), "rna", pseudocount=0.01).pseudocount == 0.01


def test_gzip_and_stockholm_read_as_fasta(tmp_path):
    plain = msa(_write(tmp_path, FASTA), alphabet="rna", theta=0.3)
    for name in ("aln.fasta.gz", "no_suffix.fasta"):  # gzip found by magic bytes
        (tmp_path / name).write_bytes(gzip.compress(FASTA.encode()))
        zipped = msa(tmp_path / name, alphabet="rna", theta=0.3)
        assert zipped.report["gzip"] is True
        np.testing.assert_array_equal(zipped.sequences, plain.sequences)
        np.testing.assert_array_equal(zipped.weights, plain.weights)
        assert zipped.names == plain.names
    sto = msa(_write(tmp_path, STOCKHOLM.replace("s1 first", "s1"), "aln.sto"), "rna", theta=0.3)
    assert sto.report["format"] == "stockholm"
    np.testing.assert_array_equal(sto.sequences, plain.sequences)
    np.testing.assert_array_equal(sto.weights, plain.weights)
    assert sto.names == ["s1", "s2", "s4"]


def test_letter_policy_is_counted(tmp_path):
    text = ">a\nAC.GT\n>b\nacngu\n>c\nXBZUA\n"
    rna = msa(_write(tmp_path, text), alphabet="rna", dedupe=False)
    np.testing.assert_array_equal(rna.sequences[:2], [[1, 2, 0, 3, 4], [1, 2, 0, 3, 4]])
    assert rna.report["lowercase_uppercased"] == 5
    assert rna.report["dots_as_gaps"] == 1
    assert rna.report["converted"] == {"T->U": 1}
    assert rna.report["unknown_as_gap"] == {"B": 1, "N": 1, "X": 1, "Z": 1}
    protein = msa(_write(tmp_path, text), alphabet="protein", dedupe=False)
    assert protein.report["converted"] == {}
    assert protein.report["unknown_as_gap"] == {"B": 1, "U": 2, "X": 1, "Z": 1}
    dna = msa(_write(tmp_path, text), alphabet="DNA", dedupe=False)
    assert dna.alphabet == ALPHABETS["dna"]
    assert dna.report["converted"] == {"U->T": 2}


def test_max_gap_fraction(tmp_path):
    text = ">a\nAC-GU\n>b\n---GU\n>c\n-----\n"
    aln = msa(_write(tmp_path, text), alphabet="rna", max_gap_fraction=0.5)
    assert aln.names == ["a"] and aln.report["n_gappy_removed"] == 2
    with pytest.raises(ValueError, match="max_gap_fraction"):
        msa(_write(tmp_path, ">c\n-----\n"), alphabet="rna", max_gap_fraction=0.5)


def test_custom_alphabet(tmp_path):
    aln = msa(_write(tmp_path, ">a\nHP-H\n>b\nPPHH\n"), alphabet="-HP")
    np.testing.assert_array_equal(aln.sequences, [[1, 2, 0, 1], [2, 2, 1, 1]])
    assert aln.q == 3


@pytest.mark.parametrize("name", ["out.fasta", "out.fasta.gz"])
def test_to_fasta_round_trip(tmp_path, name):
    aln = msa(_write(tmp_path, FASTA), alphabet="rna")
    aln.to_fasta(tmp_path / name)
    again = msa(tmp_path / name, alphabet="rna")
    np.testing.assert_array_equal(again.sequences, aln.sequences)
    assert again.names == aln.names


# -- errors -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", r"aln\.fasta: the file is empty"),
        ("\n  \n", "the file is empty"),
        (">a\n>b\n", r"aln\.fasta: no sequences found in this fasta file"),
        ("# STOCKHOLM 1.0\n#=GF ID x\n//\n", "no sequences found in this stockholm file"),
        ("# STOCKHOLM 1.0\nonlyname\n//\n", r"line 2: a Stockholm sequence line"),
        ("name,seq\na,ACGU\n", "neither FASTA .* nor Stockholm"),
        (
            ">a\nACGU\n>b\nACG\n>c\nAC\n",
            r"ragged alignment: sequence 'b' \(line 3\) has 3 columns but the first "
            r"sequence 'a' \(line 1\) has 4",
        ),
        (">a\nAC-GU\n>b\nAcgC-GU\n", "looks like A3M"),
    ],
)
def test_bad_files(tmp_path, text, match):
    with pytest.raises(ValueError, match=match):
        msa(_write(tmp_path, text), alphabet="rna")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"alphabet": "amino"}, "unknown alphabet 'amino'"),
        ({"alphabet": "-ACGA"}, r"duplicate letters \['A'\]"),
        ({"alphabet": "-AC.G"}, "cannot be residues"),
        ({"theta": 1.0}, r"theta must be in \[0, 1\)"),
        ({"theta": -0.1}, r"theta must be in \[0, 1\)"),
        ({"pseudocount": 1.0}, r"pseudocount must be in \[0, 1\)"),
        ({"pseudocount": -0.5}, r"pseudocount must be in \[0, 1\)"),
        ({"max_gap_fraction": 1.5}, "max_gap_fraction"),
        ({"unknown": "drop"}, "unknown must be 'gap' or 'error'"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        msa(_write(tmp_path, FASTA), **{"alphabet": "rna", **kwargs})


def test_unknown_letters_can_be_an_error(tmp_path):
    path = _write(tmp_path, ">a\nAC-GU\n>b\nACNGU\n>c\nAXAGU\n")
    assert msa(path, alphabet="rna").report["unknown_as_gap"] == {"N": 1, "X": 1}
    with pytest.raises(ValueError, match=r"letter 'N' in sequence 'b', column 2, is not in the "
                       r"alphabet \(2 unknown letters in all: NX\)"):  # fmt: skip
        msa(path, alphabet="rna", unknown="error")


# -- a real family ------------------------------------------------------------
@pytest.mark.skipif(not RF00379.exists(), reason=f"{RF00379} is missing")
def test_rf00379_matches_adabmdca():
    aln = msa(RF00379, alphabet="rna")
    print(f"RF00379: N = {aln.n_sequences}, L = {aln.L}, Meff = {aln.meff:.2f}, {aln.report}")
    assert aln.report["n_read"] == 3827
    assert (aln.n_sequences, aln.L, aln.q) == (3646, 136, 5)
    assert aln.meff == pytest.approx(1447, rel=0.01)
    fi, fij = aln.frequencies()
    np.testing.assert_allclose(fi.sum(1), 1.0)
    # The data's own chains (uniform weights) against the weighted targets.
    gi, gij = one_hot_statistics(jnp.asarray(aln.sequences), aln.q)
    assert 0.8 < pearson(fi, fij, gi, gij) < 1.0
