"""The model zoo: shipped checkpoints load, verify and describe themselves;
named physics models have the right couplings and critical points."""

import math
import shutil
from pathlib import Path

import jax
import numpy as np
import pytest

import hamon_nnx as hn
from hamon_nnx import config, zoo
from hamon_nnx.models.potts import DensePotts

DIGITS = ["ising-digits", "potts-digits-4", "rbm-digits-16", "rbm-digits-64"]
FASHION = ["categorical-rbm-fashion-mnist-4", "rbm-fashion-mnist-20", "rbm-fashion-mnist-500"]
DCA = ["potts-rf00379"]
PRETRAINED = sorted(DIGITS + FASHION + DCA)
PHYSICS = ["ising-2d", "ising-3d", "spin-glass-ea", "spin-glass-sk", "potts-2d"]
CONFIGS = Path(__file__).parent.parent / "configs"


def test_list():
    names = zoo.names()
    assert names == PRETRAINED + PHYSICS


def _fashion_files() -> bool:
    try:
        hn.data.fashion_mnist(validation=10000)
    except FileNotFoundError:
        return False
    return True


@pytest.mark.parametrize("name", DIGITS)
def test_pretrained_entry(name):
    model = zoo.load(name)
    meta = zoo.info(name)
    assert meta["kind"] == "pretrained" and meta["name"] == name
    assert meta["command"] == f"hamon-nnx train configs/{name}.yaml"
    # the shipped model is what its config in configs/ trains
    assert config.from_dict(meta["config"]) == config.load_config(CONFIGS / f"{name}.yaml")
    assert meta["model"]["class"] == type(model).__name__
    assert len(meta["checksum"]) == 64 and meta["size_bytes"] < 2_000_000
    assert meta["data"]["image_shape"] == [8, 8] and meta["data"]["n_test"] == 359
    assert len(meta["training"]["history"]["loss"]) == meta["config"]["training"]["epochs"]
    ll = meta["metrics"]["test_log_likelihood"]
    assert ll["n"] == 359 and ll["data_stderr"] > 0 and -60 < ll["value"] < -10
    if ll["method"] == "nrpt":
        log_z = meta["metrics"]["log_z"]
        assert 0 < ll["stderr"] == log_z["stderr"] < 0.5
        # independent NRPT runs agree within their own error bars
        runs, errs = np.array(log_z["runs"]), np.array(log_z["run_stderrs"])
        assert len(runs) == 3
        assert np.all(np.abs(runs - log_z["value"]) < 5 * errs + 1e-9)
    # info is a fresh copy: changing it changes nothing
    meta["metrics"].clear()
    assert zoo.info(name)["metrics"]


@pytest.mark.parametrize("name", FASHION)
def test_fashion_entry_records_ais_and_nrpt_that_agree(name):
    """784-pixel models: the test log-likelihood by AIS and by NRPT, each with
    its error bar, within 3 sigma of the exact value or of each other."""
    model = zoo.load(name)
    meta = zoo.info(name)
    assert config.from_dict(meta["config"]) == config.load_config(CONFIGS / f"{name}.yaml")
    assert meta["data"]["image_shape"] == [28, 28] and meta["data"]["n_test"] == 10000
    assert meta["size_bytes"] < 2_500_000 and model.n_visible == 784
    m = meta["metrics"]
    primary, ais = m["test_log_likelihood"], m["test_log_likelihood_ais"]
    assert ais["stderr"] > 0 and abs(m["log_z_ais"]["z_score"]) < 3
    if primary["method"] == "exact":
        nrpt = m["test_log_likelihood_nrpt"]
        for other in (nrpt, ais):
            assert abs(other["value"] - primary["value"]) < 3 * other["stderr"], other
    else:
        assert primary["method"] == "nrpt" and primary["stderr"] > 0
        joint = math.hypot(primary["stderr"], ais["stderr"])
        assert abs(ais["value"] - primary["value"]) < 3 * joint


@pytest.mark.skipif(not _fashion_files(), reason="Fashion-MNIST files not installed")
def test_fashion_metrics_are_reproduced_from_the_data():
    from hamon_nnx import runs

    model = zoo.load("rbm-fashion-mnist-20")
    meta = zoo.info("rbm-fashion-mnist-20")
    test = zoo.data("rbm-fashion-mnist-20").test
    log_z = hn.exact.log_partition(model)
    assert log_z == pytest.approx(meta["metrics"]["log_z"]["value"], abs=1e-4)
    ll = runs.log_likelihoods(model, test, log_z).mean()
    assert ll == pytest.approx(meta["metrics"]["test_log_likelihood"]["value"], abs=1e-4)


def test_kinds_of_pretrained_models():
    rbm16, rbm64 = zoo.load("rbm-digits-16"), zoo.load("rbm-digits-64")
    assert (rbm16.n_visible, rbm16.n_hidden, rbm64.n_hidden) == (64, 16, 64)
    potts = zoo.load("potts-digits-4")
    assert isinstance(potts, hn.PottsModel) and potts.q == 4 and potts.n_variables == 64
    ising = zoo.load("ising-digits")
    assert isinstance(ising, hn.IsingModel) and ising.n_variables == 64
    assert zoo.info("rbm-digits-16")["metrics"]["test_log_likelihood"]["method"] == "exact"
    for name in ("rbm-digits-64", "potts-digits-4", "ising-digits"):
        assert zoo.info(name)["metrics"]["test_log_likelihood"]["method"] == "nrpt"


def test_rbm16_metrics_are_reproduced_exactly():
    from hamon_nnx import runs

    model = zoo.load("rbm-digits-16")
    meta = zoo.info("rbm-digits-16")
    data = zoo.data("rbm-digits-16")
    log_z = hn.exact.log_partition(model)
    assert log_z == pytest.approx(meta["metrics"]["log_z"]["value"], abs=1e-6)
    ll = runs.log_likelihoods(model, data.test, log_z)
    assert ll.mean() == pytest.approx(meta["metrics"]["test_log_likelihood"]["value"], abs=1e-6)
    check = meta["metrics"]["log_z_nrpt_check"]  # NRPT agrees with enumeration
    assert abs(check["value"] - log_z) < 5 * check["stderr"]


def test_data_encoding():
    d = zoo.data("ising-digits")
    assert d.encoding == "spins" and set(np.unique(d.train)) == {-1, 1}
    q = zoo.data("potts-digits-4")
    assert q.encoding == "categorical" and q.levels == 4 and int(q.train.max()) == 3


def _copy_zoo(tmp_path, monkeypatch) -> Path:
    """A private copy of the zoo (the shipped files are never touched)."""
    root = tmp_path / "zoo"
    root.mkdir()
    shutil.copy(zoo.ZOO_DIR / zoo.INDEX_FILE, root / zoo.INDEX_FILE)
    shutil.copytree(zoo.ZOO_DIR / zoo.PRETRAINED_DIR, root / zoo.PRETRAINED_DIR)
    monkeypatch.setattr(zoo, "ZOO_DIR", root)
    return root / zoo.PRETRAINED_DIR / "rbm-digits-16"


def test_damaged_state_file_is_a_clear_error(tmp_path, monkeypatch):
    path = _copy_zoo(tmp_path, monkeypatch)
    assert zoo.load("rbm-digits-16").n_hidden == 16  # the copy is intact
    victim = max(
        (p for p in (path / "state").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size
    )
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    with pytest.raises(zoo.ZooError, match=r"zoo model 'rbm-digits-16' is damaged: checksum "):
        zoo.load("rbm-digits-16")
    with pytest.raises(ValueError, match="reinstall hamon-nnx"):  # ZooError is a ValueError
        zoo.verify("rbm-digits-16")
    assert zoo.load("rbm-digits-64").n_hidden == 64  # the others still load


def test_damaged_or_missing_model_json(tmp_path, monkeypatch):
    path = _copy_zoo(tmp_path, monkeypatch)
    text = (path / "model.json").read_text()
    (path / "model.json").write_text(text.replace('"n_hidden": 16', '"n_hidden": 17'))
    with pytest.raises(zoo.ZooError, match=r"is damaged: checksum mismatch in .*model\.json"):
        zoo.load("rbm-digits-16")
    (path / "model.json").unlink()
    with pytest.raises(zoo.ZooError, match="is missing"):
        zoo.load("rbm-digits-16")


def test_shipped_files_match_the_index():
    for name in PRETRAINED:
        assert zoo.verify(name).is_dir()


def test_unknown_names_and_arguments():
    with pytest.raises(
        ValueError, match=r"unknown zoo model 'rbm-digit-16'; did you mean 'rbm-digits-16'"
    ):
        zoo.load("rbm-digit-16")
    with pytest.raises(ValueError, match="unknown zoo model"):
        zoo.info("nothing-like-it")
    with pytest.raises(ValueError, match="takes no arguments"):
        zoo.load("rbm-digits-16", size=3)
    with pytest.raises(TypeError):
        zoo.load("ising-2d", sise=3)
    with pytest.raises(ValueError, match="unknown parameters"):
        zoo.info("ising-2d", sise=3)
    with pytest.raises(ValueError, match="beta must be a number >= 0 or 'critical'"):
        zoo.ising_2d(4, beta="hot")
    with pytest.raises(ValueError, match="beta must be finite and >= 0"):
        zoo.ising_2d(4, beta=-1.0)
    with pytest.raises(ValueError, match="no finite-temperature critical point"):
        zoo.edwards_anderson(4, dims=2, beta="critical")
    with pytest.raises(ValueError, match="size must be an integer >= 3"):
        zoo.ising_3d(2)


def test_critical_points():
    assert zoo.info("ising-2d")["critical_beta"] == pytest.approx(0.5 * math.log(1 + math.sqrt(2)))
    assert zoo.info("ising-3d")["critical_beta"] == pytest.approx(0.2216546, abs=1e-6)
    assert zoo.info("spin-glass-ea")["critical_beta"] == pytest.approx(1 / 1.1019)
    assert zoo.info("spin-glass-ea", dims=2)["critical_beta"] is None
    assert zoo.info("spin-glass-sk")["critical_beta"] == 1.0
    for q in (2, 3, 4, 8):
        beta_c = zoo.info("potts-2d", q=q)["critical_beta"]
        assert beta_c == pytest.approx(math.log(1 + math.sqrt(q)))
        # the critical model sits at beta_c: its coupling is beta_c
        assert float(zoo.potts_2d(4, q=q, beta="critical").coupling[...]) == pytest.approx(beta_c)
    # q = 2 Potts is Ising with J = 1/2: the critical points differ by that factor
    assert zoo.info("potts-2d", q=2)["critical_beta"] == pytest.approx(
        2 * zoo.info("ising-2d")["critical_beta"]
    )


def test_ising_2d_at_beta_is_kaufmans_lattice():
    for beta in (0.2, 0.44):
        model = zoo.load("ising-2d", size=4, beta=beta)
        assert hn.exact.log_partition(model) == pytest.approx(
            hn.exact.ising_lattice_log_partition(4, beta), rel=1e-6
        )


def test_potts_q2_is_ising_at_half_the_coupling():
    # delta(s, s') = (1 + s s') / 2: log Z_potts(b) = E b / 2 + log Z_ising(b / 2), E edges
    beta = 0.7
    potts = zoo.potts_2d(4, q=2, beta=beta)
    ising = zoo.ising_2d(4, beta=beta / 2)
    n_edges = 2 * 16
    assert hn.exact.log_partition(potts) == pytest.approx(
        n_edges * beta / 2 + hn.exact.log_partition(ising), rel=1e-6
    )


def test_spin_glass_couplings():
    a, b = zoo.edwards_anderson(4, dims=3, seed=3), zoo.edwards_anderson(4, dims=3, seed=3)
    c = zoo.edwards_anderson(4, dims=3, seed=4, beta=0.5)
    J = np.asarray(a.coupling[...])
    assert a.n_edges == 3 * 64 and set(np.unique(J)) == {-1.0, 1.0}
    assert np.array_equal(J, np.asarray(b.coupling[...]))
    assert not np.array_equal(J, 2 * np.asarray(c.coupling[...]))
    assert set(np.unique(np.asarray(c.coupling[...]))) == {-0.5, 0.5}
    assert len(a.blocks) == 2  # even periodic lattice: checkerboard
    assert len(zoo.edwards_anderson(5, dims=2).blocks) >= 3  # odd periodic: not bipartite
    sk = zoo.sherrington_kirkpatrick(200, seed=1)
    W = np.asarray(sk._J())
    assert np.allclose(W, W.T) and np.all(np.diag(W) == 0)
    upper = W[np.triu_indices(200, 1)]
    # variance 1/n; the sample variance of 19900 normals is within a few percent
    assert upper.var() * 200 == pytest.approx(1.0, abs=0.05)
    assert np.array_equal(W, np.asarray(zoo.sherrington_kirkpatrick(200, seed=1)._J()))


def test_beta_scan_matches_exact_enumeration():
    model = zoo.ising_2d(4)  # unit coupling; the scan sets beta
    betas = np.array([0.2, 0.5])
    scan = zoo.beta_scan(model, jax.random.key(0), betas, n_samples=400, n_chains=8, n_warmup=100)
    for i, beta in enumerate(betas):
        exact_e = hn.exact.ising_lattice_energy(4, beta)
        assert abs(scan.energy[i] - exact_e) < 5 * scan.energy_stderr[i] + 1e-6
        states, probs = hn.exact.probabilities(model, beta)
        exact_m = float(probs @ np.abs(np.asarray(states, np.float64).mean(axis=1)))
        assert abs(scan.magnetization[i] - exact_m) < 5 * scan.magnetization_stderr[i] + 1e-6
    assert scan.magnetization[1] > scan.magnetization[0]
    with pytest.raises(ValueError, match="n_chains must be an integer >= 2"):
        zoo.beta_scan(model, jax.random.key(0), betas, n_chains=1)
    with pytest.raises(ValueError, match="betas must be"):
        zoo.beta_scan(model, jax.random.key(0), [-1.0])


def test_order_parameter():
    potts = zoo.potts_2d(3, q=3)
    x = np.array([[0] * 9, [0, 1, 2] * 3])
    assert zoo.order_parameter(potts, x).tolist() == [1.0, 0.0]
    ising = zoo.ising_2d(4)
    assert zoo.order_parameter(ising, -np.ones((1, 16), np.int8)).tolist() == [1.0]


def test_dca_family_entry():
    """bmDCA of RF00379: trained to Pearson 0.95, its data the shipped alignment,
    and natural sequences score lower energies than the same letters shuffled."""
    model = zoo.load("potts-rf00379")
    meta = zoo.info("potts-rf00379")
    assert isinstance(model, DensePotts) and (model.n_variables, model.q) == (136, 5)
    assert meta["command"].startswith("hamon-nnx dca train --config configs/dca/potts-rf00379")
    assert (CONFIGS / "dca" / "potts-rf00379.yaml").is_file()
    assert meta["metrics"]["pearson"]["value"] >= 0.95
    assert meta["metrics"]["pearson_resampled"]["value"] > 0.9
    assert meta["metrics"]["contact_precision"]["value"] is None  # no structure ships
    history = meta["training"]["history"]
    assert len(history["pearson"]) == meta["training"]["steps"] == history["step"][-1]
    aln = zoo.data("potts-rf00379")
    assert (aln.n_sequences, aln.L, aln.meff) == (3646, 136, meta["data"]["meff"])
    natural = hn.dca.sequence_energies(model, aln.sequences[:500])
    rng = np.random.default_rng(0)
    shuffled = np.stack([rng.permutation(col) for col in aln.sequences[:500].T], axis=1)
    decoys = hn.dca.sequence_energies(model, shuffled)
    assert natural.mean() < decoys.mean() - 10 * decoys.std() / np.sqrt(500)
