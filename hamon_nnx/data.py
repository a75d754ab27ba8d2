"""Small data sets, input validation and minibatching for training models.

Three groups of tools, all plain NumPy (nothing here touches JAX at import):

* Data sets. `digits` binarizes the 8x8 handwritten digits that ship inside
  scikit-learn (1797 images, no download) and splits them into train and
  test sets with a fixed seed; `digits_quantized` keeps 0..levels-1 grey
  levels for a Potts model, with the same split. `mnist` and
  `fashion_mnist` load the 28x28 MNIST and Fashion-MNIST images (from a
  directory, the Debian package, or a checksummed one-time download) with
  fixed train/validation/test splits; `read_idx` and `write_idx` read and
  write their IDX file format. `bars_and_stripes` lists
  every n x n bars-and-stripes image, and
  `bars_and_stripes_optimal_log_likelihood` is the best mean log-likelihood
  any model can reach on it.
* Validation. `as_binary_data` and `as_categorical_data` turn user arrays
  into int8 arrays of shape (n_samples, n_variables), or raise a ValueError
  that names the offending rows.
* Minibatches. `batches` yields shuffled minibatches; the order of an epoch
  is `epoch_order(n, seed, epoch)`, a pure function of (seed, epoch), so a
  training run that checkpoints its epoch counter resumes its data order
  exactly.

scikit-learn is imported only when the digits are loaded; it comes with the
``examples`` extra (``pip install 'hamon-nnx[examples]'``).
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import math
import operator
import os
import struct
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

__all__ = [
    "Dataset",
    "as_binary_data",
    "as_categorical_data",
    "bars_and_stripes",
    "bars_and_stripes_optimal_log_likelihood",
    "batches",
    "digits",
    "digits_quantized",
    "epoch_order",
    "fashion_mnist",
    "mnist",
    "read_idx",
    "write_idx",
]

_MAX_ROWS_SHOWN = 10  # offending rows listed in a validation error
_MAX_LEVELS = 127  # the most categories an int8 array can hold (0..126)
_DIGITS_IMAGE_SHAPE = (8, 8)
_DIGITS_MAX_PIXEL = 16


# -- small checks -----------------------------------------------------------
def _check_int(name: str, value, minimum: int) -> int:
    """Return `value` as an int, or raise ValueError if it is not an int >= minimum."""
    try:
        if isinstance(value, bool | np.bool_):
            raise TypeError
        number = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}") from None
    if number < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return number


def _check_fraction(name: str, value) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}") from None
    if not 0.0 <= number < 1.0:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    return number


# -- validation -------------------------------------------------------------
def _allowed_text(q: int) -> str:
    if q <= 3:
        return "{" + ", ".join(str(v) for v in range(q)) + "}"
    return f"{{0, ..., {q - 1}}}"


def _row_error(name: str, bad: np.ndarray, values: np.ndarray, what: str) -> ValueError:
    """A ValueError naming the rows where the boolean mask `bad` is set."""
    rows = np.flatnonzero(bad.any(axis=1))
    row, col = (int(i) for i in np.argwhere(bad)[0])
    first = f"(first: {values[row, col].item()!r} at row {row}, column {col})"
    if rows.size == 1:
        return ValueError(f"{name} row {row} holds {what} {first}")
    shown = ", ".join(str(int(r)) for r in rows[:_MAX_ROWS_SHOWN])
    if rows.size > _MAX_ROWS_SHOWN:
        shown += f", ...] ({rows.size} rows in all"
        return ValueError(f"{name} rows [{shown}) hold {what} {first}")
    return ValueError(f"{name} rows [{shown}] hold {what} {first}")


def _as_discrete(x, q: int, n_variables: int | None, name: str) -> np.ndarray:
    expected = (
        f"(n_samples, {n_variables})" if n_variables is not None else "(n_samples, n_variables)"
    )
    try:
        arr = np.asarray(x)
    except ValueError as err:  # ragged nested lists
        raise ValueError(f"{name} must be a rectangular array of shape {expected}: {err}") from None
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2:
        hint = ""
        if arr.ndim > 2:
            hint = "; flatten images with x.reshape(len(x), -1)"
        raise ValueError(f"{name} must have shape {expected}, got shape {arr.shape}{hint}")
    if n_variables is not None and arr.shape[1] != n_variables:
        raise ValueError(f"{name} must have shape {expected}, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(
            f"{name} is empty (shape {arr.shape}); need at least one sample of at least one variable"
        )
    allowed = _allowed_text(q)
    if arr.dtype.kind == "b":
        return arr.astype(np.int8)
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr)
        if bad.any():
            raise _row_error(name, bad, arr, "non-finite values")
        bad = arr != np.floor(arr)
        if bad.any():
            raise _row_error(name, bad, arr, f"non-integer values (expected {allowed})")
    bad = (arr < 0) | (arr > q - 1)
    if bad.any():
        raise _row_error(name, bad, arr, f"values outside {allowed}")
    return arr.astype(np.int8)  # always a new array


def as_binary_data(x, n_variables: int | None = None, name: str = "data") -> np.ndarray:
    """Validate binary data and return it as an int8 array of 0s and 1s.

    Args:
        x: array-like of shape (n_samples, n_variables), or a single sample
            of shape (n_variables,), which becomes (1, n_variables). Booleans,
            integers and floats that are exactly 0 or 1 are accepted.
        n_variables: if given, the number of columns `x` must have.
        name: what to call `x` in error messages.

    Returns:
        A new C-contiguous int8 array of shape (n_samples, n_variables).

    Raises:
        ValueError: `x` is not numeric, has the wrong shape (the message names
            the expected and the actual shape), is empty, or holds values that
            are non-finite, not integers, or outside {0, 1}; the message names
            the offending rows and the first offending entry.

    Example:
        >>> from hamon_nnx.data import as_binary_data
        >>> as_binary_data([[0, 1, 1], [1.0, 0.0, 1.0]])
        array([[0, 1, 1],
               [1, 0, 1]], dtype=int8)
        >>> as_binary_data([[0, 1], [1, 1], [2, 0]])
        Traceback (most recent call last):
        ...
        ValueError: data row 2 holds values outside {0, 1} (first: 2 at row 2, column 0)
    """
    if n_variables is not None:
        n_variables = _check_int("n_variables", n_variables, 1)
    return _as_discrete(x, 2, n_variables, name)


def as_categorical_data(
    x, q: int, n_variables: int | None = None, name: str = "data"
) -> np.ndarray:
    """Validate categorical data with values 0..q-1 and return it as int8.

    Args:
        x: array-like of shape (n_samples, n_variables), or a single sample
            of shape (n_variables,), which becomes (1, n_variables). Integers
            and floats that are exactly integers are accepted.
        q: the number of categories, 2 <= q <= 127.
        n_variables: if given, the number of columns `x` must have.
        name: what to call `x` in error messages.

    Returns:
        A new C-contiguous int8 array of shape (n_samples, n_variables).

    Raises:
        ValueError: `q` is not an integer in [2, 127]; or `x` is not numeric,
            has the wrong shape, is empty, or holds values that are
            non-finite, not integers, or outside {0, ..., q-1}; the message
            names the offending rows and the first offending entry.

    Example:
        >>> from hamon_nnx.data import as_categorical_data
        >>> as_categorical_data([2, 0, 3], q=4)
        array([[2, 0, 3]], dtype=int8)
        >>> as_categorical_data([[0, 1], [4, 1], [1, 5]], q=4, name="spins")
        Traceback (most recent call last):
        ...
        ValueError: spins rows [1, 2] hold values outside {0, ..., 3} (first: 4 at row 1, column 0)
    """
    q = _check_int("q", q, 2)
    if q > _MAX_LEVELS:
        raise ValueError(f"q must be at most {_MAX_LEVELS} (int8 categories), got {q}")
    if n_variables is not None:
        n_variables = _check_int("n_variables", n_variables, 1)
    return _as_discrete(x, q, n_variables, name)


# -- Dataset ----------------------------------------------------------------
@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """Train, test and (optional) validation sets of discrete data, with a name.

    The arrays are validated on construction (values in 0..levels-1, same
    number of columns), stored as read-only int8 copies of shape
    (n_samples, n_variables); copy them (`ds.train.copy()`) to modify them.
    The test and validation sets may be empty (shape (0, n_variables));
    `validation` is keyword-only and empty unless given.

    Attributes:
        train: int8 array (n_train, n_variables).
        test: int8 array (n_test, n_variables).
        name: short name, e.g. "digits".
        image_shape: the shape each row reshapes to for plotting, e.g. (8, 8),
            or None when the data are not images.
        description: a sentence on where the data come from and how they were
            preprocessed.
        levels: the number of values a variable takes (2 for binary data).
        validation: int8 array (n_validation, n_variables), held out for model
            selection; shape (0, n_variables) when there is none. The repr
            shows it only when it is not empty.

    Example:
        >>> import numpy as np
        >>> from hamon_nnx.data import Dataset
        >>> ds = Dataset(np.eye(4), np.ones((1, 4)), name="toy", image_shape=(2, 2))
        >>> ds
        Dataset(name='toy', train=(4, 4), test=(1, 4), levels=2, image_shape=(2, 2))
        >>> ds.train[0].reshape(ds.image_shape)
        array([[1, 0],
               [0, 0]], dtype=int8)
        >>> ds.validation.shape
        (0, 4)
        >>> Dataset(np.eye(4), np.ones((1, 4)), validation=np.zeros((2, 4)))
        Dataset(name='data', train=(4, 4), validation=(2, 4), test=(1, 4), levels=2, image_shape=None)
    """

    train: np.ndarray
    test: np.ndarray
    name: str = "data"
    image_shape: tuple[int, ...] | None = None
    description: str = ""
    levels: int = 2
    validation: np.ndarray | None = dataclasses.field(default=None, kw_only=True)

    def __post_init__(self):
        levels = _check_int("levels", self.levels, 2)
        if levels > _MAX_LEVELS:
            raise ValueError(f"levels must be at most {_MAX_LEVELS}, got {levels}")
        train = as_categorical_data(self.train, levels, name=f"{self.name} train")
        n_variables = train.shape[1]
        test = self._held_out(self.test, "test", levels, n_variables)
        validation = self._held_out(self.validation, "validation", levels, n_variables)
        image_shape = self.image_shape
        if image_shape is not None:
            image_shape = tuple(_check_int("image_shape entries", d, 1) for d in image_shape)
            if math.prod(image_shape) != n_variables:
                raise ValueError(
                    f"image_shape {image_shape} holds {math.prod(image_shape)} pixels, "
                    f"but the data have {n_variables} variables"
                )
        for arr in (train, test, validation):
            arr.setflags(write=False)
        object.__setattr__(self, "train", train)
        object.__setattr__(self, "test", test)
        object.__setattr__(self, "validation", validation)
        object.__setattr__(self, "image_shape", image_shape)
        object.__setattr__(self, "levels", levels)

    def _held_out(self, x, split: str, levels: int, n_variables: int) -> np.ndarray:
        """The validated test or validation array; None or empty gives (0, n_variables)."""
        if x is None or np.shape(x) in ((0,), (0, n_variables)):
            return np.zeros((0, n_variables), dtype=np.int8)
        return as_categorical_data(x, levels, n_variables=n_variables, name=f"{self.name} {split}")

    @property
    def n_variables(self) -> int:
        """The number of variables (columns) of each sample."""
        return self.train.shape[1]

    def __repr__(self) -> str:
        assert self.validation is not None  # __post_init__ makes it an array
        validation = f"validation={self.validation.shape}, " if len(self.validation) else ""
        return (
            f"Dataset(name={self.name!r}, train={self.train.shape}, {validation}"
            f"test={self.test.shape}, levels={self.levels}, image_shape={self.image_shape})"
        )


# -- digits -----------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _digits_pixels() -> np.ndarray:
    """The 1797 x 64 scikit-learn digits as read-only uint8 values 0..16."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise ImportError(
            "hamon_nnx.data.digits needs scikit-learn, which ships the 8x8 digits "
            "(no download); install it with the `examples` extra: "
            "pip install 'hamon-nnx[examples]' (or pip install scikit-learn)"
        ) from err
    pixels = np.asarray(load_digits().data).astype(np.uint8)  # pyright: ignore[reportAttributeAccessIssue]
    pixels.setflags(write=False)
    return pixels


def _split(x: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    n = len(x)
    n_test = int(round(n * test_fraction))
    if n_test >= n:
        raise ValueError(f"test_fraction {test_fraction} leaves no training images out of {n}")
    order = np.random.default_rng(seed).permutation(n)
    return x[order[n_test:]], x[order[:n_test]]


def digits(threshold: float = 8, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """The 8x8 scikit-learn digits, binarized, with a fixed train/test split.

    The 1797 images of `sklearn.datasets.load_digits` (UCI optical
    recognition of handwritten digits; shipped with scikit-learn, no
    download) have pixels 0..16; a pixel becomes 1 where
    ``pixel >= threshold``. The images are split by the permutation
    ``numpy.random.default_rng(seed).permutation(1797)``: its first
    ``round(1797 * test_fraction)`` entries index the test set, the rest the
    training set, both in permuted order. A given (test_fraction, seed)
    gives the same split every time (for a given NumPy version), and
    `digits_quantized` with the same arguments splits the same images.

    Args:
        threshold: pixels >= threshold become 1, the rest 0; 0 < threshold <= 16.
        test_fraction: the fraction of images held out, in [0, 1).
        seed: non-negative integer seed of the split.

    Returns:
        A `Dataset` named "digits" with int8 0/1 arrays of shape (n, 64),
        image_shape (8, 8) and levels 2.

    Raises:
        ImportError: scikit-learn is not installed.
        ValueError: an argument is out of range.

    Example:
        >>> from hamon_nnx.data import digits
        >>> ds = digits()
        >>> ds
        Dataset(name='digits', train=(1438, 64), test=(359, 64), levels=2, image_shape=(8, 8))
        >>> sorted(set(ds.train.ravel().tolist()))
        [0, 1]
    """
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        raise ValueError(f"threshold must be a number in (0, 16], got {threshold!r}") from None
    if not 0 < value <= _DIGITS_MAX_PIXEL:
        raise ValueError(f"threshold must be a number in (0, 16], got {threshold!r}")
    test_fraction = _check_fraction("test_fraction", test_fraction)
    seed = _check_int("seed", seed, 0)
    binary = (_digits_pixels() >= value).astype(np.int8)
    train, test = _split(binary, test_fraction, seed)
    return Dataset(
        train,
        test,
        name="digits",
        image_shape=_DIGITS_IMAGE_SHAPE,
        description=(
            "8x8 handwritten digits shipped with scikit-learn (UCI optical recognition, "
            f"1797 images), pixels 0..16 binarized as pixel >= {threshold}; "
            f"test_fraction={test_fraction}, seed={seed}"
        ),
        levels=2,
    )


def digits_quantized(levels: int = 4, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """The 8x8 scikit-learn digits with 0..levels-1 grey levels (for Potts models).

    Each pixel p in 0..16 is rounded to the nearest of `levels` evenly spaced
    grey values 0, 16/(levels-1), ..., 16 (halves round up), i.e. level
    ``floor(p * (levels - 1) / 16 + 1/2)``. `levels=2` gives the same images
    as ``digits(threshold=8)``; `levels=17` keeps the raw pixels. The split is
    the one of `digits` with the same (test_fraction, seed).

    Args:
        levels: the number of grey levels, 2 <= levels <= 17.
        test_fraction: the fraction of images held out, in [0, 1).
        seed: non-negative integer seed of the split.

    Returns:
        A `Dataset` named "digits_quantized" with int8 arrays of shape (n, 64)
        holding 0..levels-1, image_shape (8, 8) and the given `levels`.

    Raises:
        ImportError: scikit-learn is not installed.
        ValueError: an argument is out of range.

    Example:
        >>> from hamon_nnx.data import digits_quantized
        >>> ds = digits_quantized(levels=4)
        >>> ds
        Dataset(name='digits_quantized', train=(1438, 64), test=(359, 64), levels=4, image_shape=(8, 8))
        >>> sorted(set(ds.train.ravel().tolist()))
        [0, 1, 2, 3]
    """
    levels = _check_int("levels", levels, 2)
    if levels > _DIGITS_MAX_PIXEL + 1:
        raise ValueError(f"levels must be at most {_DIGITS_MAX_PIXEL + 1}, got {levels}")
    test_fraction = _check_fraction("test_fraction", test_fraction)
    seed = _check_int("seed", seed, 0)
    pixels = _digits_pixels().astype(np.int64)
    # floor(p * (levels - 1) / 16 + 1/2) in exact integer arithmetic
    quantized = ((2 * pixels * (levels - 1) + _DIGITS_MAX_PIXEL) // (2 * _DIGITS_MAX_PIXEL)).astype(
        np.int8
    )
    train, test = _split(quantized, test_fraction, seed)
    return Dataset(
        train,
        test,
        name="digits_quantized",
        image_shape=_DIGITS_IMAGE_SHAPE,
        description=(
            "8x8 handwritten digits shipped with scikit-learn (UCI optical recognition, "
            f"1797 images), pixels 0..16 rounded to {levels} levels 0..{levels - 1}; "
            f"test_fraction={test_fraction}, seed={seed}"
        ),
        levels=levels,
    )


# -- IDX files --------------------------------------------------------------
_GZIP_MAGIC = b"\x1f\x8b"
# IDX data type codes (the third byte of the magic number) and their dtypes;
# multi-byte values are big-endian in the file.
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_CODES = {dtype.newbyteorder("="): code for code, dtype in _IDX_DTYPES.items()}
_IDX_SUPPORTED = ", ".join(f"0x{code:02x} {dtype.name}" for code, dtype in _IDX_DTYPES.items())


def _idx_bytes(path: Path) -> tuple[bytes, str]:
    """The bytes of an IDX file, gunzipped when it starts with the gzip magic 1f 8b."""
    raw = path.read_bytes()
    if raw[:2] != _GZIP_MAGIC:
        return raw, ""
    try:
        return gzip.decompress(raw), " (after gunzip)"
    except (OSError, EOFError, zlib.error) as err:
        raise ValueError(
            f"{path} starts like a gzip file (bytes 1f 8b) but its gzip stream is corrupted "
            f"or truncated ({err}); delete it and fetch it again"
        ) from None


def read_idx(path) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped or not, into a NumPy array.

    An IDX file is a 4-byte magic number 0x0000TTNN (TT the data type code,
    NN the number of dimensions), NN big-endian uint32 dimensions, then the
    values in C order: MNIST's images are 0x00000803 (uint8, 3-D: n x 28 x
    28), its labels 0x00000801 (uint8, 1-D). A file is gunzipped when it
    starts with the gzip magic bytes 1f 8b, whatever its name.

    Args:
        path: the file (str or path-like).

    Returns:
        A new writable array of the file's shape, in native byte order
        (uint8, int8, int16, int32, float32 or float64).

    Raises:
        FileNotFoundError: there is no such file.
        ValueError: a corrupted gzip stream, a bad magic number, an
            unsupported data type code, fewer data bytes than the header's
            dimensions need (a truncated file), or bytes left over after
            them; the message names the file.

    Example:
        >>> import numpy as np, tempfile
        >>> from hamon_nnx.data import read_idx, write_idx
        >>> tmp = tempfile.TemporaryDirectory()
        >>> write_idx(f"{tmp.name}/labels-idx1-ubyte.gz", np.array([5, 0, 4], dtype=np.uint8))
        >>> read_idx(f"{tmp.name}/labels-idx1-ubyte.gz")
        array([5, 0, 4], dtype=uint8)
        >>> tmp.cleanup()
    """
    path = Path(path)
    buf, note = _idx_bytes(path)
    if len(buf) < 4:
        raise ValueError(
            f"{path} is too short for an IDX file: {len(buf)} bytes{note}, "
            "but the magic number alone needs 4"
        )
    zero, code, ndim = struct.unpack(">HBB", buf[:4])
    magic = int.from_bytes(buf[:4], "big")
    if zero != 0 or ndim == 0:
        raise ValueError(
            f"{path} is not an IDX file: bad magic number 0x{magic:08x}{note} (expected "
            "0x0000 then a type code and the number of dimensions, e.g. 0x00000803 for "
            "uint8 images, 0x00000801 for uint8 labels)"
        )
    if code not in _IDX_DTYPES:
        raise ValueError(
            f"{path}: unsupported IDX data type code 0x{code:02x} in magic number "
            f"0x{magic:08x} (supported: {_IDX_SUPPORTED})"
        )
    dtype = _IDX_DTYPES[code]
    header = 4 + 4 * ndim
    if len(buf) < header:
        raise ValueError(
            f"{path} is truncated: its magic number 0x{magic:08x} declares {ndim} dimensions, "
            f"so the header needs {header} bytes, got {len(buf)}{note}"
        )
    dims = struct.unpack(f">{ndim}I", buf[4:header])
    count = math.prod(dims)
    expected, got = count * dtype.itemsize, len(buf) - header
    if got < expected:
        raise ValueError(
            f"{path} is truncated: its header's dims {dims} ({dtype.name}) need "
            f"{expected} data bytes, got {got}{note}"
        )
    if got > expected:
        raise ValueError(
            f"{path} has {got - expected} trailing bytes{note} after the {expected} data "
            f"bytes its header's dims {dims} ({dtype.name}) describe (a corrupted file?)"
        )
    values = np.frombuffer(buf, dtype=dtype, count=count, offset=header)
    return values.reshape(dims).astype(dtype.newbyteorder("="))


def write_idx(path, array) -> None:
    """Write an array as an IDX file (the MNIST format); gzipped if `path` ends in .gz.

    The inverse of `read_idx`, e.g. for tests, examples and small data sets
    in the MNIST layout. Gzipped files carry no timestamp, so the same array
    always gives the same bytes.

    Args:
        path: the file to create or overwrite (str or path-like).
        array: array-like of dtype uint8, int8, int16, int32, float32 or
            float64, with 1 to 255 dimensions.

    Raises:
        ValueError: an unsupported dtype, no dimensions, or too many.

    Example:
        >>> import numpy as np, tempfile
        >>> from hamon_nnx.data import read_idx, write_idx
        >>> tmp = tempfile.TemporaryDirectory()
        >>> images = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
        >>> write_idx(f"{tmp.name}/images-idx3-ubyte", images)
        >>> bool((read_idx(f"{tmp.name}/images-idx3-ubyte") == images).all())
        True
        >>> tmp.cleanup()
    """
    arr = np.asarray(array)
    code = _IDX_CODES.get(arr.dtype.newbyteorder("="))
    if code is None:
        raise ValueError(f"an IDX file cannot hold dtype {arr.dtype}; supported: {_IDX_SUPPORTED}")
    if not 1 <= arr.ndim <= 255:
        raise ValueError(f"an IDX file holds 1 to 255 dimensions, got shape {arr.shape}")
    header = struct.pack(f">HBB{arr.ndim}I", 0, code, arr.ndim, *arr.shape)
    data = header + np.ascontiguousarray(arr, dtype=_IDX_DTYPES[code]).tobytes()
    path = Path(path)
    if path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)


# -- MNIST and Fashion-MNIST ------------------------------------------------
_IDX_STEMS = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
_TITLES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}
# Canonical download locations: the base URL, to which the file names are appended.
_SOURCES = {
    "mnist": "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "fashion-mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
}
# SHA-256 of the canonical .gz files; a download must match before it enters the cache.
_SHA256 = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "08dc20ab1689590a0bcd66e874647b6ee8464e2d501b5a3f1f78831db19a3fdc",
        "train-labels-idx1-ubyte.gz": "b0197879cbda89f3dc7b894f9fd52b858e68ea4182b6947c9d8c2b67e5f18dcc",
        "t10k-images-idx3-ubyte.gz": "78dcbbfb5a27efaf1b6c1d616caca68560be8766c5bffcb2791df9273a534229",
        "t10k-labels-idx1-ubyte.gz": "42bd18137a62d5998cdeae52bf3a0676ac6b706f5cf8439b47bb5b151ae3dccf",
    },
}
# Where Debian packages put the files (dataset-fashion-mnist ships Fashion-MNIST).
_SYSTEM_DIRS = {
    "mnist": "/usr/share/datasets/mnist",
    "fashion-mnist": "/usr/share/datasets/fashion-mnist",
}
_FIXES = {
    "mnist": (
        "run hn.data.mnist(download=True) once (or set HAMON_DOWNLOAD=1) to download it into "
        "the cache, or set HAMON_DATA to a directory whose mnist/ subdirectory holds the files"
    ),
    "fashion-mnist": (
        "apt-get install dataset-fashion-mnist, or run hn.data.fashion_mnist(download=True) "
        "once (or set HAMON_DOWNLOAD=1) to download it into the cache"
    ),
}
_DOWNLOAD_CHUNK = 1 << 20
_DOWNLOAD_TIMEOUT_S = 60


def _cache_dir(name: str) -> Path:
    """$XDG_CACHE_HOME/hamon_nnx/datasets/<name>, with ~/.cache as the default base."""
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(base).expanduser() / "hamon_nnx" / "datasets" / name


def _idx_files(directory: Path) -> tuple[dict[str, Path], list[str]]:
    """The four IDX files in `directory` (.gz preferred) and the names missing there."""
    found, missing = {}, []
    for stem in _IDX_STEMS:
        for candidate in (directory / f"{stem}.gz", directory / stem):
            if candidate.is_file():
                found[stem] = candidate
                break
        else:
            missing.append(f"{stem}[.gz]")
    return found, missing


def _places(name: str, path) -> list[tuple[str, Path | None]]:
    """Where to look for the files, in order: (label, directory or None when unset)."""
    places: list[tuple[str, Path | None]] = []
    if path is not None:
        places.append(("path", Path(path).expanduser()))
    env = os.environ.get("HAMON_DATA")
    places.append((f"$HAMON_DATA/{name}", Path(env).expanduser() / name if env else None))
    places.append(("Debian package location", Path(_SYSTEM_DIRS[name])))
    places.append(("download cache", _cache_dir(name)))
    return places


def _download(name: str, directory: Path) -> None:
    """Download the missing canonical .gz files into `directory`, all or nothing.

    Each file goes to a temporary file in `directory`; only when every file
    matches its SHA-256 are they renamed into place, so a failed download
    leaves no file behind.
    """
    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    pending: list[tuple[Path, Path]] = []
    try:
        for stem in _IDX_STEMS:
            final = directory / f"{stem}.gz"
            if final.is_file():
                continue
            url = _SOURCES[name] + final.name
            temporary, got = _fetch(url, directory, final.name)
            pending.append((temporary, final))
            expected = _SHA256[name][final.name]
            if got != expected:
                raise ValueError(
                    f"SHA-256 mismatch for {final.name} downloaded from {url}: expected "
                    f"{expected}, got {got}; nothing was saved in {directory}"
                )
        for temporary, final in pending:
            os.replace(temporary, final)
        pending = []
    finally:
        for temporary, _ in pending:
            temporary.unlink(missing_ok=True)
        if created and not any(directory.iterdir()):
            directory.rmdir()


def _fetch(url: str, directory: Path, file_name: str) -> tuple[Path, str]:
    """Download `url` to a new temporary file in `directory`: (its path, its SHA-256)."""
    import urllib.request  # deferred: a download is rare, the import is not free

    handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{file_name}.", suffix=".part")
    temporary = Path(temporary)
    digest = hashlib.sha256()
    try:
        with (
            os.fdopen(handle, "wb") as out,
            urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as response,
        ):
            while chunk := response.read(_DOWNLOAD_CHUNK):
                digest.update(chunk)
                out.write(chunk)
    except OSError as err:  # urllib.error.URLError and HTTPError are OSErrors
        temporary.unlink(missing_ok=True)
        raise OSError(f"could not download {url}: {err}") from err
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return temporary, digest.hexdigest()


def _locate(name: str, path, download) -> tuple[dict[str, Path], Path]:
    """The four IDX files of data set `name` and their directory, downloading if allowed."""
    if download is None:
        download = os.environ.get("HAMON_DOWNLOAD") == "1"
    elif not isinstance(download, bool | np.bool_):
        raise ValueError(f"download must be True, False or None, got {download!r}")
    searched = []
    for label, directory in _places(name, path):
        if directory is None:
            searched.append(f"  {label}: HAMON_DATA is not set")
            continue
        found, missing = _idx_files(directory)
        if not missing:
            return found, directory
        state = "does not exist" if not directory.is_dir() else "missing " + ", ".join(missing)
        searched.append(f"  {label}: {directory} ({state})")
    cache = _cache_dir(name)
    if download:
        _download(name, cache)
        found, missing = _idx_files(cache)
        if missing:  # _download raises first; a safety net
            raise FileNotFoundError(f"{cache} still lacks {', '.join(missing)} after the download")
        return found, cache
    names = ", ".join(f"{stem}[.gz]" for stem in _IDX_STEMS)
    raise FileNotFoundError(
        f"{_TITLES[name]} not found: no directory holds its four IDX files ({names}). "
        "Searched, in order:\n" + "\n".join(searched) + f"\nFix: {_FIXES[name]}."
    )


def _read_split(images_path: Path, labels_path: Path) -> np.ndarray:
    """The uint8 images (n, rows, cols) of one split, checked against its labels file."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(
            f"{images_path} must hold uint8 images (n, rows, cols), "
            f"got {images.dtype} of shape {images.shape}"
        )
    if labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(
            f"{labels_path} must hold one label per image of {images_path} "
            f"({len(images)}), got shape {labels.shape}"
        )
    return images


def _check_loader_args(binarize, threshold, levels, seed, validation) -> tuple:
    """The validated (binarize, threshold, levels, seed, validation) of a loader."""
    if binarize not in ("threshold", "stochastic"):
        raise ValueError(f"binarize must be 'threshold' or 'stochastic', got {binarize!r}")
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        raise ValueError(f"threshold must be a number in (0, 1], got {threshold!r}") from None
    if not 0 < value <= 1:
        raise ValueError(f"threshold must be a number in (0, 1], got {threshold!r}")
    if levels is not None:
        levels = _check_int("levels", levels, 2)
        if levels > _MAX_LEVELS:
            raise ValueError(f"levels must be at most {_MAX_LEVELS}, got {levels}")
    seed = _check_int("seed", seed, 0)
    validation = _check_int("validation", validation, 0)
    if validation >= 60000:
        raise ValueError(
            f"validation must be an integer in 0..59999 (it is taken from the 60000 "
            f"training images), got {validation!r}"
        )
    return binarize, value, levels, seed, validation


def _preprocess(
    splits: list[np.ndarray], binarize: str, threshold: float, levels: int | None, seed: int
) -> tuple[list[np.ndarray], str]:
    """Map uint8 pixel arrays to int8 values (one shared random stream, in order)."""
    pixels = np.arange(256)
    if levels is not None:  # floor(p * levels / 256), exact in integers
        table = (pixels * levels // 256).astype(np.int8)
        how = f"quantized to {levels} levels as floor(p * {levels} / 256)"
        return [table[x] for x in splits], how
    if binarize == "threshold":
        table = (pixels / 255.0 >= threshold).astype(np.int8)
        return [table[x] for x in splits], f"binarized as p / 255 >= {threshold}"
    rng = np.random.default_rng(seed)  # u uniform on 0..254: P(u < p) = p / 255 exactly
    out = [(rng.integers(0, 255, size=x.shape, dtype=np.uint8) < x).astype(np.int8) for x in splits]
    return out, f"binarized stochastically as Bernoulli(p / 255) with seed {seed}"


def _load_mnist_like(
    name: str, path, binarize, threshold, levels, seed, validation, download
) -> Dataset:
    """`mnist` and `fashion_mnist`: data set `name` ("mnist" or "fashion-mnist")."""
    binarize, threshold, levels, seed, validation = _check_loader_args(
        binarize, threshold, levels, seed, validation
    )
    files, directory = _locate(name, path, download)
    train = _read_split(files["train-images-idx3-ubyte"], files["train-labels-idx1-ubyte"])
    test = _read_split(files["t10k-images-idx3-ubyte"], files["t10k-labels-idx1-ubyte"])
    image_shape = train.shape[1:]
    if test.shape[1:] != image_shape:
        raise ValueError(
            f"the training images in {directory} are {image_shape[0]}x{image_shape[1]} "
            f"but the test images are {test.shape[1]}x{test.shape[2]}"
        )
    if validation >= len(train):
        raise ValueError(
            f"validation={validation} leaves no training images out of the {len(train)} "
            f"in {files['train-images-idx3-ubyte']}"
        )
    flat = [x.reshape(len(x), -1) for x in (train, test)]
    (train, test), how = _preprocess(flat, binarize, threshold, levels, seed)
    n_train = len(train) - validation
    return Dataset(
        train[:n_train],
        test,
        validation=train[n_train:],
        name=name.replace("-", "_"),
        image_shape=image_shape,
        description=(
            f"{_TITLES[name]} from {directory}: the first {n_train} of the {len(train)} "
            f"official training images for training, the last {validation} for validation, "
            f"the {len(test)} official test images for testing; pixels p in 0..255 {how}"
        ),
        levels=2 if levels is None else levels,
    )


def mnist(
    path=None,
    *,
    binarize: str = "threshold",
    threshold: float = 0.5,
    levels: int | None = None,
    seed: int = 0,
    validation: int = 10000,
    download: bool | None = None,
) -> Dataset:
    """The 28x28 MNIST handwritten digits (LeCun et al.), with fixed splits.

    Where the four files (``train-images-idx3-ubyte``,
    ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
    ``t10k-labels-idx1-ubyte``, each gzipped ``.gz`` or not) are looked for,
    in order: `path`; ``$HAMON_DATA/mnist``; ``/usr/share/datasets/mnist``
    (Debian's location); the download cache
    ``$XDG_CACHE_HOME/hamon_nnx/datasets/mnist`` (default ``~/.cache/...``).
    When none holds them and `download` is True (or None with the
    environment variable ``HAMON_DOWNLOAD=1``), the canonical ``.gz`` files
    (https://storage.googleapis.com/cvdf-datasets/mnist/) are downloaded
    once into the cache; they are renamed into place only when all match
    their SHA-256. Otherwise a FileNotFoundError lists the places searched
    and the fix.

    Splits are fixed: the first ``60000 - validation`` official training
    images train, the last `validation` of them validate, and the 10000
    official test images test. Pixels p in 0..255 are scaled to p / 255.
    ``binarize="threshold"`` (the binarization the model zoo uses) gives 1
    where p / 255 >= threshold; ``binarize="stochastic"`` draws
    Bernoulli(p / 255) from ``numpy.random.default_rng(seed)`` (training
    images first, then test images: the same data on every call, for a
    given NumPy version). ``levels=q`` instead quantizes to q categories,
    ``floor(p * q / 256)``, for a Potts model (`binarize` is then ignored).
    The labels are read to check the files but not returned.

    Args:
        path: a directory holding the four files, searched first (optional).
        binarize: "threshold" or "stochastic".
        threshold: the cut of "threshold", a number in (0, 1].
        levels: None for binary data, or the number of categories, 2..127.
        seed: the non-negative seed of "stochastic".
        validation: how many training images to hold out, 0..59999.
        download: download into the cache when the files are not found;
            None reads the environment variable ``HAMON_DOWNLOAD`` ("1": yes).

    Returns:
        A `Dataset` named "mnist" of int8 arrays of shape (n, 784), image_shape
        (28, 28), levels 2 (or `levels`) and a `validation` array; its
        description says where the files came from and how they were
        preprocessed.

    Raises:
        FileNotFoundError: the files are nowhere and downloading is off.
        ValueError: an argument is out of range, a file is corrupted or not
            IDX images and labels, or a download does not match its SHA-256
            (nothing is then kept).
        OSError: a download failed.

    Example (on four tiny stand-in files; the real ones hold 60000 + 10000 images):
        >>> import numpy as np, tempfile
        >>> from hamon_nnx.data import mnist, write_idx
        >>> tmp = tempfile.TemporaryDirectory()
        >>> rng = np.random.default_rng(0)
        >>> for split, n in [("train", 5), ("t10k", 2)]:
        ...     images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        ...     write_idx(f"{tmp.name}/{split}-images-idx3-ubyte.gz", images)
        ...     write_idx(f"{tmp.name}/{split}-labels-idx1-ubyte.gz", np.zeros(n, np.uint8))
        >>> mnist(tmp.name, validation=2)
        Dataset(name='mnist', train=(3, 784), validation=(2, 784), test=(2, 784), levels=2, image_shape=(28, 28))
        >>> mnist(tmp.name, validation=2, levels=4).levels
        4
        >>> tmp.cleanup()
    """
    return _load_mnist_like("mnist", path, binarize, threshold, levels, seed, validation, download)


def fashion_mnist(
    path=None,
    *,
    binarize: str = "threshold",
    threshold: float = 0.5,
    levels: int | None = None,
    seed: int = 0,
    validation: int = 10000,
    download: bool | None = None,
) -> Dataset:
    """The 28x28 Fashion-MNIST product images (Xiao et al., Zalando), with fixed splits.

    The same arguments, splits, preprocessing and errors as `mnist`; only
    the places differ: `path`, ``$HAMON_DATA/fashion-mnist``,
    ``/usr/share/datasets/fashion-mnist`` (where ``apt-get install
    dataset-fashion-mnist`` puts the files), then the download cache
    ``$XDG_CACHE_HOME/hamon_nnx/datasets/fashion-mnist``, filled from
    http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/ with
    ``download=True`` (or ``HAMON_DOWNLOAD=1``). The `Dataset` is named
    "fashion_mnist".

    Usage (not run as a doctest: it needs the real files):

        import hamon_nnx as hn
        ds = hn.data.fashion_mnist()
        # Dataset(name='fashion_mnist', train=(50000, 784), validation=(10000, 784),
        #         test=(10000, 784), levels=2, image_shape=(28, 28))
        ds.train[0].reshape(ds.image_shape)  # a 28x28 0/1 image
        hn.data.fashion_mnist(levels=4)  # 4 grey levels, for a Potts model
    """
    return _load_mnist_like(
        "fashion-mnist", path, binarize, threshold, levels, seed, validation, download
    )


# -- bars and stripes -------------------------------------------------------
def bars_and_stripes(n: int) -> np.ndarray:
    """Every distinct n x n bars-and-stripes image, flattened row-major.

    An image is in the set when every row is constant (horizontal stripes)
    or every column is constant (vertical bars). Of the 2**n images of each
    kind, the all-zero and all-one images are both kinds and are counted
    once, so there are 2**(n+1) - 2 images: 2, 6, 14, 30 for n = 1, 2, 3, 4.
    Rows are in lexicographic order.

    Args:
        n: the side of the images, n >= 1.

    Returns:
        An int8 0/1 array of shape (2**(n+1) - 2, n*n).

    Example:
        >>> from hamon_nnx.data import bars_and_stripes
        >>> bars_and_stripes(2)
        array([[0, 0, 0, 0],
               [0, 0, 1, 1],
               [0, 1, 0, 1],
               [1, 0, 1, 0],
               [1, 1, 0, 0],
               [1, 1, 1, 1]], dtype=int8)
        >>> bars_and_stripes(4).shape
        (30, 16)
    """
    n = _check_int("n", n, 1)
    codes = np.arange(2**n, dtype=np.int64)
    bits = ((codes[:, None] >> np.arange(n)) & 1).astype(np.int8)  # (2**n, n)
    rows_constant = np.repeat(bits[:, :, None], n, axis=2)  # image[i, j] = bit i
    columns_constant = np.repeat(bits[:, None, :], n, axis=1)  # image[i, j] = bit j
    images = np.concatenate([rows_constant, columns_constant]).reshape(-1, n * n)
    return np.unique(images, axis=0)


def bars_and_stripes_optimal_log_likelihood(n: int) -> float:
    """The best mean log-likelihood any model can reach on `bars_and_stripes(n)`.

    The mean over a data set of log p(x) is largest for the uniform
    distribution on the data set's distinct images, where it is
    ``-log(2**(n+1) - 2)`` (natural log). A trained model's mean
    log-likelihood on `bars_and_stripes(n)` is at most this value.

    Args:
        n: the side of the images, n >= 1.

    Returns:
        ``-log(2**(n+1) - 2)`` as a float.

    Example:
        >>> import math
        >>> from hamon_nnx.data import bars_and_stripes_optimal_log_likelihood
        >>> bars_and_stripes_optimal_log_likelihood(3) == -math.log(14)
        True
    """
    n = _check_int("n", n, 1)
    return -math.log(2 ** (n + 1) - 2)


# -- minibatches ------------------------------------------------------------
def _seed_entropy(seed) -> int | list[int]:
    """The SeedSequence entropy of an int seed or a single JAX PRNG key."""
    if isinstance(seed, bool | np.bool_):
        raise ValueError(f"seed must be a non-negative integer or a JAX PRNG key, got {seed!r}")
    try:
        value = operator.index(seed)
    except TypeError:
        pass
    else:
        if value < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        return value
    dtype = getattr(seed, "dtype", None)
    if dtype is not None and str(dtype).startswith("key<"):  # typed JAX key
        if getattr(seed, "shape", None) != ():
            raise ValueError(f"seed must be a single PRNG key, got shape {seed.shape}")
        import jax

        seed = jax.random.key_data(seed)
    try:
        words = np.asarray(seed)
    except (TypeError, ValueError):
        words = np.asarray(None)
    if words.ndim != 1 or words.dtype != np.uint32:
        raise ValueError(
            "seed must be a non-negative integer or a single JAX PRNG key "
            f"(jax.random.key(0)), got {seed!r}"
        )
    return [int(w) for w in words]


def epoch_order(n: int, seed, epoch: int = 0) -> np.ndarray:
    """The shuffled order of `n` samples in a given epoch.

    The order is a pure function of (n, seed, epoch), with no hidden state:
    it is ``numpy.random.default_rng(SeedSequence(seed, spawn_key=(epoch,)))
    .permutation(n)``, i.e. the permutation drawn from the `epoch`-th child of
    ``SeedSequence(seed)``. A training run that checkpoints its seed and epoch
    counter therefore resumes its data order exactly. Orders are reproducible
    for a given NumPy version (NumPy does not promise identical streams
    across versions).

    Args:
        n: the number of samples, n >= 0.
        seed: a non-negative integer, or a single JAX PRNG key (typed, from
            `jax.random.key`, or raw uint32, from `jax.random.PRNGKey`), whose
            bits then seed the order.
        epoch: the epoch number, epoch >= 0.

    Returns:
        An int64 permutation of 0..n-1.

    Example:
        >>> from hamon_nnx.data import epoch_order
        >>> order = epoch_order(10, seed=0, epoch=3)
        >>> sorted(order.tolist()) == list(range(10))
        True
        >>> bool((order == epoch_order(10, seed=0, epoch=3)).all())
        True
    """
    n = _check_int("n", n, 0)
    epoch = _check_int("epoch", epoch, 0)
    sequence = np.random.SeedSequence(_seed_entropy(seed), spawn_key=(epoch,))
    return np.random.default_rng(sequence).permutation(n)


def batches(
    x, batch_size: int, key_or_seed, drop_last: bool = False, *, epoch: int = 0
) -> Iterator[np.ndarray]:
    """Yield the minibatches of one epoch of `x`, in a shuffled order.

    The samples (the first axis of `x`) are visited in the order
    ``epoch_order(len(x), key_or_seed, epoch)``, a pure function of
    (key_or_seed, epoch): loop over epochs with ``epoch=e`` and a resumed run
    sees the same batches as an uninterrupted one. Every sample appears
    exactly once per epoch; the last batch is shorter when `batch_size` does
    not divide len(x), unless `drop_last` drops it.

    Args:
        x: array-like with the samples along the first axis, e.g. the int8
            (n_samples, n_variables) output of `as_binary_data`.
        batch_size: the number of samples in a batch, >= 1.
        key_or_seed: a non-negative integer seed, or a single JAX PRNG key.
        drop_last: drop the last batch when it is shorter than `batch_size`.
        epoch: the epoch number, >= 0; each epoch has its own order.

    Yields:
        NumPy arrays of shape (batch_size, ...) (the last one possibly
        shorter), copies of rows of `x`.

    Raises:
        ValueError: `x` is empty or not an array of samples, `batch_size` or
            `epoch` is invalid, or `drop_last` would leave no batch at all.

    Example:
        >>> import numpy as np
        >>> from hamon_nnx.data import batches
        >>> x = np.arange(10).reshape(5, 2)
        >>> [b.shape for b in batches(x, 2, key_or_seed=0)]
        [(2, 2), (2, 2), (1, 2)]
        >>> [b.shape for b in batches(x, 2, key_or_seed=0, drop_last=True)]
        [(2, 2), (2, 2)]
    """
    arr = np.asarray(x)
    if arr.ndim == 0 or len(arr) == 0:
        raise ValueError(
            f"x must hold at least one sample along its first axis, got shape {arr.shape}"
        )
    batch_size = _check_int("batch_size", batch_size, 1)
    n = len(arr)
    if drop_last and batch_size > n:
        raise ValueError(
            f"batch_size {batch_size} exceeds the {n} samples, so drop_last=True would yield no batch"
        )
    order = epoch_order(n, key_or_seed, epoch)  # validates before the first batch
    return _iterate(arr, order, batch_size, drop_last)


def _iterate(
    arr: np.ndarray, order: np.ndarray, batch_size: int, drop_last: bool
) -> Iterator[np.ndarray]:
    stop = len(order) - len(order) % batch_size if drop_last else len(order)
    for start in range(0, stop, batch_size):
        yield arr[order[start : start + batch_size]]
