"""lava-dl's own netx example networks, kept for the conformance tests (sim_tests/parity/test_foreign_netx.py).

Origin: https://github.com/lava-nc/lava-dl at commit d825ac506eb9bb91ea2b945116fb45a40e775451 (2026-05-13),
BSD 3-Clause License, Copyright (c) 2021 Intel Corporation: ``LICENSE.lava-dl`` here is that commit's
LICENSE, which the license asks redistributions to keep.

Stored gzip-compressed (the weights are small integers in float32, so 1 MB becomes 0.2 MB); :func:`unpack`
restores a file and checks its SHA-256 against lava-dl's, so the tests run exactly the bytes lava-dl ships.

Files here (gzip) <- lava-dl path (size): content

- ``tiny.net.gz`` <- tests/lava/lib/dl/netx/tiny.net (126 KB): input (LOIHI neuron, 3x16x16), conv 24, conv 36
- ``mnist_tutorial.net.gz`` <- tutorials/lava/lib/dl/netx/mnist/trained_mnist_network.net (460 KB): dense
  784-128-64-10, CUBA
- ``oxford.net.gz`` <- tutorials/lava/lib/dl/netx/oxford/Trained/network.net (428 KB): dense 200-256-200, CUBA
- ``pilotnet_sdnn.net.gz`` <- tests/lava/lib/dl/netx/gts/pilotnet_sdnn/network.net (1.37 MB): lava-dl's
  PilotNet SDNN, input (SDNN Delta, 3x33x100), 4 SDNN convs, flatten, 3 SDNN dense, a Sigma dense output;
  with ``pilotnet_sdnn_input.npy.gz`` <- .../pilotnet_sdnn/input.npy ((W, H, C, T) = (100, 33, 3, 1) int32)
  and ``pilotnet_sdnn_output.npy.gz`` <- .../pilotnet_sdnn/output.npy (the 9-step sink record of a plain
  netx run, lava-dl's test_pilotnet_sdnn)
- ``pilotnet_lif.net.gz`` <- tests/lava/lib/dl/netx/gts/pilotnet_lif/network.net (1.49 MB): lava-dl's trained
  PilotNet LIF, input (LOIHI neuron, 3x66x200), 5 LOIHI convs, flatten, 4 LOIHI dense; with
  ``pilotnet_lif_image.npy.gz`` <- .../pilotnet_lif/image.npy ((W, H, C) = (200, 66, 3) int32, the frame
  lava-dl's test_pilotnet_lif puts into the input layer's bias)
- ``pilotnet_sdnn_head.net.gz`` <- derived from tests/lava/lib/dl/netx/gts/pilotnet_sdnn/square_network.net
  (1.36 MB, too large to keep): its layers 0-1 (SDNN input 3x33x33, SDNN conv 24), every group and dataset
  copied verbatim with h5py (:func:`copy_layers`)

Not kept: pilotnet_lif's per-layer records, bootstrap mnist (1.3-2.7 MB), mnist.net, ntidigits.net and
tiny_yolo_sdnn (Git LFS pointers in the repository), slayer/nmnist and tiny_yolo_kp_events (blobs absent).

Regenerate (needs a lava-dl clone or bare git directory holding that commit)::

    .venv/bin/python -m sim_tests.golden.lava_dl.make_lava_dl --lava-dl /path/to/lava-dl
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import subprocess
import tempfile
from pathlib import Path

import h5py

HERE = Path(__file__).parent
COMMIT = "d825ac506eb9bb91ea2b945116fb45a40e775451"

# name here -> (lava-dl path, SHA-256 of lava-dl's file); None: derived, no lava-dl counterpart
ORIGINALS: dict[str, tuple[str, str | None]] = {
    "tiny.net": (
        "tests/lava/lib/dl/netx/tiny.net",
        "fb6c05c2ba8103bbe00e29b50c9900c5341a127482607081baf40da06585b28b",
    ),
    "mnist_tutorial.net": (
        "tutorials/lava/lib/dl/netx/mnist/trained_mnist_network.net",
        "25faef9034a1f6e78d0e7b28cbfe1b8ed2b2b3cc851cb4b02f7ca74fbdf17a9a",
    ),
    "oxford.net": (
        "tutorials/lava/lib/dl/netx/oxford/Trained/network.net",
        "1d41dd816a23b3a226d7b66747b808bd05df5462bfacf51dd57f3d4dd45034c4",
    ),
    "pilotnet_lif.net": (
        "tests/lava/lib/dl/netx/gts/pilotnet_lif/network.net",
        "4a47723327c0c9e18d8ac3dcbfa2f2e011e6f2c03ebe80cb3b9360ae56124fd3",
    ),
    "pilotnet_lif_image.npy": (
        "tests/lava/lib/dl/netx/gts/pilotnet_lif/image.npy",
        "4ad5fc31f53e644cf592520174baafb2b9e9d4d48c896a0eb13d780e37f92f68",
    ),
    "pilotnet_sdnn_head.net": ("tests/lava/lib/dl/netx/gts/pilotnet_sdnn/square_network.net", None),
    "pilotnet_sdnn.net": (
        "tests/lava/lib/dl/netx/gts/pilotnet_sdnn/network.net",
        "de8a367aa345ada204318da7db7f81dfc573e93b1d5bdbb597a749670af86693",
    ),
    "pilotnet_sdnn_input.npy": (
        "tests/lava/lib/dl/netx/gts/pilotnet_sdnn/input.npy",
        "dd38f905380630c3baa529325a20008b97aeb78693c247c72f6bfafb139a99ed",
    ),
    "pilotnet_sdnn_output.npy": (
        "tests/lava/lib/dl/netx/gts/pilotnet_sdnn/output.npy",
        "f5ee32bf03857b89f69e0ae14b34f33a0c7e82aea246788feb806ab5fcfca015",
    ),
}
SDNN_SOURCE_SHA256 = "8d7308f51d6c6804bb1f3606ae9429b6e4d4176f11422203dca01dd6415075a9"


def unpack(name: str, folder: Path) -> Path:
    """``folder/name``, unpacked from ``name.gz``; an original's bytes are checked against lava-dl's SHA-256."""
    data = gzip.decompress((HERE / f"{name}.gz").read_bytes())
    sha = ORIGINALS[name][1]
    if sha is not None and hashlib.sha256(data).hexdigest() != sha:
        raise ValueError(f"{name}: SHA-256 differs from lava-dl {COMMIT[:7]}:{ORIGINALS[name][0]}")
    out = folder / name
    out.write_bytes(data)
    return out


def copy_layers(src: Path, dst: Path, first: int, stop: int | None = None) -> Path:
    """``dst`` = layers ``first .. stop-1`` of the netx file ``src``, renumbered from 0, each group copied
    verbatim (h5py ``copy``: datasets, dtypes, shapes, nested neuron groups).  ``first=1`` drops an
    'input' layer: the result is what netx runs only when given ``input_shape``."""
    with h5py.File(src, "r") as f, h5py.File(dst, "w") as g:
        layers = f["layer"]
        stop = len(layers) if stop is None else stop
        out = g.create_group("layer")
        for i in range(first, stop):
            f.copy(layers[str(i)], out, name=str(i - first))
    return dst


def _git_show(repo: Path, path: str) -> bytes:
    git_dir = repo / ".git" if (repo / ".git").exists() else repo
    return subprocess.run(
        ["git", f"--git-dir={git_dir}", "show", f"{COMMIT}:{path}"], check=True, capture_output=True
    ).stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lava-dl", type=Path, required=True, help="lava-dl clone or bare git directory")
    args = ap.parse_args()
    for name, (path, sha) in ORIGINALS.items():
        data = _git_show(args.lava_dl, path)
        want = sha or SDNN_SOURCE_SHA256
        if hashlib.sha256(data).hexdigest() != want:
            raise SystemExit(f"{path}: not the file this script expects (SHA-256 differs)")
        if sha is None:  # derived: the first two layers
            with tempfile.TemporaryDirectory() as tmp:
                (Path(tmp) / "src.net").write_bytes(data)
                data = copy_layers(Path(tmp) / "src.net", Path(tmp) / name, 0, 2).read_bytes()
        (HERE / f"{name}.gz").write_bytes(gzip.compress(data, compresslevel=9, mtime=0))
        print(f"wrote {HERE / name}.gz ({len(data)} bytes unpacked)")


if __name__ == "__main__":
    main()
