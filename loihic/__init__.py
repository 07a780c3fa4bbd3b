"""loihic: compile trained networks to Loihi fixed point, write lava-dl netx HDF5, run and verify on Lava.

Sub-packages (folders at the top of the repository, installed under this namespace):
``loihic.training`` (weights), ``loihic.compiler`` (IR, passes, netx writer), ``loihic.deploy``
(emulator, Lava runner, verification, CLI).
"""

__version__ = "0.1.0"
