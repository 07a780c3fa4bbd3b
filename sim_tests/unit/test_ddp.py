"""Data-parallel ``loihic train`` under ``torchrun`` (training/distributed.py): 2 ranks with gloo on CPU.

- one process: the weights are bit for bit those of the code before DDP (sha256 pinned at 627291b);
- 2 ranks, ANN without dropout (LeNet-5), batches that split evenly: the weights equal the one-process run's up
  to float summation order (40 Adam steps: |diff| <= 1e-4, against weights of size ~0.3);
- 2 ranks, every method (ANN, noise, BPTT, STDB): runs, only rank 0 writes, and it learns (ANN / noise / BPTT:
  the training loss after 3 epochs is below that after 1; STDB: test accuracy above its initial one).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

VENV_BIN = Path(sys.executable).parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def _run(cwd: Path, *args: str, ranks: int = 0) -> dict:
    cmd = (
        [str(VENV_BIN / "torchrun"), "--standalone", f"--nproc_per_node={ranks}", "-m", "loihic"]
        if ranks
        else [
            sys.executable,
            "-m",
            "loihic",
        ]
    )
    proc = subprocess.Popen(
        [*cmd, *args, "--force", "--json"], cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    )  # fmt: skip
    try:
        out, err = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # torchrun and both ranks
        proc.communicate()
        raise
    assert proc.returncode == 0, err[-2000:]
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert len(lines) == 1, out  # one report: rank 0's
    return lines[0]


def _state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


def _sha(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].contiguous().numpy().tobytes())
    return h.hexdigest()


ANN = ("train", "--method", "ann", "--model", "mlp", "--dataset", "digits", "--seed", "0")


def test_one_process_is_unchanged(tmp_path: Path) -> None:
    _run(tmp_path, *ANN, "--epochs", "1", "-o", "a.pt")
    assert _sha(_state(tmp_path / "a.pt")) == "77691d47c023722c46787fa73101b24b30df931526c24b0b1057135437bc3ad1"


def test_two_ranks_equal_one_process(tmp_path: Path) -> None:
    args = ("train", "--model", "lenet5", "--dataset", "digits", "--epochs", "2", "--seed", "0")
    even = ("--limit-train", "1280", "--batch-size", "64")  # 20 batches of 64: 32 per rank
    _run(tmp_path, *args, *even, "-o", "one.pt")
    res = _run(tmp_path, *args, *even, "-o", "two.pt", ranks=2)
    one, two = _state(tmp_path / "one.pt"), _state(tmp_path / "two.pt")
    for k in one:
        torch.testing.assert_close(two[k], one[k], rtol=0, atol=1e-4)
    assert torch.load(tmp_path / "two.pt", weights_only=True)["hyperparams"]["world_size"] == 2
    assert res["output"] == "two.pt"


@pytest.mark.parametrize("method", ["ann", "noise", "bptt"])
def test_two_ranks_learn(tmp_path: Path, method: str) -> None:
    args = ("train", "--method", method, "--model", "mlp", "--dataset", "digits", "--seed", "0")
    extra = () if method == "ann" else ("--timesteps", "2")
    if method == "noise":  # the noise training's own loss (its deployment stage runs the same _fit loop)
        extra = (*extra, "--deploy-epochs", "0")
    losses = []
    for epochs in (1, 3):
        _run(tmp_path, *args, *extra, "--epochs", str(epochs), "-o", f"e{epochs}.pt", ranks=2)
        losses.append(torch.load(tmp_path / f"e{epochs}.pt", weights_only=True)["metrics"]["train_loss"])
    assert losses[1] < losses[0], losses


def test_two_ranks_stdb(tmp_path: Path) -> None:
    _run(tmp_path, *ANN, "--epochs", "1", "-o", "a.pt")
    _run(tmp_path, "convert", "a.pt", "--timesteps", "4", "-o", "snn.pt")
    res = _run(
        tmp_path, "train", "--method", "stdb", "--init", "snn.pt", "-T", "4", "--epochs", "2", "-o", "s.pt", ranks=2
    )
    assert res["test_accuracy"] > res["test_accuracy_init"], res
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt", "s.pt", "snn.pt"]
