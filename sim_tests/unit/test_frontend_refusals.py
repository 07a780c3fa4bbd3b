"""Models loihic cannot take say what they are and how to export instead (issue 18.6): recurrent layers
(LSTM, GRU, RNN and their cells) and a whole ``nn.Module`` saved with ``torch.save(model)``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from loihic.compiler.errors import CheckpointError, UnsupportedLayerError
from loihic.compiler.load.pt2 import program_from_module
from loihic.compiler.load.torch_export import network_from_program
from loihic.deploy.cli.main import main
from loihic.training.imported import load_ann


class Sequence(nn.Module):
    """A sequence classifier: (batch, steps, features) through a recurrent layer, the last step read out."""

    def __init__(self, cell: type[nn.Module]) -> None:
        super().__init__()
        self.cell = cell(8, 16, batch_first=True) if cell in (nn.LSTM, nn.GRU, nn.RNN) else cell(8, 16)
        self.head = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.cell, (nn.LSTM, nn.GRU, nn.RNN)):
            y, _ = self.cell(x)
            return self.head(y[:, -1])
        h = self.cell(x[:, 0])
        return self.head(h[0] if isinstance(h, tuple) else h)


@pytest.mark.filterwarnings("ignore:The tensor attributes")  # torch.export's note on nn.LSTM's flat weights
@pytest.mark.parametrize(
    ("cell", "name"),
    [
        (nn.LSTM, "nn.LSTM"),
        (nn.GRU, "nn.GRU"),
        (nn.RNN, "nn.RNN"),
        (nn.LSTMCell, "nn.LSTMCell"),
        (nn.GRUCell, "nn.GRUCell"),
    ],
)
def test_recurrent_layer_is_named_with_a_way_out(cell: type[nn.Module], name: str) -> None:
    prog = program_from_module(Sequence(cell).eval(), np.random.default_rng(0).random((2, 5, 8)))
    with pytest.raises(UnsupportedLayerError) as exc:
        network_from_program(prog)
    text = str(exc.value)
    assert "cell (aten." in text, text  # the module path and the op
    for needle in (f"an {name}, a recurrent layer", "feed-forward", "torch.export.save(torch.export.export("):
        assert needle in text, text


class Mlp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(64, 32), nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


@pytest.mark.parametrize("model", [Mlp(), nn.Sequential(nn.Linear(64, 10))], ids=["own-class", "sequential"])
def test_torch_save_of_a_whole_model_says_how_to_export(tmp_path: Path, model: nn.Module, capsys) -> None:  # noqa: ANN001
    path = tmp_path / "model.pt"
    torch.save(model, path)
    with pytest.raises(CheckpointError) as exc:
        load_ann(path)
    text = str(exc.value)
    for needle in ("whole nn.Module saved with torch.save(model)", "never unpickles", "torch.export.save("):
        assert needle in text, text
    np.save(tmp_path / "calib.npy", np.random.default_rng(0).random((8, 64)).astype(np.float32))
    rc = main(["convert", str(path), "--calib", str(tmp_path / "calib.npy"), "-o", str(tmp_path / "snn.pt")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("loihic: error:") == 1 and "torch.save(model)" in err, err
    assert not (tmp_path / "snn.pt").exists()


def test_other_pickles_keep_the_plain_refusal(tmp_path: Path) -> None:
    """A pickle that is not a module (a dict holding a pathlib.Path) is not called one."""
    path = tmp_path / "other.pt"
    torch.save({"format": "x", "obj": Path("p")}, path)
    with pytest.raises(CheckpointError) as exc:
        load_ann(path)
    assert "torch.save(model)" not in str(exc.value) and "refused" in str(exc.value)
