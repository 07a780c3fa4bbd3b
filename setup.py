"""Package layout: the design card keeps compiler/, training/ and deploy/ at the top of the repository; they are
installed under one namespace (``loihic.compiler`` = compiler/, ...) so that ``from loihic.compiler import ir``
never collides with another project's top-level ``compiler`` package.  Every subpackage below the three folders
is found here, never listed by hand (sim_tests/unit/test_packaging.py builds the wheel and checks it)."""

from setuptools import find_namespace_packages, setup

TOPS = ("compiler", "training", "deploy")

found = find_namespace_packages(include=[f"{top}{tail}" for top in TOPS for tail in ("", ".*")])
setup(
    packages=["loihic", *(f"loihic.{p}" for p in found if "__pycache__" not in p)],
    package_dir={"loihic": "loihic", **{f"loihic.{top}": top for top in TOPS}},
)
