"""Runs on MNIST-like IDX data: configs name fashion_mnist (binary or quantized),
train an RBM or a CategoricalRBM, and evaluate log Z by exact sum, NRPT and AIS.

The IDX files are small stand-ins the tests write (the real Fashion-MNIST
files are not on every machine); `data.path` points the loader at them.
"""

import numpy as np
import pytest

import hamon_nnx as hn
from hamon_nnx import config, runs
from hamon_nnx.data import write_idx


@pytest.fixture(scope="module")
def idx_dir(tmp_path_factory):
    """Four 4x4 'Fashion-MNIST' files: 60 training and 20 test images."""
    path = tmp_path_factory.mktemp("fashion")
    g = np.random.default_rng(0)
    for split, n in (("train", 60), ("t10k", 20)):
        stripes = (np.arange(16).reshape(4, 4) % 4 < g.integers(1, 4, size=(n, 1, 1))) * 200
        images = np.clip(stripes + g.integers(0, 56, size=(n, 4, 4)), 0, 255).astype(np.uint8)
        write_idx(path / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(path / f"{split}-labels-idx1-ubyte.gz", np.zeros(n, np.uint8))
    return path


def run_config(idx_dir, **sections):
    base = {
        "name": "tiny-fashion",
        "data": {"name": "fashion_mnist", "path": str(idx_dir), "validation": 10},
        "model": {"n_hidden": 3},
        "training": {"epochs": 3, "batch_size": 10, "learning_rate": 0.01},
        "evaluation": {"cross_check": True, "n_samples": 200, "ais_runs": 64, "ais_betas": 100},
    }
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return config.from_dict(base)


def test_binary_rbm_run_records_exact_nrpt_and_ais(idx_dir, tmp_path):
    cfg = run_config(idx_dir, data={"n_train": 40})
    result = runs.train(cfg, output=tmp_path, progress=False, log=lambda line: None)
    assert result.data.train.shape == (40, 16) and result.data.test.shape == (20, 16)
    assert "first 40 training images" in result.data.description
    m = result.metrics
    assert m["log_z"]["method"] == "exact"
    for other in ("nrpt", "ais"):
        ll = m[f"test_log_likelihood_{other}"]
        assert ll["method"] == other and ll["stderr"] > 0
        z = (ll["value"] - m["test_log_likelihood"]["value"]) / ll["stderr"]
        assert abs(z) < 4, (other, z)
    assert abs(m["log_z_ais"]["z_score"]) < 4
    saved = hn.training.checkpoint.read_info(result.path)["metadata"]
    assert saved["metrics"]["test_log_likelihood_ais"]["method"] == "ais"
    assert saved["data"]["image_shape"] == [4, 4]


def test_quantized_data_trains_a_categorical_rbm(idx_dir, tmp_path):
    cfg = run_config(
        idx_dir,
        data={"name": "fashion_mnist_quantized", "levels": 4},
        model={"kind": "categorical_rbm"},
        evaluation={"cross_check": False},
    )
    result = runs.train(cfg, output=tmp_path, progress=False, log=lambda line: None)
    model = hn.load(result.path)
    assert isinstance(model, hn.CategoricalRBM) and (model.q, model.n_hidden) == (4, 3)
    assert (
        set(np.unique(result.data.train)) <= {0, 1, 2, 3} and result.data.encoding == "categorical"
    )
    m = result.metrics
    exact_ll = m["test_log_likelihood"]["value"]
    assert m["test_log_likelihood"]["method"] == "exact"
    assert abs(m["test_log_likelihood_ais"]["value"] - exact_ll) < 4 * m["log_z_ais"]["stderr"]


def test_missing_idx_files_name_the_places(tmp_path, monkeypatch):
    monkeypatch.delenv("HAMON_DATA", raising=False)
    monkeypatch.delenv("HAMON_DOWNLOAD", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setitem(hn.data._SYSTEM_DIRS, "fashion-mnist", str(tmp_path / "debian"))
    cfg = config.from_dict({"name": "x", "data": {"name": "fashion_mnist", "path": str(tmp_path)}})
    with pytest.raises(FileNotFoundError, match="apt-get install"):
        runs.load_data(cfg)
