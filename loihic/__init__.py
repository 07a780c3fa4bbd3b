"""loihic: compile trained networks to Loihi fixed point, write lava-dl netx HDF5, run and verify on Lava.

Python API (see :mod:`loihic.api`): ``loihic.convert``, ``loihic.compile``, ``loihic.evaluate``,
``loihic.verify``, ``loihic.simulate``.  Every refusal of bad input is a ``loihic.LoihicError`` (a
``ValueError``), with one line saying what is wrong.

Sub-packages (folders at the top of the repository, installed under this namespace):
``loihic.training`` (weights), ``loihic.compiler`` (IR, passes, netx writer), ``loihic.deploy``
(emulator, Lava runner, verification, CLI).
"""

from loihic.api import compile, convert, evaluate, simulate, verify  # noqa: A004
from loihic.compiler.errors import LoihicError
from loihic.version import __version__

__all__ = ["LoihicError", "compile", "convert", "evaluate", "simulate", "verify", "__version__"]
