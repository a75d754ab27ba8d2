"""Small data sets, input validation and minibatching for training models.

Three groups of tools, all plain NumPy (nothing here touches JAX at import):

* Data sets. `digits` binarizes the 8x8 handwritten digits that ship inside
  scikit-learn (1797 images, no download) and splits them into train and
  test sets with a fixed seed; `digits_quantized` keeps 0..levels-1 grey
  levels for a Potts model, with the same split. `bars_and_stripes` lists
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
import math
import operator
from collections.abc import Iterator

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
    """A train/test pair of discrete data, with a name and a description.

    The arrays are validated on construction (values in 0..levels-1, same
    number of columns), stored as read-only int8 copies of shape
    (n_samples, n_variables); copy them (`ds.train.copy()`) to modify them.
    The test set may be empty (shape (0, n_variables)).

    Attributes:
        train: int8 array (n_train, n_variables).
        test: int8 array (n_test, n_variables).
        name: short name, e.g. "digits".
        image_shape: the shape each row reshapes to for plotting, e.g. (8, 8),
            or None when the data are not images.
        description: a sentence on where the data come from and how they were
            preprocessed.
        levels: the number of values a variable takes (2 for binary data).

    Example:
        >>> import numpy as np
        >>> from hamon_nnx.data import Dataset
        >>> ds = Dataset(np.eye(4), np.ones((1, 4)), name="toy", image_shape=(2, 2))
        >>> ds
        Dataset(name='toy', train=(4, 4), test=(1, 4), levels=2, image_shape=(2, 2))
        >>> ds.train[0].reshape(ds.image_shape)
        array([[1, 0],
               [0, 0]], dtype=int8)
    """

    train: np.ndarray
    test: np.ndarray
    name: str = "data"
    image_shape: tuple[int, ...] | None = None
    description: str = ""
    levels: int = 2

    def __post_init__(self):
        levels = _check_int("levels", self.levels, 2)
        if levels > _MAX_LEVELS:
            raise ValueError(f"levels must be at most {_MAX_LEVELS}, got {levels}")
        train = as_categorical_data(self.train, levels, name=f"{self.name} train")
        n_variables = train.shape[1]
        if np.shape(self.test) in ((0,), (0, n_variables)):
            test = np.zeros((0, n_variables), dtype=np.int8)
        else:
            test = as_categorical_data(
                self.test, levels, n_variables=n_variables, name=f"{self.name} test"
            )
        image_shape = self.image_shape
        if image_shape is not None:
            image_shape = tuple(_check_int("image_shape entries", d, 1) for d in image_shape)
            if math.prod(image_shape) != n_variables:
                raise ValueError(
                    f"image_shape {image_shape} holds {math.prod(image_shape)} pixels, "
                    f"but the data have {n_variables} variables"
                )
        train.setflags(write=False)
        test.setflags(write=False)
        object.__setattr__(self, "train", train)
        object.__setattr__(self, "test", test)
        object.__setattr__(self, "image_shape", image_shape)
        object.__setattr__(self, "levels", levels)

    @property
    def n_variables(self) -> int:
        """The number of variables (columns) of each sample."""
        return self.train.shape[1]

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, train={self.train.shape}, test={self.test.shape}, "
            f"levels={self.levels}, image_shape={self.image_shape})"
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
    pixels = np.asarray(load_digits().data).astype(np.uint8)
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
