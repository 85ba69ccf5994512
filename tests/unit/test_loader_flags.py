"""Every loader option is a flag of its subcommand and a SUPPRESSION_* variable."""

from __future__ import annotations

import argparse
import dataclasses

from loader.cli import build_parser, main
from suppression.settings import Settings


def test_every_loader_field_is_a_flag_with_its_variable() -> None:
    parser = build_parser()
    subcommands = next(
        action for action in parser._actions if isinstance(action, argparse._SubParsersAction)
    )
    for command in ("import", "publish", "compact"):
        text = subcommands.choices[command].format_help()
        for spec in dataclasses.fields(Settings):
            if command in spec.metadata["commands"]:
                assert "--" + spec.name.replace("_", "-") in text, (command, spec.name)
                assert f"SUPPRESSION_{spec.name.upper()}" in text, (command, spec.name)


def test_missing_options_are_errors_that_say_what_to_give(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["compact"]) == 2
    assert "--data-dir and --redis-url" in capsys.readouterr().err
    assert main(["publish", "add", "+8613800138000", "--source", "app"]) == 2
    assert "--list-name" in capsys.readouterr().err
    assert main(["import", "x.txt", "--list-name", "n", "--kind", "friends"]) == 2
    assert "choose from 'registry', 'opt_out', 'campaign'" in capsys.readouterr().err


def test_publish_names_every_argument_that_is_not_a_number(capsys) -> None:  # type: ignore[no-untyped-def]
    # No Redis listens on port 1: the arguments are refused before any connection.
    numbers = ["+86 12", "+8613800138000", "+999xxxx", "2125550123"]
    flags = ["--list-name", "internal", "--source", "app", "--redis-url", "redis://127.0.0.1:1/0"]
    argv = ["publish", "add", *numbers, *flags]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert (
        "3 invalid argument(s) in the command line: argument 1 (too_short), "
        "argument 3 (unparseable), argument 4 (missing_region) (national forms need --region)"
    ) in err
    assert "13800138000" not in err and "5550123" not in err, "numbers never reach messages"
