"""The argument parser both console scripts share: usage errors as one line, and ``--version``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, NoReturn

from suppression.errors import ConfigError

__all__ = ["CommandParser", "UsageError", "add_version"]


class UsageError(ConfigError):
    """The command line itself is wrong: an unknown flag, a missing argument, a bad value."""


class CommandParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are raised, not printed with the usage and exited.

    The console script reports a :class:`UsageError` like any other error: one
    line (JSON with ``--log-format json``) and exit code 2, the code argparse
    uses too.
    """

    def error(self, message: str) -> NoReturn:
        """Raise the usage error, naming the (sub)command and where to read more."""
        raise UsageError(f"{message} (see {self.prog} --help)")


class _VersionAction(argparse.Action):
    """``--version``, looking the version up only when asked (it costs an import at start-up)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS) -> None:
        super().__init__(
            option_strings,
            dest,
            default=argparse.SUPPRESS,
            nargs=0,
            help="show program's version number and exit",
        )

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        from suppression.version import build_version

        print(f"{parser.prog} {build_version()}")
        parser.exit()


def add_version(parser: argparse.ArgumentParser) -> None:
    """Add ``--version``: the installed package's version, the one build_info reports."""
    parser.add_argument("--version", action=_VersionAction)
