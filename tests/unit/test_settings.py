from __future__ import annotations

from pathlib import Path

import pytest

from suppression.cli import build_parser
from suppression.errors import ConfigError
from suppression.settings import Settings, settings_from_args


def test_environment_then_flags() -> None:
    env = {
        "SUPPRESSION_PORT": "6000",
        "SUPPRESSION_LIST": "a=x.txt, b=y.txt",
        "SUPPRESSION_SKIP_INVALID": "yes",
        "SUPPRESSION_DATA_DIR": "/data",
        "SUPPRESSION_GRACE": "2.5",
    }
    settings = Settings.from_env(env)
    assert settings.port == 6000
    assert settings.list == ("a=x.txt", "b=y.txt")
    assert settings.skip_invalid is True
    assert settings.data_dir == Path("/data")
    assert settings.grace == 2.5
    args = build_parser().parse_args(["serve", "--port", "7000", "--list", "c=z.txt"])
    flagged = settings_from_args(args, env)
    assert flagged.port == 7000
    assert flagged.list == ("c=z.txt",)
    assert flagged.data_dir == Path("/data")


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="SUPPRESSION_PORT='abc' is not a valid int"):
        Settings.from_env({"SUPPRESSION_PORT": "abc"})
    with pytest.raises(ConfigError, match="SUPPRESSION_SKIP_INVALID"):
        Settings.from_env({"SUPPRESSION_SKIP_INVALID": "maybe"})


def test_every_field_has_a_flag_and_help() -> None:
    import dataclasses

    parser_help = {}
    for command in ("serve", "check"):
        sub = build_parser()._subparsers._group_actions[0].choices[command]  # type: ignore[union-attr]
        parser_help[command] = sub.format_help()
    for spec in dataclasses.fields(Settings):
        assert spec.metadata["help"], spec.name
        flag = "--" + spec.name.replace("_", "-")
        for command in spec.metadata["commands"]:
            if command in parser_help:
                assert flag in parser_help[command], (command, flag)
                assert f"SUPPRESSION_{spec.name.upper()}" in parser_help[command]
