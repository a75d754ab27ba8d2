"""The command line: every subcommand on tiny settings; bad input is one line and exit 2."""

import json
import subprocess
import sys

import numpy as np
import pytest

import hamon_nnx as hn
from hamon_nnx import cli


def _json(capsys):
    return json.loads(capsys.readouterr().out)


def _one_line_error(capsys, prefix: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(prefix), err[0]
    return err[0]


def test_zoo_list_and_info(capsys):
    assert cli.main(["zoo", "list"]) == 0
    out = capsys.readouterr().out
    assert "rbm-digits-16" in out and "ising-2d" in out and "beta_c = 0.440687" in out
    assert cli.main(["zoo", "list", "--json"]) == 0
    assert [r["name"] for r in _json(capsys)] == hn.zoo.names()
    assert cli.main(["zoo", "info", "rbm-digits-64", "--json"]) == 0
    meta = _json(capsys)
    assert meta["metrics"]["test_log_likelihood"]["stderr"] > 0
    assert cli.main(["zoo", "info", "rbm-digits-64"]) == 0
    out = capsys.readouterr().out
    assert "reproduce: hamon-nnx train configs/rbm-digits-64.yaml" in out
    assert "checksum" in out
    assert cli.main(["zoo", "info", "potts-2d", "--set", "q=3"]) == 0
    assert "critical_beta: 1.005" in capsys.readouterr().out


def test_sample_physics_model_with_nrpt(tmp_path, capsys):
    out = tmp_path / "s"
    args = ["sample", "ising-2d", "--set", "size=8", "--set", "beta=critical", "-n", "300"]
    assert cli.main([*args, "--max-rounds", "32", "--out", str(out), "--json"]) == 0
    summary = _json(capsys)
    samples = np.load(out / "samples.npy")
    assert samples.shape == (1, 300, 64) and samples.dtype == np.int8
    assert set(np.unique(samples)) <= {-1, 1}
    assert (out / "samples.png").stat().st_size > 1000
    assert (out / "barrier.png").stat().st_size > 1000
    assert summary["nrpt"]["n_betas"] >= 4 and summary["files"]["samples"].endswith(".npy")
    # the NRPT log Z against Kaufman's exact finite-lattice value
    exact = hn.exact.ising_lattice_log_partition(8, hn.zoo.info("ising-2d")["critical_beta"])
    assert abs(summary["nrpt"]["log_z"] - exact) < 5 * summary["nrpt"]["log_z_stderr"]


def test_sample_with_a_cluster_explorer(tmp_path, capsys):
    out = tmp_path / "c"
    args = ["sample", "ising-2d", "--set", "size=8", "--set", "beta=critical", "-n", "40"]
    args += ["--method", "gibbs", "--explorer", "swendsen_wang", "--chains", "4"]
    assert cli.main([*args, "--warmup", "5", "--out", str(out), "--json"]) == 0
    assert np.load(out / "samples.npy").shape == (4, 40, 64)
    bad = ["sample", "rbm-digits-16", "--explorer", "wolff", "--out", str(out)]
    assert cli.main(bad) == cli.EXIT_BAD_INPUT
    assert "explorer 'wolff' cannot run on this model" in capsys.readouterr().err


def test_sample_with_gibbs_and_a_scan(tmp_path, capsys):
    out = tmp_path / "g"
    # 24 chains = 3 betas x 8 chains of the scan: both runs share one compiled program
    args = ["sample", "ising-2d", "--set", "size=4", "--method", "gibbs", "-n", "30"]
    args += ["--chains", "24", "--warmup", "10", "--scan", "--scan-points", "3"]
    assert cli.main([*args, "--out", str(out)]) == 0
    assert np.load(out / "samples.npy").shape == (24, 30, 16)
    assert (out / "samples.png").is_file() and (out / "thermodynamics.png").is_file()
    assert np.load(out / "scan.npz")["energy"].shape == (3,)


def test_evaluate_zoo_models(capsys):
    assert cli.main(["evaluate", "rbm-digits-16", "--method", "exact", "--json"]) == 0
    got = _json(capsys)["metrics"]["test_log_likelihood"]
    want = hn.zoo.info("rbm-digits-16")["metrics"]["test_log_likelihood"]
    assert got["method"] == "exact" and got["value"] == pytest.approx(want["value"], abs=1e-6)


def test_train_then_evaluate_and_sample_the_checkpoint(tmp_path, capsys):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(
        "name: tiny\ndata: {name: bars_and_stripes, size: 3}\nmodel: {n_hidden: 4}\n"
        "training: {epochs: 3, batch_size: 7, learning_rate: 0.01}\n"
    )
    run = tmp_path / "run"
    assert cli.main(["train", str(cfg), "--out", str(run), "--json"]) == 0
    summary = _json(capsys)
    assert summary["metrics"]["test_log_likelihood"]["method"] == "exact"
    info = hn.training.checkpoint.read_info(run / "model")
    assert info["metadata"]["command"] == f"hamon-nnx train {cfg}"
    assert info["metadata"]["data"]["image_shape"] == [3, 3]
    # the run directory stands for its model
    assert cli.main(["evaluate", str(run), "-n", "300", "--max-rounds", "32", "--json"]) == 0
    metrics = _json(capsys)["metrics"]
    assert metrics["test_log_likelihood"]["value"] == pytest.approx(
        summary["metrics"]["test_log_likelihood"]["value"], abs=1e-6
    )
    assert abs(metrics["log_z_nrpt_check"]["z_score"]) < 5
    # AIS beside NRPT by default, against the exact log Z here
    ais = metrics["log_z_ais"]
    assert ais["method"] == "ais" and ais["z_against"] == "exact" and abs(ais["z_score"]) < 5
    assert ais["n_runs"] == 256 and ais["n_betas"] == 1000 and ais["stderr"] > 0
    assert (
        cli.main(["evaluate", str(run), "-n", "300", "--max-rounds", "32", "--ais-betas", "0"]) == 0
    )
    text = capsys.readouterr().out
    assert "log_z_nrpt_check" in text and "log_z_ais" not in text
    assert cli.main(["evaluate", str(run), "--ais-betas", "1"]) == 2
    _one_line_error(capsys, "hamon-nnx evaluate: error: --ais-betas must be 0 (no AIS) or >= 2")
    out = tmp_path / "samples"
    assert cli.main(["sample", str(run), "-n", "50", "--max-rounds", "32", "--out", str(out)]) == 0
    assert np.load(out / "samples.npy").shape == (1, 50, 13)
    assert (out / "samples.png").is_file()
    # data from a file, checked against the model's domain
    np.save(tmp_path / "bad.npy", np.full((2, 9), 3))
    assert cli.main(["evaluate", str(run), "--data", str(tmp_path / "bad.npy")]) == 2
    _one_line_error(capsys, "hamon-nnx evaluate: error: --data rows [0, 1] hold values outside")


def test_demo_quick(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli.main(["demo", "--quick", "--out", str(out), "--json"]) == 0
    summary = _json(capsys)
    for name in ("data.png", "samples.png", "filters.png", "training.png", "barrier.png"):
        assert (out / name).stat().st_size > 1000, name
    assert (out / "model" / "model.json").is_file() and (out / "training").is_dir()
    assert np.load(out / "samples.npy").shape == (1, 100, 80)
    log_z = summary["log_z"]
    assert abs(log_z["nrpt"] - log_z["exact"]) < 5 * log_z["nrpt_stderr"]
    assert hn.load(out / "model").n_hidden == 16


@pytest.mark.parametrize(
    "argv, prefix",
    [
        (
            ["zoo", "info", "rbm-digit-16"],
            "hamon-nnx zoo: error: unknown zoo model 'rbm-digit-16'; did you mean 'rbm-digits-16'?",
        ),  # fmt: skip
        (["sample", "no-such-model"], "hamon-nnx sample: error: 'no-such-model' is neither"),
        (["sample", "ising-2d", "-n", "0"], "hamon-nnx sample: error: --n must be >= 1"),
        (["sample", "ising-2d", "--set", "size"], "hamon-nnx sample: error: --set takes KEY=VALUE"),
        (["sample", "ising-2d", "--set", "size=2"], "hamon-nnx sample: error: size must be"),
        (["sample", "rbm-digits-16", "--set", "a=1"], "hamon-nnx sample: error: the pretrained"),
        (["train", "missing.yaml"], "hamon-nnx train: error: no config file at missing.yaml"),
        (["demo", "--hidden", "40"], "hamon-nnx demo: error: --hidden must be <= 24"),
        (["evaluate", "ising-2d", "--max-rounds", "8"], "hamon-nnx evaluate: error: --max-rounds"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, prefix, capsys):
    assert cli.main(argv) == 2
    _one_line_error(capsys, prefix)


def test_bad_config_is_one_line_with_a_suggestion(tmp_path, capsys):
    cfg = tmp_path / "typo.yaml"
    cfg.write_text("name: typo\ntraining:\n  epoch: 3\n")
    assert cli.main(["train", str(cfg)]) == 2
    line = _one_line_error(capsys, "hamon-nnx train: error: ")
    assert "training.epoch: unknown key; did you mean 'epochs'?" in line


def test_argparse_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["sample", "ising-2d", "--method", "hmc"])
    assert exit_info.value.code == 2
    _one_line_error(capsys, "hamon-nnx sample: error: argument --method: invalid choice")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["nonsense"])
    assert exit_info.value.code == 2
    _one_line_error(capsys, "hamon-nnx: error: argument command: invalid choice")


@pytest.mark.parametrize(
    "argv", [[], ["train"], ["sample"], ["evaluate"], ["zoo"], ["zoo", "info"], ["demo"]]
)
def test_help_everywhere(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*argv, "--help"])
    assert exit_info.value.code == 0
    assert "usage: hamon-nnx" in capsys.readouterr().out


def test_module_entry_point_without_traceback(tmp_path):
    ok = subprocess.run(
        [sys.executable, "-m", "hamon_nnx", "zoo", "info", "ising-3d", "--json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["critical_beta"] == pytest.approx(0.221654626)
    bad = subprocess.run(
        [sys.executable, "-m", "hamon_nnx", "train", str(tmp_path / "nope.yaml")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1].startswith("hamon-nnx train: error: no config")
