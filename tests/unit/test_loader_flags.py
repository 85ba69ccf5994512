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
