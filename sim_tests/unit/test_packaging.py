"""The wheel holds every module (issue 18.5): setup.py finds the subpackages, nothing is listed by hand.

The wheel is built from a copy of the package sources in a temporary folder, so the build's ``build/`` and
``*.egg-info`` never land in the checkout (they are git-ignored there too, for a ``pip install .``).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOPS = ("compiler", "training", "deploy")  # installed as loihic.compiler, ...; loihic/ is loihic itself
PROJECT_FILES = ("setup.py", "pyproject.toml", "README.md")


def build_wheel(dest: Path) -> Path:
    """The wheel of the checkout's package sources, built in a copy under ``dest``; returns its path."""
    src = dest / "src"
    src.mkdir(parents=True)
    for name in PROJECT_FILES:
        shutil.copy2(ROOT / name, src / name)
    for top in (*TOPS, "loihic"):
        shutil.copytree(ROOT / top, src / top, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    cmd = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dest), str(src)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert res.returncode == 0, f"pip wheel failed:\n{res.stdout}\n{res.stderr}"
    (wheel,) = dest.glob("loihic-*.whl")
    return wheel


def source_modules() -> set[str]:
    """Every .py file of the four folders, as its path inside the wheel."""
    mods = {f"loihic/{p.relative_to(ROOT / 'loihic').as_posix()}" for p in (ROOT / "loihic").rglob("*.py")}
    for top in TOPS:
        mods |= {f"loihic/{p.relative_to(ROOT).as_posix()}" for p in (ROOT / top).rglob("*.py")}
    return {m for m in mods if "__pycache__" not in m}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    with zipfile.ZipFile(build_wheel(tmp_path_factory.mktemp("wheel"))) as zf:
        yield zf


def test_every_module_is_in_the_wheel(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    expected = source_modules()
    assert len(expected) > 50  # the folders were found
    missing = sorted(expected - names)
    assert not missing, f"modules missing from the wheel (setup.py's package discovery): {missing}"
    stray = sorted(n for n in names if n.endswith(".py") and n not in expected)
    assert not stray, f"files in the wheel that are not package sources: {stray}"
    tops = {n.split("/", 1)[0] for n in names}
    assert tops == {"loihic", *(t for t in tops if t.endswith(".dist-info"))}, tops  # no top-level 'compiler'


def test_console_script_and_dependencies(wheel: zipfile.ZipFile) -> None:
    info = next(n.split("/", 1)[0] for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    entry_points = wheel.read(f"{info}/entry_points.txt").decode()
    lines = [line.replace(" ", "") for line in entry_points.splitlines()]
    assert "[console_scripts]" in lines and "loihic=loihic.deploy.cli.main:main" in lines, entry_points
    meta = wheel.read(f"{info}/METADATA").decode()
    for dep in ("torch", "numpy", "h5py", "nir", "scikit-learn"):
        assert f"Requires-Dist: {dep}" in meta, dep


def test_build_outputs_are_ignored() -> None:
    """``pip install .`` in the checkout writes build/ and loihic.egg-info/ there: git ignores both."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    for path in ("build/lib/loihic/x.py", "loihic.egg-info/PKG-INFO", "dist/loihic-0.1.0-py3-none-any.whl"):
        res = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", path], check=False)
        assert res.returncode == 0, f"{path} is not git-ignored"
