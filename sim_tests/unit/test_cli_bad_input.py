"""Bad input through the real ``loihic`` command line, one subprocess per case.

The project's standard: bad input gets a clear one-line error that names the file, layer or value and
what was expected, a non-zero exit, no traceback and no half-written output; nothing the user had is
overwritten without --force; loading a checkpoint never executes code from it.  Every test here runs
``python -m loihic ...`` in its own temporary folder and checks all of that (:func:`assert_refused`).
"""

from __future__ import annotations

import copy
import os
import pickle
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from loihic.compiler.config import CompileConfig
from loihic.training.ann import train_ann
from loihic.training.checkpoint import load_checkpoint, save_checkpoint
from loihic.training.convert import convert
from loihic.training.data import load_dataset
from loihic.training.deployment import compile_checkpoint

T = 8  # timesteps of the shared SNN
TIMEOUT = 240  # seconds per CLI call; generous, the machine is shared
FILES = ("ann.pt", "snn.pt", "model.net", "X.npy")


# --- running the CLI -------------------------------------------------------------------------------------
@dataclass
class Run:
    rc: int
    stdout: str
    stderr: str
    new_files: set[str]  # names that appeared in the working folder (outputs, temp files, markers)
    cwd: Path

    @property
    def lines(self) -> list[str]:
        """stderr as a terminal shows it: each line's text after its last carriage return (progress bars
        redraw with '\\r'), without tqdm bars ('%|') and blank lines."""
        shown = [raw.rsplit("\r", 1)[-1].strip() for raw in self.stderr.split("\n")]
        return [s for s in shown if s and "%|" not in s]


def run_cli(cwd: Path, *args: str, timeout: int = TIMEOUT) -> Run:
    before = set(os.listdir(cwd))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(
        [sys.executable, "-m", "loihic", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr, set(os.listdir(cwd)) - before, cwd)


def assert_refused(run: Run, *needles: str, usage_ok: bool = False) -> str:
    """Non-zero exit, no traceback, exactly one 'loihic: error:' line naming every needle, nothing new
    in the folder (no output, no stray temp file).  ``usage_ok``: argparse's usage error (exit 2) is
    also accepted, for wrong flag values only.  Returns the error line."""
    detail = f"rc={run.rc}\n--- stderr ---\n{run.stderr}\n--- stdout ---\n{run.stdout}"
    assert run.rc != 0, detail
    assert "Traceback" not in run.stderr, detail
    assert not run.new_files, f"files appeared: {sorted(run.new_files)}\n{detail}"
    if usage_ok and run.rc == 2 and "usage:" in run.stderr:
        return run.lines[-1]
    assert len(run.lines) == 1, f"expected one error line, got {run.lines}\n{detail}"
    line = run.lines[0]
    assert line.startswith("loihic: error:"), detail
    assert len(line) > len("loihic: error:") + 10, detail
    for needle in needles:
        assert needle in line, f"{needle!r} not named in: {line}"
    return line


def assert_no_processes_in(folder: Path) -> None:
    """No process (a forked Lava runtime, say) is left with ``folder`` as its cwd or in its command line."""
    left = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if cwd == str(folder) or str(folder) in cmd:
            left.append(f"{entry.name}: {cmd}")
    assert not left, f"processes left behind: {left}"


# --- the shared valid pipeline (built once) -----------------------------------------------------------------
@pytest.fixture(scope="session")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ann.pt -> snn.pt -> model.net (digits MLP, 2 epochs, T=8) and a valid X.npy, via the Python API."""
    d = tmp_path_factory.mktemp("pipeline")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ann = train_ann("mlp", "digits", 2, 0, hidden=32, progress=False)
        save_checkpoint(d / "ann.pt", ann)
        x_train, _ = load_dataset("digits", "train")
        snn = convert(d / "ann.pt", x_train, T, calib_samples=64, progress=False)
        save_checkpoint(d / "snn.pt", snn)
        compile_checkpoint(str(d / "snn.pt"), str(d / "model.net"), CompileConfig())
    finally:
        torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    np.save(d / "X.npy", (rng.random((2, 1, 8, 8, T)) < 0.3).astype(np.int8))
    return d


@pytest.fixture
def ws(pipeline: Path, tmp_path: Path) -> Iterator[Path]:
    """A fresh working folder holding copies of the valid files; afterwards, no payload ever ran in it."""
    for name in FILES:
        shutil.copy2(pipeline / name, tmp_path / name)
    yield tmp_path
    assert not (tmp_path / "PWNED").exists(), "code from an input file was executed"


def snn_variant(ws: Path, name: str, change: Callable[[dict], None]) -> str:
    """snn.pt loaded, changed and torch.saved (bypassing save_checkpoint's validation) as ``name``."""
    ckpt = copy.deepcopy(load_checkpoint(ws / "snn.pt"))
    change(ckpt)
    torch.save(ckpt, ws / name)
    return name


def netx_variant(ws: Path, name: str, change: Callable[[h5py.File], None]) -> str:
    shutil.copy2(ws / "model.net", ws / name)
    with h5py.File(ws / name, "r+") as f:
        change(f)
    return name


# ==========================================================================================================
# 1. missing input, a directory given as a file, an unreadable file
# ==========================================================================================================
# argv of each command; the bad path replaces the placeholder "BAD"
CALLS = {
    "convert": ("convert", "BAD", "-T", str(T), "-o", "out.pt"),
    "compile": ("compile", "BAD", "-o", "out.net"),
    "simulate-net": ("simulate", "BAD", "--input", "X.npy", "-o", "Y.npy"),
    "simulate-input": ("simulate", "model.net", "--input", "BAD", "-o", "Y.npy"),
    "verify": ("verify", "BAD", "--samples", "2"),
    "evaluate": ("evaluate", "BAD", "--samples", "2"),
}


def _call(key: str, bad: str) -> list[str]:
    return [bad if a == "BAD" else a for a in CALLS[key]]


@pytest.mark.parametrize("key", list(CALLS))
def test_missing_input_file(ws: Path, key: str) -> None:
    line = assert_refused(run_cli(ws, *_call(key, "nothere.bin")), "nothere.bin")
    assert "no such file" in line


@pytest.mark.parametrize("key", ["compile", "simulate-input", "evaluate"])
def test_directory_as_input_file(ws: Path, key: str) -> None:
    (ws / "adir").mkdir()
    line = assert_refused(run_cli(ws, *_call(key, "adir")), "adir")
    assert "directory" in line


@pytest.mark.parametrize("key", ["compile", "simulate-net", "simulate-input", "evaluate"])
def test_unreadable_input_file(ws: Path, key: str) -> None:
    src = {"compile": "snn.pt", "simulate-net": "model.net", "simulate-input": "X.npy", "evaluate": "model.net"}
    shutil.copy2(ws / src[key], ws / "locked")
    os.chmod(ws / "locked", 0)
    try:
        if os.access(ws / "locked", os.R_OK):
            pytest.skip("running as root: chmod 000 does not make a file unreadable")
        assert_refused(run_cli(ws, *_call(key, "locked")), "locked")
    finally:
        os.chmod(ws / "locked", 0o600)


# ==========================================================================================================
# 2. files that are not checkpoints
# ==========================================================================================================
NOT_CHECKPOINTS = {
    "text": b"layer 1: dense 64 -> 128\nthis is not a checkpoint\n",
    "random": np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
    "empty": b"",
}


@pytest.mark.parametrize("command", ["compile", "convert"])
@pytest.mark.parametrize("kind", list(NOT_CHECKPOINTS))
def test_not_a_checkpoint(ws: Path, command: str, kind: str) -> None:
    (ws / f"{kind}.pt").write_bytes(NOT_CHECKPOINTS[kind])
    out = "out.net" if command == "compile" else "out.pt"
    extra = ("-T", str(T)) if command == "convert" else ()
    assert_refused(run_cli(ws, command, f"{kind}.pt", *extra, "-o", out), f"{kind}.pt")


# ==========================================================================================================
# 3. malicious pickles: refused, and their payload never runs
# ==========================================================================================================
class Evil:
    """Unpickling this creates ``marker`` (via open) or runs a shell command that does."""

    def __init__(self, marker: Path, shell: bool = False) -> None:
        self.marker, self.shell = marker, shell

    def __reduce__(self):  # noqa: ANN204
        if self.shell:
            return (os.system, (f"touch '{self.marker}'",))
        return (open, (str(self.marker), "w"))


def _write_evil(path: Path, marker: Path, how: str) -> None:
    if how == "torch-zip":
        torch.save({"format": "loihic-checkpoint", "payload": Evil(marker)}, path)
    elif how == "raw-pickle":
        path.write_bytes(pickle.dumps(Evil(marker, shell=True)))
    else:  # inside an otherwise valid SNN checkpoint
        ckpt = load_checkpoint(path.parent / "snn.pt")
        ckpt["metrics"]["note"] = Evil(marker)
        torch.save(ckpt, path)


@pytest.mark.parametrize(
    ("command", "how"), [("compile", "torch-zip"), ("compile", "raw-pickle"), ("convert", "nested")]
)
def test_malicious_pickle_is_refused_and_not_run(ws: Path, command: str, how: str) -> None:
    marker = ws / "PWNED"
    _write_evil(ws / "evil.pt", marker, how)
    assert not marker.exists()
    args = {"compile": ("-o", "m.net"), "convert": ("-T", str(T), "-o", "s.pt"), "evaluate": ("--samples", "2")}
    run = run_cli(ws, command, "evil.pt", *args[command])
    assert not marker.exists(), "loading the checkpoint executed code from it"
    assert_refused(run, "evil.pt")


# ==========================================================================================================
# 4. truncated and corrupt HDF5
# ==========================================================================================================
def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _corrupt_middle(path: Path) -> None:
    """0xFF over 4 KiB in the middle of the file (there: weight data, which becomes NaN)."""
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid - 2048 : mid + 2048] = b"\xff" * 4096
    path.write_bytes(bytes(data))


def _corrupt_header(path: Path) -> None:
    """Zeros over the object header of the 'layer' group (HDF5 metadata, not data)."""
    with h5py.File(path, "r") as f:
        addr = h5py.h5o.get_info(f["layer"].id).addr
    data = bytearray(path.read_bytes())
    data[addr : addr + 64] = bytes(64)
    path.write_bytes(bytes(data))


BREAK = {"truncated": _truncate, "corrupt": _corrupt_middle}
NET_CALLS = {
    "simulate": ("simulate", "bad.net", "--input", "X.npy", "-o", "Y.npy"),
    "verify": ("verify", "bad.net", "--samples", "2"),
    "evaluate": ("evaluate", "bad.net", "--samples", "2"),
}


@pytest.mark.parametrize("command", list(NET_CALLS))
@pytest.mark.parametrize("damage", list(BREAK))
def test_broken_hdf5(ws: Path, command: str, damage: str) -> None:
    shutil.copy2(ws / "model.net", ws / "bad.net")
    BREAK[damage](ws / "bad.net")
    assert_refused(run_cli(ws, *NET_CALLS[command]), "bad.net")


def test_corrupt_hdf5_metadata(ws: Path) -> None:
    shutil.copy2(ws / "model.net", ws / "bad.net")
    _corrupt_header(ws / "bad.net")
    assert_refused(run_cli(ws, *NET_CALLS["simulate"]), "bad.net")


# ==========================================================================================================
# 5. netx files with layer types loihic cannot run, or values no integer can hold
# ==========================================================================================================
def _set_type(index: int, ltype: str) -> Callable[[h5py.File], None]:
    def change(f: h5py.File) -> None:
        del f[f"layer/{index}/type"]
        f[f"layer/{index}/type"] = ltype

    return change


@pytest.mark.parametrize(("ltype", "command"), [("foo", "simulate"), ("pool", "verify")])
def test_netx_unknown_layer_type(ws: Path, ltype: str, command: str) -> None:
    netx_variant(ws, "bad.net", _set_type(2, ltype))
    assert_refused(run_cli(ws, *NET_CALLS[command]), "bad.net", "layer 2", f"'{ltype}'")


def _set_weight(value: float) -> Callable[[h5py.File], None]:
    def change(f: h5py.File) -> None:
        w = f["layer/2/weight"][()]
        w[0, 0] = value
        f["layer/2/weight"][...] = w

    return change


def test_netx_weight_no_integer_can_hold(ws: Path) -> None:
    """1e30 is finite, but netx's astype(int) of it is undefined (NaN weights: test_broken_hdf5 'corrupt')."""
    netx_variant(ws, "bad.net", _set_weight(1e30))
    assert_refused(run_cli(ws, *NET_CALLS["simulate"]), "bad.net", "layer 2", "weight")


# ==========================================================================================================
# 6-8. checkpoints the compiler must refuse, naming the layer or tensor
# ==========================================================================================================
@pytest.mark.parametrize(("index", "ltype"), [(2, "maxpool"), (1, "lstm")])
def test_compile_unsupported_layer(ws: Path, index: int, ltype: str) -> None:
    def change(ckpt: dict) -> None:
        ckpt["layers"][index]["type"] = ltype

    name = snn_variant(ws, f"{ltype}.pt", change)
    assert_refused(run_cli(ws, "compile", name, "-o", "m.net"), name, f"layer {index}", ltype)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_compile_nonfinite_weights(ws: Path, value: float) -> None:
    def change(ckpt: dict) -> None:
        ckpt["state_dict"]["4.weight"][3, 5] = value

    name = snn_variant(ws, "nonfinite.pt", change)
    assert_refused(run_cli(ws, "compile", name, "-o", "m.net"), name, "4.weight")


def _threshold(value: float) -> Callable[[dict], None]:
    def change(ckpt: dict) -> None:
        ckpt["snn"]["thresholds"][0] = value

    return change


def _zero(key: str) -> Callable[[dict], None]:
    def change(ckpt: dict) -> None:
        ckpt["state_dict"][key].zero_()

    return change


@pytest.mark.parametrize(
    ("case", "change", "layer"),
    [
        ("tiny-threshold", _threshold(1e-12), "1.linear"),
        ("zero-weights", _zero("1.weight"), "1.linear"),
    ],
)
def test_compile_quantization_overflow(ws: Path, case: str, change: Callable[[dict], None], layer: str) -> None:
    name = snn_variant(ws, f"{case}.pt", change)
    assert_refused(run_cli(ws, "compile", name, "-o", "m.net"), f"layer '{layer}'")


# ==========================================================================================================
# 9. spike input arrays of the wrong shape, dtype or values
# ==========================================================================================================
def _good() -> np.ndarray:
    return (np.random.default_rng(2).random((2, 1, 8, 8, T)) < 0.3).astype(np.int8)


BAD_INPUTS: dict[str, tuple[Callable[[Path], None], tuple[str, ...]]] = {
    "shape": (lambda p: np.save(p, _good().reshape(2, 64, T)), ("shape (2, 64, 8)", "(N, 1, 8, 8, T)")),
    "float": (lambda p: np.save(p, _good().astype(np.float32)), ("float32", "integer")),
    "value-2": (lambda p: np.save(p, _good() * 2), ("0/1",)),
    "pickled-object": (
        lambda p: np.save(p, np.array([Evil(p.parent / "PWNED")], dtype=object), allow_pickle=True),
        (".npy",),
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_simulate_bad_input_array(ws: Path, case: str) -> None:
    make, needles = BAD_INPUTS[case]
    make(ws / "in.npy")
    run = run_cli(ws, "simulate", "model.net", "--input", "in.npy", "-o", "Y.npy")
    assert_refused(run, "in.npy", *needles)


def test_simulate_lava_bad_shape_leaves_no_process(ws: Path) -> None:
    BAD_INPUTS["shape"][0](ws / "in.npy")
    run = run_cli(
        ws, "simulate", ws / "model.net", "--input", ws / "in.npy", "-o", ws / "Y.npy", "--backend", "lava-sim"
    )
    assert_refused(run, "in.npy", "(N, 1, 8, 8, T)")
    assert_no_processes_in(ws)


# ==========================================================================================================
# 10. existing outputs are never overwritten without --force
# ==========================================================================================================
PRECIOUS = b"the user's own file, not to be touched\n"
WRITERS = {
    "train": ("train", "--epochs", "1", "--hidden", "8", "--limit-train", "64", "--batch-size", "32"),
    "convert": ("convert", "ann.pt", "-T", str(T), "--calib-samples", "16"),
    "compile": ("compile", "snn.pt"),
    "simulate": ("simulate", "model.net", "--input", "X.npy"),
}


@pytest.mark.parametrize("command", list(WRITERS))
def test_existing_output_needs_force(ws: Path, command: str) -> None:
    out = ws / "existing.out"
    out.write_bytes(PRECIOUS)
    assert_refused(run_cli(ws, *WRITERS[command], "-o", out.name), "existing.out", "--force")
    assert out.read_bytes() == PRECIOUS
    run = run_cli(ws, *WRITERS[command], "-o", out.name, "--force")
    assert run.rc == 0, run.stderr
    assert "Traceback" not in run.stderr
    assert out.read_bytes() != PRECIOUS
    assert not run.new_files, f"stray files: {run.new_files}"


def test_voltage_and_spikes_to_the_same_file(ws: Path) -> None:
    run = run_cli(ws, "simulate", "model.net", "--input", "X.npy", "-o", "Y.npy", "--voltage", "Y.npy")
    assert_refused(run, "Y.npy", "--voltage")


def test_output_below_a_file(ws: Path) -> None:
    """The output folder cannot be created (a file has its name): one line, not an OSError traceback."""
    assert_refused(run_cli(ws, "compile", "snn.pt", "-o", "X.npy/m.net"), "X.npy")


def test_simulate_output_in_new_folder(ws: Path) -> None:
    """Like train/convert/compile, simulate creates a missing output folder (and leaves no temp file)."""
    run = run_cli(ws, "simulate", "model.net", "--input", "X.npy", "-o", "sub/Y.npy")
    assert run.rc == 0 and "Traceback" not in run.stderr, run.stderr
    assert os.listdir(ws / "sub") == ["Y.npy"]
    assert np.load(ws / "sub" / "Y.npy").shape == (2, 10, T)


# ==========================================================================================================
# 11. options the commands must refuse
# ==========================================================================================================
OPTION_CASES = {
    "convert-twice": (("convert", "snn.pt", "-T", str(T), "-o", "s2.pt"), ("snn.pt", "ANN")),
    "convert-timesteps-0": (("convert", "ann.pt", "--timesteps", "0", "-o", "s2.pt"), ("--timesteps", "0")),
    "evaluate-samples-0": (("evaluate", "model.net", "--samples", "0"), ("--samples", "0")),
    "evaluate-timesteps-0": (("evaluate", "model.net", "--samples", "2", "--timesteps", "0"), ("--timesteps", "0")),
    "verify-workers-0": (("verify", "model.net", "--samples", "2", "--workers", "0"), ("--workers", "0")),
    "stdb-timesteps-0": (
        ("train", "--method", "stdb", "--init", "snn.pt", "-T", "0", "-o", "x.pt"),
        ("--timesteps", "0"),
    ),
    "stdb-alpha-0": (
        ("train", "--method", "stdb", "--init", "snn.pt", "-T", "4", "--alpha", "0", "-o", "x.pt"),
        ("alpha", "0"),
    ),
    "stdb-beta-negative": (
        ("train", "--method", "stdb", "--init", "snn.pt", "-T", "4", "--beta", "-1", "-o", "x.pt"),
        ("beta", "-1"),
    ),
    "stdb-init-ann": (("train", "--method", "stdb", "--init", "ann.pt", "-T", "4", "-o", "x.pt"), ("ann.pt", "ANN")),
    "noise-std-negative": (("train", "--method", "noise", "--noise-std", "-1", "-o", "x.pt"), ("-1",)),
    "noise-deploy-epochs-negative": (
        ("train", "--method", "noise", "--deploy-epochs", "-1", "-o", "x.pt"),
        ("--deploy-epochs", "-1", ">= 0"),
    ),
    "noise-deploy-lr-0": (("train", "--method", "noise", "--deploy-lr", "0", "-o", "x.pt"), ("--deploy-lr", "0")),
    "compile-input-bits-0": (("compile", "snn.pt", "--input-bits", "0", "-o", "m.net"), ("--input-bits", "0")),
    "compile-input-bits-poisson": (
        ("compile", "snn.pt", "--input-bits", "4", "-o", "m.net"),
        ("--input-bits", "poisson"),
    ),
    "bptt-timesteps-0": (("train", "--method", "bptt", "-T", "0", "-o", "x.pt"), ("--timesteps", "0")),
    "bptt-lr-negative": (("train", "--method", "bptt", "--lr", "-1", "-o", "x.pt"), ("--lr", "-1")),
    "simulate-device": (
        ("simulate", "model.net", "--input", "X.npy", "-o", "Y.npy", "--device", "gpu7"),
        ("--device", "gpu7"),
    ),
}


@pytest.mark.parametrize("case", list(OPTION_CASES))
def test_bad_option(ws: Path, case: str) -> None:
    args, needles = OPTION_CASES[case]
    assert_refused(run_cli(ws, *args), *needles)


def test_noise_deploy_options_are_not_abbreviated(tmp_path: Path) -> None:
    """``--deploy`` is a prefix of --deploy-epochs and --deploy-lr: an unknown option, never one of them."""
    run = run_cli(tmp_path, "train", "--method", "noise", "--deploy", "2", "-o", "x.pt")
    assert run.rc == 2 and "unrecognized arguments: --deploy" in run.stderr and not run.new_files
