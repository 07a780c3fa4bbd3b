"""A demo that fails removes what it wrote (issue 18.5): the same command then runs again without --force."""

from __future__ import annotations

from pathlib import Path

import pytest

from loihic.compiler.errors import LoihicError
from loihic.deploy.cli import demo
from loihic.deploy.cli.main import main


def _fail_after_compile(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lava is not needed (the failure comes first); reading the compiled file fails, after ann.pt,
    snn.pt and model.net are written."""
    import loihic.deploy.lava.install as install

    def broken(path):  # noqa: ANN001, ANN202
        raise LoihicError(f"{path}: injected failure")

    monkeypatch.setattr(install, "require_lava", lambda what: None)
    monkeypatch.setattr(demo, "read_netx", broken)


def test_failed_demo_removes_its_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # noqa: ANN001
    _fail_after_compile(monkeypatch)
    work = tmp_path / "demo"
    args = ["demo", "--workdir", str(work), "--epochs", "1", "--timesteps", "8"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "injected failure" in err
    assert "removed what this run wrote (ann.pt, snn.pt, model.net" in err and "runs again" in err
    assert not work.exists()  # the folder it created, empty again, is gone too

    work.mkdir()
    (work / "notes.txt").write_text("mine")
    assert main(args) == 2  # the same command again: no "already exists"
    assert "already exists" not in capsys.readouterr().err
    assert sorted(p.name for p in work.iterdir()) == ["notes.txt"]  # what it did not write stays


def test_refused_demo_keeps_existing_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # noqa: ANN001
    """Refused before any work (a file exists, no --force): nothing is removed."""
    _fail_after_compile(monkeypatch)
    (tmp_path / "snn.pt").write_text("an earlier run's")
    assert main(["demo", "--workdir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "already exists (use --force to overwrite)" in err and "removed" not in err
    assert (tmp_path / "snn.pt").read_text() == "an earlier run's"
