"""Help a user can trust (issue 18.6): every option shows its default, no reST markup, --seed only where
it does something, an unknown option answered with that verb's usage, ``loihic.LoihicError`` exported,
and torch's note about read-only arrays never shown."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

import loihic
from loihic.compiler.errors import CheckpointError, InputError, LoihicError
from loihic.deploy.cli.main import build_parser, main

PARSER = build_parser()
VERBS: dict[str, argparse.ArgumentParser] = next(
    a.choices for a in PARSER._actions if isinstance(a, argparse._SubParsersAction)
)
SEEDED = {"train", "convert", "compile", "verify", "evaluate", "report", "demo"}  # the handlers read args.seed


def _options(p: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in p._actions if a.option_strings and not isinstance(a, (argparse._HelpAction,))]


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_every_option_says_its_default(verb: str) -> None:
    p = VERBS[verb]
    fmt = p._get_formatter()
    silent = []
    for action in _options(p):
        if isinstance(action, (argparse._StoreTrueAction, argparse._VersionAction)) or action.required:
            continue  # a flag is off unless given; a required option has no default
        text = fmt._get_help_string(action) or ""
        if "default" not in text:
            silent.append(f"{'/'.join(action.option_strings)}: {text!r}")
    assert not silent, f"loihic {verb}: options whose help does not say their default: {silent}"
    rendered = p.format_help()
    assert "(default: None)" not in rendered and "(default: False)" not in rendered


@pytest.mark.parametrize("verb", ["", *sorted(VERBS)])
def test_help_has_no_markup(verb: str) -> None:
    text = (VERBS[verb] if verb else PARSER).format_help()
    for markup in (":mod:", ":func:", ":class:", ":meth:", "``"):
        assert markup not in text, f"loihic {verb} --help shows {markup!r}"


def test_help_names_folder_and_nir_timesteps() -> None:
    report_o = next(a for a in VERBS["report"]._actions if "-o" in a.option_strings)
    assert "folder" in report_o.help
    compile_t = next(a for a in VERBS["compile"]._actions if "--timesteps" in a.option_strings)
    assert "required for a NIR graph" in compile_t.help


def test_seed_only_where_it_does_something() -> None:
    seeded = {verb for verb, p in VERBS.items() if any("--seed" in a.option_strings for a in p._actions)}
    assert seeded == SEEDED


@pytest.mark.parametrize(
    "argv",
    [
        ["simulate", "m.net", "--input", "X.npy", "-o", "Y.npy", "--bogus"],
        ["compile", "snn.pt", "-o", "m.net", "--calib-s", "3"],
        ["export-nir", "m.net", "-o", "m.nir", "--seed", "1"],
    ],
)
def test_unknown_option_shows_the_verbs_usage(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: loihic {argv[0]} "), err
    assert f"loihic {argv[0]}: error: unrecognized arguments: {argv[-2] if argv[-1].isdigit() else argv[-1]}" in err


def test_loihic_error_is_exported() -> None:
    assert loihic.LoihicError is LoihicError and "LoihicError" in loihic.__all__
    assert issubclass(CheckpointError, loihic.LoihicError) and issubclass(InputError, loihic.LoihicError)


def test_non_writable_array_warning_is_not_shown() -> None:
    """torch warns (once per process) when a read-only numpy array becomes a tensor; the CLI hides it."""
    code = "import numpy as np, torch{imp}\na = np.zeros(3); a.flags.writeable = False\ntorch.as_tensor(a)\n"
    quiet = "; from loihic.deploy.cli.main import _quiet_warnings; _quiet_warnings()"
    loud = subprocess.run([sys.executable, "-c", code.format(imp="")], capture_output=True, text=True, check=True)
    if "not writable" not in loud.stderr:
        pytest.skip("this torch does not warn about read-only arrays")
    res = subprocess.run([sys.executable, "-c", code.format(imp=quiet)], capture_output=True, text=True, check=True)
    assert "not writable" not in res.stderr, res.stderr
