import math
import re

import numpy as np
import pytest

from hamon_nnx import data


def _has_sklearn() -> bool:
    try:
        import sklearn  # noqa: F401
    except ImportError:
        return False
    return True


needs_sklearn = pytest.mark.skipif(not _has_sklearn(), reason="scikit-learn not installed")


def _row_set(x: np.ndarray) -> set[bytes]:
    return {row.tobytes() for row in np.ascontiguousarray(x)}


# -- digits -----------------------------------------------------------------
@needs_sklearn
def test_digits_shapes_and_values():
    ds = data.digits()
    assert ds.train.shape[1] == ds.test.shape[1] == 64
    assert len(ds.train) + len(ds.test) == 1797
    assert len(ds.test) == round(1797 * 0.2)
    assert ds.train.dtype == ds.test.dtype == np.int8
    assert set(np.unique(ds.train).tolist()) == {0, 1}
    assert set(np.unique(ds.test).tolist()) <= {0, 1}
    assert ds.image_shape == (8, 8) and ds.levels == 2 and ds.name == "digits"
    assert ds.n_variables == 64
    assert "1438" in repr(ds) and "359" in repr(ds)
    assert not ds.train.flags.writeable


@needs_sklearn
def test_digits_split_is_reproducible_and_disjoint():
    from sklearn.datasets import load_digits

    a, b = data.digits(seed=3), data.digits(seed=3)
    np.testing.assert_array_equal(a.train, b.train)
    np.testing.assert_array_equal(a.test, b.test)
    c = data.digits(seed=4)
    assert not np.array_equal(a.test, c.test)

    # Disjoint by image index: rebuild the split from the documented permutation.
    pixels = load_digits().data
    order = np.random.default_rng(3).permutation(1797)
    test_idx, train_idx = order[:359], order[359:]
    assert not set(test_idx) & set(train_idx)
    np.testing.assert_array_equal(a.test, (pixels[test_idx] >= 8).astype(np.int8))
    np.testing.assert_array_equal(a.train, (pixels[train_idx] >= 8).astype(np.int8))


@needs_sklearn
def test_digits_threshold_and_fraction():
    low, high = data.digits(threshold=1), data.digits(threshold=16)
    assert low.train.sum() > high.train.sum()
    everything = data.digits(test_fraction=0.0)
    assert everything.train.shape == (1797, 64) and everything.test.shape == (0, 64)
    for bad in [dict(threshold=0), dict(threshold=17), dict(test_fraction=1.0), dict(seed=-1)]:
        with pytest.raises(ValueError):
            data.digits(**bad)


@needs_sklearn
def test_digits_quantized_levels_and_split():
    for levels in (2, 3, 4, 17):
        ds = data.digits_quantized(levels=levels, seed=1)
        assert ds.levels == levels and ds.train.dtype == np.int8
        assert set(np.unique(ds.train).tolist()) == set(range(levels))
    q4 = data.digits_quantized(levels=4, seed=1)
    binary = data.digits(seed=1)
    # Same split: the same images, whatever the quantization.
    np.testing.assert_array_equal(q4.test >= 2, binary.test.astype(bool))
    np.testing.assert_array_equal(data.digits_quantized(levels=2, seed=1).train, binary.train)
    with pytest.raises(ValueError):
        data.digits_quantized(levels=1)
    with pytest.raises(ValueError):
        data.digits_quantized(levels=18)


# -- bars and stripes -------------------------------------------------------
@pytest.mark.parametrize("n, count", [(1, 2), (2, 6), (3, 14), (4, 30)])
def test_bars_and_stripes(n, count):
    x = data.bars_and_stripes(n)
    assert x.shape == (count, n * n) == (2 ** (n + 1) - 2, n * n)
    assert x.dtype == np.int8
    assert len(_row_set(x)) == count
    images = x.reshape(-1, n, n)
    rows_constant = (images == images[:, :, :1]).all(axis=(1, 2))
    columns_constant = (images == images[:, :1, :]).all(axis=(1, 2))
    assert (rows_constant | columns_constant).all()
    assert rows_constant.sum() == columns_constant.sum() == 2**n


def test_bars_and_stripes_optimal_log_likelihood():
    for n in (2, 3, 4):
        expected = -math.log(2 ** (n + 1) - 2)
        assert data.bars_and_stripes_optimal_log_likelihood(n) == pytest.approx(expected)
        # It is the mean log-likelihood of the uniform distribution on the set.
        assert expected == pytest.approx(-math.log(len(data.bars_and_stripes(n))))
    with pytest.raises(ValueError):
        data.bars_and_stripes(0)


# -- validation -------------------------------------------------------------
def test_as_binary_data_accepts_and_converts():
    out = data.as_binary_data([[True, False], [False, True]])
    assert out.dtype == np.int8 and out.tolist() == [[1, 0], [0, 1]]
    assert data.as_binary_data(np.array([0.0, 1.0, 1.0])).shape == (1, 3)
    src = np.zeros((3, 4), np.int8)
    out = data.as_binary_data(src, n_variables=4)
    assert out is not src and out.flags.c_contiguous


def test_as_binary_data_names_offending_rows():
    x = np.zeros((20, 8), np.int64)
    x[3, 5] = 2
    x[17, 0] = -1
    message = "data rows [3, 17] hold values outside {0, 1} (first: 2 at row 3, column 5)"
    with pytest.raises(ValueError, match=re.escape(message)):
        data.as_binary_data(x)

    y = np.zeros((4, 3))
    y[2, 1] = 0.5
    with pytest.raises(
        ValueError, match=r"visible row 2 holds non-integer .*0\.5 at row 2, column 1"
    ):
        data.as_binary_data(y, name="visible")

    z = np.zeros((5, 3))
    z[1, 2] = np.nan
    z[4, 0] = np.inf
    with pytest.raises(
        ValueError, match=r"rows \[1, 4\] hold non-finite values \(first: nan at row 1"
    ):
        data.as_binary_data(z)

    many = np.full((30, 2), 3)
    with pytest.raises(ValueError, match=r"rows \[0, 1, .*9, \.\.\.\] \(30 rows in all\)"):
        data.as_binary_data(many)


def test_as_binary_data_shape_errors():
    with pytest.raises(ValueError, match=r"shape \(n_samples, 64\), got shape \(10, 63\)"):
        data.as_binary_data(np.zeros((10, 63)), n_variables=64)
    with pytest.raises(ValueError, match=r"got shape \(2, 8, 8\).*reshape"):
        data.as_binary_data(np.zeros((2, 8, 8)))
    with pytest.raises(ValueError, match="empty"):
        data.as_binary_data(np.zeros((0, 4)))
    with pytest.raises(ValueError, match="empty"):
        data.as_binary_data([])
    with pytest.raises(ValueError, match="got shape"):
        data.as_binary_data(1)
    with pytest.raises(ValueError, match="real numbers"):
        data.as_binary_data([["a", "b"]])
    with pytest.raises(ValueError, match="rectangular"):
        data.as_binary_data([[0, 1], [1]])


def test_as_categorical_data():
    out = data.as_categorical_data([[0, 3, 2], [1, 1, 0]], q=4, n_variables=3)
    assert out.dtype == np.int8 and out.max() == 3
    with pytest.raises(
        ValueError, match=re.escape("spins rows [1, 2] hold values outside {0, 1, 2}")
    ):
        data.as_categorical_data([[0, 1], [3, 1], [1, 5]], q=3, name="spins")
    with pytest.raises(ValueError, match="outside {0, ..., 3}"):
        data.as_categorical_data([4], q=4)
    for bad_q in (1, 128, 2.5):
        with pytest.raises(ValueError, match="q must"):
            data.as_categorical_data([0], q=bad_q)


def test_dataset_validates():
    ds = data.Dataset(np.eye(3), np.zeros((0, 3)), name="toy")
    assert ds.train.dtype == np.int8 and ds.test.shape == (0, 3)
    with pytest.raises(ValueError, match="toy test"):
        data.Dataset(np.eye(3), np.ones((2, 4)), name="toy")
    with pytest.raises(ValueError, match="image_shape"):
        data.Dataset(np.eye(4), np.eye(4), image_shape=(3, 3))
    with pytest.raises(ValueError, match="outside"):
        data.Dataset(np.full((2, 2), 2), np.zeros((1, 2)))
    assert data.Dataset(np.full((2, 2), 2), np.zeros((1, 2)), levels=3).levels == 3


# -- minibatches ------------------------------------------------------------
def test_epoch_order_is_deterministic_and_changes_with_epoch():
    a = data.epoch_order(100, seed=7, epoch=0)
    np.testing.assert_array_equal(a, data.epoch_order(100, seed=7, epoch=0))
    assert sorted(a.tolist()) == list(range(100))
    b = data.epoch_order(100, seed=7, epoch=1)
    assert not np.array_equal(a, b)
    assert not np.array_equal(a, data.epoch_order(100, seed=8, epoch=0))
    # Documented definition: the epoch-th child of SeedSequence(seed).
    child = np.random.SeedSequence(7).spawn(2)[1]
    np.testing.assert_array_equal(b, np.random.default_rng(child).permutation(100))
    for bad in [dict(seed=-1), dict(seed=1.5), dict(seed=True), dict(epoch=-1)]:
        kwargs = dict(seed=0, epoch=0) | bad
        with pytest.raises(ValueError):
            data.epoch_order(5, **kwargs)


def test_epoch_order_accepts_jax_keys():
    jax = pytest.importorskip("jax")
    typed = data.epoch_order(50, jax.random.key(3), epoch=2)
    raw = data.epoch_order(50, jax.random.PRNGKey(3), epoch=2)
    np.testing.assert_array_equal(typed, raw)
    np.testing.assert_array_equal(typed, data.epoch_order(50, jax.random.key(3), epoch=2))
    with pytest.raises(ValueError, match="single PRNG key"):
        data.epoch_order(5, jax.random.split(jax.random.key(0), 2))


def test_batches_cover_each_sample_once_per_epoch():
    x = np.arange(23)[:, None] * np.ones((1, 3), np.int64)
    got = list(data.batches(x, 5, 11, epoch=4))
    assert [len(b) for b in got] == [5, 5, 5, 5, 3]
    seen = np.concatenate(got)[:, 0]
    np.testing.assert_array_equal(seen, data.epoch_order(23, 11, 4))
    # Resuming at an epoch reproduces its batches exactly.
    again = list(data.batches(x, 5, 11, epoch=4))
    assert all(np.array_equal(u, v) for u, v in zip(got, again, strict=True))
    dropped = list(data.batches(x, 5, 11, drop_last=True, epoch=4))
    assert [len(b) for b in dropped] == [5, 5, 5, 5]
    with pytest.raises(ValueError, match="drop_last"):
        data.batches(x, 30, 0, drop_last=True)
    with pytest.raises(ValueError, match="batch_size"):
        data.batches(x, 0, 0)
    with pytest.raises(ValueError, match="at least one sample"):
        data.batches(np.zeros((0, 3)), 2, 0)
