"""IDX files, the MNIST / Fashion-MNIST loaders, their search order and downloads.

Every test writes its own tiny IDX files (12 training and 5 test images of
28x28); downloads go to a local HTTP server. Only the last test reads real
data: the Debian package's Fashion-MNIST files, when installed.
"""

import functools
import gzip
import hashlib
import http.server
import re
import struct
import threading
from pathlib import Path

import numpy as np
import pytest

from hamon_nnx import data

N_TRAIN, N_TEST = 12, 5
STEMS = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


# -- helpers: IDX bytes written by hand, independently of data.write_idx ----
def idx_bytes(arr: np.ndarray, code: int = 0x08) -> bytes:
    header = struct.pack(">HBB", 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def small_pixels(offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic uint8 train and test images covering 0..255."""
    rng = np.random.default_rng(1234 + offset)
    train = rng.integers(0, 256, (N_TRAIN, 28, 28), dtype=np.uint8)
    test = rng.integers(0, 256, (N_TEST, 28, 28), dtype=np.uint8)
    train[0, 0, :2] = (0, 255)  # the extremes, always
    return train, test


def write_set(directory: Path, offset: int = 0, gz: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The four MNIST-layout files in `directory`; returns the (train, test) pixels."""
    directory.mkdir(parents=True, exist_ok=True)
    train, test = small_pixels(offset)
    arrays = {
        "train-images-idx3-ubyte": train,
        "train-labels-idx1-ubyte": np.arange(N_TRAIN, dtype=np.uint8) % 10,
        "t10k-images-idx3-ubyte": test,
        "t10k-labels-idx1-ubyte": np.arange(N_TEST, dtype=np.uint8) % 10,
    }
    for stem, arr in arrays.items():
        raw = idx_bytes(arr)
        if gz:
            (directory / f"{stem}.gz").write_bytes(gzip.compress(raw))
        else:
            (directory / stem).write_bytes(raw)
    return train, test


def flat(x: np.ndarray) -> np.ndarray:
    return x.reshape(len(x), -1)


@pytest.fixture
def places(tmp_path, monkeypatch):
    """Hermetic search places: no HAMON_DATA, empty Debian dirs, a tmp cache."""
    monkeypatch.delenv("HAMON_DATA", raising=False)
    monkeypatch.delenv("HAMON_DOWNLOAD", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setitem(data._SYSTEM_DIRS, "mnist", str(tmp_path / "debian" / "mnist"))
    monkeypatch.setitem(
        data._SYSTEM_DIRS, "fashion-mnist", str(tmp_path / "debian" / "fashion-mnist")
    )
    return {
        "cache": tmp_path / "xdg-cache" / "hamon_nnx" / "datasets" / "mnist",
        "debian": tmp_path / "debian" / "mnist",
    }


# -- read_idx ---------------------------------------------------------------
def test_read_idx_plain_and_gzipped(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    labels = np.array([7, 2, 1], dtype=np.uint8)
    (tmp_path / "images").write_bytes(idx_bytes(images))
    (tmp_path / "labels.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    got = data.read_idx(tmp_path / "images")
    assert got.dtype == np.uint8 and got.shape == (3, 28, 28) and got.flags.writeable
    np.testing.assert_array_equal(got, images)
    np.testing.assert_array_equal(data.read_idx(str(tmp_path / "labels.gz")), labels)
    # gzip is detected by its magic bytes, not by the name
    (tmp_path / "gzipped-without-suffix").write_bytes(gzip.compress(idx_bytes(labels)))
    (tmp_path / "plain-with-suffix.gz").write_bytes(idx_bytes(labels))
    np.testing.assert_array_equal(data.read_idx(tmp_path / "gzipped-without-suffix"), labels)
    np.testing.assert_array_equal(data.read_idx(tmp_path / "plain-with-suffix.gz"), labels)


def test_read_idx_multibyte_types_are_big_endian_and_returned_native(tmp_path):
    values = np.array([[1, -2, 300], [-40000, 5, 70000]], dtype=np.int32)
    (tmp_path / "ints").write_bytes(idx_bytes(values, code=0x0C))
    got = data.read_idx(tmp_path / "ints")
    assert got.dtype == np.dtype(np.int32) and got.dtype.isnative
    np.testing.assert_array_equal(got, values)
    floats = np.array([0.5, -1.25], dtype=np.float64)
    (tmp_path / "floats").write_bytes(idx_bytes(floats, code=0x0E))
    np.testing.assert_array_equal(data.read_idx(tmp_path / "floats"), floats)


def test_write_idx_round_trips_and_matches_the_format(tmp_path):
    images, _ = small_pixels()
    data.write_idx(tmp_path / "a", images)
    assert (tmp_path / "a").read_bytes() == idx_bytes(images)
    data.write_idx(tmp_path / "a.gz", images)
    assert gzip.decompress((tmp_path / "a.gz").read_bytes()) == idx_bytes(images)
    for dtype in (np.int8, np.int16, np.int32, np.float32, np.float64):
        arr = np.arange(-3, 3, dtype=dtype).reshape(2, 3)
        data.write_idx(tmp_path / "b", arr)
        np.testing.assert_array_equal(data.read_idx(tmp_path / "b"), arr)
    with pytest.raises(ValueError, match="cannot hold dtype int64"):
        data.write_idx(tmp_path / "c", np.arange(3))
    with pytest.raises(ValueError, match="1 to 255 dimensions"):
        data.write_idx(tmp_path / "c", np.uint8(3))


@pytest.fixture
def good_idx() -> bytes:
    return idx_bytes(np.arange(2 * 28 * 28, dtype=np.uint16).reshape(2, 28, 28).astype(np.uint8))


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
def test_read_idx_bad_magic(tmp_path, good_idx, gz):
    path = tmp_path / "bad-magic"
    raw = b"\x12\x34" + good_idx[2:]
    path.write_bytes(gzip.compress(raw) if gz else raw)
    with pytest.raises(ValueError, match=re.escape(f"{path} is not an IDX file: bad magic")) as e:
        data.read_idx(path)
    assert "0x12340803" in str(e.value) and "0x00000803" in str(e.value)


def test_read_idx_unsupported_dtype_code(tmp_path, good_idx):
    path = tmp_path / "bad-type"
    path.write_bytes(good_idx[:2] + b"\x0a" + good_idx[3:])
    with pytest.raises(ValueError, match=re.escape(f"{path}: unsupported IDX data type code 0x0a")):
        data.read_idx(path)


def test_read_idx_zero_dimensions_is_a_bad_magic(tmp_path):
    path = tmp_path / "no-dims"
    path.write_bytes(b"\x00\x00\x08\x00")
    with pytest.raises(ValueError, match="bad magic number 0x00000800"):
        data.read_idx(path)


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
def test_read_idx_truncated(tmp_path, good_idx, gz):
    path = tmp_path / "truncated"
    raw = good_idx[:-10]
    path.write_bytes(gzip.compress(raw) if gz else raw)
    expected, got = 2 * 28 * 28, 2 * 28 * 28 - 10
    with pytest.raises(ValueError, match=re.escape(f"{path} is truncated")) as e:
        data.read_idx(path)
    assert f"need {expected} data bytes, got {got}" in str(e.value)
    assert "(2, 28, 28)" in str(e.value)
    # a header cut short, and a file shorter than the magic number
    path.write_bytes(good_idx[:10])
    with pytest.raises(ValueError, match=re.escape(f"{path} is truncated")) as e:
        data.read_idx(path)
    assert "header needs 16 bytes, got 10" in str(e.value)
    path.write_bytes(b"\x00\x00")
    with pytest.raises(ValueError, match=re.escape(f"{path} is too short")):
        data.read_idx(path)


def test_read_idx_trailing_bytes(tmp_path, good_idx):
    path = tmp_path / "trailing"
    path.write_bytes(good_idx + b"garbage")
    with pytest.raises(ValueError, match=re.escape(f"{path} has 7 trailing bytes")):
        data.read_idx(path)


def test_read_idx_corrupt_gzip(tmp_path, good_idx):
    compressed = gzip.compress(good_idx)
    path = tmp_path / "corrupt.gz"
    for label, raw in {
        "cut": compressed[: len(compressed) // 2],
        "flipped": compressed[:20] + bytes(b ^ 0xFF for b in compressed[20:40]) + compressed[40:],
        "bad crc": compressed[:-8] + b"\x00\x00\x00\x00" + compressed[-4:],
    }.items():
        path.write_bytes(raw)
        with pytest.raises(ValueError, match=re.escape(f"{path} starts like a gzip file")) as e:
            data.read_idx(path)
        assert "corrupted or truncated" in str(e.value), label


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        data.read_idx(tmp_path / "nothing")


# -- Dataset.validation -----------------------------------------------------
def test_dataset_validation_field():
    ds = data.Dataset(np.eye(3), np.zeros((1, 3)), name="toy")
    assert ds.validation.shape == (0, 3) and ds.validation.dtype == np.int8
    assert "validation" not in repr(ds)
    ds = data.Dataset(np.eye(3), np.zeros((1, 3)), name="toy", validation=np.ones((2, 3)))
    assert ds.validation.shape == (2, 3) and not ds.validation.flags.writeable
    assert repr(ds) == (
        "Dataset(name='toy', train=(3, 3), validation=(2, 3), test=(1, 3), levels=2, "
        "image_shape=None)"
    )
    assert data.Dataset(np.eye(3), [], validation=[]).validation.shape == (0, 3)
    with pytest.raises(ValueError, match="toy validation must have shape"):
        data.Dataset(np.eye(3), np.zeros((1, 3)), name="toy", validation=np.ones((2, 4)))
    with pytest.raises(ValueError, match="toy validation row 0 holds values outside"):
        data.Dataset(np.eye(3), np.zeros((1, 3)), name="toy", validation=[[0, 2, 0]])
    with pytest.raises(TypeError):  # keyword-only
        data.Dataset(np.eye(3), np.zeros((1, 3)), "toy", None, "", 2, np.ones((2, 3)))


# -- preprocessing and splits -----------------------------------------------
def test_threshold_binarization_and_splits(tmp_path, places):
    train, test = write_set(tmp_path / "d")
    ds = data.mnist(tmp_path / "d", validation=4)
    assert ds.name == "mnist" and ds.levels == 2 and ds.image_shape == (28, 28)
    assert ds.train.shape == (8, 784) and ds.validation.shape == (4, 784)
    assert ds.test.shape == (5, 784) and ds.n_variables == 784
    expected = (flat(train) / 255 >= 0.5).astype(np.int8)
    np.testing.assert_array_equal(ds.train, expected[:8])
    np.testing.assert_array_equal(ds.validation, expected[8:])  # the last training images
    np.testing.assert_array_equal(ds.test, (flat(test) >= 128).astype(np.int8))
    assert "the last 4 for validation" in ds.description and str(tmp_path / "d") in ds.description
    # threshold 1 keeps only white pixels; validation=0 leaves an empty validation set
    ds = data.mnist(tmp_path / "d", threshold=1, validation=0)
    np.testing.assert_array_equal(ds.train, (flat(train) == 255).astype(np.int8))
    assert ds.validation.shape == (0, 784) and "validation" not in repr(ds)
    ds = data.mnist(tmp_path / "d", threshold=0.2, validation=11)
    np.testing.assert_array_equal(ds.train, (flat(train)[:1] / 255 >= 0.2).astype(np.int8))
    with pytest.raises(ValueError, match="validation=12 leaves no training images out of the 12"):
        data.mnist(tmp_path / "d", validation=12)


def test_stochastic_binarization(tmp_path, places):
    train, test = write_set(tmp_path / "d")
    a = data.mnist(tmp_path / "d", binarize="stochastic", seed=3, validation=2)
    b = data.mnist(tmp_path / "d", binarize="stochastic", seed=3, validation=2)
    c = data.mnist(tmp_path / "d", binarize="stochastic", seed=4, validation=2)
    for split in ("train", "validation", "test"):
        np.testing.assert_array_equal(getattr(a, split), getattr(b, split))
    assert not np.array_equal(a.train, c.train)
    assert set(np.unique(a.train).tolist()) == {0, 1}
    # the draws do not depend on the split: validation=5 regroups the same rows
    d = data.mnist(tmp_path / "d", binarize="stochastic", seed=3, validation=5)
    np.testing.assert_array_equal(
        np.concatenate([a.train, a.validation]), np.concatenate([d.train, d.validation])
    )
    np.testing.assert_array_equal(a.test, d.test)
    everything = np.concatenate([a.train, a.validation, a.test])
    pixels = np.concatenate([flat(train), flat(test)])
    assert abs(everything.mean() - pixels.mean() / 255) < 0.03  # 13328 draws: sd ~ 0.004
    assert (everything[pixels == 0] == 0).all() and (everything[pixels == 255] == 1).all()
    # Bernoulli(p / 255) per pixel: dark pixels are mostly 0, bright ones mostly 1
    assert everything[pixels < 64].mean() < 0.2 and everything[pixels > 192].mean() > 0.8
    assert "stochastically" in a.description and "seed 3" in a.description


@pytest.mark.parametrize("q", [2, 4, 7, 127])
def test_levels_quantization_is_exact(tmp_path, places, q):
    train, test = write_set(tmp_path / "d")
    ds = data.mnist(tmp_path / "d", levels=q, binarize="stochastic", validation=3)
    assert ds.levels == q
    expected = np.array([p * q // 256 for p in range(256)])  # floor(p * q / 256)
    np.testing.assert_array_equal(ds.train, expected[flat(train)][:9])
    np.testing.assert_array_equal(ds.validation, expected[flat(train)][9:])
    np.testing.assert_array_equal(ds.test, expected[flat(test)])
    assert ds.train.min() == 0 and ds.train.max() == q - 1  # pixels 0 and 255 are there
    assert f"quantized to {q} levels" in ds.description


def test_levels_spot_values(tmp_path, places):
    train, _ = write_set(tmp_path / "d")
    ds = data.mnist(tmp_path / "d", levels=4, validation=0)
    pixels, levels = flat(train).ravel(), ds.train.ravel()
    for p, level in [(0, 0), (63, 0), (64, 1), (127, 1), (128, 2), (191, 2), (192, 3), (255, 3)]:
        if (pixels == p).any():
            assert (levels[pixels == p] == level).all(), p


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"binarize": "otsu"}, "binarize must be 'threshold' or 'stochastic', got 'otsu'"),
        ({"threshold": 0}, "threshold must be a number in (0, 1], got 0"),
        ({"threshold": 1.5}, "threshold must be a number in (0, 1], got 1.5"),
        ({"threshold": "half"}, "threshold must be a number in (0, 1], got 'half'"),
        ({"levels": 1}, "levels must be an integer >= 2, got 1"),
        ({"levels": 128}, "levels must be at most 127, got 128"),
        ({"validation": -1}, "validation must be an integer >= 0, got -1"),
        ({"validation": 60000}, "validation must be an integer in 0..59999"),
        ({"validation": 2.5}, "validation must be an integer >= 0, got 2.5"),
        ({"seed": -1}, "seed must be an integer >= 0, got -1"),
        ({"download": "yes"}, "download must be True, False or None, got 'yes'"),
    ],
)
def test_argument_errors(tmp_path, places, kwargs, message):
    write_set(tmp_path / "d")
    with pytest.raises(ValueError, match=re.escape(message)):
        data.mnist(tmp_path / "d", **kwargs)


def test_wrong_files_are_named(tmp_path, places):
    write_set(tmp_path / "d")
    labels = tmp_path / "d" / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(gzip.compress(idx_bytes(np.zeros(3, np.uint8))))
    with pytest.raises(ValueError, match="must hold one label per image") as e:
        data.mnist(tmp_path / "d", validation=2)
    assert str(labels) in str(e.value)
    images = tmp_path / "d" / "train-images-idx3-ubyte.gz"
    images.write_bytes(gzip.compress(idx_bytes(np.zeros((12, 784), np.uint8))))
    with pytest.raises(ValueError, match=re.escape(f"{images} must hold uint8 images")):
        data.mnist(tmp_path / "d", validation=2)


# -- search order -----------------------------------------------------------
def test_search_order(tmp_path, places, monkeypatch):
    # four places, each with different pixels; plain files count as well as .gz
    path_train, _ = write_set(tmp_path / "given", offset=1, gz=False)
    env_train, _ = write_set(tmp_path / "env" / "mnist", offset=2)
    debian_train, _ = write_set(places["debian"], offset=3)
    cache_train, _ = write_set(places["cache"], offset=4)
    monkeypatch.setenv("HAMON_DATA", str(tmp_path / "env"))

    def loaded_from(expected_pixels, **kwargs):
        ds = data.mnist(validation=0, threshold=1 / 255, **kwargs)
        np.testing.assert_array_equal(ds.train, (flat(expected_pixels) > 0).astype(np.int8))
        return ds.description

    assert str(tmp_path / "given") in loaded_from(path_train, path=tmp_path / "given")
    assert str(tmp_path / "env" / "mnist") in loaded_from(env_train)
    # a path without the files is searched, then the next places are
    assert str(tmp_path / "env" / "mnist") in loaded_from(env_train, path=tmp_path / "empty")
    monkeypatch.delenv("HAMON_DATA")
    assert str(places["debian"]) in loaded_from(debian_train)
    for f in places["debian"].iterdir():
        f.unlink()
    assert str(places["cache"]) in loaded_from(cache_train)


def test_cache_defaults_to_home_dot_cache(tmp_path, places, monkeypatch):
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cache = tmp_path / "home" / ".cache" / "hamon_nnx" / "datasets" / "mnist"
    write_set(cache)
    assert str(cache) in data.mnist(validation=1).description


def test_not_found_lists_the_places_and_the_fix(tmp_path, places, monkeypatch):
    with pytest.raises(FileNotFoundError) as e:
        data.mnist(tmp_path / "given")
    message = str(e.value)
    assert message.startswith("MNIST not found")
    assert f"path: {tmp_path / 'given'} (does not exist)" in message
    assert "$HAMON_DATA/mnist: HAMON_DATA is not set" in message
    assert str(places["debian"]) in message and str(places["cache"]) in message
    lines = message.splitlines()
    assert [i for i, line in enumerate(lines) if line.startswith("  ")] == [1, 2, 3, 4]
    assert "hn.data.mnist(download=True)" in message and "HAMON_DATA" in lines[-1]
    assert not places["cache"].exists()  # nothing created

    # a partial directory names what it lacks; HAMON_DATA is listed when set
    write_set(tmp_path / "env" / "mnist")
    (tmp_path / "env" / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    monkeypatch.setenv("HAMON_DATA", str(tmp_path / "env"))
    with pytest.raises(FileNotFoundError, match=re.escape("missing t10k-labels-idx1-ubyte[.gz]")):
        data.mnist()

    with pytest.raises(FileNotFoundError) as e:
        data.fashion_mnist()
    message = str(e.value)
    assert message.startswith("Fashion-MNIST not found")
    assert "$HAMON_DATA/fashion-mnist" in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "hn.data.fashion_mnist(download=True)" in message


# -- downloads --------------------------------------------------------------
class _CountingHandler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the http.server name
        self.server.requests.append(self.path)
        super().do_GET()

    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A local HTTP server serving the small files; the module's tables point at it."""
    served = tmp_path / "served"
    train, test = write_set(served)
    handler = functools.partial(_CountingHandler, directory=str(served))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.requests = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")
    monkeypatch.setitem(data._SOURCES, "mnist", f"http://127.0.0.1:{httpd.server_port}/")
    hashes = {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in served.iterdir()}
    monkeypatch.setitem(data._SHA256, "mnist", hashes)
    yield {"httpd": httpd, "served": served, "train": train, "test": test}
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def test_download_into_the_cache_once(places, server):
    ds = data.mnist(download=True, validation=2)
    cache = places["cache"]
    assert sorted(p.name for p in cache.iterdir()) == sorted(f"{s}.gz" for s in STEMS)
    for f in cache.iterdir():
        assert f.read_bytes() == (server["served"] / f.name).read_bytes()
    assert sorted(server["httpd"].requests) == sorted(f"/{s}.gz" for s in STEMS)
    np.testing.assert_array_equal(ds.test, (flat(server["test"]) >= 128).astype(np.int8))
    assert str(cache) in ds.description
    again = data.mnist(download=True, validation=2)  # found in the cache: no request
    assert len(server["httpd"].requests) == 4
    np.testing.assert_array_equal(again.train, ds.train)


def test_download_follows_hamon_download(places, server, monkeypatch):
    monkeypatch.setenv("HAMON_DOWNLOAD", "1")
    with pytest.raises(FileNotFoundError):
        data.mnist(download=False)
    assert server["httpd"].requests == []
    assert data.mnist(validation=2).train.shape == (10, 784)  # download=None: the variable
    assert len(server["httpd"].requests) == 4
    monkeypatch.setenv("HAMON_DOWNLOAD", "0")
    for f in places["cache"].iterdir():
        f.unlink()
    with pytest.raises(FileNotFoundError):
        data.mnist()


def test_download_fetches_only_missing_files(places, server):
    places["cache"].mkdir(parents=True)
    for stem in STEMS[:3]:
        name = f"{stem}.gz"
        (places["cache"] / name).write_bytes((server["served"] / name).read_bytes())
    data.mnist(download=True, validation=2)
    assert server["httpd"].requests == ["/t10k-labels-idx1-ubyte.gz"]


def test_download_sha256_mismatch_keeps_nothing(places, server, monkeypatch):
    wrong = "0" * 64
    monkeypatch.setitem(data._SHA256["mnist"], "t10k-images-idx3-ubyte.gz", wrong)
    got = hashlib.sha256((server["served"] / "t10k-images-idx3-ubyte.gz").read_bytes()).hexdigest()
    with pytest.raises(ValueError, match="SHA-256 mismatch for t10k-images-idx3-ubyte.gz") as e:
        data.mnist(download=True)
    assert f"expected {wrong}, got {got}" in str(e.value)
    cache = places["cache"]
    assert not cache.exists() or list(cache.iterdir()) == []


def test_download_http_error_keeps_nothing(places, server):
    (server["served"] / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(OSError, match=re.escape("could not download http://127.0.0.1:")) as e:
        data.mnist(download=True)
    assert "train-labels-idx1-ubyte.gz" in str(e.value)
    cache = places["cache"]
    assert not cache.exists() or list(cache.iterdir()) == []


# -- the real Fashion-MNIST, from the Debian package -------------------------
@pytest.mark.skipif(
    not all((DEBIAN_FASHION / f"{s}.gz").is_file() for s in STEMS),
    reason="Debian's dataset-fashion-mnist is not installed",
)
def test_real_fashion_mnist(monkeypatch):
    monkeypatch.delenv("HAMON_DATA", raising=False)
    monkeypatch.delenv("HAMON_DOWNLOAD", raising=False)
    ds = data.fashion_mnist(DEBIAN_FASHION)
    assert ds.name == "fashion_mnist" and ds.image_shape == (28, 28) and ds.levels == 2
    assert ds.train.shape == (50000, 784)
    assert ds.validation.shape == (10000, 784)
    assert ds.test.shape == (10000, 784)
    for split in (ds.train, ds.validation, ds.test):
        assert 0.2 < split.mean() < 0.6
    pixels = data.read_idx(DEBIAN_FASHION / "train-images-idx3-ubyte.gz")
    assert abs(pixels.mean() / 255 - 0.2860) < 1e-3  # the published normalization mean
    labels = data.read_idx(DEBIAN_FASHION / "train-labels-idx1-ubyte.gz")
    assert np.bincount(labels).tolist() == [6000] * 10
    assert labels[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    np.testing.assert_array_equal(ds.validation, (pixels[50000:].reshape(10000, 784) >= 128))
