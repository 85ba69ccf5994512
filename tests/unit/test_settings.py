from __future__ import annotations

import dataclasses
import logging
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from suppression.cli import build_parser, main
from suppression.errors import ConfigError
from suppression.settings import Settings, settings_from_args


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """main() configures logging for the process; give the next test what it had."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    hooks = sys.excepthook, threading.excepthook
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    sys.excepthook, threading.excepthook = hooks
    logging.captureWarnings(False)


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


# -- validation: one place, flags and environment alike ------------------------

BAD_FLAGS = [
    (["check", "--log-level", "verbose", "+1"], "--log-level: invalid choice: 'verbose'"),
    (["check", "--output", "xml", "+1"], "--output: invalid choice: 'xml'"),
    (["check", "--log-format", "yaml", "+1"], "--log-format: invalid choice: 'yaml'"),
    (["serve", "--port", "70000"], "--port 70000: must be from 0 to 65535"),
    (["serve", "--metrics-port", "-1"], "--metrics-port -1: must be from 0 to 65535"),
    (["serve", "--workers", "0"], "--workers 0: must be 1 or more"),
    (["serve", "--max-batch", "0"], "--max-batch 0: must be 1 or more"),
    (["serve", "--grace", "nan"], "--grace nan: give a finite number"),
    (["check", "--timeout", "0", "+1"], "--timeout 0.0: must be above 0"),
    (["serve", "--port", "abc"], "--port: invalid int value: 'abc'"),
    (["serve", "--redis-url", "localhost:6379"], "--redis-url 'localhost:6379' is not a Redis URL"),
    (["serve", "--redis-url", "redis://h:6379/x"], "the database after the host must be a number"),
    (["check", "--target", "h:99999", "+1"], "--target 'h:99999': the port must be"),
    (["serve", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    ([], "the following arguments are required: command"),
]


@pytest.mark.parametrize(("argv", "message"), BAD_FLAGS)
def test_bad_flags_are_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1, captured.err
    assert captured.err.startswith("suppression: error: ")
    assert message in captured.err
    assert "Traceback" not in captured.err


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("SUPPRESSION_LOG_LEVEL", "verbose", "SUPPRESSION_LOG_LEVEL 'verbose': use one of DEBUG"),
        ("SUPPRESSION_LOG_FORMAT", "yaml", "SUPPRESSION_LOG_FORMAT 'yaml': use one of text, json"),
        ("SUPPRESSION_OUTPUT", "xml", "SUPPRESSION_OUTPUT 'xml': use one of table, json"),
        ("SUPPRESSION_PORT", "70000", "SUPPRESSION_PORT 70000: must be from 0 to 65535"),
        ("SUPPRESSION_THREADS", "0", "SUPPRESSION_THREADS 0: must be 1 or more"),
        ("SUPPRESSION_SNAPSHOT_KEEP", "0", "SUPPRESSION_SNAPSHOT_KEEP 0: must be 1 or more"),
        ("SUPPRESSION_WRITE_TIMEOUT", "-1", "SUPPRESSION_WRITE_TIMEOUT -1.0: must be above 0"),
        ("SUPPRESSION_INPUT_FORMAT", "xls", "SUPPRESSION_INPUT_FORMAT 'xls': use one of auto"),
        ("SUPPRESSION_KIND", "friends", "SUPPRESSION_KIND 'friends': use one of registry"),
    ],
)
def test_bad_environment_values_name_the_variable(variable: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({variable: value})
    assert str(caught.value).startswith(message)


def test_a_flag_overrides_a_bad_environment_value() -> None:
    args = build_parser().parse_args(["serve", "--port", "6000"])
    assert settings_from_args(args, {"SUPPRESSION_PORT": "70000"}).port == 6000


def test_bad_environment_values_exit_2_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SUPPRESSION_LOG_LEVEL", "verbose")
    assert main(["check", "+12025550147"]) == 2
    err = capsys.readouterr().err
    assert (
        err == "suppression: error: SUPPRESSION_LOG_LEVEL 'verbose': use one of DEBUG, "
        "INFO, WARNING, ERROR, CRITICAL\n"
    )


def test_choices_take_any_case_and_empty_means_the_default() -> None:
    args = build_parser().parse_args(["check", "--log-level", "debug", "--output", "JSON", "+1"])
    settings = settings_from_args(args, {})
    assert (settings.log_level, settings.output) == ("DEBUG", "json")
    assert Settings.from_env({"SUPPRESSION_LOG_LEVEL": ""}).log_level == "INFO"
    assert Settings(log_format="Json").log_format == "json"


def test_direct_construction_is_validated_too() -> None:
    with pytest.raises(ConfigError, match="--port 70000"):
        Settings(port=70000)
    with pytest.raises(ConfigError, match="--max-staleness 0: must be above 0"):
        Settings(max_staleness=0)


def test_streams_are_named_and_distinct() -> None:
    with pytest.raises(ConfigError, match="--stream is empty"):
        Settings.from_env({"SUPPRESSION_STREAM": ""})
    with pytest.raises(ConfigError, match="appended to the change log itself"):
        Settings(dead_letter_stream="suppression:deltas")


def test_redis_url_errors_never_echo_a_password() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings(redis_url="redis://user:s3cret@h:99999/0")
    assert "s3cret" not in str(caught.value)
    assert "***@h:99999" in str(caught.value)


def test_list_kinds_match_the_list_module() -> None:
    from suppression.lists import ListKind
    from suppression.settings import LIST_KINDS

    assert LIST_KINDS == tuple(kind.value for kind in ListKind)


def test_help_names_every_choice() -> None:
    subcommands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for spec in dataclasses.fields(Settings):
        for command in spec.metadata["commands"]:
            if command not in subcommands:
                continue
            text = " ".join(subcommands[command].format_help().split())
            for choice in spec.metadata["choices"]:
                assert choice in text, (command, spec.name, choice)


def test_targets_get_the_default_port() -> None:
    settings = Settings.from_env({"SUPPRESSION_TARGET": "localhost,[::1],10.0.0.7:6000"})
    assert settings.target == ("localhost:50051", "[::1]:50051", "10.0.0.7:6000")


@pytest.mark.parametrize("script", ["suppression", "loader"])
def test_version_comes_from_the_package_metadata(
    script: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from importlib import metadata

    from loader.cli import main as loader_main

    entry = main if script == "suppression" else loader_main
    with pytest.raises(SystemExit) as caught:
        entry(["--version"])
    assert caught.value.code == 0
    out = capsys.readouterr().out
    assert out.strip().endswith(metadata.version("suppression"))
    assert out.startswith("suppression")
