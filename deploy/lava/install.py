"""``loihic install-lava``: Lava into the current Python environment, with the steps ``make setup`` uses.

lava-nc 0.10.0 and lava-dl 0.6.0 are Lava's last releases (the project is archived).  Their metadata pins
Python < 3.11, numpy < 2 and torch 2.3 with torchvision, so they are installed without their declared
dependencies and then the runtime dependencies they really import are installed
(:mod:`loihic.deploy.lava.compat` makes them import on Python 3.11+).  ``make setup`` calls this command,
so a checkout and a ``pip install loihic`` user get the same Lava.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Callable

from loihic.compiler.errors import LoihicError

LAVA_PACKAGES = ("lava-nc==0.10.0", "lava-dl==0.6.0")  # installed --no-deps --ignore-requires-python
LAVA_RUNTIME_DEPS = ("asteval>=0.9.31,<0.10", "networkx<=2.8.7")  # what they import at run time
HOWTO = "run 'loihic install-lava' (in a checkout, 'make setup' does the same)"


def pip_commands(python: str = sys.executable) -> list[list[str]]:
    pip = [python, "-m", "pip", "--disable-pip-version-check", "install", "-q"]
    return [[*pip, "--no-deps", "--ignore-requires-python", *LAVA_PACKAGES], [*pip, *LAVA_RUNTIME_DEPS]]


def lava_installed() -> bool:
    """Both lava-nc and lava-dl are importable (checked without importing them)."""
    try:
        return importlib.util.find_spec("lava") is not None and importlib.util.find_spec("lava.lib.dl") is not None
    except (ImportError, ValueError):
        return False


def require_lava(what: str) -> None:
    """Fail before long work when Lava is missing."""
    if not lava_installed():
        raise LoihicError(f"{what} needs Lava (lava-nc 0.10.0, lava-dl 0.6.0), which is not installed: {HOWTO}")


def install(dry_run: bool = False, on_command: Callable[[list[str]], None] | None = None) -> list[list[str]]:
    """Run (or with ``dry_run`` only list) the pip commands; ``on_command`` sees each before it runs."""
    cmds = pip_commands()
    for cmd in cmds:
        if on_command is not None:
            on_command(cmd)
        if not dry_run and subprocess.run(cmd, check=False).returncode != 0:
            raise LoihicError(f"'{' '.join(cmd[2:])}' failed (see pip's output above)")
    if not dry_run:
        check = [sys.executable, "-c", "from loihic.deploy.lava.compat import import_netx; import_netx()"]
        res = subprocess.run(check, capture_output=True, text=True, check=False)
        if res.returncode != 0:
            last = (res.stderr.strip().splitlines() or ["unknown error"])[-1]
            raise LoihicError(f"Lava was installed but does not import: {last}")
    return cmds
