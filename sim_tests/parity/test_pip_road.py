"""The pip road a new user takes (issue 18.5), end to end, outside the checkout: the wheel -> a fresh venv ->
``pip install`` the wheel beside torch -> ``loihic install-lava`` -> ``loihic demo``, which must print the
README's demo table.  ``make test-pip`` runs it (about 3 minutes on 2 cores with the registry at hand:
installing is most of it).  Stage times are printed (``pytest -s``) and kept in the venv's folder."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sim_tests.unit.test_packaging import ROOT, build_wheel

TORCH_SPEC = os.environ.get("LOIHIC_TORCH_SPEC", "torch==2.13.0")  # the Makefile's TORCH_SPEC


def readme_demo_table() -> list[str]:
    """The README's demo table, the accuracy rows and the parity line (its time column is left out)."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"It prints a table like this.*?```\n(.*?)```", text, re.S)
    assert block, "README lost its demo table"
    return [line.rstrip() for line in block.group(1).splitlines() if line.strip() and not line.startswith("stage")]


def _run(cmd: list[str], cwd: Path, env: dict[str, str], what: str, timeout: int = 1800) -> str:
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert res.returncode == 0, f"{what} failed (rc {res.returncode}):\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}"
    return res.stdout


@pytest.mark.slow
def test_wheel_install_lava_demo(tmp_path: Path) -> None:
    away = tmp_path / "elsewhere"  # the user's folder: no checkout on the path
    away.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    times: dict[str, float] = {}

    t = time.perf_counter()
    wheel = build_wheel(tmp_path / "wheel")
    times["wheel"] = time.perf_counter() - t

    t = time.perf_counter()
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], away, env, "python -m venv")
    py, loihic = str(venv / "bin" / "python"), str(venv / "bin" / "loihic")
    pip = [py, "-m", "pip", "--disable-pip-version-check", "install", "-q"]
    _run([*pip, TORCH_SPEC, str(wheel)], away, env, f"pip install {TORCH_SPEC} {wheel.name}")
    times["pip_install"] = time.perf_counter() - t
    where = _run([py, "-c", "import loihic; print(loihic.__file__)"], away, env, "import loihic").strip()
    assert Path(where).is_relative_to(venv), f"loihic imported from {where}, not the venv"

    t = time.perf_counter()
    _run([loihic, "install-lava"], away, env, "loihic install-lava")
    times["install_lava"] = time.perf_counter() - t

    t = time.perf_counter()
    out = _run([loihic, "demo", "--workdir", "demo"], away, env, "loihic demo")
    times["demo"] = time.perf_counter() - t
    times["total"] = sum(times.values())
    (tmp_path / "times.json").write_text(json.dumps(times, indent=2))
    print(f"pip road seconds: {json.dumps({k: round(v, 1) for k, v in times.items()})}")

    printed = [line.rstrip() for line in out.splitlines()]
    for row in readme_demo_table():
        assert any(line.startswith(row) for line in printed), f"README row not printed: {row!r}\n{out}"
    assert sorted(p.name for p in (away / "demo").iterdir()) == sorted(
        ["ann.pt", "snn.pt", "model.net", "demo.json", "raster.png"]
    )
