"""`hamon-nnx dca`: train, contacts, energies, dms and sample on a small RNA alignment."""

import json

import numpy as np

from hamon_nnx import cli
from hamon_nnx.dca import adabmdca, scores
from hamon_nnx.dca.alignment import msa


def small_alignment(path, n=300, L=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 5, size=(n, L))
    x[:, 3] = x[:, 1]  # a coupled pair: columns 1 and 3 co-vary
    letters = np.array(list("-ACGU"))
    path.write_text("".join(f">s{i}\n{''.join(letters[r])}\n" for i, r in enumerate(x)))
    return path


def test_dca_commands_end_to_end(tmp_path):
    aln = small_alignment(tmp_path / "family.fasta")
    out = tmp_path / "run"
    code = cli.main(["dca", "train", str(aln), "--alphabet", "rna", "--chains", "200",
                     "--max-steps", "60", "--lr", "0.05", "-o", str(out), "--no-progress"])  # fmt: skip
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    history = json.loads((out / "history.json").read_text())
    assert summary["L"] == 8 and summary["q"] == 5 and summary["steps"] == len(history["step"])
    assert history["pearson"][-1] > history["pearson"][0]
    model = adabmdca.load_params(out / "params.dat", "rna")
    assert model.n_variables == 8

    assert cli.main(["dca", "contacts", str(out), "-o", str(tmp_path / "c.txt")]) == 0
    ranked = scores.ranked_pairs(scores.read_scores(tmp_path / "c.txt"), min_separation=0)
    assert ranked[0][:2] == (1, 3), "the coupled pair ranks first"

    assert cli.main(["dca", "energies", str(out), str(aln), "-o", str(tmp_path / "e.txt")]) == 0
    lines = (tmp_path / "e.txt").read_text().splitlines()
    energies = np.array([float(line.split()[1]) for line in lines])
    expected = scores.sequence_energies(model, msa(aln, "rna", dedupe=False).sequences)
    np.testing.assert_allclose(energies, expected, rtol=1e-5, atol=1e-5)

    assert cli.main(["dca", "dms", str(out), "--wildtype", f"{aln}:2", "-o",
                     str(tmp_path / "d.txt")]) == 0  # fmt: skip
    assert len((tmp_path / "d.txt").read_text().splitlines()) == 8 * 5

    assert cli.main(["dca", "sample", str(out), "-n", "7", "--sweeps", "20", "-o",
                     str(tmp_path / "s.fasta")]) == 0  # fmt: skip
    drawn = msa(tmp_path / "s.fasta", "rna", dedupe=False)
    assert drawn.n_sequences == 7 and drawn.L == 8


def test_dca_bad_input_is_one_line_and_status_2(tmp_path, capsys):
    ragged = tmp_path / "ragged.fasta"
    ragged.write_text(">a\nACGU\n>b\nACG\n")
    assert cli.main(["dca", "train", str(ragged), "--alphabet", "rna", "-o",
                     str(tmp_path / "x"), "--no-progress"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "hamon-nnx dca: error:" in err and len(err.strip().splitlines()) == 1
    assert cli.main(["dca", "contacts", str(tmp_path / "missing"), "-o", "x.txt"]) == 2


def test_train_config_file_flags_and_family(tmp_path, capsys):
    from hamon_nnx.dca.cli import read_train_config

    aln = small_alignment(tmp_path / "family.fasta")
    config = tmp_path / "run.yaml"
    config.write_text(
        "alignment: family.fasta\nalphabet: rna\nchains: 50\nmax-steps: 4\nlr: 0.05\n"
    )
    assert read_train_config(config)["alignment"] == str(aln)  # relative to the config
    out = tmp_path / "run"
    assert cli.main(["dca", "train", "--config", str(config), "--max-steps", "2", "-o", str(out),
                     "--no-progress"]) == 0  # fmt: skip
    used = json.loads((out / "config.json").read_text())
    assert used["chains"] == 50 and used["max_steps"] == 2 and used["lr"] == 0.05
    assert json.loads((out / "summary.json").read_text())["steps"] == 2

    config.write_text("alignment: family.fasta\nchians: 50\n")
    assert cli.main(["dca", "train", "--config", str(config), "-o", str(out)]) == 2
    assert "unknown keys ['chians']" in capsys.readouterr().err
    assert cli.main(["dca", "train", "-o", str(out)]) == 2
    assert "no alignment" in capsys.readouterr().err
    assert cli.main(["dca", "train", str(aln), "--family", "rf00379", "-o", str(out)]) == 2
    assert "not both" in capsys.readouterr().err
    assert cli.main(["dca", "train", "--family", "pfam42", "-o", str(out)]) == 2
    assert "unknown family 'pfam42'" in capsys.readouterr().err


def test_shipped_family_reads():
    from hamon_nnx.dca import families

    family = families.family("rf00379")
    aln = msa(family.alignment, family.alphabet)
    assert (aln.n_sequences, aln.L, aln.q) == (3646, 136, 5)
    assert abs(aln.meff - 1447.04) < 0.01  # adabmDCA 1.0's Meff of the same file
