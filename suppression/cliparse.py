"""The argument parser both console scripts share: usage errors as one line, and ``--version``."""

from __future__ import annotations

import argparse
from typing import NoReturn

from suppression.errors import ConfigError
from suppression.version import build_version

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


def add_version(parser: argparse.ArgumentParser) -> None:
    """Add ``--version``: the installed package's version, the one build_info reports."""
    parser.add_argument("--version", action="version", version=f"%(prog)s {build_version()}")
