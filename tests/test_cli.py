"""The command line: the demo runs and checks itself; bad input exits non-zero."""

import json

import pytest

from hamon_nnx import cli


def test_demo_small(capsys):
    code = cli.main(["demo", "--size", "8", "--betas", "0.3", "--chains", "16", "--samples", "100"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    (row,) = report["results"]
    assert abs(row["energy_per_spin"] - row["exact"]) < 5 * row["stderr"] + 1e-4


def test_bad_input_is_one_line_and_nonzero(capsys):
    assert cli.main(["demo", "--size", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hamon-nnx demo: error:")


def test_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["demo", "--help"])
    assert exit_info.value.code == 0
    assert "Kaufman" in capsys.readouterr().out
