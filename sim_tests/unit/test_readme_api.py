"""The README's Python API example runs as written (the block after ``<!-- readme-api-example -->``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_example() -> str:
    text = README.read_text()
    match = re.search(r"<!-- readme-api-example -->\s*```python\n(.*?)```", text, re.S)
    assert match, "README lost its API example block"
    return match.group(1)


@pytest.mark.lava
def test_readme_api_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # noqa: ANN001
    monkeypatch.chdir(tmp_path)
    scope: dict = {"__name__": "readme_example"}
    exec(compile(readme_example(), str(README), "exec"), scope)  # noqa: S102 - our own README
    out = capsys.readouterr().out
    acc = float(re.search(r"emulator accuracy ([0-9.]+)", out).group(1))
    assert acc > 0.9, out
    assert "Lava identical: True" in out
    assert scope["out"].output_spikes.shape[0] == 4
    assert (tmp_path / "digits_net.net").is_file()
